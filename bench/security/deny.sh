#!/usr/bin/env bash
# Licences, sources and known advisories of every crate Strata links: cargo-deny with deny.toml,
# without network at check time. The RustSec advisory database is read from a local git copy
# (ADVISORY_DB, default $HOME/.cache/advisory-db): clone https://github.com/rustsec/advisory-db
# there once, from wherever it can be reached, and pull it before a release.
#
# Usage:  bench/security/deny.sh           (cargo install cargo-deny --locked, once)
set -euo pipefail
cd "$(dirname "$0")/../.."
db=${ADVISORY_DB:-$HOME/.cache/advisory-db}
if [ ! -d "$db/.git" ]; then
  echo "no advisory database at $db; clone https://github.com/rustsec/advisory-db there" >&2
  exit 1
fi
db=$(cd "$db" && pwd)
echo "advisory database: $(git -C "$db" log -1 --format='%h of %cs')"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# deny.toml ends with its [advisories] table: the database's location is appended to it.
{
  cat deny.toml
  echo "db-path = \"$work/dbs\""
  echo "maximum-db-staleness = \"P3650D\""
} >"$work/deny.toml"
# cargo-deny opens the default database's clone under db-path by this name (the URL's last segment
# and its hash); --offline keeps it from fetching.
DB_DIR_NAME=advisory-db-3157b0e258782691
mkdir -p "$work/dbs"
git clone --quiet "$db" "$work/dbs/$DB_DIR_NAME"
cargo deny --offline --locked --config "$work/deny.toml" check "$@"
