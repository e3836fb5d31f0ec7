//! [`HeadroomPool`]: DataFusion's fair spill pool, with room kept for operators that cannot spill.
//!
//! DataFusion's `FairSpillPool` lets operators that can spill (aggregations, sorts) share all the
//! memory the others do not hold. A big aggregation then fills the pool, and the Parquet writer
//! streaming its output (which cannot spill) fails for want of a few hundred KB, even though the
//! aggregation would have spilled happily. Here spillers share the pool minus a headroom (a
//! quarter) kept for the operators that cannot spill; those may still use any memory that is free.

use std::fmt;
use std::sync::Mutex;

use datafusion::common::human_readable_size;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit as PoolLimit, MemoryPool, MemoryReservation,
};

/// The share of the pool spilling operators leave to the others.
const HEADROOM_DIVISOR: usize = 4;

/// A memory pool of a fixed size that keeps a quarter free of spilling operators.
#[derive(Debug)]
pub struct HeadroomPool {
    size: usize,
    headroom: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Consumers that can spill.
    spillers: usize,
    spillable: usize,
    unspillable: usize,
}

impl HeadroomPool {
    pub fn new(size: usize) -> HeadroomPool {
        HeadroomPool {
            size,
            headroom: size / HEADROOM_DIVISOR,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock left only counters behind; they are still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn refuse(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
        available: usize,
    ) -> DataFusionError {
        // DataFusion's own wording, which `memory::exhausted` reads back.
        DataFusionError::ResourcesExhausted(format!(
            "Failed to allocate additional {} for {} with {} already allocated for this \
             reservation - {} remain available for the total memory pool: {self}",
            human_readable_size(additional),
            reservation.consumer().name(),
            human_readable_size(reservation.size()),
            human_readable_size(available),
        ))
    }
}

impl MemoryPool for HeadroomPool {
    fn name(&self) -> &str {
        "headroom"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.state().spillers += 1;
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            let mut state = self.state();
            state.spillers = state.spillers.saturating_sub(1);
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        let mut state = self.state();
        if reservation.consumer().can_spill() {
            state.spillable += additional;
        } else {
            state.unspillable += additional;
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        let mut state = self.state();
        if reservation.consumer().can_spill() {
            state.spillable = state.spillable.saturating_sub(shrink);
        } else {
            state.unspillable = state.unspillable.saturating_sub(shrink);
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let mut state = self.state();
        if reservation.consumer().can_spill() {
            // Spillers share what neither the unspillable operators hold nor the headroom keeps.
            let shared = self
                .size
                .saturating_sub(state.unspillable.max(self.headroom));
            let share = shared / state.spillers.max(1);
            if reservation.size() + additional > share {
                return Err(self.refuse(reservation, additional, share));
            }
            state.spillable += additional;
        } else {
            let free = self
                .size
                .saturating_sub(state.unspillable + state.spillable);
            if additional > free {
                return Err(self.refuse(reservation, additional, free));
            }
            state.unspillable += additional;
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        let state = self.state();
        state.spillable + state.unspillable
    }

    fn memory_limit(&self) -> PoolLimit {
        PoolLimit::Finite(self.size)
    }
}

impl fmt::Display for HeadroomPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}(pool_size: {})",
            self.name(),
            human_readable_size(self.size)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn spillers_leave_a_quarter_to_operators_that_cannot_spill() {
        let pool: Arc<dyn MemoryPool> = Arc::new(HeadroomPool::new(1000));
        let aggregate = MemoryConsumer::new("aggregate")
            .with_can_spill(true)
            .register(&pool);
        // One spiller gets everything but the headroom, and is refused beyond it (so it spills).
        aggregate.try_grow(750).unwrap();
        let refused = aggregate.try_grow(1).unwrap_err().to_string();
        assert!(refused.contains("for aggregate with"), "{refused}");

        // The writer that cannot spill still finds its room.
        let writer = MemoryConsumer::new("writer").register(&pool);
        writer.try_grow(200).unwrap();
        assert_eq!(pool.reserved(), 950);
        assert!(writer.try_grow(100).is_err(), "only 50 bytes are free");

        // Two spillers split the shared part.
        let sort = MemoryConsumer::new("sort")
            .with_can_spill(true)
            .register(&pool);
        assert!(sort.try_grow(376).is_err());
        aggregate.shrink(500);
        sort.try_grow(375).unwrap();
        drop(aggregate);
        drop(sort);
        drop(writer);
        assert_eq!(pool.reserved(), 0);
    }
}
