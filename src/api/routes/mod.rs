//! Handlers, one module per resource.

pub mod admin;
pub mod health;
pub mod models;
pub mod named;
pub mod query;
pub mod recommendations;
pub mod rows;
pub mod runs;
pub mod tables;
