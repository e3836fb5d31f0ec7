#!/usr/bin/env bash
# Builds a small lake with the real `strata` binary (two runs, so tables have an older version),
# the penguins example (maps, binary, nested lists) and the adtech example (tables partitioned by
# day, replaced a day at a time), and
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

# The adtech example: a week backfilled, then one day replaced (gold.top_ctr gets a version whose
# commit removed and added files of that day's partition only).
cp -r "$here/../../examples/adtech" "$work/adtech"
rm -rf "$work/adtech/lake"
cd "$work/adtech"
"$strata" --config strata.toml backfill --from 2026-11-01 --to 2026-11-07 >/dev/null
old_rows=$("$strata" --config strata.toml query "SELECT count(*) AS n FROM gold.top_ctr" --format json |
  "$python" -c 'import json,sys; print(json.load(sys.stdin)[0]["n"])')
old_version=$("$strata" --config strata.toml tables --format json |
  "$python" -c 'import json,sys; print([t["version"] for t in json.load(sys.stdin) if t["table"] == "gold.top_ctr"][0])')
head -n 1500 raw/ads_views/2026-11-03.csv > day && mv day raw/ads_views/2026-11-03.csv
"$strata" --config strata.toml run --var ds=2026-11-03 >/dev/null
"$strata" --config strata.toml tables --format json > tables.json
printf '[{"table": "gold.top_ctr", "version": %s, "rows": %s}]' "$old_version" "$old_rows" > old.json
"$python" "$here/read_lake.py" "$work/adtech/lake" tables.json old.json
