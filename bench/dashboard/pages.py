"""Server time of each dashboard page: rendered (a cache key not seen before) and cached.

Usage: python3 bench/dashboard/pages.py path/to/strata LAKE_DIR   (a lake from lake.sh)

Times are whole requests on loopback (urllib), medians of 9. Pages of one kind with different
keys (runs pages 1-9, nine runs, nine steps, nine versions) measure rendering; the same URL again
measures the cache. The catalog has one key per set of versions, so it is rendered once on each of
five fresh servers, after every table's snapshot is pinned as on a running server.
"""
import json, os, socket, statistics, subprocess, sys, time, urllib.request

strata, lake = sys.argv[1], sys.argv[2]

def start():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    proc = subprocess.Popen([strata, "serve", "--bind", f"127.0.0.1:{port}"], cwd=lake,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/health"); break
        except OSError:
            time.sleep(0.05)
    return proc, base

def get(base, path):
    t = time.perf_counter()
    with urllib.request.urlopen(base + path) as r:
        r.read(); assert r.status == 200, path
    return (time.perf_counter() - t) * 1000

def js(base, path):
    return json.load(urllib.request.urlopen(base + path))

proc, base = start()
runs = js(base, "/v1/runs?limit=1000")
ids = [r["run_id"] for r in runs]
tables = [t["table"] for t in js(base, "/v1/tables")]
for t in tables:  # pin every snapshot once, as a running server has
    get(base, f"/ui/tables/{t}?limit=1")
history = js(base, "/v1/tables/gold.movie_stats/history")
models = js(base, "/v1/models/recommendations")["history"]
pair = "&".join("run=" + r["run_id"] for r in models[:2])
groups = {
    "/ui/runs (page n)": [f"/ui/runs?page={n}" for n in range(1, 10)],
    "/ui/runs/{id}": [f"/ui/runs/{i}" for i in ids[::111][:9]],
    "/ui/graph?focus=step": [f"/ui/graph?focus={t}" for t in ["bronze.ratings", "bronze.movies", "bronze.users", "silver.ratings", "silver.movies", "silver.users", "silver.als_input", "gold.movie_stats", "gold.top_movies"]],
    "/ui/tables/{t} (preview)": [f"/ui/tables/silver.ratings?limit={n}" for n in range(10, 19)],
    "/ui/tables/{t}/lineage?version=v": [f"/ui/tables/gold.movie_stats/lineage?version={h['version']}" for h in history[:9]],
    "/ui/tables/{t}/diff?from=v": [f"/ui/tables/gold.movie_stats/diff?from={h['version']}" for h in history[1:10]],
    "/ui/models": ["/ui/models"] * 9,
    "/ui/models/{name}": ["/ui/models/recommendations"] * 9,
    "/ui/models/{name}/compare": [f"/ui/models/recommendations/compare?{pair}"] * 9,
}
print(f"{len(ids)} runs; medians of 9")
for name, paths in groups.items():
    rendered = [get(base, p) for p in paths]
    cached = [get(base, paths[0]) for _ in range(9)]
    print(f"{name:36} rendered {statistics.median(rendered):6.1f} ms (max {max(rendered):6.1f})   cached {statistics.median(cached):5.1f} ms")
proc.terminate()
# The catalog has one key per set of versions: a fresh server, snapshots pinned, then one render.
catalog = []
for _ in range(5):
    proc, base = start()
    for t in tables:
        get(base, f"/ui/tables/{t}?limit=1")
    catalog.append(get(base, "/ui/tables"))
    cached = [get(base, "/ui/tables") for _ in range(9)]
    proc.terminate(); proc.wait()
print(f"{'/ui/tables (catalog)':36} rendered {statistics.median(catalog):6.1f} ms (max {max(catalog):6.1f})   cached {statistics.median(cached):5.1f} ms")
