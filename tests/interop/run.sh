#!/usr/bin/env bash
# Builds a small lake with the real `strata` binary (two runs, so tables have an older version), and
# the penguins example (maps, binary, nested lists), and
# checks that the Python `deltalake` package reads every table and an older version with the row
# counts `strata` reports. Usage: tests/interop/run.sh STRATA_BINARY PYTHON
set -euo pipefail
strata=$1
python=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/config"
cp -r "$here/../../sql" "$work/sql"
cat > "$work/config/strata.toml" <<TOML
[lake]
root = "../lake"
[ingest]
raw_dir = "../raw"
[sql]
dir = "../sql"
[sample]
generate_if_empty = true
users = 300
items = 400
ratings = 30000
seed = 1
TOML
cd "$work"
"$strata" run >/dev/null
# New data: a second, larger sample replaces the raw files, so every table gets a version 1.
"$strata" sample --users 300 --items 400 --ratings 40000 --seed 2 --out raw >/dev/null
"$strata" run >/dev/null

"$strata" tables --format json > tables.json
old=$("$strata" query "SELECT count(*) AS n FROM table_version('silver.ratings', 0)" --format json)
old_rows=$(printf '%s' "$old" | "$python" -c 'import json,sys; print(json.load(sys.stdin)[0]["n"])')
printf '[{"table": "silver.ratings", "version": 0, "rows": %s}]' "$old_rows" > old.json
"$python" "$here/read_lake.py" "$work/lake" tables.json old.json

# The penguins example: a map column (probabilities), a binary column (the model artifact) and
# nested lists of structs (class metrics) must read too. Two trainings, so the model has a v1.
cp -r "$here/../../examples/penguins" "$work/penguins"
rm -rf "$work/penguins/lake"
cd "$work/penguins"
"$strata" --config strata.toml run >/dev/null
printf '\n[steps."gold.penguin_species"]\ntrees = 20\n' >> strata.toml
"$strata" --config strata.toml run >/dev/null
"$strata" --config strata.toml tables --format json > tables.json
printf '[{"table": "gold.penguin_species_model", "version": 0, "rows": 1}]' > old.json
"$python" "$here/read_lake.py" "$work/penguins/lake" tables.json old.json
