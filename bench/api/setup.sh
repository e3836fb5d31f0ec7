#!/usr/bin/env bash
# Creates (or brings up to date) the Python venv for the FastAPI peer of the API benchmark, and
# checks that `oha` (the HTTP load generator) is installed. Idempotent: a second run only checks.
# Usage: bench/api/setup.sh            (venv at $VENV, default $HOME/.cache/strata-bench-venv)
set -euo pipefail

venv="${VENV:-$HOME/.cache/strata-bench-venv}"

# Exact versions, so a rerun measures the same peer. deltalake 1.6.6 is what CI's interop check uses.
# uvicorn[standard] brings uvloop + httptools, which uvicorn picks up automatically: that is what a
# team deploying FastAPI would run.
pkgs=(
  "fastapi==0.163.2"
  "uvicorn[standard]==0.54.0"
  "pandas==3.1.1"
  "pyarrow==26.0.1"
  "deltalake==1.6.6"
)

# shellcheck source=../venv.sh
source "$(dirname "$0")/../venv.sh"
ensure_venv "$venv" "${pkgs[@]}"
"$venv/bin/python" -c 'import fastapi, uvicorn, pandas, pyarrow, deltalake, uvloop, httptools
print("venv ok:", "fastapi", fastapi.__version__, "| uvicorn", uvicorn.__version__, "| pandas", pandas.__version__,
      "| pyarrow", pyarrow.__version__, "| deltalake", deltalake.__version__)'

if command -v oha >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/oha" ]; then
  echo "oha ok: $(PATH="$HOME/.cargo/bin:$PATH" oha --version)"
else
  echo "oha missing: run  nice -n 15 cargo install oha --locked  (about 10 minutes on 2 cores)" >&2
  exit 1
fi
