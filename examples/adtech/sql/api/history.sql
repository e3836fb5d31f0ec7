-- One advertiser's recommendations from both models over the last 7 days computed.
-- strata: path = "/v1/history/{advertiser}"
-- strata: params.advertiser = { type = "string", description = "advertiser_id, e.g. adv002" }
WITH lists AS (
    SELECT 'top_ctr' AS model, date, advertiser_id, rank, product_id FROM gold.top_ctr
    UNION ALL
    SELECT 'top_product' AS model, date, advertiser_id, rank, product_id FROM gold.top_product
),
last_days AS (
    SELECT DISTINCT date FROM lists ORDER BY date DESC LIMIT 7
)
SELECT date, model, rank, product_id
FROM lists
WHERE advertiser_id = $advertiser
  AND date IN (SELECT date FROM last_days)
ORDER BY date DESC, model, rank
