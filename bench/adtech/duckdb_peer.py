#!/usr/bin/env python3
"""Peer baseline: the ad-tech example's daily job (examples/adtech) in DuckDB, one day at a time, as a
scheduler would run it: for each day, read that day's CSV files, keep the active advertisers, rank
each advertiser's products by click-through rate and by views (top 20, ties by product_id), compute
the day's statistics against the day before, and write each table's day as a Parquet partition
(OUTPUT/<table>/date=<day>/data.parquet). No Delta log, expectations, rejects table or run log:
strictly less work than `strata backfill`. Each step reads the Parquet the step before it wrote.

    python3 duckdb_peer.py --raw RAW_DIR --output OUT --from 2026-11-01 --to 2026-11-30 [--threads 2]
"""
import argparse, datetime, os, shutil, time

import duckdb


def day_steps(raw, out, day):
    ads = os.path.join(raw, "ads_views", f"{day}.csv")
    views = os.path.join(raw, "product_views", f"{day}.csv")
    active = os.path.join(raw, "advertiser_ids.csv")
    prev = (datetime.date.fromisoformat(day) - datetime.timedelta(days=1)).isoformat()

    def part(table, d):
        return os.path.join(out, table, f"date={d}", "data.parquet")

    def prev_list(table):
        path = part(table, prev)
        if os.path.exists(path):
            return f"SELECT advertiser_id, product_id FROM '{path}'"
        return "SELECT NULL::VARCHAR AS advertiser_id, NULL::VARCHAR AS product_id WHERE false"

    return [
        # bronze: the day's files as they came, with the file they came from (as Strata keeps them)
        ("bronze_ads_views", f"""
            SELECT *, '{ads}' AS _source_file FROM read_csv('{ads}', header=true,
              columns={{'advertiser_id': 'VARCHAR', 'product_id': 'VARCHAR', 'type': 'VARCHAR', 'date': 'DATE'}})"""),
        ("bronze_product_views", f"""
            SELECT *, '{views}' AS _source_file FROM read_csv('{views}', header=true,
              columns={{'advertiser_id': 'VARCHAR', 'product_id': 'VARCHAR', 'date': 'DATE'}})"""),
        ("active_advertisers", f"""
            SELECT DISTINCT advertiser_id FROM read_csv('{active}', header=true,
              columns={{'advertiser_id': 'VARCHAR'}}) WHERE advertiser_id IS NOT NULL"""),
        ("ads_views", f"""
            SELECT advertiser_id, product_id, type, date FROM '{part('bronze_ads_views', day)}'
            WHERE date = DATE '{day}'
              AND advertiser_id IN (SELECT advertiser_id FROM '{part('active_advertisers', day)}')"""),
        ("product_views", f"""
            SELECT advertiser_id, product_id, date FROM '{part('bronze_product_views', day)}'
            WHERE date = DATE '{day}'
              AND advertiser_id IN (SELECT advertiser_id FROM '{part('active_advertisers', day)}')"""),
        ("top_ctr", f"""
            WITH counts AS (
              SELECT advertiser_id, product_id,
                     count(*) FILTER (WHERE type = 'impression') AS impressions,
                     count(*) FILTER (WHERE type = 'click') AS clicks
              FROM '{part('ads_views', day)}' GROUP BY ALL)
            SELECT DATE '{day}' AS date, advertiser_id, rank, product_id, impressions, clicks, ctr FROM (
              SELECT *, clicks / impressions AS ctr,
                     row_number() OVER (PARTITION BY advertiser_id ORDER BY clicks / impressions DESC, product_id) AS rank
              FROM counts WHERE impressions > 0) WHERE rank <= 20"""),
        ("top_product", f"""
            SELECT DATE '{day}' AS date, advertiser_id, rank, product_id, views FROM (
              SELECT advertiser_id, product_id, count(*) AS views,
                     row_number() OVER (PARTITION BY advertiser_id ORDER BY count(*) DESC, product_id) AS rank
              FROM '{part('product_views', day)}' GROUP BY advertiser_id, product_id) WHERE rank <= 20"""),
        ("recommendation_stats", f"""
            WITH today AS (
              SELECT 'top_ctr' AS model, advertiser_id, product_id FROM '{part('top_ctr', day)}'
              UNION ALL SELECT 'top_product', advertiser_id, product_id FROM '{part('top_product', day)}'),
            yesterday AS (
              SELECT 'top_ctr' AS model, * FROM ({prev_list('top_ctr')})
              UNION ALL SELECT 'top_product', * FROM ({prev_list('top_product')})),
            per AS (SELECT advertiser_id, count(*) FILTER (WHERE model = 'top_ctr') AS c,
                           count(*) FILTER (WHERE model = 'top_product') AS p FROM today GROUP BY ALL),
            shared AS (SELECT a.advertiser_id, count(*) AS n FROM today a JOIN today b
                         ON a.advertiser_id = b.advertiser_id AND a.product_id = b.product_id
                       WHERE a.model = 'top_ctr' AND b.model = 'top_product' GROUP BY ALL),
            changes AS (SELECT t.advertiser_id, count(*) FILTER (WHERE y.product_id IS NULL) AS new_products
                        FROM today t LEFT JOIN yesterday y USING (model, advertiser_id, product_id)
                        WHERE t.advertiser_id IN (SELECT advertiser_id FROM yesterday) GROUP BY ALL),
            scored AS (SELECT per.advertiser_id, coalesce(shared.n, 0) / nullif(least(c, p), 0) AS agreement,
                              new_products FROM per LEFT JOIN shared USING (advertiser_id)
                              LEFT JOIN changes USING (advertiser_id))
            SELECT DATE '{day}' AS date, count(*) AS advertisers, avg(agreement) AS model_agreement,
                   avg(new_products) AS avg_new_products,
                   (list(advertiser_id ORDER BY new_products DESC, advertiser_id)
                      FILTER (WHERE new_products > 0))[1:5] AS changed_most
            FROM scored"""),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--from", dest="start", required=True)
    ap.add_argument("--to", dest="end", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    shutil.rmtree(a.output, ignore_errors=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    day = datetime.date.fromisoformat(a.start)
    end = datetime.date.fromisoformat(a.end)
    while day <= end:
        started = time.perf_counter()
        for table, sql in day_steps(a.raw, a.output, day.isoformat()):
            path = os.path.join(a.output, table, f"date={day.isoformat()}")
            os.makedirs(path, exist_ok=True)
            con.execute(f"COPY ({sql}) TO '{os.path.join(path, 'data.parquet')}' (FORMAT parquet)")
        print(f"{day} {time.perf_counter() - started:.2f} s", flush=True)
        day += datetime.timedelta(days=1)


if __name__ == "__main__":
    main()
