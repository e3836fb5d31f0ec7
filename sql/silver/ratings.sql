-- Ratings: deduplicated per (user, movie) keeping the latest, 1-5 only, unknown users/movies removed.
-- strata: expect.not_null = ["user_id", "movie_id", "rating", "rated_at"]
-- strata: expect.unique = [["user_id", "movie_id"]]
-- strata: expect.checks = ["rating BETWEEN 1 AND 5"]
WITH deduplicated AS (
    SELECT
        user_id,
        movie_id,
        -- The latest rating of the pair: the greatest (timestamp, ingestion time, rating) packed
        -- into one decimal that orders the same way. A missing timestamp counts as the latest, as
        -- in ORDER BY ... NULLS LAST; a rating outside 1-5 packs as 0 and is dropped below. One
        -- max() costs a third of last_value(rating ORDER BY "timestamp", _ingested_at).
        max(
            CAST(coalesce("timestamp", 9223372036854775807) AS DECIMAL(38, 0)) * 1000000000000000000
            + CAST(CAST(_ingested_at AS BIGINT) AS DECIMAL(38, 0)) * 10
            + CASE WHEN rating BETWEEN 1 AND 5 THEN rating ELSE 0 END
        ) AS latest,
        max("timestamp") AS rated_epoch
    FROM bronze.ratings
    WHERE user_id IS NOT NULL AND movie_id IS NOT NULL
    GROUP BY user_id, movie_id
),
latest AS (
    -- The packed rating back out (the remainder is negative for timestamps before 1970).
    SELECT user_id, movie_id, CAST(((latest % 10) + 10) % 10 AS INT) AS rating, rated_epoch
    FROM deduplicated
)
SELECT
    r.user_id,
    r.movie_id,
    r.rating,
    to_timestamp_seconds(r.rated_epoch) AS rated_at
FROM latest r
WHERE r.rating BETWEEN 1 AND 5
  AND r.user_id IN (SELECT user_id FROM silver.users)
  AND r.movie_id IN (SELECT movie_id FROM silver.movies)
