//! Training data, id maps, ALS training and recommendation.
//!
//! Owns: [`Interactions`] (raw i64 ids mapped to dense u32 indexes, with a
//! CSR index by user and one by item, built once), [`AlsParams`],
//! [`AlsModel::fit`] for explicit ALS-WR (optionally with biases) and implicit
//! ALS (Hu, Koren & Volinsky 2008, conjugate gradient as in the `implicit`
//! library), and top-k recommendation / similar items. It does not own file
//! formats (`bench.rs`), splitting or metrics (`eval.rs`), the dense
//! kernels (`solve.rs`) or how top-k lists are scored (`topk.rs`).
//!
//! Invariants:
//! - Dense ids are assigned in ascending raw-id order, so they (and the seeded
//!   initial factors) do not depend on input row order.
//! - CSR rows are sorted by column; duplicates of a (user, item) pair are kept
//!   as separate observations, as Spark does.
//! - Work is split into fixed chunks of [`ROW_CHUNK`] rows whose results do
//!   not depend on which thread runs them, and every reduction is summed in a
//!   fixed order: the same seed and input give bit-identical factors for any
//!   thread count.
//! - The training hot loop allocates nothing: scratch space is allocated per
//!   chunk before the first iteration.

use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::AlsError;
use super::ratings::{DenseRatings, IdMap, Rating, RatingsBuilder};
use super::solve::{self, CgScratch, Kernels};
use super::topk;

/// Rows per parallel task. Fixed (not derived from the thread count) so that
/// the partition, and hence every floating-point result, is the same on any
/// pool; 32 rows keeps ~30 tasks on ml-100k users for work stealing to
/// balance skewed row lengths.
pub const ROW_CHUNK: usize = 32;

/// A local rayon pool with `threads` workers (`None`: rayon's default, one
/// per core). Training and recommendation run inside the pool they are given
/// and never touch the global one, so the engine can bound ALS's share of
/// the machine.
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, AlsError> {
    let mut b = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("als-{i}"));
    if let Some(n) = threads {
        if n == 0 {
            return Err(AlsError::InvalidParams("threads must be >= 1".into()));
        }
        b = b.num_threads(n);
    }
    b.build().map_err(|e| AlsError::ThreadPool(e.to_string()))
}

/// Small deterministic PRNG (SplitMix64, Steele et al. 2014): good enough for
/// initial factors and splits, and stable across platforms and versions,
/// which a dependency's generator would not promise.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller; the second value is discarded for simplicity).
    pub fn next_gaussian(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Compressed sparse rows: row `r` holds `indices[indptr[r]..indptr[r+1]]`
/// (sorted) with the matching `values`.
#[derive(Debug, Clone, Default)]
pub struct Csr {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    /// Counting sort of `(row, col, value)` triples into rows, keeping input
    /// order inside a row. `triple(r)` gives input row `r`'s triple, or
    /// `None` to leave the row out; it is called twice per row (count, fill)
    /// so that no copy of the triples is made.
    fn from_triples(
        n_rows: usize,
        n_input: usize,
        triple: impl Fn(usize) -> Option<(u32, u32, f32)>,
    ) -> Self {
        let mut indptr = vec![0usize; n_rows + 1];
        for (r, _, _) in (0..n_input).filter_map(&triple) {
            indptr[r as usize + 1] += 1;
        }
        for r in 0..n_rows {
            indptr[r + 1] += indptr[r];
        }
        let nnz = indptr[n_rows];
        let mut next = indptr[..n_rows].to_vec();
        let mut indices = vec![0u32; nnz];
        let mut vals = vec![0f32; nnz];
        for (r, c, v) in (0..n_input).filter_map(&triple) {
            let p = &mut next[r as usize];
            indices[*p] = c;
            vals[*p] = v;
            *p += 1;
        }
        Self {
            indptr,
            indices,
            values: vals,
        }
    }

    /// The transpose, with `n_cols` rows; its rows come out sorted because
    /// this matrix is walked in row order.
    fn transpose(&self, n_cols: usize) -> Self {
        let mut indptr = vec![0usize; n_cols + 1];
        for &c in &self.indices {
            indptr[c as usize + 1] += 1;
        }
        for c in 0..n_cols {
            indptr[c + 1] += indptr[c];
        }
        let mut next = indptr[..n_cols].to_vec();
        let mut indices = vec![0u32; self.indices.len()];
        let mut vals = vec![0f32; self.indices.len()];
        for r in 0..self.rows() {
            let (cs, vs) = self.row(r);
            for (&c, &v) in cs.iter().zip(vs) {
                let p = &mut next[c as usize];
                indices[*p] = r as u32;
                vals[*p] = v;
                *p += 1;
            }
        }
        Self {
            indptr,
            indices,
            values: vals,
        }
    }

    pub fn rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Column indexes (sorted) and values of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    #[inline]
    pub fn row_len(&self, r: usize) -> usize {
        self.indptr[r + 1] - self.indptr[r]
    }
}

/// Training interactions: id maps plus CSR by user and by item.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    users: IdMap,
    items: IdMap,
    by_user: Csr,
    by_item: Csr,
    mean: f64,
}

impl Interactions {
    /// Build from parallel columns (the shape a columnar engine has).
    /// Ratings must be finite; everything else is accepted.
    pub fn from_columns(users: &[i64], items: &[i64], ratings: &[f32]) -> Result<Self, AlsError> {
        let mut builder = RatingsBuilder::default();
        builder.push(users, items, ratings)?;
        Ok(Self::from_dense(&builder.finish(), None))
    }

    /// Build from ratings already numbered, all of them or the rows `keep`
    /// marks. With `keep`, ids that occur only in left-out rows are dropped
    /// and the rest numbered anew in ascending order: the result equals
    /// [`Self::from_columns`] on the kept rows alone.
    pub fn from_dense(data: &DenseRatings, keep: Option<&[bool]>) -> Self {
        let (du, di, ratings) = (data.user_ids(), data.item_ids(), data.ratings());
        let kept = |r: usize| keep.is_none_or(|keep| keep[r]);
        let renumbered =
            keep.map(|keep| (data.users().kept(du, keep), data.items().kept(di, keep)));
        let (umap, imap, user_number, item_number) = match renumbered {
            Some(((umap, u), (imap, i))) => (umap, imap, Some(u), Some(i)),
            None => (data.users().clone(), data.items().clone(), None, None),
        };
        let number = |numbers: &Option<Vec<u32>>, dense: u32| {
            numbers.as_ref().map_or(dense, |n| n[dense as usize])
        };
        // Input order -> by user (unsorted rows) -> by item (sorted by user)
        // -> by user (sorted by item): two counting sorts, no comparisons.
        let raw_by_user = Csr::from_triples(umap.len(), ratings.len(), |r| {
            kept(r).then(|| {
                let u = number(&user_number, du[r]);
                (u, number(&item_number, di[r]), ratings[r])
            })
        });
        let by_item = raw_by_user.transpose(imap.len());
        drop(raw_by_user);
        let by_user = by_item.transpose(umap.len());
        // Summed in input order, as the rows came.
        let (sum, count) = (0..ratings.len())
            .filter(|&r| kept(r))
            .fold((0.0f64, 0usize), |(sum, count), r| {
                (sum + ratings[r] as f64, count + 1)
            });
        let mean = if count == 0 { 0.0 } else { sum / count as f64 };
        Self {
            users: umap,
            items: imap,
            by_user,
            by_item,
            mean,
        }
    }

    pub fn from_ratings(rows: &[Rating]) -> Result<Self, AlsError> {
        let users: Vec<i64> = rows.iter().map(|r| r.user).collect();
        let items: Vec<i64> = rows.iter().map(|r| r.item).collect();
        let ratings: Vec<f32> = rows.iter().map(|r| r.rating).collect();
        Self::from_columns(&users, &items, &ratings)
    }

