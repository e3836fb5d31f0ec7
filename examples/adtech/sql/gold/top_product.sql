-- TopProduct: per advertiser and day, the 20 most viewed products; ties by product_id.
-- strata: materialization = "replace_where"
-- strata: replace_where = "date = $ds"
-- strata: partition_by = ["date"]
-- strata: expect.not_null = ["date", "advertiser_id", "rank", "product_id", "views"]
-- strata: expect.unique = [["date", "advertiser_id", "rank"], ["date", "advertiser_id", "product_id"]]
-- strata: expect.checks = ["rank BETWEEN 1 AND 20", "views > 0"]
WITH ranked AS (
    SELECT advertiser_id,
           product_id,
           count(*) AS views,
           row_number() OVER (PARTITION BY advertiser_id ORDER BY count(*) DESC, product_id) AS rank
    FROM silver.product_views
    WHERE date = $ds
    GROUP BY advertiser_id, product_id
)
SELECT $ds AS date, advertiser_id, CAST(rank AS INT) AS rank, product_id, views
FROM ranked
WHERE rank <= 20
