"""The serving peer for `POST /v1/models/{name}/predict`: the endpoint a team would write with
FastAPI + scikit-learn, trained at startup on the same train rows as Strata's model.

    LAKE=path/to/lake uvicorn fastapi_peer:app --port 8182 --workers 2

Same request (one record or a list) and response shape as Strata; pydantic validates the record
(422 on a missing field or a wrong type, like Strata).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from deltalake import DeltaTable
from fastapi import FastAPI
from pydantic import BaseModel
from sklearn.ensemble import RandomForestClassifier

from sklearn_peer import CATEGORICAL, NUMERIC, encode

LAKE = os.environ.get("LAKE", "lake")


class Penguin(BaseModel):
    bill_length_mm: float
    bill_depth_mm: float
    flipper_length_mm: float
    body_mass_g: float
    island: str
    sex: str | None


def train() -> tuple[RandomForestClassifier, list[str]]:
    silver = DeltaTable(os.path.join(LAKE, "silver", "penguins")).to_pandas()
    test_ids = set(
        DeltaTable(os.path.join(LAKE, "gold", "penguin_species_predictions"))
        .to_pandas()["penguin_id"]
    )
    train_rows = silver[~silver["penguin_id"].isin(test_ids)]
    x = encode(train_rows)
    model = RandomForestClassifier(n_estimators=100, random_state=42, n_jobs=1)
    model.fit(x.to_numpy(), train_rows["species"].to_numpy())
    return model, list(x.columns)


MODEL, COLUMNS = train()
app = FastAPI()


def row(penguin: Penguin) -> np.ndarray:
    values = dict.fromkeys(COLUMNS, 0.0)
    for column in NUMERIC:
        values[column] = getattr(penguin, column)
    for column in CATEGORICAL:
        key = f"{column}={getattr(penguin, column) or 'null'}"
        if key in values:
            values[key] = 1.0
    return np.array([[values[c] for c in COLUMNS]])


@app.post("/v1/models/penguin_species/predict")
def predict(body: Penguin | list[Penguin]) -> dict:
    records = body if isinstance(body, list) else [body]
    x = np.vstack([row(p) for p in records])
    probabilities = MODEL.predict_proba(x)
    classes = [str(c) for c in MODEL.classes_]
    return {
        "model": "penguin_species",
        "classes": classes,
        "predictions": [
            {
                "class": classes[int(np.argmax(p))],
                "probability": float(np.max(p)),
                "probabilities": dict(zip(classes, map(float, p))),
            }
            for p in probabilities
        ],
    }


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}
