-- Per genre: how many ratings, their mean, how many distinct users and movies.
-- strata: expect.not_null = ["genre", "rating_count", "rating_mean"]
-- strata: expect.unique = ["genre"]
-- strata: expect.checks = ["rating_mean BETWEEN 1 AND 5", "distinct_users <= rating_count"]
WITH by_genre AS (
    SELECT unnest(genres) AS genre, user_id, movie_id, rating
    FROM silver.movie_ratings
)
SELECT
    genre,
    count(*) AS rating_count,
    avg(CAST(rating AS DOUBLE)) AS rating_mean,
    count(DISTINCT user_id) AS distinct_users,
    count(DISTINCT movie_id) AS distinct_movies
FROM by_genre
GROUP BY genre
