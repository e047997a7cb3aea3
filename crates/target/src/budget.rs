//! A cap on the memory held by command data buffers across all sessions.
//!
//! Every command reserves its data size before a buffer is allocated; when
//! the cap is reached the command completes with TASK SET FULL and the
//! initiator retries, instead of the target allocating without bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The shared budget.
#[derive(Debug)]
pub struct MemoryBudget {
    cap: u64,
    used: AtomicU64,
}

/// Bytes reserved from a [`MemoryBudget`]; released on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl MemoryBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: u64) -> Arc<Self> {
        Arc::new(Self {
            cap,
            used: AtomicU64::new(0),
        })
    }

    /// Reserves `bytes`, or `None` when that would exceed the cap.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let next = used.checked_add(bytes).filter(|&n| n <= self.cap)?;
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Some(Reservation {
                        budget: self.clone(),
                        bytes,
                    })
                }
                Err(now) => used = now,
            }
        }
    }

    /// Bytes currently reserved.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_up_to_the_cap_and_releases_on_drop() {
        let b = MemoryBudget::new(100);
        let r1 = b.try_reserve(60).expect("fits");
        assert!(b.try_reserve(41).is_none());
        let r2 = b.try_reserve(40).expect("fits exactly");
        assert_eq!(b.used(), 100);
        drop(r1);
        assert_eq!(b.used(), 40);
        drop(r2);
        assert_eq!(b.used(), 0);
        assert!(b.try_reserve(u64::MAX).is_none());
    }
}
