COPY (SELECT * FROM silver.ratings) TO 'ratings-copy.parquet' STORED AS PARQUET
