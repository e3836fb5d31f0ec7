#!/usr/bin/env bash
# The ad-tech example's daily job over DAYS generated days, side by side: `strata backfill` (a fresh
# lake each run) against the same steps in DuckDB one day at a time (duckdb_peer.py). Prints each
# run's wall time; BENCHMARKS.md quotes medians of pairs run in turn.
#
# Usage: STRATA=path/to/strata bench/adtech/run.sh
# Optional: DAYS (30), IMPRESSIONS (1000000 a day), VIEWS (500000 a day), ADVERTISERS (200),
#   PRODUCTS (500 each), RUNS (3), WORK (/tmp/strata-bench-adtech), VENV (the pipeline bench's venv,
#   made by bench/pipeline/setup.sh: DuckDB 2.0.1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${STRATA:?set STRATA to the strata binary}"
DAYS=${DAYS:-30}
IMPRESSIONS=${IMPRESSIONS:-1000000}
VIEWS=${VIEWS:-500000}
ADVERTISERS=${ADVERTISERS:-200}
PRODUCTS=${PRODUCTS:-500}
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/strata-bench-adtech}
VENV=${VENV:-$HOME/.cache/strata-bench-pipeline-venv}
VENV=$VENV "$repo/bench/pipeline/setup.sh" >/dev/null

raw="$WORK/raw"
if [ ! -f "$raw/ads_views/$(date -d "2026-11-01 + $((DAYS - 1)) days" +%F).csv" ]; then
  "$STRATA" sample --kind adtech --days "$DAYS" --advertisers "$ADVERTISERS" --products "$PRODUCTS" \
    --impressions-per-day "$IMPRESSIONS" --views-per-day "$VIEWS" --out "$raw"
fi
last=$(date -d "2026-11-01 + $((DAYS - 1)) days" +%F)

for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/lake"
  start=$(date +%s.%N)
  STRATA_INGEST__RAW_DIR="$raw" "$STRATA" --config "$repo/examples/adtech/strata.toml" \
    --lake "$WORK/lake" backfill --from 2026-11-01 --to "$last" >"$WORK/strata.log" 2>&1
  strata_s=$(echo "$(date +%s.%N) - $start" | bc)
  start=$(date +%s.%N)
  "$VENV/bin/python" "$here/duckdb_peer.py" --raw "$raw" --output "$WORK/duckdb" \
    --from 2026-11-01 --to "$last" >"$WORK/duckdb.log" 2>&1
  duckdb_s=$(echo "$(date +%s.%N) - $start" | bc)
  printf 'run %d: strata %.2f s, duckdb %.2f s, ratio %.2f\n' "$run" "$strata_s" "$duckdb_s" \
    "$(echo "$strata_s / $duckdb_s" | bc -l)"
done
