//! [`AlsError`]: everything that can go wrong building ALS data or training a model.
//!
//! Owns the error type and its messages; the modules that fail (`ratings`, `model`) return it.

use std::fmt;

/// Errors from building data or training.
#[derive(Debug, Clone, PartialEq)]
pub enum AlsError {
    /// A parameter is out of range; the message names it.
    InvalidParams(String),
    /// The column slices passed to `Interactions::from_columns` differ in length.
    LengthMismatch {
        users: usize,
        items: usize,
        ratings: usize,
    },
    /// Row `row` (0-based, input order) has a NaN or infinite rating.
    NonFiniteRating { row: usize },
    /// Implicit ALS needs confidence `1 + alpha * r >= 1`, i.e. `r >= 0`;
    /// raw ids of the first offending pair.
    NegativeImplicitRating { user: i64, item: i64, rating: f32 },
    /// There is nothing to train on.
    Empty,
    /// More distinct users or items than fit in a u32 index.
    TooManyIds,
    /// The rayon pool could not be built.
    ThreadPool(String),
}

impl fmt::Display for AlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlsError::InvalidParams(m) => write!(f, "invalid ALS parameters: {m}"),
            AlsError::LengthMismatch {
                users,
                items,
                ratings,
            } => write!(
                f,
                "column lengths differ: {users} users, {items} items, {ratings} ratings"
            ),
            AlsError::NonFiniteRating { row } => write!(f, "row {row}: rating is not finite"),
            AlsError::NegativeImplicitRating { user, item, rating } => write!(
                f,
                "user {user}, item {item}: implicit ALS needs ratings >= 0 \
                 (confidence 1 + alpha * r), got {rating}"
            ),
            AlsError::Empty => write!(f, "no interactions to train on"),
            AlsError::TooManyIds => write!(f, "more than 2^32 - 1 distinct users or items"),
            AlsError::ThreadPool(m) => write!(f, "could not build thread pool: {m}"),
        }
    }
}

impl std::error::Error for AlsError {}
