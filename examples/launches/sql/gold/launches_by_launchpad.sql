-- Launches per launchpad: flown, successful, upcoming, and the latest flight.
SELECT
    launchpad,
    launchpad_region,
    count(*) FILTER (WHERE NOT upcoming) AS launches,
    count(*) FILTER (WHERE success) AS successes,
    count(*) FILTER (WHERE upcoming) AS upcoming,
    max(date_utc) FILTER (WHERE NOT upcoming) AS last_launch
FROM silver.launches
GROUP BY launchpad, launchpad_region
