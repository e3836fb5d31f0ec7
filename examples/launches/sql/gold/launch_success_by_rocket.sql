-- Success rate per rocket, over launches that have flown.
SELECT
    rocket,
    count(*) AS launches,
    count(*) FILTER (WHERE success) AS successes,
    CAST(count(*) FILTER (WHERE success) AS DOUBLE) / count(*) AS success_rate,
    min(date_utc) AS first_launch,
    max(date_utc) AS last_launch
FROM silver.launches
WHERE NOT upcoming
GROUP BY rocket
