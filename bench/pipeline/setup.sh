#!/usr/bin/env bash
# Creates (or brings up to date) the Python venv with the pipeline benchmark's peers: DuckDB and
# PySpark (which needs Java 17 on the machine). Idempotent: a second run only checks.
# Usage: bench/pipeline/setup.sh   (venv at $VENV, default $HOME/.cache/strata-bench-pipeline-venv)
set -euo pipefail

venv="${VENV:-$HOME/.cache/strata-bench-pipeline-venv}"

# Exact versions, so a rerun measures the same peers (DuckDB 2.0.1 is the one issue 21 quotes).
pkgs=(
  "duckdb==2.0.1"
  "pyspark==4.3.0"
  "py4j==0.10.9.9"
)

# shellcheck source=../venv.sh
source "$(dirname "$0")/../venv.sh"
ensure_venv "$venv" "${pkgs[@]}"
"$venv/bin/python" -c 'import duckdb, pyspark
print("venv ok: duckdb", duckdb.__version__, "| pyspark", pyspark.__version__)'
java -version 2>&1 | head -1
