#!/usr/bin/env python3
"""Peer baseline: the Strata MovieLens pipeline (bronze -> silver -> gold) in PySpark.

    python3 spark_peer.py --input $TMPDIR/ml1m-like --output $TMPDIR/spark-out --runs 3

--runs N starts N separate, cold Python+JVM processes one after another (each
runs the whole job once) and prints ONE JSON line: every run plus medians.
Each step reads its inputs from the Parquet written by earlier steps and
writes its table as Parquet under OUTPUT/<layer>/<table> (overwrite), so a
step's time = read + compute + write.  Per run: session_s (SparkSession
start), steps (seconds per table), pipeline_s (all steps, no session start),
total_s (session start + all steps), process_s (whole child process as seen
by the parent: interpreter + JVM start, job, shutdown), rows per table
(counted afterwards, untimed), peak RSS (VmHWM) of the Python driver and JVM.
Spark: local[2], driver memory 6g, UI off, bound to 127.0.0.1, otherwise
Spark's defaults (ANSI mode on, AQE on, 200 shuffle partitions).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

T_PROC = time.perf_counter()
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

M_PRIOR = 50  # Bayesian average: (n * mean + m * C) / (n + m), C = global mean
MIN_COUNT = 50
TOP_K = 10
COLS = {"ratings": ["user_id", "movie_id", "rating", "ts"],
        "movies": ["movie_id", "title_year", "genres"],
        "users": ["user_id", "gender", "age", "occupation", "zip"]}


def steps(spark, inp, out):
    """(table, thunk returning the DataFrame to write), in dependency order."""
    from pyspark.sql import Window, functions as F

    def rd(t):
        return spark.read.parquet(os.path.join(out, *t.split(".")))

    def dat(name):  # '::'-separated, latin-1, no quoting, every column a string
        return (spark.read.option("sep", "::").option("encoding", "ISO-8859-1")
                .option("quote", "").schema(", ".join(f"{c} STRING" for c in COLS[name]))
                .csv(os.path.join(inp, f"{name}.dat")))

    def i(c):
        return F.col(c).try_cast("int")

    def silver_movies():
        year_re = r"^(.*\S)\s*\((\d{4})\)\s*$"
        m = rd("bronze.movies")
        has_year = F.col("title_year").rlike(year_re)
        return (m.select(
            i("movie_id").alias("movie_id"),
            F.when(has_year, F.regexp_extract("title_year", year_re, 1))
             .otherwise(F.trim("title_year")).alias("title"),
            F.when(has_year, F.regexp_extract("title_year", year_re, 2).cast("int")).alias("year"),
            F.split("genres", r"\|").alias("genres"))
            .where("movie_id IS NOT NULL").dropDuplicates(["movie_id"]))

    def silver_users():
        return (rd("bronze.users").select(
            i("user_id").alias("user_id"), "gender", i("age").alias("age"),
            i("occupation").alias("occupation"), "zip")
            .where("user_id IS NOT NULL").dropDuplicates(["user_id"]))

    def silver_ratings():
        r = (rd("bronze.ratings").select(
            i("user_id").alias("user_id"), i("movie_id").alias("movie_id"),
            i("rating").alias("rating"), F.col("ts").try_cast("long").alias("ts"))
            .where("user_id IS NOT NULL AND movie_id IS NOT NULL AND ts IS NOT NULL"
                   " AND rating BETWEEN 1 AND 5"))
        w = Window.partitionBy("user_id", "movie_id").orderBy(F.desc("ts"), F.desc("rating"))
        latest = r.withColumn("rn", F.row_number().over(w)).where("rn = 1").drop("rn")
        return (latest.join(rd("silver.users").select("user_id"), "user_id", "left_semi")
                .join(rd("silver.movies").select("movie_id"), "movie_id", "left_semi"))

    def movie_ratings():
        return (rd("silver.ratings").join(rd("silver.movies"), "movie_id")
                .join(rd("silver.users"), "user_id"))

    def movie_stats():
        mr = rd("silver.movie_ratings")
        c = mr.agg(F.avg("rating").alias("C"))
        return (mr.groupBy("movie_id", "title", "year")
                .agg(F.count("*").alias("n_ratings"), F.avg("rating").alias("mean_rating"))
                .crossJoin(c)
                .withColumn("bayes_avg", (F.col("n_ratings") * F.col("mean_rating")
                                          + M_PRIOR * F.col("C")) / (F.col("n_ratings") + M_PRIOR))
                .drop("C"))

    def genre_popularity():
        return (rd("silver.movie_ratings")
                .select(F.explode("genres").alias("genre"), "user_id", "rating")
                .groupBy("genre")
                .agg(F.count("*").alias("n_ratings"), F.avg("rating").alias("mean_rating"),
                     F.countDistinct("user_id").alias("n_users")))

    def top_movies():
        s = rd("gold.movie_stats").where(F.col("n_ratings") >= MIN_COUNT)
        g = rd("silver.movies").select("movie_id", F.explode("genres").alias("genre"))
        both = (s.withColumn("scope", F.lit("all"))
                .unionByName(s.join(g, "movie_id").withColumnRenamed("genre", "scope")))
        w = Window.partitionBy("scope").orderBy(F.desc("bayes_avg"), "movie_id")
        return both.withColumn("rank", F.row_number().over(w)).where(f"rank <= {TOP_K}")

    def als_input():
        return rd("silver.ratings").select(
            "user_id", F.col("movie_id").alias("item_id"), F.col("rating").cast("float"))

    return [("bronze.ratings", lambda: dat("ratings")),
            ("bronze.movies", lambda: dat("movies")),
            ("bronze.users", lambda: dat("users")),
            ("silver.movies", silver_movies),
            ("silver.users", silver_users),
            ("silver.ratings", silver_ratings),
            ("silver.movie_ratings", movie_ratings),
            ("gold.movie_stats", movie_stats),
            ("gold.genre_popularity", genre_popularity),
            ("gold.top_movies", top_movies),
            ("silver.als_input", als_input)]


def vm_hwm_kb(pid="self"):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(x.split()[1]) for x in f if x.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def run_once(a):
    from pyspark import __version__ as pyspark_version
    from pyspark.sql import SparkSession
    t0 = time.perf_counter()
    b = (SparkSession.builder.master(a.master).appName("eval-spark-pipeline")
         .config("spark.driver.memory", a.driver_memory)
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false"))
    if a.shuffle_partitions:
        b = b.config("spark.sql.shuffle.partitions", str(a.shuffle_partitions))
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    t1 = time.perf_counter()
    times = {}
    for table, make in steps(spark, a.input, a.output):
        s = time.perf_counter()
        make().write.mode("overwrite").parquet(os.path.join(a.output, *table.split(".")))
        times[table] = round(time.perf_counter() - s, 3)
    t2 = time.perf_counter()
    rows = {t: spark.read.parquet(os.path.join(a.output, *t.split("."))).count() for t in times}
    jvm = spark.sparkContext._gateway.proc
    rss = {"python_kb": vm_hwm_kb(), "jvm_kb": vm_hwm_kb(jvm.pid)}
    spark.stop()
    jvm.stdin.close()  # the JVM exits on EOF; reap it so its exit is inside process_s
    jvm.wait(timeout=120)  # and its peak RSS reaches /usr/bin/time -v
    return {"session_s": round(t1 - t0, 3), "steps": times, "pipeline_s": round(t2 - t1, 3),
            "total_s": round(t2 - t0, 3), "in_process_s": round(t2 - T_PROC, 3),
            "rows": rows, "peak_rss": rss, "pyspark": pyspark_version}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--shuffle-partitions", type=int, default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_once(a)))
        return
    runs = []
    for r in range(a.runs):  # each run: a fresh interpreter and JVM
        s = time.perf_counter()
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"] + sys.argv[1:],
                           capture_output=True, text=True)
        wall = time.perf_counter() - s
        if p.returncode != 0:
            sys.exit(f"run {r + 1} failed:\n{p.stderr[-4000:]}")
        o = json.loads(p.stdout.strip().splitlines()[-1])
        o["process_s"] = round(wall, 3)
        runs.append(o)
        print(f"[spark_pipeline] run {r + 1}: {json.dumps(o)}", file=sys.stderr)
    med = lambda f: round(statistics.median(f(o) for o in runs), 3)  # noqa: E731
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    print(json.dumps({
        "system": "pyspark-pipeline", "input": os.path.abspath(a.input), "runs": len(runs),
        "median": {"process_s": med(lambda o: o["process_s"]),
                   "total_s": med(lambda o: o["total_s"]),
                   "pipeline_s": med(lambda o: o["pipeline_s"]),
                   "session_s": med(lambda o: o["session_s"]),
                   "steps": {t: med(lambda o, t=t: o["steps"][t]) for t in runs[0]["steps"]}},
        "rows": runs[0]["rows"], "per_run": runs,
        "config": {"master": a.master, "driver_memory": a.driver_memory,
                   "shuffle_partitions": a.shuffle_partitions or "default (200, AQE on)"},
        "versions": {"pyspark": runs[0]["pyspark"], "python": sys.version.split()[0],
                     "java": java.splitlines()[0] if java else "?"},
        "nproc": os.cpu_count()}))


if __name__ == "__main__":
    main()
