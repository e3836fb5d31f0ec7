"""The comparison baseline for the ad-tech example's named endpoint: `GET /v1/q/recommendations`
as a team would write it with FastAPI + pandas over the lake's gold tables (read with the
`deltalake` package), standing in for the original service's FastAPI + Postgres.

    LAKE=path/to/lake uvicorn fastapi_peer:app --port 8182 --workers 2

The latest day's lists of both models are loaded once at startup (each uvicorn worker its own
copy) and indexed by (advertiser, model); a request only looks its list up. A model other than
top_ctr / top_product is a 400, a missing parameter a 422 (FastAPI's own validation).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, Literal

import pandas as pd
from deltalake import DeltaTable
from fastapi import FastAPI

LAKE = os.environ.get("LAKE", "lake")
LISTS: dict[tuple[str, str], list[dict[str, Any]]] = {}


def load() -> None:
    for model, table, score in (("top_ctr", "gold/top_ctr", "ctr"), ("top_product", "gold/top_product", "views")):
        frame = DeltaTable(os.path.join(LAKE, table)).to_pandas()
        latest = frame[frame["date"] == frame["date"].max()].sort_values(["advertiser_id", "rank"])
        for advertiser, rows in latest.groupby("advertiser_id"):
            LISTS[(advertiser, model)] = [
                {"date": str(r.date), "advertiser_id": advertiser, "model": model, "rank": int(r.rank),
                 "product_id": r.product_id, "score": float(getattr(r, score))}
                for r in rows.itertuples()
            ]


@asynccontextmanager
async def lifespan(_: FastAPI):
    load()
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/q/recommendations")
def recommendations(advertiser: str, model: Literal["top_ctr", "top_product"]) -> dict[str, Any]:
    rows = LISTS.get((advertiser, model), [])
    return {"query": "recommendations", "params": {"advertiser": advertiser, "model": model},
            "row_count": len(rows), "rows": rows}
