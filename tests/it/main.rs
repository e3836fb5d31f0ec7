//! The one integration-test binary (one link of datafusion + deltalake, as in delta-rs).

mod als;
mod api;
mod browser;
mod cli;
mod cluster;
mod concurrent_writers;
mod crash;
mod daily;
mod dashboard;
mod deploy;
mod fuzz;
mod launches;
mod memory;
mod penguins;
mod pipeline;
mod runs;
mod s3_lake;
mod security;
mod slt;
mod soak;
mod storage_faults;
mod support;
