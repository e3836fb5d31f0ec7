-- The ten best movies overall (genre = 'all') and per genre, by Bayesian average, among movies with at
-- least 20 ratings.
-- strata: expect.not_null = ["genre", "rank", "movie_id", "bayesian_avg"]
-- strata: expect.unique = [["genre", "rank"], ["genre", "movie_id"]]
-- strata: expect.checks = ["rank BETWEEN 1 AND 10", "rating_count >= 20"]
WITH eligible AS (
    SELECT movie_id, title, year, genres, rating_count, rating_mean, bayesian_avg
    FROM gold.movie_stats
    WHERE rating_count >= 20
),
scoped AS (
    SELECT 'all' AS genre, movie_id, title, year, rating_count, rating_mean, bayesian_avg
    FROM eligible
    UNION ALL
    SELECT unnest(genres) AS genre, movie_id, title, year, rating_count, rating_mean, bayesian_avg
    FROM eligible
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY genre ORDER BY bayesian_avg DESC, rating_count DESC, movie_id
        ) AS rank
    FROM scoped
)
SELECT genre, rank, movie_id, title, year, rating_count, rating_mean, bayesian_avg
FROM ranked
WHERE rank <= 10
