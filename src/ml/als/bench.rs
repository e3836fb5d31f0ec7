//! The ALS benchmark: read a train/test pair of TSV rating files, train,
//! evaluate against the peers' metric definitions and time it.
//!
//! Owns the rating-file reader (TAB-separated `user item rating`, extra
//! columns ignored, an optional header line, errors naming file and line)
//! and [`BenchReport`]. Does not own training (`model.rs`) or the metric
//! definitions (`eval.rs`). Invariant: `train_seconds` times only
//! [`AlsModel::fit`] on an already-built index, like the `implicit` peer's
//! `model.fit(csr)`; reading and indexing are in `load_seconds`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::error::AlsError;
use super::eval::{self, RELEVANCE_THRESHOLD};
use super::model::{AlsModel, AlsParams, Interactions, thread_pool};
use super::ratings::Rating;

/// Arguments of [`run_bench`], also the flags of `strata bench als`. Defaults: Spark's explicit
/// setup ([`AlsParams::default`]); the regularization follows [`AlsParams::default_regularization`].
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct BenchArgs {
    /// TAB-separated `user item rating` training file (extra columns ignored, header allowed).
    #[arg(long)]
    pub train: PathBuf,
    /// Test file, same format.
    #[arg(long)]
    pub test: PathBuf,
    #[arg(long, default_value_t = AlsParams::default().factors)]
    pub factors: usize,
    #[arg(long, default_value_t = AlsParams::default().iterations)]
    pub iterations: usize,
    /// Lambda (default: 0.1, Spark's regParam; 1.0 with --biases).
    #[arg(long)]
    pub regularization: Option<f32>,
    /// Explicit only: a row with n ratings is penalised by regularization * n^e (default: 1,
    /// ALS-WR as in Spark; 0.5 with --biases).
    #[arg(long)]
    pub regularization_exponent: Option<f32>,
    /// Implicit-feedback ALS (confidence 1 + alpha * rating) instead of explicit ALS-WR.
    #[arg(long)]
    pub implicit: bool,
    #[arg(long, default_value_t = AlsParams::default().alpha)]
    pub alpha: f32,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Learn user and item biases (explicit only).
    #[arg(long)]
    pub biases: bool,
    #[arg(long, default_value_t = AlsParams::default().seed)]
    pub seed: u64,
    /// Implicit only: conjugate-gradient steps per row and half-iteration.
    #[arg(long, default_value_t = AlsParams::default().cg_steps)]
    pub cg_steps: usize,
}

impl Default for BenchArgs {
    fn default() -> Self {
        let p = AlsParams::default();
        Self {
            train: PathBuf::new(),
            test: PathBuf::new(),
            factors: p.factors,
            iterations: p.iterations,
            regularization: None,
            regularization_exponent: None,
            implicit: p.implicit,
            alpha: p.alpha,
            threads: None,
            biases: p.biases,
            seed: p.seed,
            cg_steps: p.cg_steps,
        }
    }
}

impl BenchArgs {
    pub fn new(train: impl Into<PathBuf>, test: impl Into<PathBuf>) -> Self {
        Self {
            train: train.into(),
            test: test.into(),
            ..Self::default()
        }
    }

    pub fn params(&self) -> AlsParams {
        let (regularization, exponent) =
            AlsParams::default_regularization(self.implicit, self.biases);
        AlsParams {
            factors: self.factors,
            iterations: self.iterations,
            regularization: self.regularization.unwrap_or(regularization),
            regularization_exponent: self.regularization_exponent.unwrap_or(exponent),
            alpha: self.alpha,
            seed: self.seed,
            implicit: self.implicit,
            biases: self.biases,
            cg_steps: self.cg_steps,
            k: 10,
        }
    }
}

