#!/usr/bin/env bash
# The MovieLens SQL pipeline without the ALS step (ingest -> silver -> gold, 11 tables): Strata
# against DuckDB (each step Parquet in, Parquet out, 2 threads) and, with SPARK=1, PySpark
# (local[2]), on the same generated files, run by run in turn, RUNS times each; then the medians
# of the whole processes, per-step medians and the ratios.
#
# Usage: bench/pipeline/setup.sh && STRATA=$CARGO_TARGET_DIR/release/strata bench/pipeline/run.sh
#   RATINGS  ratings to generate with `strata sample` (default 1000209; 25000000 for the 25M row)
#   RUNS     runs of each (default 3);  SPARK=1 adds the Spark peer;  WORK (default /tmp/strata-bench-pipeline)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
strata="$(realpath "${STRATA:-target/release/strata}")"
python="${VENV:-$HOME/.cache/strata-bench-pipeline-venv}/bin/python"
ratings="${RATINGS:-1000209}"
runs="${RUNS:-3}"
work="${WORK:-/tmp/strata-bench-pipeline}/$ratings"

if [ ! -f "$work/raw/ratings.dat" ]; then
  "$strata" sample --ratings "$ratings" --out "$work/raw" > /dev/null
fi

# The repository's SQL steps without the ALS step (the peers have no ALS either).
rm -rf "$work/strata" && mkdir -p "$work/strata/config"
cp -r "$repo/sql" "$work/strata/sql"
find "$work/strata/sql" -name '*.als.toml' -delete
cat > "$work/strata/config/strata.toml" <<TOML
[lake]
root = "../lake"
[ingest]
raw_dir = "$work/raw"
[sql]
dir = "../sql"
[sample]
generate_if_empty = false
TOML

now() { date +%s.%N; }
for run in $(seq "$runs"); do
  rm -rf "$work/strata/lake"
  start=$(now)
  (cd "$work/strata" && "$strata" run > "$work/strata-$run.txt" 2>&1)
  echo "$start $(now)" > "$work/strata-$run.time"
  "$python" "$here/duckdb_peer.py" --input "$work/raw" --output "$work/duckdb-out" --runs 1 \
    --threads 2 > "$work/duckdb-$run.json"
  if [ "${SPARK:-0}" = 1 ]; then
    "$python" "$here/spark_peer.py" --input "$work/raw" --output "$work/spark-out" --runs 1 \
      > "$work/spark-$run.json" 2> "$work/spark-$run.log"
  fi
done

"$python" - "$work" "$runs" "${SPARK:-0}" <<'PY'
import json, re, statistics, sys
work, runs, spark = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
med = statistics.median

def strata_run(r):
    start, end = map(float, open(f"{work}/strata-{r}.time").read().split())
    steps = {}
    for line in open(f"{work}/strata-{r}.txt"):
        m = re.match(r"^(\S+\.\S+)\s+committed\s.*?\s(\d+) ms", line)
        if m:
            steps[m.group(1)] = int(m.group(2)) / 1000
    return {"process_s": end - start, "steps": steps}

strata = [strata_run(r) for r in range(1, runs + 1)]
peers = {"DuckDB": [json.load(open(f"{work}/duckdb-{r}.json"))["runs"][0] for r in range(1, runs + 1)]}
if spark:
    peers["Spark"] = [json.load(open(f"{work}/spark-{r}.json"))["per_run"][0] for r in range(1, runs + 1)]

s = med(r["process_s"] for r in strata)
print(f"{runs} runs each, whole processes, medians")
print(f"  Strata  {s:7.2f} s   {[round(r['process_s'], 2) for r in strata]}")
for name, rows in peers.items():
    p = med(r["process_s"] for r in rows)
    print(f"  {name:7} {p:7.2f} s   {[round(r['process_s'], 2) for r in rows]}   Strata/{name} {s / p:.2f}x")
print("per step (median s):  Strata  " + "  ".join(peers))
for table in strata[0]["steps"]:
    cells = [f"{med(r['steps'][table] for r in strata):6.2f}"]
    for rows in peers.values():
        cells.append(f"{med(r['steps'].get(table, float('nan')) for r in rows):6.2f}")
    print(f"  {table:24} " + "  ".join(cells))
PY
