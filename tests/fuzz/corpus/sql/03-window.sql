SELECT user_id, movie_id, rating,
       rank() OVER (PARTITION BY user_id ORDER BY rating DESC, movie_id) AS r,
       avg(rating) OVER (ORDER BY "timestamp" ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS moving
FROM silver.ratings
