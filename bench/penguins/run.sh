#!/usr/bin/env bash
# Classifier benchmark: Strata's classifier step and predict endpoint against scikit-learn (+ FastAPI)
# on the penguins example, on the same train/test rows.
#
# Usage:  STRATA=path/to/release/strata bench/penguins/run.sh
#   1. runs examples/penguins in a scratch copy (its own lake);
#   2. accuracy over forest seeds 1-5 on the example's split (split_seed 42), Strata and sklearn;
#   3. `strata bench predict` (in-process latency) and sklearn's predict_proba on one row;
#   4. HTTP: POST one record to `strata serve` and to the FastAPI peer (2 uvicorn workers), with oha.
# Optional: DURATION (default 10s), CONNECTIONS (16), VENV ($HOME/.cache/strata-bench-venv).
# Run on an otherwise idle machine: oha shares the 2 cores with the server under test.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${STRATA:?set STRATA to the strata binary}"
STRATA=$(cd "$(dirname "$STRATA")" && pwd)/$(basename "$STRATA")
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
VENV=${VENV:-$HOME/.cache/strata-bench-venv}
OHA=${OHA:-$HOME/.cargo/bin/oha}
py="$VENV/bin/python"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cp -r "$repo/examples/penguins/." "$work/"
rm -rf "$work/lake"
cd "$work"
strata() { "$STRATA" --config strata.toml "$@"; }

echo "== pipeline (release binary)"
strata run

echo "== accuracy over forest seeds 1-5, split seed 42"
cp strata.toml base.toml
for seed in 1 2 3 4 5; do
  { cat base.toml; printf '\n[steps."gold.penguin_species"]\nseed = %s\nsplit_seed = 42\n' "$seed"; } >strata.toml
  strata run --select gold.penguin_species >/dev/null
  strata query "SELECT seed, accuracy, train_seconds FROM system.model_runs ORDER BY trained_at DESC LIMIT 1" --format json
done
cp base.toml strata.toml
strata run --select gold.penguin_species >/dev/null
"$py" "$here/sklearn_peer.py" --lake lake --runs 5

echo "== in-process predict latency"
strata bench predict --model gold.penguin_species

echo "== HTTP: one record per request, $CONNECTIONS connections, $DURATION"
body='{"bill_length_mm": 46.1, "bill_depth_mm": 13.2, "flipper_length_mm": 211, "body_mass_g": 4500, "island": "Biscoe", "sex": "female"}'
load() {
  "$OHA" --no-tui -z "$DURATION" -c "$CONNECTIONS" -m POST -H 'content-type: application/json' \
    -d "$body" --output-format json "$1" |
    "$py" -c 'import json,sys; r=json.load(sys.stdin); s=r["summary"]; p=r["latencyPercentiles"];
print(json.dumps({"requests_per_second": round(s["requestsPerSec"]), "p50_ms": round(p["p50"]*1000, 3),
  "p99_ms": round(p["p99"]*1000, 3), "status": r["statusCodeDistribution"]}))'
}
wait_for() {
  for _ in $(seq 1 300); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.1
  done
  echo "server at $1 did not start" >&2
  return 1
}
strata serve --bind 127.0.0.1:8181 >"$work/strata.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8181/health
curl -sf -X POST -H 'content-type: application/json' -d "$body" http://127.0.0.1:8181/v1/models/penguin_species/predict >/dev/null
printf 'strata serve:    '
load http://127.0.0.1:8181/v1/models/penguin_species/predict
kill "${pids[0]}"
(cd "$here" && LAKE="$work/lake" "$VENV/bin/uvicorn" fastapi_peer:app --port 8182 --workers 2 --log-level warning) &
pids+=($!)
wait_for http://127.0.0.1:8182/health
printf 'FastAPI+sklearn: '
load http://127.0.0.1:8182/v1/models/penguin_species/predict
