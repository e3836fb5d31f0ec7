//! The models pages, our MLflow: every model (a training step) with its latest run
//! (`/ui/models`); one model's runs as a sortable table of parameters and metrics with the best
//! value of each metric marked, the run whose outputs are served now, and a form to try the model
//! (a user's recommendations, or a prediction) (`/ui/models/{name}`); and two or more runs side
//! by side with metric deltas, loss curves overlaid, phase times, confusion matrices as heatmaps
//! and an "only differences" switch (`/ui/models/{name}/compare?run=..&run=..`).
//!
//! Everything comes from `system.model_runs` through the same functions as `GET /v1/models`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::chart::{LineChart, short_number};
use super::html::{STYLE_HREF, api_error_page, error_page, page_response, text};
use crate::api::error::{ApiError, ApiResult};
use crate::api::routes::models::{clean_run, group_by_step, model_run_rows, resolve_step, summary};
use crate::api::state::AppState;
use crate::catalog::{Layer, TableName};
use crate::ml::forest::encoding::FeatureKind;
use crate::pipeline::{als_step, classifier_step};

/// Parameters and measures of one training run, sorted into what the pages show.
struct RunFacts {
    run_id: String,
    trained_at: String,
    /// The version of the served table this run published: the model version.
    version: Option<u64>,
    params: BTreeMap<String, String>,
    /// Every numeric column but the run's versions.
    numbers: BTreeMap<String, f64>,
    loss: Vec<f64>,
    /// Classifiers: `[actual][predicted]`, classes in `classes`' order.
    confusion: Vec<Vec<i64>>,
    classes: Vec<String>,
}

