#!/usr/bin/env python3
"""Peer of the explicit-ALS accuracy benchmark: Spark MLlib ALS at its documented settings
(rank 10, 10 iterations, regParam 0.1, coldStartStrategy "drop"), trained on SPLIT/train.tsv and
scored by RMSE on SPLIT/test.tsv, once per initialisation seed.

Usage: spark_peer.py SPLIT_DIR [SPLIT_DIR ...] [--seeds 1 2 3 4 5]

Prints one JSON line per split: {"split", "rmse": [per seed], "mean", "min", "max", "spark"}.
"""

import argparse
import json
import statistics


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("splits", nargs="+")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = ap.parse_args()

    from pyspark import __version__ as spark_version
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession
    from pyspark.sql.types import FloatType, IntegerType, StructField, StructType

    spark = (SparkSession.builder.master("local[2]").appName("strata-bench-spark-als")
             .config("spark.driver.memory", "6g")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    # Only the first three columns: the split files may carry a timestamp as a fourth.
    schema = StructType([StructField("user_id", IntegerType()), StructField("item_id", IntegerType()),
                         StructField("rating", FloatType())])
    evaluator = RegressionEvaluator(metricName="rmse", labelCol="rating", predictionCol="prediction")
    for split in args.splits:
        read = lambda name: (spark.read.csv(f"{split}/{name}.tsv", sep="\t", header=True, schema=schema)  # noqa: E731
                             .cache())
        train, test = read("train"), read("test")
        train.count(), test.count()
        rmse = []
        for seed in args.seeds:
            als = ALS(rank=10, maxIter=10, regParam=0.1, coldStartStrategy="drop", seed=seed,
                      userCol="user_id", itemCol="item_id", ratingCol="rating")
            rmse.append(round(evaluator.evaluate(als.fit(train).transform(test)), 5))
        print(json.dumps({"split": split, "rmse": rmse, "mean": round(statistics.mean(rmse), 5),
                          "min": min(rmse), "max": max(rmse), "spark": spark_version}), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
