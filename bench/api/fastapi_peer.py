"""The comparison baseline for `strata serve`: the same two endpoints as a typical team would write them
with FastAPI + pandas over the lake's Delta tables (read with the `deltalake` package).

    LAKE=path/to/lake uvicorn fastapi_peer:app --port 8182 --workers 2

Endpoints (same JSON as Strata):
    GET /health
    GET /v1/users/{user_id}/recommendations?k=10
    GET /v1/tables/gold.movie_stats?limit=100

Everything is loaded once at startup (each uvicorn worker loads its own copy); requests only look
things up. Unknown users get the most popular items (gold.item_popularity) with "fallback": true and
the item's interaction count as its score.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any

import pandas as pd
from deltalake import DeltaTable
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel

LAKE = os.environ.get("LAKE", "lake")

# Tables that /v1/tables/{name} may serve.
SERVED_TABLES = ("gold.movie_stats",)


class Item(BaseModel):
    rank: int
    item_id: int
    score: float
    title: str | None
    genres: list[str]


class Recommendations(BaseModel):
    user_id: int
    version: int
    fallback: bool
    items: list[Item]


class TableRows(BaseModel):
    table: str
    version: int
    rows: list[dict[str, Any]]


def load(name: str) -> tuple[pd.DataFrame, int]:
    """A lake table `layer.name` as a DataFrame, with its Delta version."""
    layer, table = name.split(".", 1)
    dt = DeltaTable(os.path.join(LAKE, layer, table))
    df = dt.to_pandas()
    # list<string> columns arrive as numpy arrays, which the JSON encoder does not take.
    if "genres" in df.columns:
        df["genres"] = df["genres"].apply(lambda g: [] if g is None else list(g))
    return df, dt.version()


def item_records(df: pd.DataFrame, movies: pd.DataFrame) -> list[dict]:
    """Ranked (item_id, score) rows joined with their title and genres, as dicts."""
    joined = df.merge(movies, how="left", left_on="item_id", right_on="movie_id")
    joined["genres"] = joined["genres"].apply(lambda g: g if isinstance(g, list) else [])
    joined["title"] = joined["title"].astype(object).where(joined["title"].notna(), None)
    return joined[["rank", "item_id", "score", "title", "genres"]].to_dict("records")


state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    movies, _ = load("silver.movies")
    movies = movies[["movie_id", "title", "genres"]]

    recs, recs_version = load("gold.user_recommendations")
    recs = recs.sort_values(["user_id", "rank"])
    records = item_records(recs, movies)  # one join for every user, row order kept
    by_user: dict[int, list[dict]] = {}
    for user_id, record in zip(recs["user_id"].tolist(), records):
        by_user.setdefault(user_id, []).append(record)

    popular, _ = load("gold.item_popularity")
    popular = popular.sort_values("rank").head(1000)
    popular = popular.assign(score=popular["interactions"].astype(float))

    tables = {name: load(name) for name in SERVED_TABLES}

    state.update(
        recs_by_user=by_user,
        recs_version=recs_version,
        popular=item_records(popular, movies),
        tables=tables,
    )
    yield
    state.clear()


app = FastAPI(title="strata FastAPI peer", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/users/{user_id}/recommendations", response_model=Recommendations)
async def recommendations(user_id: int, k: int = Query(10, ge=1, le=1000)):
    items = state["recs_by_user"].get(user_id)
    fallback = items is None
    if fallback:
        items = state["popular"]
    return {
        "user_id": user_id,
        "version": state["recs_version"],
        "fallback": fallback,
        "items": items[:k],
    }


@app.get("/v1/tables/{name}", response_model=TableRows)
async def table_rows(name: str, limit: int = Query(100, ge=1, le=10000)):
    if name not in state["tables"]:
        raise HTTPException(status_code=404, detail=f"unknown table {name}")
    df, version = state["tables"][name]
    return {"table": name, "version": version, "rows": df.head(limit).to_dict("records")}