    pub fn users(&self) -> &IdMap {
        &self.users
    }
    pub fn items(&self) -> &IdMap {
        &self.items
    }
    pub fn n_users(&self) -> usize {
        self.users.len()
    }
    pub fn n_items(&self) -> usize {
        self.items.len()
    }
    pub fn nnz(&self) -> usize {
        self.by_user.nnz()
    }
    /// Mean of all ratings (0 when empty).
    pub fn mean_rating(&self) -> f64 {
        self.mean
    }
    pub fn by_user(&self) -> &Csr {
        &self.by_user
    }
    pub fn by_item(&self) -> &Csr {
        &self.by_item
    }
    /// Items of dense user `u` (sorted) and their ratings.
    pub fn user_row(&self, u: u32) -> (&[u32], &[f32]) {
        self.by_user.row(u as usize)
    }
    /// Users of dense item `i` (sorted) and their ratings.
    pub fn item_row(&self, i: u32) -> (&[u32], &[f32]) {
        self.by_item.row(i as usize)
    }
    /// Number of training rows of dense item `i` (its popularity).
    pub fn item_count(&self, i: u32) -> usize {
        self.by_item.row_len(i as usize)
    }
}

/// ALS hyper-parameters. Defaults: Spark's explicit setup (rank 10,
/// 10 iterations, regularization 0.1) and the `implicit` library's CG
/// settings (alpha 1, 3 CG steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlsParams {
    /// Rank of the factorisation.
    pub factors: usize,
    /// Full sweeps: items then users for explicit (Spark's order), users
    /// then items for implicit (the `implicit` library's order).
    pub iterations: usize,
    /// Explicit: lambda of ALS-WR, scaled by each row's rating count (Zhou et
    /// al. 2008; Spark's `regParam`), or by a power of it, see
    /// [`Self::regularization_exponent`]. Implicit: plain lambda, as in Hu et
    /// al. and the `implicit` library.
    pub regularization: f32,
    /// Explicit only: each user or item row with `n` ratings is penalised by
    /// `regularization * n^e` (factors and bias alike). 1 is ALS-WR as in
    /// Spark; 0 is a plain, count-independent L2 penalty; 0.5 is the
    /// square-root weighting of the weighted trace norm (Salakhutdinov &
    /// Srebro 2010), which shrinks sparse rows relatively more than ALS-WR:
    /// with biases it measured RMSE 0.907 against ALS-WR's 0.913 on the
    /// ml-100k split (regularization 1.3 against 0.13). Defaults:
    /// [`Self::default_regularization`].
    pub regularization_exponent: f32,
    /// Implicit only: confidence `c = 1 + alpha * r`.
    pub alpha: f32,
    /// Seed of the initial factors.
    pub seed: u64,
    /// Implicit-feedback ALS instead of explicit ALS-WR.
    pub implicit: bool,
    /// Explicit only: learn user and item biases around the global mean.
    pub biases: bool,
    /// Implicit only: CG steps per row per half-iteration (warm-started).
    pub cg_steps: usize,
    /// Default list length for recommendations.
    pub k: usize,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self {
            factors: 10,
            iterations: 10,
            regularization: 0.1,
            regularization_exponent: 1.0,
            alpha: 1.0,
            seed: 42,
            implicit: false,
            biases: false,
            cg_steps: 3,
            k: 10,
        }
    }
}

impl AlsParams {
    /// `(regularization, regularization_exponent)` for a setup that sets neither: Spark's ALS-WR
    /// (0.1, 1) for plain explicit ALS and the same lambda for implicit ALS; with biases, the
    /// weighted trace norm (1.0, 0.5). Chosen on validation splits cut from the training files of
    /// ml-100k, ml-latest-small and the 1M sample as the best worst case over the three: the real
    /// files want a larger lambda (1.3), the generated sample a smaller one (0.5-0.7). On the
    /// held-out test files: RMSE 1.3%, 3.3% and 1.2% under Spark's; see BENCHMARKS.md.
    pub fn default_regularization(implicit: bool, biases: bool) -> (f32, f32) {
        if biases && !implicit {
            (1.0, 0.5)
        } else {
            (0.1, 1.0)
        }
    }

    pub fn validate(&self) -> Result<(), AlsError> {
        let bad = |m: &str| Err(AlsError::InvalidParams(m.to_string()));
        if self.factors == 0 || self.factors > 4096 {
            return bad("factors must be in 1..=4096");
        }
        if !(self.regularization.is_finite() && self.regularization >= 0.0) {
            return bad("regularization must be finite and >= 0");
        }
        if !(0.0..=2.0).contains(&self.regularization_exponent) {
            return bad("regularization_exponent must be in 0..=2");
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad("alpha must be finite and >= 0");
        }
        if self.implicit && self.biases {
            return bad("biases are only supported for explicit ALS");
        }
        if self.implicit && self.cg_steps == 0 {
            return bad("cg_steps must be >= 1 for implicit ALS");
        }
        Ok(())
    }
}

/// Ratings gathered per block when forming explicit normal equations; bounds
/// the scratch size however long a row is (a blockbuster item can have
/// millions of ratings) while keeping the block in L1 (128 x 11 f64 = 11 KiB).
const GATHER_BLOCK: usize = 128;

/// Per-chunk scratch for the explicit normal equations (dimension `d` =
/// factors, + 1 with biases).
struct ExplicitScratch {
    a: Vec<f64>,
    b: Vec<f64>,
    /// Column-major gather of one block: feature `p` of the block's k-th
    /// rating at `cols[p * GATHER_BLOCK + k]`.
    cols: Vec<f64>,
    /// Regression targets of the block.
    t: Vec<f64>,
}

impl ExplicitScratch {
    fn new(d: usize) -> Self {
        Self {
            a: vec![0.0; d * d],
            b: vec![0.0; d],
            cols: vec![0.0; d * GATHER_BLOCK],
            t: vec![0.0; GATHER_BLOCK],
        }
    }
}

/// A trained factorisation. Holds the training interactions (shared) because
/// recommendations must exclude each user's training items and callers need
/// the id maps.
#[derive(Debug, Clone)]
pub struct AlsModel {
    params: AlsParams,
    data: Arc<Interactions>,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    /// Always allocated (zeros without biases) so prediction has one code path.
    user_bias: Vec<f32>,
    item_bias: Vec<f32>,
    /// Training mean with biases, else 0.
    global_mean: f32,
    loss_history: Vec<f64>,
}

impl AlsModel {
    /// Train on `data` inside `pool`. Explicit ALS-WR or implicit ALS per
    /// `params.implicit`; one loss value is recorded per iteration.
    pub fn fit(
        data: impl Into<Arc<Interactions>>,
        params: &AlsParams,
        pool: &rayon::ThreadPool,
    ) -> Result<Self, AlsError> {
        let data: Arc<Interactions> = data.into();
        params.validate()?;
        if data.nnz() == 0 {
            return Err(AlsError::Empty);
        }
        if params.implicit {
            // c = 1 + alpha * r must be >= 1 for the CG system to stay SPD.
            for u in 0..data.n_users() as u32 {
                let (cols, vals) = data.user_row(u);
                if let Some(k) = vals.iter().position(|&r| r < 0.0) {
                    return Err(AlsError::NegativeImplicitRating {
                        user: data.users().raw(u),
                        item: data.items().raw(cols[k]),
                        rating: vals[k],
                    });
                }
            }
        }
        let f = params.factors;
        let (nu, ni) = (data.n_users(), data.n_items());
        let mut model = AlsModel {
            params: params.clone(),
            user_factors: vec![0.0; nu * f],
            item_factors: vec![0.0; ni * f],
            user_bias: vec![0.0; nu],
            item_bias: vec![0.0; ni],
            global_mean: if params.biases {
                data.mean_rating() as f32
            } else {
                0.0
            },
            loss_history: Vec::with_capacity(params.iterations),
            data,
        };
        model.init_factors();
        pool.install(|| {
            if params.implicit {
                model.train_implicit()
            } else {
                model.train_explicit()
            }
        });
        Ok(model)
    }