impl RunFacts {
    fn from_row(row: &Map<String, Value>) -> RunFacts {
        let clean = clean_run(row);
        let mut params: BTreeMap<String, String> = match clean.get("params") {
            Some(Value::Object(params)) => params
                .iter()
                .map(|(k, v)| (k.clone(), crate::output::cell_text(v)))
                .collect(),
            _ => BTreeMap::new(),
        };
        // Some settings are also columns of their own (`factors`, `seed`, ...): they are
        // parameters, not measures. `threads` is a setting logged only as a column.
        let mut numbers = BTreeMap::new();
        for (key, value) in clean.as_object().into_iter().flatten() {
            let Some(number) = value.as_f64() else {
                continue;
            };
            if key.ends_with("_version") || params.contains_key(key) {
                continue;
            }
            if SETTINGS.contains(&key.as_str()) {
                params.insert(key.clone(), crate::output::cell_text(value));
            } else {
                numbers.insert(key.clone(), number);
            }
        }
        let loss = clean["loss_history"]
            .as_array()
            .map(|values| values.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let confusion = clean["confusion_matrix"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|row| {
                        row.as_array()
                            .map(|cells| cells.iter().filter_map(Value::as_i64).collect())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let classes = clean["class_metrics"]
            .as_array()
            .map(|metrics| metrics.iter().map(|m| text(m, "class")).collect())
            .unwrap_or_default();
        // A classifier's model table, or the ALS step's user recommendations (see `served_table`).
        let version = ["model_version", "user_recommendations_version"]
            .iter()
            .find_map(|column| clean.get(*column).and_then(Value::as_u64));
        RunFacts {
            run_id: text(&clean, "run_id"),
            trained_at: text(&clean, "trained_at"),
            version,
            params,
            numbers,
            loss,
            confusion,
            classes,
        }
    }

    /// The first eight characters of the run id: enough to tell runs apart on a chart.
    fn short_id(&self) -> &str {
        self.run_id.get(..8).unwrap_or(&self.run_id)
    }
}

/// Numeric columns of `system.model_runs` that are settings, not measures, though `params` does
/// not hold them.
const SETTINGS: [&str; 1] = ["threads"];

/// What a numeric column of `system.model_runs` is, for grouping and for "best".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Measure {
    Metric,
    Count,
    Seconds,
}

fn measure(column: &str) -> Measure {
    const COUNTS: [&str; 9] = [
        "input_rows",
        "train_rows",
        "test_rows",
        "rmse_pairs",
        "rmse_skipped",
        "eval_users",
        "eval_users_total",
        "users",
        "items",
    ];
    if column.ends_with("_seconds") {
        Measure::Seconds
    } else if COUNTS.contains(&column) {
        Measure::Count
    } else {
        Measure::Metric
    }
}

/// Whether a larger value of a metric is better (`None`: neither, e.g. a baseline or a width).
fn higher_is_better(column: &str) -> Option<bool> {
    if measure(column) != Measure::Metric
        || column.starts_with("popular_")
        || column.ends_with("_ci95")
    {
        None
    } else {
        Some(!(column.contains("rmse") || column.contains("loss")))
    }
}

/// The best value of `column` among `runs`, if the column has a direction.
fn best(column: &str, runs: &[&RunFacts]) -> Option<f64> {
    let higher = higher_is_better(column)?;
    let values = runs.iter().filter_map(|r| r.numbers.get(column).copied());
    if higher {
        values.reduce(f64::max)
    } else {
        values.reduce(f64::min)
    }
}

/// The metrics a model's kind is judged by first.
fn headline(kind: &str) -> &'static [&'static str] {
    if kind == classifier_step::run_row::KIND {
        &["accuracy"]
    } else {
        &["ndcg_at_10", "precision_at_10", "rmse"]
    }
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    css_href: &'static str,
    models: Vec<ModelRow>,
}

struct ModelRow {
    name: String,
    step: String,
    kind: String,
    runs: usize,
    trained_at: String,
    headline: Vec<(String, String)>,
}

pub(super) async fn models_page(State(state): State<Arc<AppState>>) -> Response {
    let rows = match model_run_rows(&state).await {
        Ok((_, rows)) => rows,
        Err(e) => return api_error_page(e),
    };
    let models = group_by_step(&rows)
        .iter()
        .map(|(step, runs)| {
            let summary = summary(step, runs);
            let latest = runs.last().map(RunFacts::from_row);
            ModelRow {
                headline: headline(&summary.kind)
                    .iter()
                    .filter_map(|m| {
                        let value = latest.as_ref()?.numbers.get(*m)?;
                        Some((m.to_string(), short_number(*value)))
                    })
                    .collect(),
                trained_at: latest.map(|l| l.trained_at).unwrap_or_default(),
                name: summary.name,
                step: summary.step,
                kind: summary.kind,
                runs: summary.runs,
            }
        })
        .collect();
    page_response(&ModelsPage {
        css_href: &STYLE_HREF,
        models,
    })
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    css_href: &'static str,
    name: String,
    step: String,
    kind: String,
    /// The run whose outputs are served now, and the version of the table that says so.
    served: Option<(String, String)>,
    table: RunsTable,
    loss_chart: Option<String>,
    try_it: TryIt,
}

/// Runs as rows, parameters and numbers as columns.
struct RunsTable {
    params: Vec<String>,
    numbers: Vec<String>,
    rows: Vec<RunsTableRow>,
    /// Header links: sorted by the column, or in the other direction when it already is.
    sort_links: BTreeMap<String, String>,
}

struct RunsTableRow {
    run_id: String,
    short_id: String,
    trained_at: String,
    version: String,
    served: bool,
    params: Vec<String>,
    /// Text and whether it is the best of its column.
    numbers: Vec<(String, bool)>,
}

/// The form to try the served model, and its answer when the form was sent.
enum TryIt {
    Recommendations {
        user: String,
        k: usize,
        answer: Option<Result<RecommendationsAnswer, String>>,
    },
    Prediction {
        features: Vec<FeatureField>,
        answer: Option<Result<PredictionAnswer, String>>,
    },
}

struct RecommendationsAnswer {
    fallback: bool,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

struct FeatureField {
    name: String,
    value: String,
    /// Categories to choose from; empty for a number.
    categories: Vec<String>,
}

struct PredictionAnswer {
    class: String,
    probabilities: Vec<(String, String)>,
}

/// `/ui/models/{name}`: query `sort`, `desc`, and the try-it form's fields.
pub(super) async fn model_page(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    match model_view(&state, &name, &params).await {
        Ok(page) => page_response(&page),
        Err(e) => api_error_page(e),
    }
}

/// The step's runs, oldest first, or a 404 naming the models there are.
async fn model_runs(state: &AppState, name: &str) -> ApiResult<(String, Vec<Map<String, Value>>)> {
    let (_, rows) = model_run_rows(state).await?;
    let mut steps = group_by_step(&rows);
    let step = resolve_step(steps.keys(), name).ok_or_else(|| {
        ApiError::not_found(
            "model_not_found",
            format!("There is no model {name} in system.model_runs."),
        )
    })?;
    let runs = steps.remove(&step).unwrap_or_default();
    Ok((step, runs))
}

async fn model_view(
    state: &AppState,
    name: &str,
    query: &[(String, String)],
) -> ApiResult<ModelPage> {
    let field = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (step, rows) = model_runs(state, name).await?;
    let summary = summary(&step, &rows);
    let facts: Vec<RunFacts> = rows.iter().rev().map(RunFacts::from_row).collect();
    let classifier = summary.kind == classifier_step::run_row::KIND;
    let step_table: TableName = step
        .parse()
        .map_err(|e| ApiError::internal(format!("model step {step}: {e}")))?;
    // The table whose latest commit names the run served now (its version is the model version).
    let served_table = if classifier {
        classifier_step::spec::model_table(&step_table)
    } else {
        TableName::new(Layer::Gold, als_step::spec::USER_RECOMMENDATIONS)
    };
    let served = match crate::inspect::last_commit(&state.lake, &served_table).await {
        Ok(commit) => commit.and_then(|c| {
            c.run_id
                .map(|run| (run, format!("{served_table}@{}", c.version)))
        }),
        Err(crate::error::Error::TableNotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let served_run = served.as_ref().map(|(run, _)| run.as_str());

    let sort = field("sort");
    let descending = field("desc").is_some();
    let mut ordered: Vec<&RunFacts> = facts.iter().collect();
    if let Some(column) = &sort {
        ordered.sort_by(|a, b| {
            let (x, y) = (a.numbers.get(column), b.numbers.get(column));
            let by_number = match (x, y) {
                (Some(x), Some(y)) => x.total_cmp(y),
                (x, y) => x.is_some().cmp(&y.is_some()),
            };
            let by_param = a.params.get(column).cmp(&b.params.get(column));
            let order = by_number.then(by_param);
            if descending { order.reverse() } else { order }
        });
    }
    let table = runs_table(name, &ordered, served_run, sort.as_deref(), descending);
    let loss_chart = facts
        .first()
        .filter(|latest| !latest.loss.is_empty())
        .map(|latest| {
            LineChart::new(
                &format!("Loss per iteration of run {}", latest.short_id()),
                "iteration",
                &[(latest.short_id().to_string(), latest.loss.clone())],
            )
            .render()
            .unwrap_or_default()
        });
    let try_it = if classifier {
        prediction_form(state, &step, query).await
    } else {
        let k = field("k").and_then(|k| k.parse().ok()).unwrap_or(10);
        let user = field("user").unwrap_or_default();
        let answer = if user.is_empty() {
            None
        } else {
            Some(recommendations(state, &user, k).await)
        };
        TryIt::Recommendations { user, k, answer }
    };
    Ok(ModelPage {
        css_href: &STYLE_HREF,
        name: summary.name,
        step,
        kind: summary.kind,
        served,
        table,
        loss_chart,
        try_it,
    })
}

fn runs_table(
    name: &str,
    runs: &[&RunFacts],
    served: Option<&str>,
    sort: Option<&str>,
    descending: bool,
) -> RunsTable {
    let params: Vec<String> = runs
        .iter()
        .flat_map(|r| r.params.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut numbers: Vec<String> = runs
        .iter()
        .flat_map(|r| r.numbers.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    numbers.sort_by_key(|c| (measure(c), c.clone()));
    let bests: Vec<Option<f64>> = numbers.iter().map(|c| best(c, runs)).collect();
    let sort_links = params
        .iter()
        .chain(&numbers)
        .map(|column| {
            let flip = sort == Some(column.as_str()) && !descending;
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("sort", column)
                .extend_pairs(flip.then_some(("desc", "1")))
                .finish();
            (column.clone(), format!("/ui/models/{name}?{query}"))
        })
        .collect();
    let rows = runs
        .iter()
        .map(|run| RunsTableRow {
            run_id: run.run_id.clone(),
            short_id: run.short_id().to_string(),
            trained_at: run.trained_at.clone(),
            version: run.version.map(|v| v.to_string()).unwrap_or_default(),
            served: served == Some(run.run_id.as_str()),
            params: params
                .iter()
                .map(|p| run.params.get(p).cloned().unwrap_or_default())
                .collect(),
            numbers: numbers
                .iter()
                .zip(&bests)
                .map(|(column, best)| match run.numbers.get(column) {
                    Some(v) => (short_number(*v), Some(*v) == *best),
                    None => (String::new(), false),
                })
                .collect(),
        })
        .collect();
    RunsTable {
        params,
        numbers,
        rows,
        sort_links,
    }
}

async fn recommendations(
    state: &AppState,
    user: &str,
    k: usize,
) -> Result<RecommendationsAnswer, String> {
    let user: i64 = user
        .parse()
        .map_err(|_| format!("{user:?} is not a user id (a whole number)"))?;
    let index = state
        .indexes
        .recommendations(&state.snapshots, &state.config.serve.recommendations)
        .await
        .map_err(|e| e.message)?;
    let (fallback, list) = match index.users.by_id.get(&user) {
        Some(list) => (false, list.as_slice()),
        None => (true, index.popular.as_slice()),
    };
    let items = index.items_json(list, k.clamp(1, 100));
    let mut columns: Vec<String> = Vec::new();
    for item in &items {
        for key in item.as_object().into_iter().flat_map(|o| o.keys()) {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let rows = items
        .iter()
        .map(|item| columns.iter().map(|c| text(item, c)).collect())
        .collect();
    Ok(RecommendationsAnswer {
        fallback,
        columns,
        rows,
    })
}

/// The predict form of a classifier: one field per feature, and the answer when it was sent
/// (`predict=1` and the feature values).
async fn prediction_form(state: &AppState, step: &str, query: &[(String, String)]) -> TryIt {
    let model = match state.models.classifier(&state.snapshots, step, None).await {
        Ok(model) => model,
        Err(e) => {
            return TryIt::Prediction {
                features: Vec::new(),
                answer: Some(Err(e.message)),
            };
        }
    };
    let value_of = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let features: Vec<FeatureField> = model
        .classifier
        .encoder
        .features
        .iter()
        .map(|f| FeatureField {
            name: f.name.clone(),
            value: value_of(&f.name),
            categories: match &f.kind {
                FeatureKind::Numeric => Vec::new(),
                FeatureKind::Categorical(categories) => categories.clone(),
            },
        })
        .collect();
    if !query.iter().any(|(k, _)| k == "predict") {
        return TryIt::Prediction {
            features,
            answer: None,
        };
    }
    let mut record = Map::new();
    for field in &features {
        let value = if field.categories.is_empty() {
            match field.value.parse::<f64>() {
                Ok(number) => serde_json::Number::from_f64(number)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                Err(_) if field.value.is_empty() => Value::Null,
                Err(_) => Value::String(field.value.clone()),
            }
        } else {
            Value::String(field.value.clone())
        };
        record.insert(field.name.clone(), value);
    }
    let answer = model
        .classifier
        .encoder
        .values_from_json(&record)
        .map_err(|e| e.to_string())
        .and_then(|values| model.classifier.predict(&values).map_err(|e| e.to_string()))
        .map(|p| PredictionAnswer {
            probabilities: model
                .classifier
                .classes
                .iter()
                .zip(&p.probabilities)
                .map(|(class, probability)| (class.clone(), format!("{probability:.3}")))
                .collect(),
            class: p.class,
        });
    TryIt::Prediction {
        features,
        answer: Some(answer),
    }
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    css_href: &'static str,
    name: String,
    runs: Vec<String>,
    only_differences: bool,
    rows: Vec<CompareRow>,
    loss_chart: Option<String>,
    heatmaps: Vec<Heatmap>,
}

struct CompareRow {
    group: &'static str,
    field: String,
    /// One per run: the value, its delta from the first run, whether it is the best.
    cells: Vec<CompareCell>,
}

struct CompareCell {
    value: String,
    delta: String,
    best: bool,
}

struct Heatmap {
    run: String,
    classes: Vec<String>,
    /// Per actual class: `(count, background alpha)` per predicted class.
    rows: Vec<Vec<(i64, String)>>,
}

/// `/ui/models/{name}/compare?run=A&run=B[&only_differences=on]`.
pub(super) async fn compare_page(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let wanted: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "run")
        .map(|(_, v)| v.as_str())
        .collect();
    if wanted.len() < 2 {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Choose two or more runs",
            "Tick the runs to compare on the model's page.",
        );
    }
    let only_differences = query.iter().any(|(k, _)| k == "only_differences");
    match compare(&state, &name, &wanted, only_differences).await {
        Ok(page) => page_response(&page),
        Err(e) => api_error_page(e),
    }
}

async fn compare(
    state: &AppState,
    name: &str,
    wanted: &[&str],
    only_differences: bool,
) -> ApiResult<ComparePage> {
    let (_, rows) = model_runs(state, name).await?;
    let facts: Vec<RunFacts> = rows.iter().map(RunFacts::from_row).collect();
    let runs: Vec<&RunFacts> = wanted
        .iter()
        .map(|id| {
            facts.iter().find(|f| f.run_id == *id).ok_or_else(|| {
                ApiError::not_found("run_not_found", format!("Model {name} has no run {id}."))
            })
        })
        .collect::<ApiResult<_>>()?;
    let mut rows = Vec::new();
    let params: BTreeSet<&String> = runs.iter().flat_map(|r| r.params.keys()).collect();
    for param in params {
        let values: Vec<String> = runs
            .iter()
            .map(|r| r.params.get(param).cloned().unwrap_or_default())
            .collect();
        if only_differences && values.iter().all(|v| *v == values[0]) {
            continue;
        }
        rows.push(CompareRow {
            group: "parameter",
            field: param.clone(),
            cells: values
                .into_iter()
                .map(|value| CompareCell {
                    value,
                    delta: String::new(),
                    best: false,
                })
                .collect(),
        });
    }
    let mut numbers: Vec<&String> = runs
        .iter()
        .flat_map(|r| r.numbers.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    numbers.sort_by_key(|c| (measure(c), c.to_string()));
    for column in numbers {
        let values: Vec<Option<f64>> = runs
            .iter()
            .map(|r| r.numbers.get(column).copied())
            .collect();
        if only_differences && values.iter().all(|v| *v == values[0]) {
            continue;
        }
        let best = best(column, &runs);
        let first = values[0];
        rows.push(CompareRow {
            group: match measure(column) {
                Measure::Metric => "metric",
                Measure::Count => "rows",
                Measure::Seconds => "phase time (s)",
            },
            field: column.clone(),
            cells: values
                .iter()
                .enumerate()
                .map(|(i, value)| CompareCell {
                    value: value.map(short_number).unwrap_or_default(),
                    delta: match (i, first, value) {
                        (0, _, _) | (_, None, _) | (_, _, None) => String::new(),
                        (_, Some(first), Some(v)) => {
                            let delta = v - first;
                            let sign = if delta >= 0.0 { "+" } else { "" };
                            format!("{sign}{}", short_number(delta))
                        }
                    },
                    best: best.is_some() && *value == best,
                })
                .collect(),
        });
    }
    let series: Vec<(String, Vec<f64>)> = runs
        .iter()
        .filter(|r| !r.loss.is_empty())
        .map(|r| {
            (
                format!("{} ({})", r.short_id(), r.trained_at),
                r.loss.clone(),
            )
        })
        .collect();
    let loss_chart = (!series.is_empty()).then(|| {
        LineChart::new("Loss per iteration, one line per run", "iteration", &series)
            .render()
            .unwrap_or_default()
    });
    let heatmaps = runs
        .iter()
        .filter(|r| !r.confusion.is_empty())
        .map(|r| heatmap(r))
        .collect();
    Ok(ComparePage {
        css_href: &STYLE_HREF,
        name: name.to_string(),
        runs: runs.iter().map(|r| r.run_id.clone()).collect(),
        only_differences,
        rows,
        loss_chart,
        heatmaps,
    })
}

/// A confusion matrix with each cell shaded by its share of its row (the actual class): the
/// diagonal dark when the model is right. Shades stay light enough for dark text to read.
fn heatmap(run: &RunFacts) -> Heatmap {
    let rows = run
        .confusion
        .iter()
        .map(|row| {
            let total: i64 = row.iter().sum();
            row.iter()
                .map(|&n| {
                    let share = if total > 0 {
                        n as f64 / total as f64
                    } else {
                        0.0
                    };
                    (n, format!("{:.2}", share * 0.45))
                })
                .collect()
        })
        .collect();
    let classes = if run.classes.len() == run.confusion.len() {
        run.classes.clone()
    } else {
        (1..=run.confusion.len())
            .map(|i| format!("class {i}"))
            .collect()
    };
    Heatmap {
        run: run.run_id.clone(),
        classes,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_best_low_scores_high_and_baselines_not_at_all() {
        assert_eq!(higher_is_better("rmse"), Some(false));
        assert_eq!(higher_is_better("final_loss"), Some(false));
        assert_eq!(higher_is_better("ndcg_at_10"), Some(true));
        assert_eq!(higher_is_better("accuracy"), Some(true));
        assert_eq!(higher_is_better("popular_ndcg_at_10"), None);
        assert_eq!(higher_is_better("ndcg_at_10_ci95"), None);
        assert_eq!(higher_is_better("train_seconds"), None);
        assert_eq!(higher_is_better("input_rows"), None);
    }

    #[test]
    fn a_confusion_heatmap_shades_each_cell_by_its_share_of_the_actual_class() {
        let run = RunFacts {
            run_id: "r".into(),
            trained_at: String::new(),
            version: None,
            params: BTreeMap::new(),
            numbers: BTreeMap::new(),
            loss: Vec::new(),
            confusion: vec![vec![9, 1], vec![0, 0]],
            classes: vec!["a".into(), "b".into()],
        };
        let map = heatmap(&run);
        assert_eq!(
            map.rows[0],
            vec![(9, "0.41".to_string()), (1, "0.05".to_string())]
        );
        assert_eq!(
            map.rows[1],
            vec![(0, "0.00".to_string()), (0, "0.00".to_string())]
        );
    }
}
