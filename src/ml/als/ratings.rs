//! Ratings held as dense ids: what a training step reads before it builds its interaction
//! matrices.
//!
//! Owns [`Rating`], [`IdMap`], [`RatingsBuilder`], which takes `(user, item, rating)` columns one
//! batch at a time and numbers ids as they come, and [`DenseRatings`], the result: an [`IdMap`]
//! for users and one for items, and three columns of `u32`, `u32`, `f32` (12 bytes a rating,
//! against 20 for raw `i64` ids). It does not own the CSR matrices
//! (`Interactions::from_dense` in `model` builds them) or splitting rules (`eval`).
//!
//! Invariant: the dense ids are those [`IdMap::from_ids`] gives (ascending raw id), however the
//! rows arrived, so a model trained from [`DenseRatings`] is bit-identical to one trained from
//! the same rows as raw columns.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::error::AlsError;

/// One observation: a raw user id, a raw item id and a rating (explicit) or
/// an interaction strength (implicit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub user: i64,
    pub item: i64,
    pub rating: f32,
}

/// Bidirectional map between raw i64 ids and dense u32 indexes
/// (dense order = ascending raw id).
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    index: HashMap<i64, u32>,
    raw: Vec<i64>,
}

impl IdMap {
    /// Distinct ids of `ids`, numbered in ascending order.
    pub fn from_ids(ids: &[i64]) -> Result<Self, AlsError> {
        let mut raw = ids.to_vec();
        raw.sort_unstable();
        raw.dedup();
        if raw.len() > u32::MAX as usize {
            return Err(AlsError::TooManyIds);
        }
        Ok(Self::from_sorted(raw))
    }

    /// `raw` must be sorted, without duplicates, and shorter than `u32::MAX`.
    pub(super) fn from_sorted(raw: Vec<i64>) -> Self {
        let index = raw
            .iter()
            .enumerate()
            .map(|(d, &r)| (r, d as u32))
            .collect();
        Self { index, raw }
    }

    /// The ids that occur in `dense` at the rows `keep` marks, numbered anew in ascending order,
    /// and each old dense id's new one (`u32::MAX` for ids that do not occur).
    pub(super) fn kept(&self, dense: &[u32], keep: &[bool]) -> (IdMap, Vec<u32>) {
        let mut seen = vec![false; self.len()];
        for (&d, _) in dense.iter().zip(keep).filter(|(_, kept)| **kept) {
            seen[d as usize] = true;
        }
        let mut renumber = vec![u32::MAX; self.len()];
        let mut raw = Vec::new();
        for (old, _) in seen.iter().enumerate().filter(|(_, seen)| **seen) {
            renumber[old] = raw.len() as u32;
            raw.push(self.raw[old]);
        }
        (IdMap::from_sorted(raw), renumber)
    }

    pub fn dense(&self, raw: i64) -> Option<u32> {
        self.index.get(&raw).copied()
    }

    /// Panics if `dense >= self.len()`.
    pub fn raw(&self, dense: u32) -> i64 {
        self.raw[dense as usize]
    }

