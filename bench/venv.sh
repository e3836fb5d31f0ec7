# Sourced by the benchmarks' setup scripts: `ensure_venv DIR PACKAGE...` creates the Python venv at
# DIR if it is missing and installs the exact PACKAGE versions unless the venv already holds them
# (a stamp file lists what was installed), so a second setup run only checks.
ensure_venv() {
  local venv="$1"
  shift
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  local stamp="$venv/.strata-bench-reqs" want
  want=$(printf '%s\n' "$@")
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
    printf '%s' "$want" > "$stamp"
  fi
}
