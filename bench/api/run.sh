#!/usr/bin/env bash
# HTTP API benchmark: `strata serve` against the FastAPI + pandas peer (fastapi_peer.py), both serving
# the same lake. For each server: start it, wait for /health, load each endpoint with oha, read the
# server's peak RSS (VmHWM), stop it. Prints one summary table and writes results-<date>.json.
#
# Usage:  STRATA=path/to/strata LAKE=path/to/lake bench/api/run.sh
#   LAKE must be a lake where `strata run` (with the ALS step) has already been done.
#   SERVE_LAKE (default LAKE) is the lake strata serves: an s3:// URL measures the S3 lake (AWS_*
#   variables in the environment); the peer always reads LAKE.
# Optional: DURATION (default 20s), CONNECTIONS (64), WARMUP (2s, 0 = none),
#   SERVERS ("strata fastapi"; e.g. SERVERS=fastapi runs only the peer), OHA (oha binary),
#   VENV ($HOME/.cache/strata-bench-venv), OUT (bench/api/results-<date>.json).
# Run it on an otherwise idle machine: oha shares the 2 cores with the server under test.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
: "${LAKE:?set LAKE to a lake directory where strata run was done}"
LAKE=$(cd "$LAKE" && pwd)
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-2s}
SERVERS=${SERVERS:-strata fastapi}
VENV=${VENV:-$HOME/.cache/strata-bench-venv}
OUT=${OUT:-$here/results-$(date +%F).json}
export PATH="$HOME/.cargo/bin:$PATH"
OHA=${OHA:-oha}

strata_port=8181
peer_port=8182
# uvicorn workers: one per core. Python serves one request at a time per process (the GIL), so a
# CPU-bound app needs a process per core to use the machine; more workers than the 2 cores would only
# add context switches and another copy of the loaded tables, fewer would leave a core idle.
peer_workers=2
max_user=6040 # users are 1..6040 in the 1M sample

if [[ " $SERVERS " == *" strata "* ]]; then
  : "${STRATA:?set STRATA to the strata binary (or SERVERS=fastapi)}"
  [ -x "$STRATA" ] || { echo "not executable: $STRATA" >&2; exit 1; }
fi
if [[ " $SERVERS " == *" fastapi "* ]]; then
  VENV=$VENV "$here/setup.sh" >/dev/null
fi
command -v "$OHA" >/dev/null || { echo "oha not found: bench/api/setup.sh says how to install it" >&2; exit 1; }
for t in gold/user_recommendations gold/movie_stats gold/item_popularity silver/movies; do
  [ -d "$LAKE/$t/_delta_log" ] || { echo "missing table $LAKE/$t (run strata run first)" >&2; exit 1; }
done

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Every user id 1..6040 as one alternation: oha's --rand-regex-url picks alternatives uniformly, so
# this is a uniform draw over the users ([1-9][0-9]{0,3} would overweight short ids and hit unknown ones).
users_re="($(seq -s '|' 1 "$max_user"))"

# wait_up NAME PORT LOG [WORKERS]: /health answers (and, for uvicorn, every worker has started).
wait_up() {
  local name=$1 port=$2 log=$3 workers=${4:-0}
  for _ in $(seq 1 600); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "$name exited during startup; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    if curl -sf -o /dev/null "http://127.0.0.1:$port/health" &&
      [ "$(grep -c 'Application startup complete' "$log" || true)" -ge "$workers" ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "$name did not answer /health within 120 s; its log:" >&2
  cat "$log" >&2
  exit 1
}

# load SERVER PORT: both endpoints with oha, one result row each (RSS read right after each run).
load() {
  local server=$1 base="http://127.0.0.1:$2"
  local endpoint
  local -a target
  for endpoint in "/v1/users/{user}/recommendations?k=10" "/v1/tables/gold.movie_stats?limit=100"; do
    case $endpoint in
      /v1/users/*)
        # oha escapes the dots of the URL itself; "?" is escaped here.
        target=(--rand-regex-url "$base/v1/users/$users_re/recommendations\\?k=10") ;;
      *) target=("$base$endpoint") ;;
    esac
    if [ "$WARMUP" != 0 ]; then
      "$OHA" --no-tui --output-format quiet -z "$WARMUP" -c "$CONNECTIONS" "${target[@]}" >/dev/null
    fi
    echo "  $endpoint: $DURATION at $CONNECTIONS connections" >&2
    "$OHA" --no-tui --output-format json -z "$DURATION" -c "$CONNECTIONS" "${target[@]}" > "$work/oha.json"
    python3 "$here/report.py" rss "$server_pid" > "$work/rss.json"
    python3 "$here/report.py" record "$work/oha.json" "$work/rss.json" "$endpoint" "$server" >> "$work/rows.jsonl"
  done
}

stop() {
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

: > "$work/rows.jsonl"
for server in $SERVERS; do
  case $server in
    strata)
      echo "== strata serve ($STRATA)" >&2
      if curl -s -o /dev/null "http://127.0.0.1:$strata_port/health"; then
        echo "port $strata_port is already in use" >&2; exit 1
      fi
      "$STRATA" serve --lake "${SERVE_LAKE:-$LAKE}" --bind "127.0.0.1:$strata_port" > "$work/strata.log" 2>&1 &
      server_pid=$!
      wait_up strata "$strata_port" "$work/strata.log"
      load strata "$strata_port"
      stop
      ;;
    fastapi)
      echo "== FastAPI peer (uvicorn, $peer_workers workers)" >&2
      if curl -s -o /dev/null "http://127.0.0.1:$peer_port/health"; then
        echo "port $peer_port is already in use" >&2; exit 1
      fi
      # No access log: one log line per request is not what is being compared.
      LAKE=$LAKE "$VENV/bin/uvicorn" fastapi_peer:app --app-dir "$here" --host 127.0.0.1 \
        --port "$peer_port" --workers "$peer_workers" --no-access-log > "$work/fastapi.log" 2>&1 &
      server_pid=$!
      wait_up fastapi "$peer_port" "$work/fastapi.log" "$peer_workers"
      load fastapi "$peer_port"
      stop
      ;;
    *) echo "unknown server $server (strata or fastapi)" >&2; exit 1 ;;
  esac
done

python3 - "$work/meta.json" <<PY
import json, os, platform, subprocess, sys, datetime
meta = {
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
    "lake": "$LAKE",
    "duration": "$DURATION",
    "connections": int("$CONNECTIONS"),
    "warmup": "$WARMUP",
    "oha": subprocess.run(["$OHA", "--version"], capture_output=True, text=True).stdout.strip(),
    "fastapi_workers": $peer_workers,
    "users": "1..$max_user uniform",
}
json.dump(meta, open(sys.argv[1], "w"))
PY
echo >&2
python3 "$here/report.py" summary "$work/rows.jsonl" "$work/meta.json" "$OUT"
