-- Launches, flattened and typed, with their rocket and launchpad joined in.
-- strata: expect.not_null = ["launch_id", "name", "date_utc", "flight_number"]
-- strata: expect.unique = ["launch_id"]
SELECT
    l.id AS launch_id,
    l.name,
    to_timestamp(l.date_utc) AS date_utc,
    l.success,
    l.upcoming,
    l.flight_number,
    l.rocket AS rocket_id,
    r.name AS rocket,
    l.launchpad AS launchpad_id,
    p.name AS launchpad,
    p.region AS launchpad_region,
    -- The failures stay a list of {time, altitude, reason}; the count and first reason are
    -- what most questions need.
    l.failures,
    cardinality(l.failures) AS failure_count,
    CASE WHEN cardinality(l.failures) > 0 THEN l.failures[1]['reason'] END AS failure_reason
FROM bronze.launches AS l
LEFT JOIN bronze.rockets AS r ON l.rocket = r.id
LEFT JOIN bronze.launchpads AS p ON l.launchpad = p.id
