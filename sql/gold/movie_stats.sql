-- Per movie: rating count, mean, and a Bayesian average that shrinks movies with few ratings toward
-- the global mean (prior weight = the mean number of ratings per movie).
-- strata: expect.not_null = ["movie_id", "rating_count", "rating_mean", "bayesian_avg"]
-- strata: expect.unique = ["movie_id"]
-- strata: expect.checks = ["rating_mean BETWEEN 1 AND 5", "bayesian_avg BETWEEN 1 AND 5", "rating_count > 0"]
-- The per-movie aggregate carries only numbers; titles and genres join in afterwards. Carrying them
-- through the aggregate (first_value) made it hold, and spill, far more memory than it needs.
WITH per_movie AS (
    SELECT
        movie_id,
        count(*) AS rating_count,
        sum(rating) AS rating_sum
    FROM silver.movie_ratings
    GROUP BY movie_id
),
prior AS (
    SELECT
        sum(rating_sum) / CAST(sum(rating_count) AS DOUBLE) AS global_mean,
        sum(rating_count) / CAST(count(*) AS DOUBLE) AS weight
    FROM per_movie
)
SELECT
    m.movie_id,
    mv.title,
    mv.year,
    mv.genres,
    m.rating_count,
    m.rating_sum / CAST(m.rating_count AS DOUBLE) AS rating_mean,
    (p.weight * p.global_mean + m.rating_sum) / (p.weight + m.rating_count) AS bayesian_avg
FROM per_movie m
JOIN silver.movies mv ON mv.movie_id = m.movie_id
CROSS JOIN prior p
