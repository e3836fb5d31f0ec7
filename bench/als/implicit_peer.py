#!/usr/bin/env python3
"""The `implicit` library's CPU AlternatingLeastSquares (Hu, Koren & Volinsky implicit ALS,
conjugate-gradient solver) on the train.tsv / test.tsv that split.py writes, with the settings and
metric definitions of `strata bench als --implicit`:

- confidence C = 1 + alpha * rating, stored in the user x item matrix (implicit's convention: the
  stored value is the confidence), model alpha 1.0;
- NDCG@10 with binary gains over users with at least one test rating >= 4 (users absent from
  train score 0), the user's train items excluded from the list.

Prints one JSON line: train_seconds (model.fit only, matrix already built), recommend_seconds (one
batched top-10 for every train user) and ndcg_at_10.

Usage: implicit_peer.py DIR [--factors 64] [--iterations 15] [--regularization 0.01] [--threads 2]
"""

import argparse
import json
import math
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402


def read(path):
    data = np.loadtxt(path, delimiter="\t", skiprows=1, usecols=(0, 1, 2), ndmin=2)
    return data[:, 0].astype(np.int64), data[:, 1].astype(np.int64), data[:, 2].astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--regularization", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import implicit
    from implicit.cpu.als import AlternatingLeastSquares

    tu, ti, tr = read(os.path.join(args.dir, "train.tsv"))
    eu, ei, er = read(os.path.join(args.dir, "test.tsv"))
    users, rows = np.unique(tu, return_inverse=True)
    items, cols = np.unique(ti, return_inverse=True)
    conf = (1.0 + args.alpha * tr).astype(np.float32)
    user_items = sp.csr_matrix((conf, (rows, cols)), shape=(len(users), len(items)))
    user_items.sum_duplicates()

    model = AlternatingLeastSquares(
        factors=args.factors,
        iterations=args.iterations,
        regularization=args.regularization,
        alpha=1.0,
        random_state=42,
        num_threads=args.threads,
    )
    t0 = time.perf_counter()
    model.fit(user_items, show_progress=False)
    train_seconds = time.perf_counter() - t0

    every = np.arange(len(users))
    t0 = time.perf_counter()
    ids, _ = model.recommend(every, user_items[every], N=10, filter_already_liked_items=True)
    recommend_seconds = time.perf_counter() - t0

    relevant = {}
    for u, i, r in zip(eu.tolist(), ei.tolist(), er.tolist()):
        if r >= 4.0:
            relevant.setdefault(u, set()).add(i)
    position = {int(u): k for k, u in enumerate(users.tolist())}
    total = 0.0
    for u, rel in relevant.items():
        k = position.get(u)
        if k is None:
            continue
        listed = [int(items[j]) for j in ids[k] if j >= 0][:10]
        dcg = sum(1.0 / math.log2(p + 2) for p, i in enumerate(listed) if i in rel)
        idcg = sum(1.0 / math.log2(p + 2) for p in range(min(len(rel), 10)))
        total += dcg / idcg
    print(
        json.dumps(
            {
                "system": f"implicit {implicit.__version__}",
                "train_seconds": round(train_seconds, 3),
                "recommend_seconds": round(recommend_seconds, 3),
                "ndcg_at_10": round(total / max(len(relevant), 1), 5),
                "users": int(len(users)),
                "items": int(len(items)),
                "train_rows": int(len(tu)),
            }
        )
    )


if __name__ == "__main__":
    main()
