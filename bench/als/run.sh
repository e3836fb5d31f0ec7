#!/usr/bin/env bash
# Implicit ALS, Strata against the `implicit` library, on the same generated split, one after the
# other, RUNS times each (in turn), then the medians and their ratio. Settings: 64 factors,
# ITERATIONS iterations, regularization 0.01, confidence 1 + rating, 2 threads.
#
# Usage: bench/als/setup.sh && STRATA=$CARGO_TARGET_DIR/release/strata bench/als/run.sh
#   RATINGS  ratings to generate with `strata sample` (default 1000209; 25000000 for the 25M row)
#   RUNS     runs of each (default 3);  ITERATIONS (default 15);  WORK (default /tmp/strata-bench-als)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
strata="${STRATA:-target/release/strata}"
python="${VENV:-$HOME/.cache/strata-bench-als-venv}/bin/python"
ratings="${RATINGS:-1000209}"
runs="${RUNS:-3}"
iterations="${ITERATIONS:-15}"
work="${WORK:-/tmp/strata-bench-als}/$ratings"

if [ ! -f "$work/split/test.tsv" ]; then
  "$strata" sample --ratings "$ratings" --out "$work/raw" > /dev/null
  "$python" "$here/split.py" "$work/raw/ratings.dat" "$work/split"
fi

for run in $(seq "$runs"); do
  "$strata" bench als --train "$work/split/train.tsv" --test "$work/split/test.tsv" --implicit \
    --factors 64 --iterations "$iterations" --regularization 0.01 --threads 2 \
    > "$work/strata-$run.json"
  "$python" "$here/implicit_peer.py" "$work/split" --factors 64 --iterations "$iterations" \
    --regularization 0.01 --threads 2 > "$work/implicit-$run.json"
done

"$python" - "$work" "$runs" <<'PY'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
def load(name):
    return [json.load(open(f"{work}/{name}-{r}.json")) for r in range(1, runs + 1)]
strata, peer = load("strata"), load("implicit")
med = lambda rows, key: statistics.median(r[key] for r in rows)
s_train, p_train = med(strata, "train_seconds"), med(peer, "train_seconds")
print(f"ratings {strata[0]['train_rows']} train rows, {peer[0]['users']} users x {peer[0]['items']} items, {runs} runs each")
print(f"train (median)   Strata {s_train:.3f} s   {peer[0]['system']} {p_train:.3f} s   implicit/Strata {p_train / s_train:.2f}x")
print(f"train (all)      Strata {[r['train_seconds'] for r in strata]}   implicit {[r['train_seconds'] for r in peer]}")
print(f"NDCG@10          Strata {strata[0]['ndcg_at_10']:.5f}   implicit {peer[0]['ndcg_at_10']:.5f}")
PY