/// Benchmark results (serialised as one JSON object). Ranking metrics are
/// at k = 10 with the definitions in `eval.rs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Over test pairs with user and item in training; `null` for implicit
    /// models, whose scores are preferences, not ratings.
    pub rmse: Option<f64>,
    pub precision_at_10: f64,
    pub recall_at_10: f64,
    pub ndcg_at_10: f64,
    pub map_at_10: f64,
    pub popular_precision_at_10: f64,
    pub popular_ndcg_at_10: f64,
    /// Wall seconds of `AlsModel::fit` (index already built).
    pub train_seconds: f64,
    /// Wall seconds of top-10 (train items excluded) for every training user.
    pub recommend_seconds: f64,
    /// Distinct users / items in training.
    pub users: usize,
    pub items: usize,
    pub train_rows: usize,
    pub test_rows: usize,
    // Extras.
    pub popular_recall_at_10: f64,
    pub popular_map_at_10: f64,
    /// Test rows scored for RMSE and rows skipped (user or item unseen).
    pub rmse_pairs: usize,
    pub rmse_skipped: usize,
    pub eval_users: usize,
    pub eval_users_not_in_train: usize,
    /// Reading both files and building the index.
    pub load_seconds: f64,
    pub threads: usize,
    pub params: AlsParams,
    pub loss_history: Vec<f64>,
}

#[derive(Debug)]
pub enum BenchError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `line` is 1-based.
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    Als(AlsError),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            BenchError::Parse {
                path,
                line,
                message,
            } => {
                write!(f, "{}:{line}: {message}", path.display())
            }
            BenchError::Als(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Io { source, .. } => Some(source),
            BenchError::Als(e) => Some(e),
            BenchError::Parse { .. } => None,
        }
    }
}

impl From<AlsError> for BenchError {
    fn from(e: AlsError) -> Self {
        BenchError::Als(e)
    }
}

/// Read a rating file: TAB-separated `user item rating [ignored...]`, one per
/// line; blank lines are skipped; the first non-blank line is a header (and
/// skipped) when its first field is not an integer. Any other bad line is an
/// error naming the file and 1-based line.
pub fn read_ratings(path: &Path) -> Result<Vec<Rating>, BenchError> {
    let bytes = std::fs::read(path).map_err(|source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_ratings(&bytes, path)
}

/// [`read_ratings`] on bytes already in memory; `path` is only for messages.
pub fn parse_ratings(bytes: &[u8], path: &Path) -> Result<Vec<Rating>, BenchError> {
    let err = |line: usize, message: String| BenchError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut out = Vec::with_capacity(bytes.len() / 24);
    let mut first = true;
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = n + 1;
        let line = std::str::from_utf8(raw).map_err(|_| err(line_no, "not valid UTF-8".into()))?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let user = fields.next().unwrap_or("").trim();
        if std::mem::take(&mut first) && user.parse::<i64>().is_err() {
            continue; // header, e.g. `user_id	item_id	rating	timestamp`
        }
        let user: i64 = user
            .parse()
            .map_err(|_| err(line_no, format!("user id {user:?} is not an integer")))?;
        let item = fields
            .next()
            .ok_or_else(|| err(line_no, "expected 3 TAB-separated fields, found 1".into()))?
            .trim();
        let item: i64 = item
            .parse()
            .map_err(|_| err(line_no, format!("item id {item:?} is not an integer")))?;
        let rating = fields
            .next()
            .ok_or_else(|| err(line_no, "expected 3 TAB-separated fields, found 2".into()))?
            .trim();
        let rating: f32 = match rating.parse::<f32>() {
            Ok(r) if r.is_finite() => r,
            _ => {
                return Err(err(
                    line_no,
                    format!("rating {rating:?} is not a finite number"),
                ));
            }
        };
        out.push(Rating { user, item, rating });
    }
    Ok(out)
}

