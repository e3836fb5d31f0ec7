SELECT upper(title), regexp_replace(title, '\((\d{4})\)', 'year $1'), split_part(genres, '|', 2),
       CASE WHEN genres LIKE '%Comedy%' THEN 'funny' ELSE NULL END, 'it''s' || 'x'
FROM silver.movies WHERE title ILIKE '%story%' OR title = 'Café'
