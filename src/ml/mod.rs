//! Machine learning on lake tables: alternating least squares (`als`), the recommender behind the
//! gold recommendation tables, and random-forest classification (`forest`).

pub mod als;
pub mod forest;
