-- The interactions the ALS step trains on: one explicit rating per (user, item).
-- strata: expect.not_null = ["user_id", "item_id", "rating"]
-- strata: expect.unique = [["user_id", "item_id"]]
-- strata: expect.checks = ["rating BETWEEN 1 AND 5"]
SELECT
    user_id,
    movie_id AS item_id,
    CAST(rating AS DOUBLE) AS rating
FROM silver.ratings
