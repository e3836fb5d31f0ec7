//! Alternating least squares for recommendations.
//!
//! Owns the ALS core: data preparation and training (`model`), dense solvers
//! (`solve`), splitting and metrics (`eval`) and the TSV benchmark
//! (`bench`). It does not own SQL/pipeline integration or persistence.
//! Invariant: inside this module paths go through `super::`, never through a
//! crate path, so the whole directory can be moved into another crate.

pub mod bench;
pub mod eval;
pub mod model;
pub mod solve;

pub use bench::{BenchArgs, BenchError, BenchReport, run_bench};
pub use model::{AlsError, AlsModel, AlsParams, IdMap, Interactions, Rating, thread_pool};
