#!/usr/bin/env bash
# The named endpoint under load: `GET /v1/q/recommendations?advertiser=...&model=...` from
# `strata serve` against the FastAPI + pandas peer (fastapi_peer.py) on the same lake, each loaded
# by oha in turn (random advertiser among adv000-adv199, random model). Prints oha's summaries.
#
# Usage: STRATA=path/to/strata LAKE=path/to/adtech/lake bench/adtech/api.sh
#   LAKE: a lake the adtech example was backfilled into (bench/adtech/run.sh leaves one).
# Optional: DURATION (20s), CONNECTIONS (64), VENV (bench/api/setup.sh's, with oha installed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${STRATA:?set STRATA to the strata binary}"
: "${LAKE:?set LAKE to a backfilled adtech lake}"
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
VENV=${VENV:-$HOME/.cache/strata-bench-venv}
VENV=$VENV "$repo/bench/api/setup.sh" >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"

url_re='/v1/q/recommendations\?advertiser=adv[01][0-9][0-9]&model=(top_ctr|top_product)'
server_pid=
stop() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; }
trap stop EXIT

load() { # NAME PORT
  for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$2/health" && break; sleep 0.2; done
  oha --no-tui -z 2s -c "$CONNECTIONS" --rand-regex-url "http://127.0.0.1:$2$url_re" >/dev/null
  echo "== $1"
  oha --no-tui -z "$DURATION" -c "$CONNECTIONS" --rand-regex-url "http://127.0.0.1:$2$url_re" |
    grep -E 'Requests/sec|50.00% in|99.00% in|\[[0-9]{3}\] [0-9]+ responses'
  local kb=0 pid
  for pid in "$server_pid" $(pgrep -P "$server_pid" || true); do
    kb=$((kb + $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")))
  done
  echo "peak RSS, the server and its workers: $((kb / 1024)) MiB"
  stop
}

"$STRATA" --config "$repo/examples/adtech/strata.toml" --lake "$LAKE" serve --bind 127.0.0.1:8181 \
  >/dev/null 2>&1 &
server_pid=$!
load strata 8181

(cd "$here" && LAKE="$LAKE" exec "$VENV/bin/uvicorn" fastapi_peer:app --port 8182 --workers 2 \
  --log-level warning) &
server_pid=$!
load "fastapi + pandas (2 workers)" 8182
