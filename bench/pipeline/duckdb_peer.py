#!/usr/bin/env python3
"""Peer baseline: the Strata MovieLens pipeline (bronze -> silver -> gold) in DuckDB, the single-node
engine a user would pick instead of Spark. Same steps and semantics as spark_pipeline.py; each step
reads the Parquet written by earlier steps and writes its table as Parquet under OUTPUT/<layer>/<table>
(no Delta log, no expectations, no rejects table, no run log: strictly less work than Strata).

    python3 duckdb_peer.py --input DIR_WITH_DAT_FILES --output OUT --runs 3 [--threads 2]

Prints one JSON line: every run (process_s = whole child process, steps in seconds) and medians.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

M_PRIOR, MIN_COUNT, TOP_K = 50, 50, 10
COLS = {"ratings": ["user_id", "movie_id", "rating", "ts"],
        "movies": ["movie_id", "title_year", "genres"],
        "users": ["user_id", "gender", "age", "occupation", "zip"]}


def steps(inp, out):
    def p(t):
        return "'" + os.path.join(out, *t.split(".")) + ".parquet'"

    def dat(name):
        cols = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in COLS[name]) + "}"
        # the .dat files are latin-1; read_csv decodes them (DuckDB >= 1.3)
        return (f"SELECT * FROM read_csv('{os.path.join(inp, name + '.dat')}', delim='::', quote='', "
                f"escape='', header=false, columns={cols}, encoding='latin-1')")

    year_re = r"^(.*\S)\s*\((\d{4})\)\s*$"
    return [
        ("bronze.ratings", dat("ratings")),
        ("bronze.movies", dat("movies")),
        ("bronze.users", dat("users")),
        ("silver.movies", f"""
            SELECT DISTINCT ON (movie_id) movie_id, title, year, genres FROM (
              SELECT TRY_CAST(movie_id AS INT) AS movie_id,
                     CASE WHEN regexp_matches(title_year, '{year_re}') THEN regexp_extract(title_year, '{year_re}', 1)
                          ELSE trim(title_year) END AS title,
                     CASE WHEN regexp_matches(title_year, '{year_re}') THEN TRY_CAST(regexp_extract(title_year, '{year_re}', 2) AS INT) END AS year,
                     string_split(genres, '|') AS genres
              FROM {p('bronze.movies')}) WHERE movie_id IS NOT NULL"""),
        ("silver.users", f"""
            SELECT DISTINCT ON (user_id) TRY_CAST(user_id AS INT) AS user_id, gender, TRY_CAST(age AS INT) AS age,
                   TRY_CAST(occupation AS INT) AS occupation, zip
            FROM {p('bronze.users')} WHERE TRY_CAST(user_id AS INT) IS NOT NULL"""),
        ("silver.ratings", f"""
            WITH r AS (SELECT TRY_CAST(user_id AS INT) AS user_id, TRY_CAST(movie_id AS INT) AS movie_id,
                              TRY_CAST(rating AS INT) AS rating, TRY_CAST(ts AS BIGINT) AS ts
                       FROM {p('bronze.ratings')}),
                 latest AS (SELECT * FROM r WHERE user_id IS NOT NULL AND movie_id IS NOT NULL AND ts IS NOT NULL
                              AND rating BETWEEN 1 AND 5
                            QUALIFY row_number() OVER (PARTITION BY user_id, movie_id ORDER BY ts DESC, rating DESC) = 1)
            SELECT * FROM latest SEMI JOIN (SELECT user_id FROM {p('silver.users')}) u USING (user_id)
                                 SEMI JOIN (SELECT movie_id FROM {p('silver.movies')}) m USING (movie_id)"""),
        ("silver.movie_ratings", f"""
            SELECT * FROM {p('silver.ratings')} JOIN {p('silver.movies')} USING (movie_id)
                                               JOIN {p('silver.users')} USING (user_id)"""),
        ("gold.movie_stats", f"""
            WITH c AS (SELECT avg(rating) AS c FROM {p('silver.movie_ratings')})
            SELECT movie_id, title, year, count(*) AS n_ratings, avg(rating) AS mean_rating,
                   (count(*) * avg(rating) + {M_PRIOR} * any_value(c.c)) / (count(*) + {M_PRIOR}) AS bayes_avg
            FROM {p('silver.movie_ratings')}, c GROUP BY movie_id, title, year"""),
        ("gold.genre_popularity", f"""
            SELECT genre, count(*) AS n_ratings, avg(rating) AS mean_rating, count(DISTINCT user_id) AS n_users
            FROM (SELECT unnest(genres) AS genre, user_id, rating FROM {p('silver.movie_ratings')}) GROUP BY genre"""),
        ("gold.top_movies", f"""
            WITH s AS (SELECT * FROM {p('gold.movie_stats')} WHERE n_ratings >= {MIN_COUNT}),
                 g AS (SELECT movie_id, unnest(genres) AS genre FROM {p('silver.movies')}),
                 both_ AS (SELECT s.*, 'all' AS scope FROM s
                           UNION ALL BY NAME SELECT s.*, g.genre AS scope FROM s JOIN g USING (movie_id))
            SELECT *, row_number() OVER (PARTITION BY scope ORDER BY bayes_avg DESC, movie_id) AS rank
            FROM both_ QUALIFY rank <= {TOP_K}"""),
        ("silver.als_input", f"""
            SELECT user_id, movie_id AS item_id, CAST(rating AS FLOAT) AS rating FROM {p('silver.ratings')}"""),
    ]


def child(a):
    import duckdb
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads={a.threads}")
    shutil.rmtree(a.output, ignore_errors=True)
    for layer in ("bronze", "silver", "gold"):
        os.makedirs(os.path.join(a.output, layer), exist_ok=True)
    times, rows = {}, {}
    for table, sql in steps(a.input, a.output):
        t = time.perf_counter()
        path = os.path.join(a.output, *table.split(".")) + ".parquet"
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
        times[table] = round(time.perf_counter() - t, 4)
    for table, _ in steps(a.input, a.output):
        path = os.path.join(a.output, *table.split(".")) + ".parquet"
        rows[table] = con.execute(f"SELECT count(*) FROM '{path}'").fetchone()[0]
    print(json.dumps({"steps": times, "pipeline_s": round(time.perf_counter() - t0, 4), "rows": rows,
                      "duckdb": duckdb.__version__}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", action="store_true")
    a = ap.parse_args()
    if a.child:
        return child(a)
    runs = []
    for _ in range(a.runs):
        t = time.perf_counter()
        p = subprocess.run([sys.executable, __file__, "--child", "--input", a.input, "--output", a.output,
                            "--threads", str(a.threads)], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(p.stderr[-2000:])
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["process_s"] = round(time.perf_counter() - t, 4)
        runs.append(r)
    print(json.dumps({"runs": runs, "median_process_s": statistics.median(r["process_s"] for r in runs),
                      "median_pipeline_s": statistics.median(r["pipeline_s"] for r in runs)}))


if __name__ == "__main__":
    main()
