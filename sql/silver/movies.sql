-- Movies: "Title (1995)" split into title and release year, "A|B" genres into a list.
-- strata: expect.not_null = ["movie_id", "title", "genres"]
-- strata: expect.unique = ["movie_id"]
-- strata: expect.checks = ["year IS NULL OR year BETWEEN 1870 AND 2100"]
WITH latest AS (
    SELECT
        movie_id,
        last_value(title ORDER BY _ingested_at) AS raw_title,
        last_value(genres ORDER BY _ingested_at) AS raw_genres
    FROM bronze.movies
    WHERE movie_id IS NOT NULL
    GROUP BY movie_id
),
parsed AS (
    SELECT
        movie_id,
        raw_title,
        raw_genres,
        regexp_match(raw_title, '^(.*?)\s*\((\d{4})\)\s*$') AS parts
    FROM latest
)
SELECT
    movie_id,
    CASE WHEN parts IS NULL THEN trim(raw_title) ELSE parts[1] END AS title,
    CAST(parts[2] AS INT) AS year,
    CASE
        WHEN raw_genres IS NULL OR raw_genres = '' OR raw_genres = '(no genres listed)'
            THEN CAST(make_array() AS VARCHAR[])
        ELSE string_to_array(raw_genres, '|')
    END AS genres
FROM parsed
