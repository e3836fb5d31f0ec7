"""The peer for Strata's classifier step: scikit-learn's RandomForestClassifier on exactly the same
train/test rows, read from a lake where `strata --config examples/penguins/strata.toml run` was done.

    python sklearn_peer.py --lake examples/penguins/lake [--runs 5] [--iterations 2000]

Train rows are silver.penguins minus the penguins in gold.penguin_species_predictions (Strata's
held-out rows); features are encoded as Strata does (numbers as they are, island and sex one-hot,
a missing sex its own category). Prints one JSON line: accuracy, median training time, and
single-record predict latency (predict_proba on one row, the call a FastAPI endpoint would make).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import pandas as pd
from deltalake import DeltaTable
from sklearn.ensemble import RandomForestClassifier

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[NUMERIC].astype(float)
    for column in CATEGORICAL:
        values = frame[column].fillna("null")
        for category in sorted(values.unique()):
            out[f"{column}={category}"] = (values == category).astype(float)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--trees", type=int, default=100)
    args = parser.parse_args()

    silver = DeltaTable(os.path.join(args.lake, "silver", "penguins")).to_pandas()
    test_ids = set(
        DeltaTable(os.path.join(args.lake, "gold", "penguin_species_predictions"))
        .to_pandas()["penguin_id"]
    )
    encoded = encode(silver)
    is_test = silver["penguin_id"].isin(test_ids).to_numpy()
    x_train, y_train = encoded[~is_test].to_numpy(), silver["species"][~is_test].to_numpy()
    x_test, y_test = encoded[is_test].to_numpy(), silver["species"][is_test].to_numpy()

    runs = []
    for seed in range(1, args.runs + 1):
        model = RandomForestClassifier(n_estimators=args.trees, random_state=seed, n_jobs=1)
        started = time.perf_counter()
        model.fit(x_train, y_train)
        train_seconds = time.perf_counter() - started
        accuracy = float((model.predict(x_test) == y_test).mean())
        runs.append({"seed": seed, "accuracy": accuracy, "train_seconds": train_seconds})

    # Single-record latency: what a serving endpoint does per request (one row in, probabilities out).
    timings = []
    for i in range(args.iterations):
        row = x_test[i % len(x_test)].reshape(1, -1)
        started = time.perf_counter()
        model.predict_proba(row)
        timings.append((time.perf_counter() - started) * 1e6)
    timings.sort()
    started = time.perf_counter()
    model.predict_proba(x_test)
    batch_us = (time.perf_counter() - started) * 1e6 / len(x_test)

    print(json.dumps({
        "peer": "scikit-learn RandomForestClassifier",
        "trees": args.trees,
        "train_rows": int((~is_test).sum()),
        "test_rows": int(is_test.sum()),
        "runs": runs,
        "accuracy_median": statistics.median(r["accuracy"] for r in runs),
        "train_seconds_median": statistics.median(r["train_seconds"] for r in runs),
        "single_record_us": {
            "median": timings[len(timings) // 2],
            "p99": timings[int(len(timings) * 0.99)],
        },
        "batch_per_record_us": batch_us,
    }))


if __name__ == "__main__":
    main()
