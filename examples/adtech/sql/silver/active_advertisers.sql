-- The advertisers recommendations are computed for: the list in raw/advertiser_ids.csv, each once.
-- strata: expect.not_null = ["advertiser_id"]
-- strata: expect.unique = ["advertiser_id"]
SELECT DISTINCT advertiser_id
FROM bronze.advertiser_ids
WHERE advertiser_id IS NOT NULL
