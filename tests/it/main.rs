//! The one integration-test binary (one link of datafusion + deltalake, as in delta-rs).

mod als;
mod api;
mod cli;
mod pipeline;
mod project;
mod runs;
mod slt;