    /// All raw ids, indexed by dense id.
    pub fn raw_ids(&self) -> &[i64] {
        &self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Collects ratings batch by batch. Ids are numbered in order of first sight while rows arrive,
/// then renumbered in ascending raw-id order by [`Self::finish`]: one hash lookup per id and no
/// copy of the raw id columns.
#[derive(Debug, Default)]
pub struct RatingsBuilder {
    users: IdsSeen,
    items: IdsSeen,
    user: Vec<u32>,
    item: Vec<u32>,
    rating: Vec<f32>,
}

impl RatingsBuilder {
    /// Appends one batch of parallel columns. Fails on columns of unequal length, a NaN or
    /// infinite rating (its row counts from the first batch), or more ids than fit in a `u32`.
    pub fn push(&mut self, users: &[i64], items: &[i64], ratings: &[f32]) -> Result<(), AlsError> {
        if users.len() != items.len() || users.len() != ratings.len() {
            return Err(AlsError::LengthMismatch {
                users: users.len(),
                items: items.len(),
                ratings: ratings.len(),
            });
        }
        if let Some(row) = ratings.iter().position(|r| !r.is_finite()) {
            return Err(AlsError::NonFiniteRating {
                row: self.rating.len() + row,
            });
        }
        self.user.reserve(users.len());
        for &user in users {
            self.user.push(self.users.dense(user)?);
        }
        self.item.reserve(items.len());
        for &item in items {
            self.item.push(self.items.dense(item)?);
        }
        self.rating.extend_from_slice(ratings);
        Ok(())
    }

    pub fn finish(self) -> DenseRatings {
        let (users, user_order) = self.users.finish();
        let (items, item_order) = self.items.finish();
        let mut user = self.user;
        let mut item = self.item;
        for u in &mut user {
            *u = user_order[*u as usize];
        }
        for i in &mut item {
            *i = item_order[*i as usize];
        }
        DenseRatings {
            users,
            items,
            user,
            item,
            rating: self.rating,
        }
    }
}

/// Ids in order of first sight.
#[derive(Debug, Default)]
struct IdsSeen {
    index: HashMap<i64, u32>,
    raw: Vec<i64>,
}

impl IdsSeen {
    fn dense(&mut self, raw: i64) -> Result<u32, AlsError> {
        if let Some(&dense) = self.index.get(&raw) {
            return Ok(dense);
        }
        let dense = u32::try_from(self.raw.len()).map_err(|_| AlsError::TooManyIds)?;
        self.index.insert(raw, dense);
        self.raw.push(raw);
        Ok(dense)
    }

    /// The ids in ascending order, and each first-sight number's place in that order.
    fn finish(self) -> (IdMap, Vec<u32>) {
        let mut by_raw: Vec<u32> = (0..self.raw.len() as u32).collect();
        by_raw.sort_unstable_by_key(|&seen| self.raw[seen as usize]);
        let mut order = vec![0u32; by_raw.len()];
        for (dense, &seen) in by_raw.iter().enumerate() {
            order[seen as usize] = dense as u32;
        }
        let sorted = by_raw.iter().map(|&seen| self.raw[seen as usize]).collect();
        (IdMap::from_sorted(sorted), order)
    }
}

/// Ratings with dense ids, in the order they were read.
#[derive(Debug, Default)]
pub struct DenseRatings {
    users: IdMap,
    items: IdMap,
    user: Vec<u32>,
    item: Vec<u32>,
    rating: Vec<f32>,
}

impl DenseRatings {
    pub fn len(&self) -> usize {
        self.rating.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rating.is_empty()
    }

    pub fn users(&self) -> &IdMap {
        &self.users
    }

    pub fn items(&self) -> &IdMap {
        &self.items
    }

    /// Dense user ids, one per rating.
    pub fn user_ids(&self) -> &[u32] {
        &self.user
    }

    /// Dense item ids, one per rating.
    pub fn item_ids(&self) -> &[u32] {
        &self.item
    }

    pub fn ratings(&self) -> &[f32] {
        &self.rating
    }

    /// Row `r` with its raw ids. Panics if `r >= self.len()`.
    pub fn rating(&self, r: usize) -> Rating {
        Rating {
            user: self.users.raw(self.user[r]),
            item: self.items.raw(self.item[r]),
            rating: self.rating[r],
        }
    }

    /// Every row with its raw ids, in read order.
    pub fn to_ratings(&self) -> Vec<Rating> {
        (0..self.len()).map(|r| self.rating(r)).collect()
    }

    /// Bytes held: the three columns and, per distinct id, its id-map entry.
    pub fn bytes(&self) -> usize {
        self.len() * BYTES_PER_RATING + (self.users.len() + self.items.len()) * ID_MAP_ENTRY_BYTES
    }
}

/// A rating's share of [`DenseRatings`]: two dense ids and the value.
pub const BYTES_PER_RATING: usize = 2 * size_of::<u32>() + size_of::<f32>();

/// An id's share of an [`IdMap`]: its raw id, and its hash-map entry with the table's slack.
pub const ID_MAP_ENTRY_BYTES: usize = size_of::<i64>() + 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn built(batches: &[(&[i64], &[i64], &[f32])]) -> DenseRatings {
        let mut builder = RatingsBuilder::default();
        for (users, items, ratings) in batches {
            builder.push(users, items, ratings).unwrap();
        }
        builder.finish()
    }

    #[test]
    fn ids_are_numbered_by_ascending_raw_id_whatever_order_batches_arrive_in() {
        let data = built(&[
            (&[30, 10], &[7, 5], &[1.0, 2.0]),
            (&[20, 30], &[5, 9], &[3.0, 4.0]),
        ]);
        assert_eq!(data.users().raw_ids(), &[10, 20, 30]);
        assert_eq!(data.items().raw_ids(), &[5, 7, 9]);
        assert_eq!(data.user_ids(), &[2, 0, 1, 2]);
        assert_eq!(data.item_ids(), &[1, 0, 0, 2]);
        assert_eq!(
            data.rating(3),
            Rating {
                user: 30,
                item: 9,
                rating: 4.0
            }
        );
        let same = IdMap::from_ids(&[30, 10, 20, 30]).unwrap();
        assert_eq!(data.users().raw_ids(), same.raw_ids());
        assert_eq!(data.users().dense(20), same.dense(20));
    }

    #[test]
    fn a_non_finite_rating_is_reported_by_its_row_across_batches() {
        let mut builder = RatingsBuilder::default();
        builder.push(&[1, 2], &[1, 2], &[1.0, 2.0]).unwrap();
        assert_eq!(
            builder.push(&[3], &[3], &[f32::NAN]).unwrap_err(),
            AlsError::NonFiniteRating { row: 2 }
        );
        assert!(matches!(
            builder.push(&[3], &[3, 4], &[1.0]).unwrap_err(),
            AlsError::LengthMismatch { .. }
        ));
    }
}
