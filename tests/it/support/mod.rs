//! What the integration tests share: project builders with the repository's steps and small
//! datasets (`project`), and the S3 test server, free ports and `on_every_lake!` (`s3`).

pub mod project;
pub mod s3;