    /// Seeded initial factors, users then items, generated sequentially so
    /// they do not depend on the pool. Implicit: uniform [0, 0.01) like the
    /// `implicit` library. Explicit: Gaussian rows scaled to unit length like
    /// Spark.
    fn init_factors(&mut self) {
        let f = self.params.factors;
        let mut rng = SplitMix64::new(self.params.seed);
        for m in [&mut self.user_factors, &mut self.item_factors] {
            for row in m.chunks_exact_mut(f) {
                if self.params.implicit {
                    for v in row.iter_mut() {
                        *v = (rng.next_f64() * 0.01) as f32;
                    }
                } else {
                    let mut sq = 0.0f64;
                    for v in row.iter_mut() {
                        let g = rng.next_gaussian();
                        sq += g * g;
                        *v = g as f32;
                    }
                    let scale = (1.0 / sq.sqrt().max(1e-12)) as f32;
                    row.iter_mut().for_each(|v| *v *= scale);
                }
            }
        }
    }

    fn train_explicit(&mut self) {
        let f = self.params.factors;
        let d = f + usize::from(self.params.biases);
        let chunks = self
            .data
            .n_users()
            .max(self.data.n_items())
            .div_ceil(ROW_CHUNK);
        let mut scratch: Vec<ExplicitScratch> =
            (0..chunks).map(|_| ExplicitScratch::new(d)).collect();
        let mut user_terms = vec![0.0f64; self.data.n_users()];
        let mut item_terms = vec![0.0f64; self.data.n_items()];
        let step = ExplicitStep {
            f,
            lambda: self.params.regularization as f64,
            exponent: self.params.regularization_exponent as f64,
            mu: self.global_mean as f64,
            biases: self.params.biases,
        };
        let data = Arc::clone(&self.data);
        // Items first, as Spark does: measured on the shared splits, 10
        // iterations from Spark's init reach RMSE 0.875 on ml-latest-small
        // this way against 0.890 users-first (ml-100k: 0.927 vs 0.925, within
        // seed noise).
        for _ in 0..self.params.iterations {
            step.half_step(
                data.by_item(),
                &self.user_factors,
                &self.user_bias,
                &mut self.item_factors,
                &mut self.item_bias,
                &mut scratch,
            );
            step.half_step(
                data.by_user(),
                &self.item_factors,
                &self.item_bias,
                &mut self.user_factors,
                &mut self.user_bias,
                &mut scratch,
            );
            let loss = self.explicit_objective(&mut user_terms, &mut item_terms);
            self.loss_history.push(loss);
        }
    }

    /// Σ (r − μ − b_u − b_i − x_u·y_i)² + λ Σ_u n_u^e (‖x_u‖² + b_u²) plus
    /// λ Σ_i n_i^e (‖y_i‖² + b_i²) (e = `regularization_exponent`, 1 for
    /// ALS-WR): the function each half-step minimises exactly, so it cannot
    /// increase. Per-row terms are computed in parallel
    /// into preallocated buffers and summed sequentially (deterministic).
    fn explicit_objective(&self, user_terms: &mut [f64], item_terms: &mut [f64]) -> f64 {
        let f = self.params.factors;
        let lambda = self.params.regularization as f64;
        let exponent = self.params.regularization_exponent as f64;
        let mu = self.global_mean as f64;
        let data = &*self.data;
        user_terms.par_iter_mut().enumerate().for_each(|(u, out)| {
            let x = &self.user_factors[u * f..(u + 1) * f];
            let bu = self.user_bias[u] as f64;
            let (cols, vals) = data.user_row(u as u32);
            let mut s = 0.0;
            for (&i, &r) in cols.iter().zip(vals) {
                let i = i as usize;
                let y = &self.item_factors[i * f..(i + 1) * f];
                let p: f64 = x.iter().zip(y).map(|(a, b)| *a as f64 * *b as f64).sum();
                let e = r as f64 - mu - bu - self.item_bias[i] as f64 - p;
                s += e * e;
            }
            let norm: f64 = x.iter().map(|a| *a as f64 * *a as f64).sum::<f64>() + bu * bu;
            *out = s + row_lambda(lambda, exponent, cols.len()) * norm;
        });
        item_terms.par_iter_mut().enumerate().for_each(|(i, out)| {
            let y = &self.item_factors[i * f..(i + 1) * f];
            let bi = self.item_bias[i] as f64;
            let norm: f64 = y.iter().map(|a| *a as f64 * *a as f64).sum::<f64>() + bi * bi;
            *out = row_lambda(lambda, exponent, data.item_count(i as u32)) * norm;
        });
        user_terms.iter().sum::<f64>() + item_terms.iter().sum::<f64>()
    }

    fn train_implicit(&mut self) {
        let f = self.params.factors;
        let chunks = self
            .data
            .n_users()
            .max(self.data.n_items())
            .div_ceil(ROW_CHUNK);
        let mut scratch = ImplicitScratch {
            cg: (0..chunks).map(|_| CgScratch::new(f)).collect(),
            loss_terms: vec![0.0; self.data.n_users().max(self.data.n_items())],
        };
        let mut gram_items = vec![0.0f32; f * f];
        let mut gram_users = vec![0.0f32; f * f];
        let mut partials = gram_partials(self.data.n_users().max(self.data.n_items()), f);
        let data = Arc::clone(&self.data);
        let step = ImplicitStep {
            f,
            reg: self.params.regularization,
            alpha: self.params.alpha,
            cg_steps: self.params.cg_steps,
        };
        let loss = ImplicitLoss::new(&data, self.params.regularization, self.params.alpha);
        gram(&self.item_factors, f, &mut partials, &mut gram_items);
        for iteration in 0..self.params.iterations {
            // The user step starts from the factors the previous iteration ended with, and its
            // residuals hold every term of their loss: the loss of iteration n - 1 costs nothing
            // here (a separate pass cost 17% of the training at 25M ratings).
            let work = if iteration > 0 {
                RowWork::SolveAndLoss
            } else {
                RowWork::Solve
            };
            step.half_step(
                data.by_user(),
                &self.item_factors,
                &gram_items,
                &mut self.user_factors,
                &mut scratch,
                work,
            );
            if iteration > 0 {
                let value = loss.value(&scratch.loss_terms[..data.n_users()], &self.item_factors);
                self.loss_history.push(value);
            }
            gram(&self.user_factors, f, &mut partials, &mut gram_users);
            step.half_step(
                data.by_item(),
                &self.user_factors,
                &gram_users,
                &mut self.item_factors,
                &mut scratch,
                RowWork::Solve,
            );
            gram(&self.item_factors, f, &mut partials, &mut gram_items);
        }
        // The last iteration's loss: the same row terms, without solving.
        step.half_step(
            data.by_user(),
            &self.item_factors,
            &gram_items,
            &mut self.user_factors,
            &mut scratch,
            RowWork::LossOnly,
        );
        let value = loss.value(&scratch.loss_terms[..data.n_users()], &self.item_factors);
        self.loss_history.push(value);
    }

    pub fn params(&self) -> &AlsParams {
        &self.params
    }
    pub fn data(&self) -> &Interactions {
        &self.data
    }
    /// The shared training data (cheap to clone).
    pub fn data_arc(&self) -> Arc<Interactions> {
        Arc::clone(&self.data)
    }
    pub fn factors(&self) -> usize {
        self.params.factors
    }
    /// Row-major `n_users x factors`.
    pub fn user_factors(&self) -> &[f32] {
        &self.user_factors
    }
    /// Row-major `n_items x factors`.
    pub fn item_factors(&self) -> &[f32] {
        &self.item_factors
    }
    pub fn user_vector(&self, u: u32) -> &[f32] {
        let f = self.params.factors;
        &self.user_factors[u as usize * f..(u as usize + 1) * f]
    }
    pub fn item_vector(&self, i: u32) -> &[f32] {
        let f = self.params.factors;
        &self.item_factors[i as usize * f..(i as usize + 1) * f]
    }
    /// All zeros unless trained with biases.
    pub fn user_biases(&self) -> &[f32] {
        &self.user_bias
    }
    pub fn item_biases(&self) -> &[f32] {
        &self.item_bias
    }
    pub fn global_mean(&self) -> f32 {
        self.global_mean
    }
    /// One loss per iteration: explicit, the regularised objective (never
    /// increases); implicit, the normalised weighted loss.
    pub fn loss_history(&self) -> &[f64] {
        &self.loss_history
    }

