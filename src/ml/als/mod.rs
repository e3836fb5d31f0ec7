//! Alternating least squares for recommendations.
//!
//! Owns the ALS core: ratings read as dense ids (`ratings`), data preparation
//! and training (`model`), dense solvers (`solve`), exact top-k by blocked
//! matrix products (`topk`), splitting and metrics
//! (`eval`), the TSV benchmark (`bench`) and their errors (`error`). It does not own SQL/pipeline integration or persistence.
//! Invariant: inside this module paths go through `super::`, never through a
//! crate path, so the whole directory can be moved into another crate.

pub mod bench;
pub mod error;
pub mod eval;
pub mod model;
pub mod ratings;
pub mod solve;
pub mod topk;

pub use bench::{BenchArgs, BenchError, BenchReport, run_bench};
pub use error::AlsError;
pub use model::{AlsModel, AlsParams, Interactions, thread_pool};
pub use ratings::{DenseRatings, IdMap, Rating, RatingsBuilder};
