#!/usr/bin/env bash
# Screenshots of the dashboard's main pages for the README, taken with the headless chromium the
# browser tests drive (Debian's `chromium`). Builds a small lake in a temporary directory (the
# repo's SQL and config, a generated sample), runs the pipeline twice (new ratings in between, so
# tables have versions to compare and the model two runs), serves it and saves one PNG per page
# under docs/screenshots/.
#
# Usage: docs/screenshots.sh [path/to/strata]   (default: the release binary, built if needed)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
strata="${1:-}"
if [ -z "$strata" ]; then
  (cd "$repo" && cargo build --release --quiet)
  strata="${CARGO_TARGET_DIR:-$repo/target}/release/strata"
fi
browser="$(command -v chromium || command -v chromium-browser)"
work="$(mktemp -d)"
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
# strata's own output goes to a log, shown if a step fails.
log="$work/strata.log"
trap 'echo "failed; strata said:"; cat "$log"' ERR
cp -r "$repo/sql" "$repo/config" "$work/"
cd "$work"
"$strata" sample --users 600 --items 400 --ratings 30000 --out lake/raw >>"$log" 2>&1
"$strata" run >>"$log" 2>&1
# New ratings: every table downstream gets a second version and the model a second training.
printf '1::1::5::978300760\n1::2::1::978300761\n2::3::4::978300762\n' >>lake/raw/ratings.dat
"$strata" run >>"$log" 2>&1
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$strata" serve --bind "127.0.0.1:$port" >serve.log 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.1
done
base="http://127.0.0.1:$port"
run_id="$(curl -fs "$base/v1/runs?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')"
models="$(curl -fs "$base/v1/models/recommendations" | python3 -c 'import json,sys; h=json.load(sys.stdin)["history"]; print("&".join("run="+r["run_id"] for r in h[:2]))')"
out="$repo/docs/screenshots"
mkdir -p "$out"
shoot() {
  "$browser" --headless=new --no-sandbox --disable-dev-shm-usage --disable-gpu --hide-scrollbars \
    --window-size=1280,"$3" --screenshot="$out/$1.png" "$base$2" 2>/dev/null
  echo "$out/$1.png  <- $2"
}
shoot runs "/ui/runs" 720
shoot run "/ui/runs/$run_id" 900
shoot graph "/ui/graph" 640
shoot table "/ui/tables/silver.ratings?order_by=-rating&limit=12" 1100
shoot diff "/ui/tables/gold.movie_stats/diff?from=0&to=1" 800
shoot models "/ui/models/recommendations" 900
shoot compare "/ui/models/recommendations/compare?$models" 1100
