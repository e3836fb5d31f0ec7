-- Every rating with its movie and user attributes: the wide table the gold layer aggregates.
-- strata: expect.not_null = ["user_id", "movie_id", "rating", "title"]
-- strata: expect.unique = [["user_id", "movie_id"]]
SELECT
    r.user_id,
    r.movie_id,
    r.rating,
    r.rated_at,
    m.title,
    m.year,
    m.genres,
    u.gender,
    u.age,
    u.occupation
FROM silver.ratings r
JOIN silver.movies m ON m.movie_id = r.movie_id
JOIN silver.users u ON u.user_id = r.user_id
