#!/usr/bin/env bash
# The 10-minute soak of issue 18: the release `strata serve` under mixed load (table pages, SQL,
# recommendations, predictions, row appends) with a pipeline run every 30 s. The load, the checks
# and the figures are the `soak` integration test (tests/it/soak.rs); this script gives it the
# release binary, the length and a file for the figures.
#
# Usage:  bench/soak/run.sh            (SECONDS_LONG=600, OUT=bench/soak/results-<date>.json)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata-target}"
length=${SECONDS_LONG:-600}
out=${OUT:-bench/soak/results-$(date +%F).json}

cargo build --release
STRATA_SOAK_SECONDS="$length" \
STRATA_SOAK_BIN="$CARGO_TARGET_DIR/release/strata" \
STRATA_SOAK_REPORT="$(pwd)/$out" \
  cargo test --test it soak -- --nocapture
echo "figures: $out"
