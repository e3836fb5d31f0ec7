WITH before AS (SELECT * FROM table_version('silver.ratings', 0)),
     now AS (SELECT * FROM silver.ratings)
SELECT (SELECT count(*) FROM now) - (SELECT count(*) FROM before) AS added
