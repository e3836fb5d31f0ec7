-- Success rate per calendar year (UTC), over launches that have flown.
SELECT
    CAST(date_part('year', date_utc) AS INT) AS year,
    count(*) AS launches,
    count(*) FILTER (WHERE success) AS successes,
    CAST(count(*) FILTER (WHERE success) AS DOUBLE) / count(*) AS success_rate
FROM silver.launches
WHERE NOT upcoming
GROUP BY 1
