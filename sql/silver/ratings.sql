-- Ratings: deduplicated per (user, movie) keeping the latest, 1-5 only, unknown users/movies removed.
-- strata: expect.not_null = ["user_id", "movie_id", "rating", "rated_at"]
-- strata: expect.unique = [["user_id", "movie_id"]]
-- strata: expect.checks = ["rating BETWEEN 1 AND 5"]
WITH deduplicated AS (
    SELECT
        user_id,
        movie_id,
        last_value(rating ORDER BY "timestamp", _ingested_at) AS rating,
        max("timestamp") AS rated_epoch
    FROM bronze.ratings
    WHERE user_id IS NOT NULL AND movie_id IS NOT NULL
    GROUP BY user_id, movie_id
)
SELECT
    r.user_id,
    r.movie_id,
    r.rating,
    to_timestamp_seconds(r.rated_epoch) AS rated_at
FROM deduplicated r
WHERE r.rating BETWEEN 1 AND 5
  AND r.user_id IN (SELECT user_id FROM silver.users)
  AND r.movie_id IN (SELECT movie_id FROM silver.movies)
