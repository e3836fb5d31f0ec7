-- One day (ds) of product page views of active advertisers.
-- strata: materialization = "replace_where"
-- strata: replace_where = "date = $ds"
-- strata: partition_by = ["date"]
-- strata: expect.not_null = ["advertiser_id", "product_id", "date"]
SELECT advertiser_id, product_id, date
FROM bronze.product_views
WHERE date = $ds
  AND advertiser_id IN (SELECT advertiser_id FROM silver.active_advertisers)
