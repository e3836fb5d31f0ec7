//! What the integration tests share: project builders with the repository's steps and small
//! datasets (`project`), a lake's contents to compare (`lake_state`), the S3 test server, free ports and `on_every_lake!` (`s3`), a
//! fault-injecting proxy in front of that server (`s3_proxy`), a seeded sequence (`seeded`) and
//! `strata serve` as a process of its own (`serve`).

pub mod lake_state;
pub mod project;
pub mod s3;
pub mod s3_proxy;
pub mod seeded;
pub mod serve;
