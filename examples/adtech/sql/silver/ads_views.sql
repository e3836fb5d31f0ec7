-- One day (ds) of ad interactions of active advertisers. Each run replaces its own day and
-- nothing else, so re-running a day is safe.
-- strata: materialization = "replace_where"
-- strata: replace_where = "date = $ds"
-- strata: partition_by = ["date"]
-- strata: expect.not_null = ["advertiser_id", "product_id", "type", "date"]
-- strata: expect.accepted_values = { type = ["impression", "click"] }
SELECT advertiser_id, product_id, type, date
FROM bronze.ads_views
WHERE date = $ds
  AND advertiser_id IN (SELECT advertiser_id FROM silver.active_advertisers)
