#!/usr/bin/env python3
"""Helpers for run.sh, Python 3 standard library only (runs with the system python3).

    report.py rss PID                      -> JSON: VmHWM/VmRSS of PID and all its descendants
    report.py record OHA_JSON RSS_JSON ENDPOINT SERVER >> rows.jsonl
                                           -> one result row (JSON line) from oha's JSON output
    report.py summary ROWS_JSONL META_JSON OUT_JSON
                                           -> prints the summary table, writes OUT_JSON
"""

import json
import os
import sys


def status_kib(pid, key):
    """A `key:  N kB` line of /proc/PID/status, in KiB (None if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def descendants(root):
    """PIDs of root and every process below it (uvicorn --workers N forks N children)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the ")" that closes the command name: state, ppid, ...
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss(root):
    procs = []
    for pid in descendants(root):
        hwm, cur = status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS")
        if hwm is not None:
            procs.append({"pid": pid, "vm_hwm_kib": hwm, "vm_rss_kib": cur})
    return {
        # Sum over the process tree: for a multi-process server (uvicorn workers) this is what the
        # machine has to provide; pages shared between processes are counted once per process.
        "peak_rss_mib": round(sum(p["vm_hwm_kib"] for p in procs) / 1024, 1),
        "rss_mib": round(sum(p["vm_rss_kib"] or 0 for p in procs) / 1024, 1),
        "processes": procs,
    }


def record(oha_path, rss_path, endpoint, server):
    with open(oha_path) as f:
        oha = json.load(f)
    with open(rss_path) as f:
        mem = json.load(f)
    summary = oha["summary"]
    total_s = summary["total"]
    codes = {str(k): v for k, v in oha.get("statusCodeDistribution", {}).items()}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    pct = oha.get("latencyPercentiles", {})  # seconds, keys "p50", "p99", ...
    lat = oha.get("metrics", {}).get("latency_ms")  # ms, newer oha only

    def ms(key):
        if lat and key in lat:
            return lat[key]
        return pct[key] * 1000 if pct.get(key) is not None else None

    return {
        "endpoint": endpoint,
        "server": server,
        # Successful (2xx) responses per second; oha's own figure counts every finished request.
        "requests_per_sec": ok / total_s if total_s else 0.0,
        "oha_requests_per_sec": summary["requestsPerSec"],
        "p50_ms": ms("p50"),
        "p95_ms": ms("p95"),
        "p99_ms": ms("p99"),
        "mean_ms": summary["average"] * 1000 if summary.get("average") is not None else None,
        "success_rate": summary["successRate"],
        "responses_2xx": ok,
        "status_codes": codes,
        "errors": oha.get("errorDistribution", {}),
        "bytes_per_response": summary.get("sizePerRequest"),
        "duration_s": total_s,
        "peak_rss_mib": mem["peak_rss_mib"],
        "rss_mib": mem["rss_mib"],
        "processes": mem["processes"],
    }


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def summary(rows_path, meta_path, out_path):
    with open(rows_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with open(meta_path) as f:
        meta = json.load(f)
    head = ("endpoint", "server", "req/s", "p50 ms", "p99 ms", "peak RSS MiB")
    table = [head]
    for r in rows:
        table.append((
            r["endpoint"], r["server"], fmt(r["requests_per_sec"], ",.0f"), fmt(r["p50_ms"], ".2f"),
            fmt(r["p99_ms"], ".2f"), fmt(r["peak_rss_mib"], ".1f"),
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for n, row in enumerate(table):
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    bad = [r for r in rows if r["success_rate"] < 1 or set(r["status_codes"]) - {"200"}]
    for r in bad:
        print(f"warning: {r['server']} {r['endpoint']}: status {r['status_codes']}, errors {r['errors']}")
    with open(out_path, "w") as f:
        json.dump({**meta, "results": rows}, f, indent=2)
        f.write("\n")
    print(f"results: {out_path}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "rss":
        print(json.dumps(rss(int(args[0]))))
    elif cmd == "record":
        print(json.dumps(record(*args)))
    elif cmd == "summary":
        summary(*args)
    else:
        sys.exit(f"unknown command {cmd}")
