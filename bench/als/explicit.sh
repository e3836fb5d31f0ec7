#!/usr/bin/env bash
# Explicit ALS accuracy: Strata with biases at its defaults (`strata bench als --biases`) against
# Spark MLlib ALS at its documented settings (rank 10, 10 iterations, regParam 0.1), on the same
# 80/20 splits, SEEDS initialisation seeds each, then the mean test RMSE of each and their ratio.
#
# Usage: bench/als/setup.sh && STRATA=$CARGO_TARGET_DIR/release/strata bench/als/explicit.sh [SPLIT_DIR...]
#   SPLIT_DIR  directories holding train.tsv and test.tsv (default: the shared ml-100k and
#              ml-latest-small splits, and the 1M sample split by split.py)
#   SEEDS      seeds (default "1 2 3 4 5");  WORK (default /tmp/strata-bench-als)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
strata="${STRATA:-target/release/strata}"
python="${VENV:-$HOME/.cache/strata-bench-als-venv}/bin/python"
seeds="${SEEDS:-1 2 3 4 5}"
work="${WORK:-/tmp/strata-bench-als}"

splits=("$@")
if [ ${#splits[@]} -eq 0 ]; then
  shared="$(realpath -m "$here/../../../shared/data")"
  sample="$work/1000209"
  if [ ! -f "$sample/split/test.tsv" ]; then
    "$strata" sample --ratings 1000209 --out "$sample/raw" > /dev/null
    "$python" "$here/split.py" "$sample/raw/ratings.dat" "$sample/split"
  fi
  splits=("$shared/ml-100k-split" "$shared/ml-latest-small-split" "$sample/split")
fi

out="$work/explicit"
mkdir -p "$out"
: > "$out/strata.jsonl"
for split in "${splits[@]}"; do
  for seed in $seeds; do
    "$strata" bench als --train "$split/train.tsv" --test "$split/test.tsv" --biases --threads 2 \
      --seed "$seed" 2> /dev/null |
      "$python" -c 'import json, sys; r = json.load(sys.stdin); print(json.dumps({"split": sys.argv[1], "rmse": r["rmse"]}))' "$split" \
      >> "$out/strata.jsonl"
  done
done
# shellcheck disable=SC2086
"$python" "$here/spark_peer.py" "${splits[@]}" --seeds $seeds 2> "$out/spark.log" > "$out/spark.jsonl"

"$python" - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
strata = {}
for line in open(f"{out}/strata.jsonl"):
    r = json.loads(line)
    strata.setdefault(r["split"], []).append(r["rmse"])
print(f"{'split':<60} {'Strata (sd)':>16} {'Spark (sd)':>16} {'Strata/Spark-1':>15}")
for line in open(f"{out}/spark.jsonl"):
    spark = json.loads(line)
    s = strata[spark["split"]]
    ms, mp = statistics.mean(s), spark["mean"]
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
    print(f"{spark['split']:<60} {ms:9.4f} ({sd(s):.4f}) {mp:9.4f} ({sd(spark['rmse']):.4f}) {100 * (ms / mp - 1):+14.1f}%")
PY
