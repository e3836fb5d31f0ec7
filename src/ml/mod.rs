//! Machine learning on lake tables. Today: alternating least squares (`als`), the recommender the
//! gold layer's recommendation tables will be trained with.

pub mod als;