    /// Predicted rating (explicit) or preference (implicit) for dense ids.
    pub fn predict(&self, u: u32, i: u32) -> f32 {
        self.global_mean
            + self.user_bias[u as usize]
            + self.item_bias[i as usize]
            + solve::dot(self.user_vector(u), self.item_vector(i))
    }

    /// [`Self::predict`] for raw ids; `None` if either was not in training.
    pub fn predict_raw(&self, user: i64, item: i64) -> Option<f32> {
        let u = self.data.users().dense(user)?;
        let i = self.data.items().dense(item)?;
        Some(self.predict(u, i))
    }

    /// Top-`k` items for dense user `u` by predicted score (descending, ties
    /// by smaller dense id), excluding the user's training items.
    pub fn recommend(&self, u: u32, k: usize) -> Vec<(u32, f32)> {
        let mut lists = topk::top_k_block(&self.user_scoring(), &[self.user_query(u)], k);
        lists.pop().unwrap_or_default()
    }

    /// [`Self::recommend`] for the dense users `users`, in parallel inside `pool`; entry `n` is
    /// `users[n]`'s list. Scored in blocks of users against blocks of items ([`topk`]).
    pub fn recommend_users(
        &self,
        users: &[u32],
        k: usize,
        pool: &rayon::ThreadPool,
    ) -> Vec<Vec<(u32, f32)>> {
        let scoring = self.user_scoring();
        topk::top_k(
            &scoring,
            users.len(),
            |n| self.user_query(users[n]),
            k,
            pool,
        )
    }

    /// [`Self::recommend`] for every dense user, in parallel inside `pool`;
    /// entry `u` is user `u`'s list.
    pub fn recommend_all(&self, k: usize, pool: &rayon::ThreadPool) -> Vec<Vec<(u32, f32)>> {
        let scoring = self.user_scoring();
        let n_users = self.data.n_users();
        topk::top_k(&scoring, n_users, |u| self.user_query(u as u32), k, pool)
    }

    /// Items scored for users: factors plus item biases (explicit with biases only).
    fn user_scoring(&self) -> topk::Scoring<'_> {
        topk::Scoring {
            items: &self.item_factors,
            factors: self.params.factors,
            item_bias: self
                .item_bias
                .iter()
                .any(|&b| b != 0.0)
                .then_some(&self.item_bias[..]),
        }
    }

    fn user_query(&self, u: u32) -> topk::Query<'_> {
        topk::Query {
            vector: self.user_vector(u),
            base: self.global_mean + self.user_bias[u as usize],
            skip: self.data.user_row(u).0,
        }
    }

    /// Raw-id convenience: top-`k` (raw item id, score) for a raw user id;
    /// `None` if the user was not in training.
    pub fn recommend_raw(&self, user: i64, k: usize) -> Option<Vec<(i64, f32)>> {
        let u = self.data.users().dense(user)?;
        Some(
            self.recommend(u, k)
                .into_iter()
                .map(|(i, s)| (self.data.items().raw(i), s))
                .collect(),
        )
    }

    /// Every item vector scaled to unit length (a zero vector stays zero), so that dot products
    /// of these rows are cosine similarities.
    fn unit_item_vectors(&self) -> Vec<f32> {
        let mut unit = self.item_factors.clone();
        for y in unit.chunks_exact_mut(self.params.factors) {
            let norm = solve::dot(y, y).sqrt();
            if norm > 0.0 {
                y.iter_mut().for_each(|v| *v /= norm);
            }
        }
        unit
    }

    /// Top-`k` items by cosine similarity of factors to dense item `i`,
    /// excluding `i` itself. Items with a zero vector score 0.
    pub fn similar_items(&self, i: u32, k: usize) -> Vec<(u32, f32)> {
        let unit = self.unit_item_vectors();
        let f = self.params.factors;
        let scoring = topk::Scoring {
            items: &unit,
            factors: f,
            item_bias: None,
        };
        let query = topk::Query {
            vector: &unit[i as usize * f..(i as usize + 1) * f],
            base: 0.0,
            skip: &[i],
        };
        topk::top_k_block(&scoring, &[query], k)
            .pop()
            .unwrap_or_default()
    }

    /// [`Self::similar_items`] for every item, in parallel inside `pool`.
    pub fn similar_items_all(&self, k: usize, pool: &rayon::ThreadPool) -> Vec<Vec<(u32, f32)>> {
        let unit = self.unit_item_vectors();
        let f = self.params.factors;
        let scoring = topk::Scoring {
            items: &unit,
            factors: f,
            item_bias: None,
        };
        // Each item skips itself: a slice of one out of the list of every index.
        let all: Vec<u32> = (0..self.data.n_items() as u32).collect();
        let query = |i: usize| topk::Query {
            vector: &unit[i * f..(i + 1) * f],
            base: 0.0,
            skip: &all[i..i + 1],
        };
        topk::top_k(&scoring, all.len(), query, k, pool)
    }
}

/// The explicit L2 weight of a row with `n` ratings: `lambda * n^exponent`.
/// Exponent 1 (ALS-WR) takes `n` itself, so the default path is bit-identical
/// to plain ALS-WR whatever `powf` rounds.
#[inline]
fn row_lambda(lambda: f64, exponent: f64, n: usize) -> f64 {
    let n = n as f64;
    if exponent == 1.0 {
        lambda * n
    } else {
        lambda * n.powf(exponent)
    }
}

/// Constants of one explicit half-step.
struct ExplicitStep {
    f: usize,
    lambda: f64,
    /// Power of the row count scaling `lambda` (1: ALS-WR).
    exponent: f64,
    mu: f64,
    biases: bool,
}

impl ExplicitStep {
    /// Solve every row of `rows` exactly given the other side's factors.
    fn half_step(
        &self,
        rows: &Csr,
        other: &[f32],
        other_bias: &[f32],
        own: &mut [f32],
        own_bias: &mut [f32],
        scratch: &mut [ExplicitScratch],
    ) {
        let f = self.f;
        // zip truncates silently: make sure every chunk has its scratch.
        assert!(scratch.len() >= rows.rows().div_ceil(ROW_CHUNK));
        own.par_chunks_mut(ROW_CHUNK * f)
            .zip(own_bias.par_chunks_mut(ROW_CHUNK))
            .zip(scratch.par_iter_mut())
            .enumerate()
            .for_each(|(c, ((xs, bs), s))| {
                for (k, (x, b)) in xs.chunks_exact_mut(f).zip(bs.iter_mut()).enumerate() {
                    let (cols, vals) = rows.row(c * ROW_CHUNK + k);
                    self.solve_row(cols, vals, other, other_bias, x, b, s);
                }
            });
    }

