//! In-memory mapping structures: block pointers, layers (the writable head
//! of a volume and frozen snapshot layers) and the chain a volume reads
//! through.
//!
//! Every layer maps *chunk indexes* (volume byte offset / [`CHUNK`]) to a
//! [`Ptr`]. A layer owns every data block its map points at; no block is ever
//! pointed at by two layers, so no reference counts exist anywhere. Sharing
//! between a volume and its snapshots/clones is expressed by *read-through*:
//! a lookup walks head → parent → grandparent until some layer has an entry.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Mapping and checksum granularity, and the size of a physical block.
pub const CHUNK: usize = 4096;
pub(crate) const CHUNK_U64: u64 = CHUNK as u64;
/// Number of lock shards of a layer map (power of two).
pub(crate) const SHARDS: usize = 16;
/// Stripe locks serializing read-modify-write of partial chunks.
pub(crate) const STRIPES: usize = 64;

pub(crate) type LayerId = u64;

/// Where a chunk's data lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ptr {
    /// Reads as zeros and hides whatever a parent layer maps (tombstone).
    Zero,
    /// Physical block `phys` of the data file, with its CRC32C
    /// ([`block_crc`](crate::codec::block_crc)).
    Data { phys: u64, crc: u32 },
}

/// Multiplicative hash for chunk indexes (keys are not attacker-chosen
/// strings; SipHash would cost more than the rest of a lookup).
#[derive(Default, Clone, Copy)]
pub(crate) struct ChunkHasher(u64);

impl Hasher for ChunkHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        let x = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

pub(crate) type ChunkMap = HashMap<u64, Ptr, BuildHasherDefault<ChunkHasher>>;

pub(crate) fn shard_of(chunk: u64) -> usize {
    // Low bits rotate through shards for sequential chunks.
    (chunk as usize) & (SHARDS - 1)
}

/// A change to a head layer not yet written to the log: `None` removes the
/// entry.
pub(crate) type Rec = (u64, Option<Ptr>);

/// A physical block to release once the change that dropped it is durable;
/// `true`: also punch a hole (space reclaim) instead of just reusing it.
pub(crate) type Free = (u64, bool);

#[derive(Default)]
pub(crate) struct Shard {
    pub map: ChunkMap,
    /// Uncommitted changes, in the order they were applied to `map`.
    pub log: Vec<Rec>,
    /// Blocks dropped by those changes.
    pub frees: Vec<Free>,
}

/// The writable top layer of a volume.
pub(crate) struct Head {
    pub id: LayerId,
    pub shards: Box<[RwLock<Shard>]>,
}

impl Head {
    pub fn new(id: LayerId) -> Self {
        Head {
            id,
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
        }
    }

    pub fn read(&self, chunk: u64) -> RwLockReadGuard<'_, Shard> {
        read(&self.shards[shard_of(chunk)])
    }

    pub fn write(&self, chunk: u64) -> RwLockWriteGuard<'_, Shard> {
        write(&self.shards[shard_of(chunk)])
    }

    pub fn get(&self, chunk: u64) -> Option<Ptr> {
        self.read(chunk).map.get(&chunk).copied()
    }

    /// Visit every entry (shard by shard, each under its read lock).
    pub fn for_each(&self, mut f: impl FnMut(u64, Ptr)) {
        for s in self.shards.iter() {
            for (&c, &p) in read(s).map.iter() {
                f(c, p);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).map.len()).sum()
    }
}

/// An immutable layer: a snapshot, or an intermediate layer of a clone chain.
pub(crate) struct Frozen {
    pub id: LayerId,
    pub parent: Option<LayerId>,
    pub maps: Box<[ChunkMap]>,
}

impl Frozen {
    pub fn get(&self, chunk: u64) -> Option<Ptr> {
        self.maps[shard_of(chunk)].get(&chunk).copied()
    }
    pub fn for_each(&self, mut f: impl FnMut(u64, Ptr)) {
        for m in self.maps.iter() {
            for (&c, &p) in m.iter() {
                f(c, p);
            }
        }
    }
    pub fn len(&self) -> usize {
        self.maps.iter().map(|m| m.len()).sum()
    }
    pub fn contains(&self, chunk: u64) -> bool {
        self.maps[shard_of(chunk)].contains_key(&chunk)
    }
}

/// What a volume reads through. Guarded by the volume's gate: I/O holds it
/// shared, structural operations (snapshot, rollback, delete, merge) hold it
/// exclusively, which is how a snapshot is ordered after every write that
/// was acknowledged before it.
pub(crate) struct Chain {
    pub head: Arc<Head>,
    /// Nearest first.
    pub parents: Vec<Arc<Frozen>>,
    pub size: u64,
    pub deleted: bool,
}

