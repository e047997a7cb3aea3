//! Physical block allocator of the data file.
//!
//! Its state is *derived*, never stored: at open the set of used blocks is
//! exactly the set of blocks some layer points at, everything else below
//! the high-water mark is free. Hence there is nothing that can disagree
//! with the mapping after a crash (no refcounts, no free-space bitmap).
//!
//! Free space is a map of free runs, start → length, coalesced on free;
//! allocation prefers the lowest run that fits the whole request (so a
//! multi-block write lands contiguously), then the end of the file.

use std::collections::BTreeMap;

use tracing::error;

pub(crate) struct Allocator {
    free: BTreeMap<u64, u64>,
    free_blocks: u64,
    hwm: u64,
    capacity: Option<u64>,
}

/// How many free runs to inspect for one that fits a request whole.
const FIT_SCAN: usize = 32;

impl Allocator {
    /// From the list of referenced blocks (any order, duplicates tolerated).
    pub fn from_used(mut used: Vec<u64>, capacity: Option<u64>) -> Self {
        used.sort_unstable();
        used.dedup();
        let mut a = Allocator {
            free: BTreeMap::new(),
            free_blocks: 0,
            hwm: used.last().map_or(0, |&m| m + 1),
            capacity,
        };
        let mut next = 0u64;
        for &u in &used {
            if u > next {
                a.free.insert(next, u - next);
                a.free_blocks += u - next;
            }
            next = u + 1;
        }
        a
    }

    /// Blocks in use (referenced or waiting for a commit to be freed).
    pub fn used_blocks(&self) -> u64 {
        self.hwm - self.free_blocks
    }

    pub fn high_water(&self) -> u64 {
        self.hwm
    }

    pub fn free_runs(&self) -> usize {
        self.free.len()
    }

    /// `n` blocks as runs `(start, len)`, or `None` when the capacity would
    /// be exceeded.
    pub fn alloc(&mut self, n: u64) -> Option<Vec<(u64, u64)>> {
        if n == 0 {
            return Some(Vec::new());
        }
        if let Some(cap) = self.capacity {
            let avail = self.free_blocks + cap.saturating_sub(self.hwm);
            if avail < n {
                return None;
            }
        }
        let fit = self
            .free
            .iter()
            .take(FIT_SCAN)
            .find(|(_, &l)| l >= n)
            .map(|(&s, &l)| (s, l));
        if let Some((s, l)) = fit {
            self.take_run(s, l, n);
            return Some(vec![(s, n)]);
        }
        let mut out = Vec::new();
        let mut need = n;
        while need > 0 {
            let first = self.free.iter().next().map(|(&s, &l)| (s, l));
            match first {
                Some((s, l)) => {
                    let k = l.min(need);
                    self.take_run(s, l, k);
                    out.push((s, k));
                    need -= k;
                }
                None => {
                    out.push((self.hwm, need));
                    self.hwm += need;
                    need = 0;
                }
            }
        }
        Some(out)
    }

    fn take_run(&mut self, s: u64, l: u64, k: u64) {
        self.free.remove(&s);
        if l > k {
            self.free.insert(s + k, l - k);
        }
        self.free_blocks -= k;
    }

    /// Return `len` blocks from `start`. A block that is already free is a
    /// bug elsewhere; it is logged and ignored rather than corrupting the
    /// free map.
    pub fn free(&mut self, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        let end = start + len;
        if end > self.hwm {
            error!(
                start,
                len,
                hwm = self.hwm,
                "freeing blocks beyond the high-water mark"
            );
            return;
        }
        let prev = self.free.range(..end).next_back().map(|(&s, &l)| (s, l));
        if let Some((ps, pl)) = prev {
            if ps + pl > start {
                error!(start, len, "double free of physical blocks ignored");
                return;
            }
        }
        let (mut s, mut l) = (start, len);
        if let Some((ps, pl)) = prev {
            if ps + pl == start {
                self.free.remove(&ps);
                s = ps;
                l += pl;
            }
        }
        if let Some(nl) = self.free.get(&end).copied() {
            self.free.remove(&end);
            l += nl;
        }
        self.free_blocks += len;
        if s + l == self.hwm {
            // Top of the file: lower the high-water mark instead of keeping
            // a free run there (none of these `l` blocks count as free).
            self.hwm = s;
            self.free_blocks -= l;
        } else {
            self.free.insert(s, l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: &Allocator) {
        let sum: u64 = a.free.values().sum();
        assert_eq!(sum, a.free_blocks);
        let mut prev_end = None;
        for (&s, &l) in &a.free {
            assert!(l > 0);
            assert!(s + l < a.hwm || s + l <= a.hwm);
            if let Some(e) = prev_end {
                assert!(s > e, "runs not coalesced");
            }
            prev_end = Some(s + l);
        }
    }

    #[test]
    fn from_used_gaps() {
        let a = Allocator::from_used(vec![5, 1, 2, 9, 2], None);
        assert_eq!(a.hwm, 10);
        assert_eq!(
            a.free.iter().map(|(&s, &l)| (s, l)).collect::<Vec<_>>(),
            vec![(0, 1), (3, 2), (6, 3)]
        );
        assert_eq!(a.used_blocks(), 4);
        check(&a);
        let e = Allocator::from_used(vec![], None);
        assert_eq!(e.used_blocks(), 0);
    }

    #[test]
    fn alloc_prefers_fitting_run_then_grows() {
        let mut a = Allocator::from_used(vec![1, 4, 9], None);
        // runs: (0,1) (2,2) (5,4)
        assert_eq!(a.alloc(3), Some(vec![(5, 3)]));
        assert_eq!(a.alloc(1), Some(vec![(0, 1)]));
        assert_eq!(a.alloc(4), Some(vec![(2, 2), (8, 1), (10, 1)]));
        assert_eq!(a.hwm, 11);
        check(&a);
        assert_eq!(a.used_blocks(), 11);
    }

    #[test]
    fn free_coalesces_and_lowers_hwm() {
        let mut a = Allocator::from_used(vec![], None);
        assert_eq!(a.alloc(10), Some(vec![(0, 10)]));
        a.free(2, 1);
        a.free(4, 1);
        a.free(3, 1);
        assert_eq!(a.free.get(&2), Some(&3));
        check(&a);
        a.free(9, 1);
        assert_eq!(a.hwm, 9);
        a.free(5, 4);
        // 2..9 free and at the top: hwm drops to 2.
        assert_eq!(a.hwm, 2);
        assert!(a.free.is_empty());
        assert_eq!(a.used_blocks(), 2);
        // Double free is ignored.
        a.free(0, 1);
        a.free(0, 1);
        assert_eq!(a.used_blocks(), 1);
        check(&a);
    }

    #[test]
    fn capacity_limits_allocation() {
        let mut a = Allocator::from_used(vec![0], Some(4));
        assert_eq!(a.alloc(4), None);
        assert_eq!(a.alloc(3), Some(vec![(1, 3)]));
        assert_eq!(a.alloc(1), None);
        a.free(2, 1);
        assert_eq!(a.alloc(1), Some(vec![(2, 1)]));
    }
}
