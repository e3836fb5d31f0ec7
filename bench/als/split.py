#!/usr/bin/env python3
"""Seeded 80/20 split of a MovieLens `user::item::rating::timestamp` file (what `strata sample`
writes) into train.tsv and test.tsv with a header line, the format `strata bench als` and
implicit_peer.py read. Row i goes to test when the i-th draw of numpy's default_rng(seed) is
below the fraction: the rule of the team's peer scripts, so both systems see the same rows.

Usage: split.py RATINGS_DAT OUT_DIR [--seed 42] [--test-fraction 0.2]
"""

import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ratings")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    args = ap.parse_args()

    with open(args.ratings, encoding="latin-1") as f:
        rows = [line.rstrip("\r\n").split("::") for line in f if line.strip()]
    draws = np.random.default_rng(args.seed).random(len(rows))
    os.makedirs(args.out, exist_ok=True)
    header = "user_id\titem_id\trating\ttimestamp\n"
    with open(os.path.join(args.out, "train.tsv"), "w") as train, open(
        os.path.join(args.out, "test.tsv"), "w"
    ) as test:
        train.write(header)
        test.write(header)
        for row, draw in zip(rows, draws):
            (test if draw < args.test_fraction else train).write("\t".join(row[:4]) + "\n")


if __name__ == "__main__":
    main()