impl Chain {
    /// `None`: never written anywhere in the chain (reads as zeros).
    pub fn lookup(&self, chunk: u64) -> Option<Ptr> {
        if let Some(p) = self.head.get(chunk) {
            return Some(p);
        }
        self.lookup_parents(chunk)
    }

    pub fn lookup_parents(&self, chunk: u64) -> Option<Ptr> {
        lookup_frozen(&self.parents, chunk)
    }

    pub fn head_parent(&self) -> Option<LayerId> {
        self.parents.first().map(|p| p.id)
    }
}

pub(crate) fn lookup_frozen(layers: &[Arc<Frozen>], chunk: u64) -> Option<Ptr> {
    layers.iter().find_map(|l| l.get(chunk))
}

/// Shared state of one volume: referenced by the catalog and by every open
/// [`VolumeDevice`](crate::VolumeDevice).
pub(crate) struct VolState {
    pub name: String,
    pub block_size: u32,
    pub gate: RwLock<Chain>,
    /// Mirror of `Chain::size` for lock-free `num_blocks()`.
    pub size: AtomicU64,
    pub csum_errors: AtomicU64,
    pub open_handles: AtomicUsize,
    pub stripes: Box<[Mutex<()>]>,
}

impl VolState {
    pub fn new(name: &str, block_size: u32, chain: Chain) -> Self {
        VolState {
            name: name.to_string(),
            block_size,
            size: AtomicU64::new(chain.size),
            gate: RwLock::new(chain),
            csum_errors: AtomicU64::new(0),
            open_handles: AtomicUsize::new(0),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
    pub fn read_gate(&self) -> RwLockReadGuard<'_, Chain> {
        read(&self.gate)
    }
    pub fn write_gate(&self) -> RwLockWriteGuard<'_, Chain> {
        write(&self.gate)
    }
}

/// Lock helpers that ignore poisoning: a panic while holding one of these
/// locks leaves the maps in a consistent state (every mutation is a single
/// map operation), so continuing is safe.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frozen(id: LayerId, parent: Option<LayerId>, e: &[(u64, Ptr)]) -> Arc<Frozen> {
        let mut maps: Vec<ChunkMap> = (0..SHARDS).map(|_| ChunkMap::default()).collect();
        for &(c, p) in e {
            maps[shard_of(c)].insert(c, p);
        }
        Arc::new(Frozen {
            id,
            parent,
            maps: maps.into_boxed_slice(),
        })
    }

    #[test]
    fn chain_lookup_read_through_and_tombstones() {
        let d = |phys| Ptr::Data { phys, crc: 0 };
        let base = frozen(1, None, &[(0, d(10)), (1, d(11)), (2, d(12))]);
        let mid = frozen(2, Some(1), &[(1, d(21)), (2, Ptr::Zero)]);
        let head = Arc::new(Head::new(3));
        head.write(0).map.insert(0, d(30));
        let chain = Chain {
            head,
            parents: vec![mid, base],
            size: 1 << 20,
            deleted: false,
        };
        assert_eq!(chain.lookup(0), Some(d(30)));
        assert_eq!(chain.lookup(1), Some(d(21)));
        assert_eq!(chain.lookup(2), Some(Ptr::Zero));
        assert_eq!(chain.lookup(3), None);
        assert_eq!(chain.lookup_parents(0), Some(d(10)));
        assert_eq!(chain.head_parent(), Some(2));
    }

    #[test]
    fn shards_spread_sequential_chunks() {
        let mut seen = [false; SHARDS];
        for c in 0..SHARDS as u64 {
            seen[shard_of(c)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}

#[cfg(test)]
mod micro {
    use super::*;

    #[test]
    #[ignore]
    fn micro_lookup_and_crc() {
        let head = Arc::new(Head::new(1));
        for c in 0..262_144u64 {
            head.write(c).map.insert(c, Ptr::Data { phys: c, crc: 1 });
        }
        let chain = Chain {
            head,
            parents: vec![],
            size: 1 << 30,
            deleted: false,
        };
        let vs = VolState::new("v", 4096, chain);
        let mut x = 12345u64;
        let t = std::time::Instant::now();
        let mut acc = 0u64;
        for _ in 0..1_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let g = vs.read_gate();
            if let Some(Ptr::Data { phys, .. }) = g.lookup(x % 262_144) {
                acc += phys;
            }
        }
        println!("gate+lookup: {:?}/op ({acc})", t.elapsed() / 1_000_000);
        let buf = vec![7u8; 4096];
        let t = std::time::Instant::now();
        for i in 0..1_000_000u64 {
            acc += u64::from(crate::codec::block_crc(i, &buf));
        }
        println!("crc 4K: {:?}/op ({acc})", t.elapsed() / 1_000_000);
    }
}
