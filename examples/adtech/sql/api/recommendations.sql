-- One advertiser's 20 recommended products from one model, on the latest day computed.
-- strata: path = "/v1/recommendations/{advertiser}/{model}"
-- strata: params.advertiser = { type = "string", description = "advertiser_id, e.g. adv002" }
-- strata: params.model = { type = "string", values = ["top_ctr", "top_product"], description = "top_ctr: highest click-through rate; top_product: most viewed" }
WITH lists AS (
    SELECT 'top_ctr' AS model, date, advertiser_id, rank, product_id, CAST(ctr AS DOUBLE) AS score
    FROM gold.top_ctr
    UNION ALL
    SELECT 'top_product' AS model, date, advertiser_id, rank, product_id, CAST(views AS DOUBLE) AS score
    FROM gold.top_product
)
SELECT date, advertiser_id, model, rank, product_id, score
FROM lists
WHERE model = $model
  AND advertiser_id = $advertiser
  AND date = (SELECT max(date) FROM lists WHERE model = $model)
ORDER BY rank