    /// Normal equations of one row in f64:
    /// (Σ v vᵀ + λ nᵉ I) w = Σ t v, with v = [y, 1] and w = [x, b] when
    /// learning biases (t = r − μ − b_other), else v = y, w = x, t = r.
    #[allow(clippy::too_many_arguments)]
    fn solve_row(
        &self,
        cols: &[u32],
        vals: &[f32],
        other: &[f32],
        other_bias: &[f32],
        x: &mut [f32],
        b: &mut f32,
        s: &mut ExplicitScratch,
    ) {
        let f = self.f;
        if cols.is_empty() {
            // No data: the regularised optimum is zero.
            x.fill(0.0);
            *b = 0.0;
            return;
        }
        let d = f + usize::from(self.biases);
        let ExplicitScratch {
            a,
            b: rhs,
            cols: g,
            t,
        } = s;
        let (a, rhs) = (&mut a[..d * d], &mut rhs[..d]);
        a.fill(0.0);
        rhs.fill(0.0);
        // Gather a block column-major, then form AᵀA and Aᵀt with vectorised
        // dot products: ~3x faster than rank-1 updates of a 10 x 10 triangle.
        for (bc, bv) in cols.chunks(GATHER_BLOCK).zip(vals.chunks(GATHER_BLOCK)) {
            let len = bc.len();
            for (k, (&j, &r)) in bc.iter().zip(bv).enumerate() {
                let j = j as usize;
                for (p, &y) in other[j * f..(j + 1) * f].iter().enumerate() {
                    g[p * GATHER_BLOCK + k] = y as f64;
                }
                t[k] = if self.biases {
                    g[f * GATHER_BLOCK + k] = 1.0;
                    r as f64 - self.mu - other_bias[j] as f64
                } else {
                    r as f64
                };
            }
            // Lower triangle only (that is all Cholesky reads), four columns
            // per pass so each load of column p serves four products.
            let col = |q: usize| &g[q * GATHER_BLOCK..q * GATHER_BLOCK + len];
            for p in 0..d {
                let cp = col(p);
                rhs[p] += solve::dot64(cp, &t[..len]);
                let mut q = 0;
                while q + 4 <= p + 1 {
                    let s4 = solve::dot64x4([col(q), col(q + 1), col(q + 2), col(q + 3)], cp);
                    for (k, v) in s4.into_iter().enumerate() {
                        a[p * d + q + k] += v;
                    }
                    q += 4;
                }
                for q in q..=p {
                    a[p * d + q] += solve::dot64(cp, col(q));
                }
            }
        }
        // ALS-WR: lambda scaled by the row's rating count (to the power
        // `exponent`, 1 by default), biases included (a separate or unscaled
        // bias lambda measured no better on ml-100k, with either exponent).
        let reg = row_lambda(self.lambda, self.exponent, cols.len());
        for p in 0..d {
            a[p * d + p] += reg;
        }
        // Only fails for lambda = 0 with a rank-deficient row: keeping the
        // previous values then still cannot increase the objective.
        if solve::solve_spd(a, d, rhs).is_ok() && rhs.iter().all(|w| w.is_finite()) {
            for (xt, w) in x.iter_mut().zip(&rhs[..f]) {
                *xt = *w as f32;
            }
            if self.biases {
                *b = rhs[f] as f32;
            }
        }
    }
}

/// Rows of a factor matrix per partial Gram matrix: big enough that the
/// k x k partials are few, small enough to spread over the pool.
const GRAM_BLOCK: usize = 512;

/// Scratch for [`gram`]: one k x k partial per block of the larger side.
fn gram_partials(n_rows: usize, k: usize) -> Vec<f32> {
    vec![0.0; n_rows.div_ceil(GRAM_BLOCK).max(1) * k * k]
}

/// `out = MᵀM` (k x k, full, row-major) for row-major `m` with `k` columns.
/// Fixed blocks of rows are reduced in parallel into `partials` (from
/// [`gram_partials`]), then summed in block order: deterministic for any
/// pool, each of M's rows read once, and exactly symmetric (entry (a, b) and
/// (b, a) add the same products in the same order).
fn gram(m: &[f32], k: usize, partials: &mut [f32], out: &mut [f32]) {
    let blocks = m.len().div_ceil(GRAM_BLOCK * k);
    assert!(partials.len() >= blocks * k * k, "gram: partials too small");
    partials
        .par_chunks_mut(k * k)
        .zip(m.par_chunks(GRAM_BLOCK * k))
        .for_each(|(g, rows)| {
            g.fill(0.0);
            for y in rows.chunks_exact(k) {
                for (a, ga) in g.chunks_exact_mut(k).enumerate() {
                    solve::axpy(y[a], y, ga);
                }
            }
        });
    out.fill(0.0);
    for g in partials.chunks_exact(k * k).take(blocks) {
        for (o, v) in out.iter_mut().zip(g) {
            *o += v;
        }
    }
}

/// Hu et al.'s weighted loss Σ_ui c_ui (p_ui − x_u·y_i)² + λ(‖X‖² + ‖Y‖²),
/// with c = 1 + αr, p = 1 on observed pairs and c = 1, p = 0 elsewhere,
/// divided by Σ c over all users x items (the `implicit` library's
/// normalisation) so values compare across data sizes. Per user the terms are
/// xᵀ(YᵀY + λI)x + Σ_observed c(1 − x·y)² − (x·y)²: the unobserved part
/// comes from the Gram matrix, so the cost is O(nnz·k + users·k²), and
/// [`ImplicitStep::half_step`] computes them from the residual it needs anyway.
struct ImplicitLoss {
    reg: f64,
    denominator: f64,
}

impl ImplicitLoss {
    fn new(data: &Interactions, reg: f32, alpha: f32) -> Self {
        let total_conf: f64 = (0..data.n_users())
            .map(|u| {
                data.user_row(u as u32)
                    .1
                    .iter()
                    .map(|&r| 1.0 + alpha as f64 * r as f64)
                    .sum::<f64>()
            })
            .sum();
        let unobserved = data.n_users() as f64 * data.n_items() as f64 - data.nnz() as f64;
        Self {
            reg: reg as f64,
            denominator: (total_conf + unobserved).max(1.0),
        }
    }

    /// The loss from every user's terms (summed in user order: deterministic) and the item
    /// factors' penalty.
    fn value(&self, user_terms: &[f64], item_factors: &[f32]) -> f64 {
        let items: f64 = item_factors.iter().map(|v| *v as f64 * *v as f64).sum();
        (user_terms.iter().sum::<f64>() + self.reg * items) / self.denominator
    }
}

/// Working space of the implicit half steps, allocated once per fit.
struct ImplicitScratch {
    /// One per chunk of [`ROW_CHUNK`] rows.
    cg: Vec<CgScratch>,
    /// One per row of the larger side; the loss terms of the last user step that recorded them.
    loss_terms: Vec<f64>,
}

/// What [`ImplicitStep::half_step`] does with each row.
#[derive(Clone, Copy, PartialEq)]
enum RowWork {
    Solve,
    /// Solve it and store the loss terms of the factors it started from.
    SolveAndLoss,
    /// Only store its loss terms; the factors do not change.
    LossOnly,
}

/// Constants of one implicit half-step.
#[derive(Clone, Copy)]
struct ImplicitStep {
    f: usize,
    reg: f32,
    alpha: f32,
    cg_steps: usize,
}

impl ImplicitStep {
    /// For every row, a few CG steps on (YᵀY + λI + Σ (c−1) y yᵀ) x = Σ c y,
    /// warm-started from the current x, as in `implicit`'s `least_squares_cg`.
    /// `gram` is YᵀY without λ.
    fn half_step(
        self,
        rows: &Csr,
        other: &[f32],
        gram: &[f32],
        own: &mut [f32],
        scratch: &mut ImplicitScratch,
        work: RowWork,
    ) {
        let f = self.f;
        let ImplicitScratch { cg, loss_terms } = scratch;
        // zip truncates silently: make sure every chunk has its scratch and its loss terms.
        assert!(cg.len() >= rows.rows().div_ceil(ROW_CHUNK));
        assert!(loss_terms.len() >= rows.rows(), "one loss term per row");
        // Once per half step, not per chunk: which SIMD registers this CPU has.
        let arch = pulp::Arch::new();
        own.par_chunks_mut(ROW_CHUNK * f)
            .zip(cg.par_iter_mut())
            .zip(loss_terms.par_chunks_mut(ROW_CHUNK))
            .enumerate()
            .for_each(|(c, ((xs, scratch), loss_terms))| {
                arch.dispatch(ImplicitChunk {
                    step: self,
                    rows,
                    first_row: c * ROW_CHUNK,
                    other,
                    gram,
                    xs,
                    scratch,
                    work,
                    loss_terms,
                })
            });
    }
}

/// One chunk of rows of an implicit half step: each row's conjugate-gradient solve, compiled
/// once per instruction set `pulp` can dispatch to (`with_simd` and everything it calls are
/// inlined into the dispatched function, so the whole solve uses AVX2/FMA where the CPU has it).
struct ImplicitChunk<'a> {
    step: ImplicitStep,
    rows: &'a Csr,
    first_row: usize,
    other: &'a [f32],
    gram: &'a [f32],
    xs: &'a mut [f32],
    scratch: &'a mut CgScratch,
    work: RowWork,
    /// This chunk's rows' loss terms, written unless `work` is [`RowWork::Solve`].
    loss_terms: &'a mut [f64],
}

