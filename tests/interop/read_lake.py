"""Interop check: another engine (the Python `deltalake` package) reads every table of a Strata lake.

Usage: read_lake.py LAKE_ROOT TABLES_JSON OLD_VERSIONS_JSON

TABLES_JSON is the output of `strata tables --format json`; OLD_VERSIONS_JSON is a JSON array of
{"table": ..., "version": ..., "rows": ...} for older versions whose row counts Strata reported.
Every table's current version and row count must match, and every old version must read with the
expected row count. Exits non-zero on any mismatch.
"""

import json
import os
import sys

from deltalake import DeltaTable


def table_path(root, name):
    layer, table = name.split(".", 1)
    return os.path.join(root, layer, table)


def main():
    root, tables_json, old_json = sys.argv[1], sys.argv[2], sys.argv[3]
    tables = json.load(open(tables_json))
    old_versions = json.load(open(old_json))
    failures = []
    if not tables:
        failures.append("strata reported no tables")
    for t in tables:
        dt = DeltaTable(table_path(root, t["table"]))
        rows = dt.to_pyarrow_table().num_rows
        ok = dt.version() == t["version"] and rows == t["rows"]
        print(f"{t['table']:<32} v{dt.version():<4} {rows:>10} rows  {'ok' if ok else 'MISMATCH'}")
        if not ok:
            failures.append(f"{t['table']}: python sees v{dt.version()} {rows} rows, strata v{t['version']} {t['rows']} rows")
    for old in old_versions:
        dt = DeltaTable(table_path(root, old["table"]), version=old["version"])
        rows = dt.to_pyarrow_table().num_rows
        ok = rows == old["rows"]
        print(f"{old['table']}@v{old['version']:<4} {rows:>10} rows  {'ok' if ok else 'MISMATCH'}")
        if not ok:
            failures.append(f"{old['table']}@v{old['version']}: python {rows} rows, strata {old['rows']}")
    if failures:
        print("interop check failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(f"interop ok: {len(tables)} tables and {len(old_versions)} older version(s) read by deltalake")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # deltalake's native runtime threads can abort the interpreter at shutdown ("terminate called
    # without an active exception"); the check is done, so leave without running finalizers.
    os._exit(code)
