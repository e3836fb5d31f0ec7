-- Users, typed and deduplicated (the last ingested row per user wins).
-- strata: expect.not_null = ["user_id", "gender", "age"]
-- strata: expect.unique = ["user_id"]
-- strata: expect.accepted_values.gender = ["M", "F"]
-- strata: expect.accepted_values.age = [1, 18, 25, 35, 45, 50, 56]
SELECT
    user_id,
    last_value(gender ORDER BY _ingested_at) AS gender,
    last_value(age ORDER BY _ingested_at) AS age,
    last_value(occupation ORDER BY _ingested_at) AS occupation,
    last_value(zip_code ORDER BY _ingested_at) AS zip_code
FROM bronze.users
WHERE user_id IS NOT NULL
GROUP BY user_id