impl pulp::WithSimd for ImplicitChunk<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let k = solve::Wide(simd);
        let ImplicitChunk {
            step:
                ImplicitStep {
                    f,
                    reg,
                    alpha,
                    cg_steps,
                },
            rows,
            first_row,
            other,
            gram,
            xs,
            scratch: s,
            work,
            loss_terms,
        } = self;
        let (solve, with_loss) = (work != RowWork::LossOnly, work != RowWork::Solve);
        let apply_dense = |v: &[f32], out: &mut [f32]| {
            k.matvec(gram, v, out);
            k.axpy(reg, v, out);
        };
        for (i, x) in xs.chunks_exact_mut(f).enumerate() {
            let (cols, vals) = rows.row(first_row + i);
            if cols.is_empty() {
                if solve {
                    x.fill(0.0);
                }
                // Its factors are zero after any solve, so are its terms.
                loss_terms[i] = 0.0;
                continue;
            }
            // r = b − A x = −(YᵀY + λI) x + Σ (c − (c−1) y·x) y.
            apply_dense(x, &mut s.r);
            // The loss terms of this x: xᵀ(YᵀY + λI)x, then per observed item c(1 − d)² − d².
            let mut term = k.dot(x, &s.r) as f64;
            for v in s.r.iter_mut() {
                *v = -*v;
            }
            sparse_update(k, cols, vals, other, f, x, &mut s.r, |r, d| {
                let cm1 = alpha * r;
                if with_loss {
                    let (c, d) = (1.0 + cm1 as f64, d as f64);
                    term += c * (1.0 - d) * (1.0 - d) - d * d;
                }
                1.0 + cm1 - cm1 * d
            });
            if with_loss {
                loss_terms[i] = term;
            }
            if !solve {
                continue;
            }
            solve::conjugate_gradient_with(k, x, s, cg_steps, |p, ap| {
                apply_dense(p, ap);
                // Σ (c−1)(y·p) y: the sparse part of YᵀCY.
                sparse_update(k, cols, vals, other, f, p, ap, |r, d| alpha * r * d);
            });
        }
    }
}

