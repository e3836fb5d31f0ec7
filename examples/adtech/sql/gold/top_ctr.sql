-- TopCTR: per advertiser and day, the 20 products with the highest click-through rate
-- (clicks / impressions) among products shown at least once that day; ties by product_id.
-- strata: materialization = "replace_where"
-- strata: replace_where = "date = $ds"
-- strata: partition_by = ["date"]
-- strata: expect.not_null = ["date", "advertiser_id", "rank", "product_id", "impressions", "clicks", "ctr"]
-- strata: expect.unique = [["date", "advertiser_id", "rank"], ["date", "advertiser_id", "product_id"]]
-- strata: expect.checks = ["rank BETWEEN 1 AND 20", "impressions > 0", "ctr BETWEEN 0 AND 1"]
WITH counts AS (
    SELECT advertiser_id,
           product_id,
           count(*) FILTER (WHERE type = 'impression') AS impressions,
           count(*) FILTER (WHERE type = 'click') AS clicks
    FROM silver.ads_views
    WHERE date = $ds
    GROUP BY advertiser_id, product_id
),
ranked AS (
    SELECT advertiser_id,
           product_id,
           impressions,
           clicks,
           CAST(clicks AS DOUBLE) / impressions AS ctr,
           row_number() OVER (
               PARTITION BY advertiser_id
               ORDER BY CAST(clicks AS DOUBLE) / impressions DESC, product_id
           ) AS rank
    FROM counts
    WHERE impressions > 0
)
SELECT $ds AS date, advertiser_id, CAST(rank AS INT) AS rank, product_id, impressions, clicks, ctr
FROM ranked
WHERE rank <= 20
