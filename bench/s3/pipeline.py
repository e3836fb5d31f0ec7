#!/usr/bin/env python3
"""The whole `strata run` on a local lake and on S3-compatible servers, side by side.

Usage:
  python3 bench/s3/pipeline.py STRATA_BINARY WORK_DIR [--runs 3] [--ratings 1000209]
                               [--s3 NAME=ENDPOINT[,bucket-dir=DIR]] ...

WORK_DIR gets a project (config, the repository's sql/, a generated sample in raw/). Each run starts
from an empty lake: a fresh directory locally, a fresh bucket on each S3 server (created with an
unsigned PUT, as moto accepts, or as a directory under `bucket-dir` for servers such as s3s-fs that
map buckets to directories). Prints per-step median milliseconds, wall time and peak RSS per target,
as a Markdown table.
"""

import argparse
import pathlib
import re
import shutil
import statistics
import subprocess
import urllib.request
import uuid

STEP = re.compile(r"^(\S+)\s+(committed|unchanged|failed|skipped)\s.*?\s(\d+) ms")
REPO = pathlib.Path(__file__).resolve().parents[2]


def setup(strata: str, work: pathlib.Path, ratings: int) -> None:
    (work / "config").mkdir(parents=True, exist_ok=True)
    if (work / "sql").exists():
        shutil.rmtree(work / "sql")
    shutil.copytree(REPO / "sql", work / "sql")
    (work / "config" / "strata.toml").write_text(
        '[lake]\nroot = "../lake"\n[ingest]\nraw_dir = "../raw"\n[sql]\ndir = "../sql"\n'
        "[sample]\ngenerate_if_empty = false\n"
    )
    if not (work / "raw" / "ratings.dat").exists():
        subprocess.run(
            [strata, "sample", "--ratings", str(ratings), "--out", "raw"], cwd=work, check=True
        )


def fresh_lake(target: dict, work: pathlib.Path) -> str:
    if target["endpoint"] is None:
        lake = work / "lake"
        shutil.rmtree(lake, ignore_errors=True)
        return str(lake)
    bucket = f"bench-{uuid.uuid4().hex[:16]}"
    if target.get("bucket_dir"):
        pathlib.Path(target["bucket_dir"], bucket).mkdir(parents=True)
    else:
        request = urllib.request.Request(f"{target['endpoint']}/{bucket}", method="PUT")
        urllib.request.urlopen(request).read()
    return f"s3://{bucket}/lake"


def run_once(strata: str, work: pathlib.Path, target: dict) -> dict:
    lake = fresh_lake(target, work)
    env = {"PATH": "/usr/bin:/bin"}
    if target["endpoint"]:
        env.update(
            AWS_ENDPOINT_URL=target["endpoint"],
            AWS_ALLOW_HTTP="true",
            AWS_REGION="us-east-1",
            AWS_ACCESS_KEY_ID=target.get("key", "bench"),
            AWS_SECRET_ACCESS_KEY=target.get("secret", "bench-secret"),
        )
    out = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %M", strata, "--lake", lake, "run"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{target['name']}: run failed:\n{out.stdout}\n{out.stderr}")
    steps = {}
    for line in out.stdout.splitlines():
        match = STEP.match(line)
        if match:
            steps[match.group(1)] = int(match.group(3))
    wall, rss_kb = re.search(r"TIME ([\d.]+) (\d+)", out.stderr).groups()
    return {"steps": steps, "wall": float(wall), "rss_mib": int(rss_kb) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("strata")
    parser.add_argument("work", type=pathlib.Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ratings", type=int, default=1000209)
    parser.add_argument("--s3", action="append", default=[])
    args = parser.parse_args()
    strata = str(pathlib.Path(args.strata).resolve())
    setup(strata, args.work, args.ratings)

    targets = [{"name": "local disk", "endpoint": None}]
    for spec in args.s3:
        name, rest = spec.split("=", 1)
        endpoint, *options = rest.split(",")
        target = {"name": name, "endpoint": endpoint}
        for option in options:
            key, value = option.split("=", 1)
            target[key.replace("-", "_")] = value
        targets.append(target)

    results = {}
    for target in targets:
        runs = [run_once(strata, args.work, target) for _ in range(args.runs)]
        results[target["name"]] = runs
        walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
        print(f"# {target['name']}: wall {walls} s", flush=True)

    names = list(results)
    steps = list(results[names[0]][0]["steps"])
    print("| step | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for step in steps:
        cells = [
            f"{statistics.median(r['steps'].get(step, 0) for r in results[n]):.0f} ms"
            for n in names
        ]
        print(f"| {step} | " + " | ".join(cells) + " |")
    walls = [f"**{statistics.median(r['wall'] for r in results[n]):.2f} s**" for n in names]
    print("| whole process, wall (median) | " + " | ".join(walls) + " |")
    rss = [f"{statistics.median(r['rss_mib'] for r in results[n]):.0f} MiB" for n in names]
    print("| peak RSS (median) | " + " | ".join(rss) + " |")


if __name__ == "__main__":
    main()