/// `out += Σ_j coef(r_j, y_j·v) y_j` over one CSR row, four items at a time
/// so each load/store of `out` serves four items (the implicit solver's hot
/// loop; ~1.4x over one-at-a-time on SSE2).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sparse_update<K: Kernels>(
    k: K,
    cols: &[u32],
    vals: &[f32],
    other: &[f32],
    f: usize,
    v: &[f32],
    out: &mut [f32],
    mut coef: impl FnMut(f32, f32) -> f32,
) {
    let y = |j: u32| &other[j as usize * f..(j as usize + 1) * f];
    let (c4, ct) = cols.as_chunks::<4>();
    let (v4, vt) = vals.as_chunks::<4>();
    for (c, r) in c4.iter().zip(v4) {
        let ys = c.map(y);
        let d = k.dot4(ys, v);
        let coefs = [
            coef(r[0], d[0]),
            coef(r[1], d[1]),
            coef(r[2], d[2]),
            coef(r[3], d[3]),
        ];
        k.axpy4(coefs, ys, out);
    }
    for (&c, &r) in ct.iter().zip(vt) {
        let yj = y(c);
        k.axpy(coef(r, k.dot(yj, v)), yj, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool(n: usize) -> rayon::ThreadPool {
        thread_pool(Some(n)).unwrap()
    }

    /// Ratings from a seeded random low-rank model; every user and item
    /// gets at least one rating.
    fn random_ratings(n_users: usize, n_items: usize, density: f64, seed: u64) -> Vec<Rating> {
        let mut rng = SplitMix64::new(seed);
        let mut out = Vec::new();
        for u in 0..n_users {
            for i in 0..n_items {
                if rng.next_f64() < density || i == u % n_items || u == i % n_users {
                    let r = 1.0 + (rng.next_f64() * 5.0).floor().min(4.0);
                    out.push(Rating {
                        user: u as i64 * 7 + 3,
                        item: 1000 - i as i64 * 3,
                        rating: r as f32,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn gram_matches_naive_and_is_symmetric() {
        let (n, k) = (2 * GRAM_BLOCK + 37, 5);
        let mut rng = SplitMix64::new(3);
        let m: Vec<f32> = (0..n * k).map(|_| rng.next_gaussian() as f32).collect();
        let mut partials = gram_partials(n, k);
        let mut g = vec![0.0f32; k * k];
        pool(2).install(|| gram(&m, k, &mut partials, &mut g));
        for a in 0..k {
            for b in 0..k {
                let naive: f64 = m.chunks_exact(k).map(|y| y[a] as f64 * y[b] as f64).sum();
                assert!((g[a * k + b] as f64 - naive).abs() < 1e-3 * (1.0 + naive.abs()));
                assert_eq!(g[a * k + b], g[b * k + a]);
            }
        }
    }

    #[test]
    fn implicit_cg_step_solves_the_hkv_normal_equations() {
        // With enough CG steps one half-step must land on the exact solution
        // of (YᵀY + λI + Σ (c−1) y yᵀ) x = Σ c y, c = 1 + αr (checked here
        // against Cholesky), for every row, including warm starts.
        let (f, alpha, reg) = (4usize, 2.0f32, 0.3f32);
        let rows = random_ratings(6, 9, 0.4, 11);
        let d = Interactions::from_ratings(&rows).unwrap();
        let mut rng = SplitMix64::new(5);
        let y: Vec<f32> = (0..d.n_items() * f)
            .map(|_| rng.next_gaussian() as f32)
            .collect();
        let mut x: Vec<f32> = (0..d.n_users() * f)
            .map(|_| rng.next_gaussian() as f32)
            .collect();
        let mut g = vec![0.0f32; f * f];
        let mut partials = gram_partials(d.n_items(), f);
        let mut scratch = ImplicitScratch {
            cg: vec![CgScratch::new(f)],
            loss_terms: vec![0.0; d.n_users()],
        };
        pool(1).install(|| {
            gram(&y, f, &mut partials, &mut g);
            let step = ImplicitStep {
                f,
                reg,
                alpha,
                cg_steps: 3 * f,
            };
            step.half_step(d.by_user(), &y, &g, &mut x, &mut scratch, RowWork::Solve);
        });
        for u in 0..d.n_users() {
            let (cols, vals) = d.user_row(u as u32);
            let mut a: Vec<f64> = g.iter().map(|v| *v as f64).collect();
            let mut b = vec![0.0f64; f];
            for p in 0..f {
                a[p * f + p] += reg as f64;
            }
            for (&j, &r) in cols.iter().zip(vals) {
                let yj = &y[j as usize * f..(j as usize + 1) * f];
                let c = 1.0 + alpha as f64 * r as f64;
                for p in 0..f {
                    b[p] += c * yj[p] as f64;
                    for q in 0..f {
                        a[p * f + q] += (c - 1.0) * yj[p] as f64 * yj[q] as f64;
                    }
                }
            }
            solve::solve_spd(&mut a, f, &mut b).unwrap();
            for p in 0..f {
                let got = x[u * f + p] as f64;
                assert!(
                    (got - b[p]).abs() < 2e-3 * (1.0 + b[p].abs()),
                    "user {u}: {got} vs {}",
                    b[p]
                );
            }
        }
    }

    #[test]
    fn the_loss_from_the_solver_residuals_is_hu_et_al_s_loss_over_every_pair() {
        let (f, alpha, reg) = (3usize, 1.5f32, 0.2f32);
        let rows = random_ratings(40, 25, 0.2, 3);
        let d = Interactions::from_ratings(&rows).unwrap();
        let mut rng = SplitMix64::new(9);
        let mut random = |n: usize| -> Vec<f32> {
            (0..n * f)
                .map(|_| rng.next_gaussian() as f32 * 0.3)
                .collect()
        };
        let (x, y) = (random(d.n_users()), random(d.n_items()));
        let mut g = vec![0.0f32; f * f];
        let mut partials = gram_partials(d.n_items(), f);
        gram(&y, f, &mut partials, &mut g);
        let step = ImplicitStep {
            f,
            reg,
            alpha,
            cg_steps: 3,
        };
        let chunks = d.n_users().div_ceil(ROW_CHUNK);
        let mut scratch = ImplicitScratch {
            cg: (0..chunks).map(|_| CgScratch::new(f)).collect(),
            loss_terms: vec![0.0; d.n_users()],
        };
        let (mut x_only, mut x_solved) = (x.clone(), x.clone());
        let users = d.by_user();
        let (only, solving) = pool(2).install(|| {
            step.half_step(users, &y, &g, &mut x_only, &mut scratch, RowWork::LossOnly);
            let only = scratch.loss_terms.clone();
            let work = RowWork::SolveAndLoss;
            step.half_step(users, &y, &g, &mut x_solved, &mut scratch, work);
            (only, scratch.loss_terms.clone())
        });
        // Loss only leaves the factors alone; solving reports the loss of where it started.
        assert_eq!(x_only, x);
        assert_ne!(x_solved, x);
        assert_eq!(only, solving);

        // Every user x item pair, the definition itself.
        let (mut sum, mut conf) = (0.0f64, 0.0f64);
        for u in 0..d.n_users() {
            let (cols, vals) = d.user_row(u as u32);
            for i in 0..d.n_items() {
                let xu = &x[u * f..(u + 1) * f];
                let yi = &y[i * f..(i + 1) * f];
                let s: f64 = xu.iter().zip(yi).map(|(a, b)| *a as f64 * *b as f64).sum();
                let (c, p) = match cols.iter().position(|&j| j as usize == i) {
                    Some(k) => (1.0 + alpha as f64 * vals[k] as f64, 1.0),
                    None => (1.0, 0.0),
                };
                sum += c * (p - s) * (p - s);
                conf += c;
            }
        }
        let sq = |m: &[f32]| m.iter().map(|v| *v as f64 * *v as f64).sum::<f64>();
        let want = (sum + reg as f64 * (sq(&x) + sq(&y))) / conf;
        let got = ImplicitLoss::new(&d, reg, alpha).value(&only, &y);
        assert!((got - want).abs() < 1e-5 * want, "{got} vs {want}");
    }

    #[test]
    fn id_maps_round_trip_in_sorted_order() {
        let m = IdMap::from_ids(&[50, -3, 50, 7]).unwrap();
        assert_eq!(m.raw_ids(), &[-3, 7, 50]);
        assert_eq!(m.dense(7), Some(1));
        assert_eq!(m.raw(2), 50);
        assert_eq!(m.dense(8), None);
    }

    #[test]
    fn csr_rows_sorted_and_consistent() {
        let rows = random_ratings(13, 9, 0.4, 1);
        let d = Interactions::from_ratings(&rows).unwrap();
        assert_eq!(d.nnz(), rows.len());
        let mut seen = 0;
        for u in 0..d.n_users() as u32 {
            let (cols, vals) = d.user_row(u);
            assert!(cols.windows(2).all(|w| w[0] <= w[1]));
            for (&i, &r) in cols.iter().zip(vals) {
                let (us, rs) = d.item_row(i);
                let p = us.binary_search(&u).unwrap();
                assert_eq!(rs[p], r);
                seen += 1;
            }
        }
        assert_eq!(seen, rows.len());
    }

    #[test]
    fn kept_rows_build_the_same_matrix_as_those_rows_alone() {
        let rows = random_ratings(17, 11, 0.3, 5);
        // Leave out every third row, and every row of one user, so that ids disappear too.
        let keep: Vec<bool> = rows
            .iter()
            .enumerate()
            .map(|(r, rating)| r % 3 != 0 && rating.user != 3)
            .collect();
        let kept: Vec<Rating> = rows
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(r, _)| *r)
            .collect();
        let mut builder = RatingsBuilder::default();
        for chunk in rows.chunks(10) {
            let users: Vec<i64> = chunk.iter().map(|r| r.user).collect();
            let items: Vec<i64> = chunk.iter().map(|r| r.item).collect();
            let ratings: Vec<f32> = chunk.iter().map(|r| r.rating).collect();
            builder.push(&users, &items, &ratings).unwrap();
        }
        let dense = builder.finish();

        let got = Interactions::from_dense(&dense, Some(&keep));
        let want = Interactions::from_ratings(&kept).unwrap();
        assert!(got.users().dense(3).is_none());
        assert_eq!(got.users().raw_ids(), want.users().raw_ids());
        assert_eq!(got.items().raw_ids(), want.items().raw_ids());
        assert_eq!(got.mean_rating(), want.mean_rating());
        for u in 0..want.n_users() as u32 {
            assert_eq!(got.user_row(u), want.user_row(u));
        }
        for i in 0..want.n_items() as u32 {
            assert_eq!(got.item_row(i), want.item_row(i));
        }
        let all = Interactions::from_dense(&dense, None);
        assert_eq!(all.nnz(), rows.len());
    }

    #[test]
    fn rejects_bad_input_and_params() {
        assert!(matches!(
            Interactions::from_columns(&[1], &[2, 3], &[1.0]),
            Err(AlsError::LengthMismatch { .. })
        ));
        assert_eq!(
            Interactions::from_columns(&[1, 2], &[2, 3], &[1.0, f32::NAN]).unwrap_err(),
            AlsError::NonFiniteRating { row: 1 }
        );
        let d = Interactions::from_columns(&[1], &[2], &[-1.0]).unwrap();
        let p = AlsParams {
            implicit: true,
            ..Default::default()
        };
        assert!(matches!(
            AlsModel::fit(d.clone(), &p, &pool(1)),
            Err(AlsError::NegativeImplicitRating { .. })
        ));
        let p = AlsParams {
            implicit: true,
            biases: true,
            ..Default::default()
        };
        assert!(matches!(
            AlsModel::fit(d, &p, &pool(1)),
            Err(AlsError::InvalidParams(_))
        ));
        let empty = Interactions::from_columns(&[], &[], &[]).unwrap();
        assert_eq!(
            AlsModel::fit(empty, &AlsParams::default(), &pool(1)).unwrap_err(),
            AlsError::Empty
        );
    }

    #[test]
    fn explicit_fits_a_tiny_exact_matrix() {
        // Rank-1 ratings r = a_u * b_i are fit almost exactly with small lambda.
        let a = [1.0f32, 2.0, 1.5, 0.5];
        let b = [2.0f32, 1.0, 3.0];
        let mut rows = Vec::new();
        for (u, au) in a.iter().enumerate() {
            for (i, bi) in b.iter().enumerate() {
                rows.push(Rating {
                    user: u as i64,
                    item: i as i64,
                    rating: au * bi,
                });
            }
        }
        let p = AlsParams {
            factors: 2,
            iterations: 30,
            regularization: 1e-4,
            ..Default::default()
        };
        let m = AlsModel::fit(Interactions::from_ratings(&rows).unwrap(), &p, &pool(2)).unwrap();
        for r in &rows {
            let e = (m.predict_raw(r.user, r.item).unwrap() - r.rating).abs();
            assert!(
                e < 0.05,
                "{r:?} predicted {}",
                m.predict_raw(r.user, r.item).unwrap()
            );
        }
    }

    #[test]
    fn implicit_loss_decreases_overall() {
        let rows = random_ratings(40, 30, 0.2, 9);
        let p = AlsParams {
            implicit: true,
            factors: 8,
            iterations: 8,
            regularization: 0.05,
            ..Default::default()
        };
        let m = AlsModel::fit(Interactions::from_ratings(&rows).unwrap(), &p, &pool(2)).unwrap();
        let h = m.loss_history();
        assert_eq!(h.len(), 8);
        assert!(h.iter().all(|v| v.is_finite()));
        assert!(h[7] < h[0], "{h:?}");
    }

    #[test]
    fn identical_factors_across_thread_counts() {
        let rows = random_ratings(70, 50, 0.15, 5);
        for implicit in [false, true] {
            let p = AlsParams {
                implicit,
                factors: 6,
                iterations: 4,
                ..Default::default()
            };
            let d = Arc::new(Interactions::from_ratings(&rows).unwrap());
            let a = AlsModel::fit(Arc::clone(&d), &p, &pool(1)).unwrap();
            let b = AlsModel::fit(Arc::clone(&d), &p, &pool(2)).unwrap();
            let c = AlsModel::fit(Arc::clone(&d), &p, &pool(3)).unwrap();
            assert_eq!(a.user_factors(), b.user_factors());
            assert_eq!(a.item_factors(), c.item_factors());
            assert_eq!(a.loss_history(), c.loss_history());
        }
    }

    #[test]
    fn similar_items_excludes_self_and_finds_twin() {
        // Items 0 and 1 are rated identically by everyone; item 2 is opposite.
        let mut rows = Vec::new();
        for u in 0..20i64 {
            let r = if u % 2 == 0 { 5.0 } else { 1.0 };
            rows.push(Rating {
                user: u,
                item: 0,
                rating: r,
            });
            rows.push(Rating {
                user: u,
                item: 1,
                rating: r,
            });
            rows.push(Rating {
                user: u,
                item: 2,
                rating: 6.0 - r,
            });
        }
        let p = AlsParams {
            factors: 2,
            iterations: 10,
            regularization: 0.01,
            ..Default::default()
        };
        let m = AlsModel::fit(Interactions::from_ratings(&rows).unwrap(), &p, &pool(1)).unwrap();
        let s = m.similar_items(0, 5);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, 1);
        assert!(s.iter().all(|(i, _)| *i != 0));
        assert!(s[0].1 > 0.99, "{s:?}");
        assert_eq!(
            m.similar_items_all(1, &pool(2))[1],
            vec![s[0]]
                .into_iter()
                .map(|(_, c)| (0, c))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn regularization_exponent_sets_the_row_penalty() {
        // The last half-step solves users exactly, so every user row must be
        // stationary for Σ (r − μ − b_u − b_i − x·y)² + λ n^e (‖x‖² + b_u²):
        // Σ e_ui [y_i, 1] = λ n^e [x_u, b_u], e_ui the residual.
        let rows = random_ratings(30, 25, 0.3, 17);
        let d = Arc::new(Interactions::from_ratings(&rows).unwrap());
        for exponent in [0.0f32, 0.5, 1.0, 2.0] {
            let p = AlsParams {
                factors: 3,
                iterations: 3,
                regularization: 0.2,
                regularization_exponent: exponent,
                biases: true,
                ..Default::default()
            };
            let m = AlsModel::fit(Arc::clone(&d), &p, &pool(2)).unwrap();
            let f = p.factors;
            for u in 0..d.n_users() as u32 {
                let (cols, vals) = d.user_row(u);
                let mut grad = vec![0.0f64; f + 1];
                for (&i, &r) in cols.iter().zip(vals) {
                    let e = r as f64 - m.predict(u, i) as f64;
                    for (g, y) in grad.iter_mut().zip(m.item_vector(i)) {
                        *g += e * *y as f64;
                    }
                    grad[f] += e;
                }
                let reg = 0.2f64 * (cols.len() as f64).powf(exponent as f64);
                let w = m
                    .user_vector(u)
                    .iter()
                    .chain([&m.user_biases()[u as usize]]);
                for (g, wv) in grad.iter().zip(w) {
                    let want = reg * *wv as f64;
                    assert!(
                        (g - want).abs() < 1e-3 * (1.0 + want.abs()),
                        "e={exponent} user {u}: {g} vs {want}"
                    );
                }
            }
        }
        let bad = AlsParams {
            regularization_exponent: f32::NAN,
            ..Default::default()
        };
        assert!(matches!(bad.validate(), Err(AlsError::InvalidParams(_))));
        let bad = AlsParams {
            regularization_exponent: -0.5,
            ..Default::default()
        };
        assert!(matches!(bad.validate(), Err(AlsError::InvalidParams(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn explicit_objective_never_increases(
            n_users in 2usize..25,
            n_items in 2usize..25,
            density in 0.05f64..0.6,
            data_seed in 0u64..1000,
            seed in 0u64..1000,
            factors in 1usize..6,
            reg in prop_oneof![Just(0.0f32), 0.001f32..1.0],
            biases in any::<bool>(),
        ) {
            let rows = random_ratings(n_users, n_items, density, data_seed);
            let p = AlsParams { factors, iterations: 8, regularization: reg, seed, biases, ..Default::default() };
            let m = AlsModel::fit(Interactions::from_ratings(&rows).unwrap(), &p, &pool(2)).unwrap();
            let h = m.loss_history();
            prop_assert_eq!(h.len(), 8);
            for w in h.windows(2) {
                // Slack only for f32 storage of the f64 optimum and summation
                // rounding; a real increase is far larger.
                prop_assert!(w[1] <= w[0] * (1.0 + 1e-6) + 1e-9, "objective rose: {:?}", h);
            }
        }

        #[test]
        fn explicit_objective_never_increases_any_exponent(
            n_users in 2usize..25,
            n_items in 2usize..25,
            density in 0.05f64..0.6,
            data_seed in 0u64..1000,
            factors in 1usize..6,
            reg in 0.001f32..3.0,
            exponent in 0.0f32..=2.0,
            biases in any::<bool>(),
        ) {
            let rows = random_ratings(n_users, n_items, density, data_seed);
            let p = AlsParams {
                factors, iterations: 8, regularization: reg, regularization_exponent: exponent,
                biases, ..Default::default()
            };
            let m = AlsModel::fit(Interactions::from_ratings(&rows).unwrap(), &p, &pool(2)).unwrap();
            let h = m.loss_history();
            prop_assert_eq!(h.len(), 8);
            for w in h.windows(2) {
                prop_assert!(w[1] <= w[0] * (1.0 + 1e-6) + 1e-9, "objective rose: {:?}", h);
            }
        }

        #[test]
        fn same_seed_same_factors(
            data_seed in 0u64..1000,
            seed in 0u64..1000,
            implicit in any::<bool>(),
        ) {
            let rows = random_ratings(15, 12, 0.3, data_seed);
            let p = AlsParams { factors: 4, iterations: 3, seed, implicit, ..Default::default() };
            let a = AlsModel::fit(Interactions::from_ratings(&rows).unwrap(), &p, &pool(2)).unwrap();
            // Row order must not matter either: dense ids are sorted raw ids.
            let mut rev = rows.clone();
            rev.reverse();
            let b = AlsModel::fit(Interactions::from_ratings(&rev).unwrap(), &p, &pool(2)).unwrap();
            // Reversal reorders duplicates only; there are none here.
            prop_assert_eq!(a.user_factors(), b.user_factors());
            prop_assert_eq!(a.item_factors(), b.item_factors());
            let other = AlsParams { seed: seed + 1, ..p };
            let c = AlsModel::fit(Interactions::from_ratings(&rows).unwrap(), &other, &pool(2)).unwrap();
            prop_assert_ne!(a.item_factors(), c.item_factors());
        }

        #[test]
        fn recommendations_well_formed(
            n_users in 1usize..20,
            n_items in 1usize..30,
            density in 0.0f64..0.8,
            data_seed in 0u64..1000,
            k in 0usize..12,
            implicit in any::<bool>(),
        ) {
            let rows = random_ratings(n_users, n_items, density, data_seed);
            let p = AlsParams { factors: 3, iterations: 2, implicit, ..Default::default() };
            let m = AlsModel::fit(Interactions::from_ratings(&rows).unwrap(), &p, &pool(2)).unwrap();
            let all = m.recommend_all(k, &pool(2));
            let d = m.data();
            for (u, recs) in all.iter().enumerate() {
                let (seen, _) = d.user_row(u as u32);
                prop_assert!(recs.len() <= k);
                prop_assert_eq!(recs.len(), k.min(d.n_items() - seen.len()));
                prop_assert!(recs.windows(2).all(|w| w[0].1 >= w[1].1), "not sorted: {:?}", recs);
                let mut ids: Vec<u32> = recs.iter().map(|r| r.0).collect();
                prop_assert!(ids.iter().all(|i| seen.binary_search(i).is_err()), "train item recommended");
                ids.sort_unstable();
                ids.dedup();
                prop_assert_eq!(ids.len(), recs.len(), "duplicates");
                prop_assert_eq!(&m.recommend(u as u32, k), recs);
                for &(i, s) in recs {
                    prop_assert!((m.predict(u as u32, i) - s).abs() <= 1e-5 * (1.0 + s.abs()));
                }
            }
        }
    }
}
