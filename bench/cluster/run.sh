#!/usr/bin/env bash
# The MovieLens pipeline on a local Ballista cluster (1 scheduler + 2 executors, every process on
# this machine) against the local engine, on the same generated sample: per-step times of both
# runs and the peak RSS of every process.
#
# Usage: STRATA=$CARGO_TARGET_DIR/release/strata bench/cluster/run.sh
#   RATINGS   ratings to generate (default 25000000)
#   WORK      scratch directory (default /tmp/strata-bench-cluster)
#   EXECUTOR_MB  memory pool of each executor in MiB (default 4096)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
strata="$(realpath "${STRATA:-target/release/strata}")"
ratings="${RATINGS:-25000000}"
work="${WORK:-/tmp/strata-bench-cluster}/$ratings"
executor_mb="${EXECUTOR_MB:-4096}"

mkdir -p "$work/raw"
if [ ! -f "$work/raw/ratings.dat" ]; then
  "$strata" sample --ratings "$ratings" --out "$work/raw" > /dev/null
fi

# One project per engine; both read the same raw files and the repository's steps.
project() {
  local dir="$work/$1" engine="$2"
  rm -rf "$dir" && mkdir -p "$dir/config"
  cat > "$dir/config/strata.toml" <<TOML
[lake]
root = "../lake"
[ingest]
raw_dir = "$work/raw"
[sql]
dir = "$repo/sql"
$engine
TOML
  echo "$dir"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
peak_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# ---- local engine ----
local_dir="$(project local "")"
(cd "$local_dir" && /usr/bin/time -f "%e s wall, %M KiB peak" "$strata" run > run.txt 2> time.txt) || true
echo "== local engine"
cat "$local_dir/run.txt"
tail -1 "$local_dir/time.txt"

# ---- the same pipeline with SQL steps on the cluster ----
port="$(free_port)"
cluster_dir="$(project cluster "[engine]
kind = \"ballista\"
url = \"df://127.0.0.1:$port\"
lake_path_shared = true")"
cd "$cluster_dir"
"$strata" cluster scheduler --bind "127.0.0.1:$port" > scheduler.log 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for i in 1 2; do
  "$strata" cluster executor --scheduler "127.0.0.1:$port" --bind-host 127.0.0.1 \
    --external-host 127.0.0.1 --flight-port "$(free_port)" --grpc-port "$(free_port)" \
    --concurrent-tasks 1 --memory-limit-mb "$executor_mb" --work-dir "$cluster_dir/executor-$i" \
    > "executor-$i.log" 2>&1 &
  pids+=($!)
done
until curl -sf "http://127.0.0.1:$port/readyz" | grep -q "ready: 2 executors"; do sleep 0.2; done
/usr/bin/time -f "%e s wall, %M KiB peak" "$strata" run > run.txt 2> time.txt || true
echo "== ballista engine (1 scheduler + 2 executors, --concurrent-tasks 1 each)"
cat run.txt
tail -1 time.txt
echo "peak RSS: scheduler $(peak_mib "${pids[0]}") MiB, executor 1 $(peak_mib "${pids[1]}") MiB, executor 2 $(peak_mib "${pids[2]}") MiB"
