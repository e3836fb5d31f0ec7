#!/usr/bin/env bash
# Creates (or brings up to date) the Python venv with the peers of the ALS benchmarks: `implicit`
# (implicit ALS) and PySpark (explicit ALS, needs Java 17 on the machine).
# Idempotent: a second run only checks. Usage: bench/als/setup.sh (venv at $VENV, default
# $HOME/.cache/strata-bench-als-venv).
set -euo pipefail

venv="${VENV:-$HOME/.cache/strata-bench-als-venv}"

# Exact versions, so a rerun measures the same peer (implicit 0.7.3 is the one issue 21 quotes).
pkgs=(
  "implicit==0.7.3"
  "numpy==2.4.6"
  "scipy==1.17.1"
  "pyspark==4.3.0"
  "py4j==0.10.9.9"
)

# shellcheck source=../venv.sh
source "$(dirname "$0")/../venv.sh"
ensure_venv "$venv" "${pkgs[@]}"
"$venv/bin/python" -c 'import implicit, numpy, pyspark, scipy
print("venv ok: implicit", implicit.__version__, "| pyspark", pyspark.__version__, "| numpy", numpy.__version__,
      "| scipy", scipy.__version__)'
