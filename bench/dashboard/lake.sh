#!/usr/bin/env bash
# A 1M-sample lake with RUNS runs in its history (default 1,000), for timing the dashboard pages.
# Every 100th run adds a rating first, so tables gain versions as a real history does.
# Usage: STRATA=path/to/strata [RUNS=1000] [WORK=/tmp/strata-bench-dashboard] bench/dashboard/lake.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
strata="${STRATA:?set STRATA to a release strata binary}"
runs="${RUNS:-1000}"
work="${WORK:-/tmp/strata-bench-dashboard}"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
cp -r "$repo/sql" "$repo/config" .
"$strata" run >/dev/null 2>&1
for i in $(seq 2 "$runs"); do
  if (( i % 100 == 0 )); then
    printf '%d::%d::4::978300760\n' "$i" "$((i % 50 + 1))" >>lake/raw/ratings.dat
  fi
  "$strata" run >/dev/null 2>&1 || echo "run $i failed"
done
echo "$work: $runs runs"
