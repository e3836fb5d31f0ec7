SELECT m.title, s.avg_rating, s.ratings
FROM gold.movie_stats s JOIN silver.movies m ON m.movie_id = s.movie_id
WHERE s.ratings >= 2 ORDER BY s.avg_rating DESC, m.title LIMIT 10