/// Read, train, evaluate and time; see [`BenchReport`].
pub fn run_bench(args: &BenchArgs) -> Result<BenchReport, BenchError> {
    let params = args.params();
    params.validate()?;
    let pool = thread_pool(args.threads)?;

    let t = Instant::now();
    let train = read_ratings(&args.train)?;
    let test = read_ratings(&args.test)?;
    let data = Arc::new(Interactions::from_ratings(&train)?);
    let load_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let model = AlsModel::fit(Arc::clone(&data), &params, &pool)?;
    let train_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let recs = model.recommend_all(10, &pool);
    let recommend_seconds = t.elapsed().as_secs_f64();

    let rel = eval::relevant_sets(&data, &test, RELEVANCE_THRESHOLD);
    let als = eval::ranking_metrics(&rel, &eval::ids_only(recs), 10);
    let pop = eval::ranking_metrics(&rel, &eval::recommend_popular_all(&data, 10, &pool), 10);
    let err = eval::rmse(&model, &test);

    Ok(BenchReport {
        rmse: (!params.implicit).then_some(err.rmse),
        precision_at_10: als.precision,
        recall_at_10: als.recall,
        ndcg_at_10: als.ndcg,
        map_at_10: als.map,
        popular_precision_at_10: pop.precision,
        popular_ndcg_at_10: pop.ndcg,
        train_seconds,
        recommend_seconds,
        users: data.n_users(),
        items: data.n_items(),
        train_rows: train.len(),
        test_rows: test.len(),
        popular_recall_at_10: pop.recall,
        popular_map_at_10: pop.map,
        rmse_pairs: err.pairs,
        rmse_skipped: err.skipped,
        eval_users: als.eval_users,
        eval_users_not_in_train: als.eval_users_not_in_train,
        load_seconds,
        threads: pool.current_num_threads(),
        params,
        loss_history: model.loss_history().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<Rating>, BenchError> {
        parse_ratings(s.as_bytes(), Path::new("t.tsv"))
    }

    #[test]
    fn reads_header_extra_columns_crlf_and_blank_lines() {
        let r =
            parse("user_id\titem_id\trating\ttimestamp\r\n1\t2\t3.5\t999\r\n\n-4\t5\t1\n").unwrap();
        assert_eq!(
            r,
            vec![
                Rating {
                    user: 1,
                    item: 2,
                    rating: 3.5
                },
                Rating {
                    user: -4,
                    item: 5,
                    rating: 1.0
                }
            ]
        );
        assert_eq!(parse("7\t8\t2").unwrap().len(), 1);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse("user\titem\trating\n1\t2\t3\n1\tx\t3\n").unwrap_err();
        assert_eq!(e.to_string(), "t.tsv:3: item id \"x\" is not an integer");
        let e = parse("1\t2\t3\n1\t2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.tsv:2: expected 3 TAB-separated fields, found 2"
        );
        let e = parse("1\t2\tnan\n").unwrap_err();
        assert!(e.to_string().starts_with("t.tsv:1: rating"), "{e}");
        // A header is only allowed on the first line.
        let e = parse("1\t2\t3\nuser\titem\trating\n").unwrap_err();
        assert!(e.to_string().starts_with("t.tsv:2: user id"), "{e}");
        let e = parse_ratings(b"1\t2\t\xff\n", Path::new("t.tsv")).unwrap_err();
        assert_eq!(e.to_string(), "t.tsv:1: not valid UTF-8");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let e = read_ratings(Path::new("/nonexistent/als/train.tsv")).unwrap_err();
        assert!(matches!(e, BenchError::Io { .. }));
        assert!(
            e.to_string().starts_with("/nonexistent/als/train.tsv"),
            "{e}"
        );
    }

    #[test]
    fn end_to_end_on_generated_files() {
        let dir = std::env::temp_dir().join(format!("als-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut tr, mut te) = (
            String::from("user_id\titem_id\trating\ttimestamp\n"),
            String::new(),
        );
        let mut rng = super::super::model::SplitMix64::new(1);
        for u in 0..60 {
            for i in 0..40 {
                if rng.next_f64() < 0.3 {
                    let r = 1 + (u * i + u) % 5;
                    let line = format!("{u}\t{i}\t{r}\t0\n");
                    if rng.next_f64() < 0.2 {
                        te.push_str(&line)
                    } else {
                        tr.push_str(&line)
                    }
                }
            }
        }
        te.push_str("999\t1\t5\t0\n"); // cold user: evaluated, scores 0
        std::fs::write(dir.join("train.tsv"), tr).unwrap();
        std::fs::write(dir.join("test.tsv"), te).unwrap();
        let args = BenchArgs {
            threads: Some(2),
            ..BenchArgs::new(dir.join("train.tsv"), dir.join("test.tsv"))
        };
        let rep = run_bench(&args).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rep.users, 60);
        assert!(rep.rmse.unwrap().is_finite());
        assert_eq!(rep.rmse_skipped, 1);
        assert!(rep.eval_users_not_in_train == 1 && rep.eval_users > 1);
        let json = serde_json::to_value(&rep).unwrap();
        for key in [
            "rmse",
            "precision_at_10",
            "recall_at_10",
            "ndcg_at_10",
            "map_at_10",
            "popular_precision_at_10",
            "popular_ndcg_at_10",
            "train_seconds",
            "recommend_seconds",
            "users",
            "items",
            "train_rows",
            "test_rows",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
    }
}
