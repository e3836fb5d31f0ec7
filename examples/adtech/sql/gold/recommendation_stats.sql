-- Per day (ds): how many advertisers got recommendations, how often the two models agree (the
-- share of the shorter list that the other list also holds, averaged over advertisers), and the
-- advertisers whose lists changed most since the day before (products new to either list, most
-- first, at most 5). Reads the day before from gold.top_ctr / gold.top_product: run days in
-- order (a backfill does).
-- strata: materialization = "replace_where"
-- strata: replace_where = "date = $ds"
-- strata: expect.not_null = ["date", "advertisers"]
-- strata: expect.unique = ["date"]
-- strata: expect.checks = ["model_agreement BETWEEN 0 AND 1"]
WITH lists AS (
    SELECT 'top_ctr' AS model, date, advertiser_id, product_id FROM gold.top_ctr
    WHERE date IN ($ds, $ds - INTERVAL '1' DAY)
    UNION ALL
    SELECT 'top_product' AS model, date, advertiser_id, product_id FROM gold.top_product
    WHERE date IN ($ds, $ds - INTERVAL '1' DAY)
),
today AS (SELECT model, advertiser_id, product_id FROM lists WHERE date = $ds),
yesterday AS (SELECT model, advertiser_id, product_id FROM lists WHERE date < $ds),
per_advertiser AS (
    SELECT advertiser_id,
           count(*) FILTER (WHERE model = 'top_ctr') AS ctr_products,
           count(*) FILTER (WHERE model = 'top_product') AS viewed_products
    FROM today
    GROUP BY advertiser_id
),
shared AS (
    SELECT c.advertiser_id, count(*) AS products
    FROM today c
    JOIN today p ON p.advertiser_id = c.advertiser_id AND p.product_id = c.product_id
    WHERE c.model = 'top_ctr' AND p.model = 'top_product'
    GROUP BY c.advertiser_id
),
changes AS (
    SELECT t.advertiser_id, count(*) FILTER (WHERE y.product_id IS NULL) AS new_products
    FROM today t
    LEFT JOIN yesterday y
      ON y.model = t.model AND y.advertiser_id = t.advertiser_id AND y.product_id = t.product_id
    WHERE t.advertiser_id IN (SELECT advertiser_id FROM yesterday)
    GROUP BY t.advertiser_id
),
scored AS (
    SELECT a.advertiser_id,
           CAST(coalesce(s.products, 0) AS DOUBLE)
               / nullif(least(a.ctr_products, a.viewed_products), 0) AS agreement,
           c.new_products
    FROM per_advertiser a
    LEFT JOIN shared s ON s.advertiser_id = a.advertiser_id
    LEFT JOIN changes c ON c.advertiser_id = a.advertiser_id
)
SELECT $ds AS date,
       count(*) AS advertisers,
       avg(agreement) AS model_agreement,
       avg(new_products) AS avg_new_products,
       array_slice(
           array_agg(advertiser_id ORDER BY new_products DESC, advertiser_id)
               FILTER (WHERE new_products > 0),
           1, 5
       ) AS changed_most
FROM scored
