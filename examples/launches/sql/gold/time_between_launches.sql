-- For every flown launch, the days since the previous launch (any rocket) and since the previous
-- launch of the same rocket (null for the first one).
SELECT
    launch_id,
    name,
    rocket,
    date_utc,
    (date_part('epoch', date_utc)
        - date_part('epoch', lag(date_utc) OVER (ORDER BY date_utc, flight_number))) / 86400.0
        AS days_since_previous,
    (date_part('epoch', date_utc)
        - date_part('epoch', lag(date_utc) OVER (PARTITION BY rocket ORDER BY date_utc, flight_number)))
        / 86400.0 AS days_since_previous_same_rocket
FROM silver.launches
WHERE NOT upcoming
