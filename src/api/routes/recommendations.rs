//! `GET /v1/users/{user_id}/recommendations` and `GET /v1/items/{item_id}/similar`, from the gold
//! tables the ALS step publishes, with item details when the pipeline provides them.
//!
//! A user the model does not know gets the most popular items (`gold.item_popularity`) and
//! `"fallback": true`, never an error. Responses are cached per (versions, id, k).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::api::cache::Cached;
use crate::api::error::{ApiError, ApiResult};
use crate::api::state::AppState;

/// Most items a response may ask for.
const MAX_K: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
pub struct KParams {
    /// How many items (default 10, at most 1000; the model stores `k` per user, see the step file).
    pub k: Option<usize>,
}

impl KParams {
    fn k(&self) -> ApiResult<usize> {
        match self.k.unwrap_or(10) {
            k @ 1..=MAX_K => Ok(k),
            k => Err(ApiError::bad_request(
                "bad_k",
                format!("k={k}: must be between 1 and {MAX_K}"),
            )),
        }
    }
}

/// The shape of a recommendations response (for the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendations {
    pub user_id: i64,
    /// True when the user is unknown to the model and the items are the most popular ones.
    pub fallback: bool,
    /// `table@version` of every table the answer came from.
    pub versions: String,
    /// `{rank, item_id, score, ...item details}`.
    pub items: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimilarItems {
    pub item_id: i64,
    pub versions: String,
    /// Details of the item itself, when the pipeline provides them.
    pub item: Option<Value>,
    /// `{rank, item_id, score, ...item details}`: cosine similarity of item factors.
    pub items: Vec<Value>,
}

fn bad_id(what: &str, text: &str) -> ApiError {
    ApiError::bad_request("bad_id", format!("{what} {text:?} is not an integer id"))
}

/// Top-k items for a user.
#[utoipa::path(get, path = "/v1/users/{user_id}/recommendations", tag = "recommendations",
    params(("user_id" = i64, Path), KParams),
    responses(
        (status = 200, body = Recommendations),
        (status = 304, description = "If-None-Match matched"),
        (status = 400, body = crate::api::error::ErrorBody),
        (status = 503, description = "the ALS step has not run yet", body = crate::api::error::ErrorBody),
    ))]
pub async fn recommendations_get(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    Query(params): Query<KParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user: i64 = user.parse().map_err(|_| bad_id("user_id", &user))?;
    let k = params.k()?;
    let index = state
        .indexes
        .recommendations(&state.snapshots, &state.config.serve.recommendations)
        .await?;
    let versions = index.version_key.clone();
    let key = format!("recs|{versions}|{user}|{k}");
    let make = async {
        let (fallback, list) = match index.users.by_id.get(&user) {
            Some(list) => (false, list.as_slice()),
            None => (true, index.popular.as_slice()),
        };
        let body = serde_json::to_vec(&Recommendations {
            user_id: user,
            fallback,
            versions: versions.clone(),
            items: index.items_json(list, k),
        })
        .map_err(ApiError::internal)?;
        Ok(Cached::new(&key, "application/json", body))
    };
    let cached = state
        .cache
        .get_or_make("recommendations", key.clone(), make)
        .await?;
    Ok(cached.respond(&headers))
}

/// Items most similar to an item.
#[utoipa::path(get, path = "/v1/items/{item_id}/similar", tag = "recommendations",
    params(("item_id" = i64, Path), KParams),
    responses(
        (status = 200, body = SimilarItems),
        (status = 304, description = "If-None-Match matched"),
        (status = 404, description = "item unknown to the model", body = crate::api::error::ErrorBody),
    ))]
pub async fn similar_get(
    State(state): State<Arc<AppState>>,
    Path(item): Path<String>,
    Query(params): Query<KParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let item: i64 = item.parse().map_err(|_| bad_id("item_id", &item))?;
    let k = params.k()?;
    let index = state
        .indexes
        .recommendations(&state.snapshots, &state.config.serve.recommendations)
        .await?;
    let Some(list) = index.similar.by_id.get(&item) else {
        return Err(ApiError::not_found(
            "item_not_found",
            format!("item {item} is not in the model (gold.similar_items)"),
        ));
    };
    let versions = index.version_key.clone();
    let key = format!("similar|{versions}|{item}|{k}");
    let make = async {
        let body = serde_json::to_vec(&SimilarItems {
            item_id: item,
            versions: versions.clone(),
            item: index
                .details
                .by_item
                .get(&item)
                .map(|d| Value::Object(d.clone())),
            items: index.items_json(list, k),
        })
        .map_err(ApiError::internal)?;
        Ok(Cached::new(&key, "application/json", body))
    };
    let cached = state
        .cache
        .get_or_make("similar_items", key.clone(), make)
        .await?;
    Ok(cached.respond(&headers))
}
