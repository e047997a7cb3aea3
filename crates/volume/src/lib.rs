//! # ironsan volume engine
//!
//! An embedded storage pool in one directory providing thin volumes with
//! O(1) snapshots and clones, end-to-end checksums and crash-safe,
//! transactional metadata. Each volume is exported as a LUN through
//! [`scsi::BlockDevice`] ([`VolumeDevice`]).
//!
//! ```no_run
//! # use volume::Pool;
//! # fn main() -> Result<(), volume::VolumeError> {
//! let pool = Pool::open_or_create("/var/lib/ironsan/pool".as_ref(), Default::default())?;
//! pool.create_volume("db", 1 << 40, 4096)?;          // 1 TiB, thin
//! let lun = pool.device("db")?;                       // Arc<dyn scsi::BlockDevice>
//! pool.create_snapshot("db", "nightly")?;             // O(1)
//! pool.clone_snapshot("db", "nightly", "db-test")?;   // O(1), shares blocks
//! # drop(lun); Ok(()) }
//! ```
//!
//! ## On-disk format
//!
//! ```text
//! pool/
//!   LOCK     flock(2)ed while open (a second opener gets InUse)
//!   data     data blocks, 4 KiB each, block n at offset n * 4096 (sparse)
//!   wal      metadata write-ahead log (see wal.rs)
//!   ckpt.0   checkpoint: full image of the metadata as of log seq N
//!   ckpt.1   identical second copy (see ckpt.rs)
//! ```
//!
//! **Mapping.** A volume is a *chain of layers*: a writable **head** on top
//! of zero or more immutable **frozen** layers. A layer maps chunk indexes
//! (4 KiB units of the volume) to a pointer: `Data { phys, crc }` or `Zero`
//! (a tombstone that hides the parent's data). A read walks the chain top
//! down until a layer has the chunk; none: zeros. Every data block is
//! *owned by exactly one layer*; sharing is by read-through, so there are no
//! reference counts at all, and the allocator state is derived from the
//! mapping at open (nothing to get out of sync after a crash).
//!
//! * **Snapshot** = freeze the head (move its 16 shard maps into a frozen
//!   layer: O(1), no entry is copied) and start a new empty head above it.
//! * **Clone** = new volume whose empty head's parent is the snapshot's
//!   layer: O(1), zero space until written.
//! * **Rollback** = drop the head (free its blocks), new empty head above
//!   the latest snapshot.
//! * **Delete snapshot** = merge its layer into its only child layer (the
//!   child's entries win, the rest move over, overridden blocks are freed);
//!   refused with `HasClones` if the layer has more than one child.
//! * **Space accounting** is exact from ownership, see [`info`](crate::VolumeInfo).
//!
//! **Checksums.** Each data block's CRC32C (seeded with its physical block
//! number, so misdirected reads/writes are caught too) lives in the
//! pointer, i.e. in metadata, never next to the data it protects. Log
//! frames and checkpoint sections carry their own CRC32C. A mismatch on
//! read is returned as [`scsi::DeviceErrorKind::Checksum`] (MEDIUM ERROR /
//! UNRECOVERED READ ERROR), logged with `tracing::error!` and counted per
//! volume ([`Pool::checksum_errors`]); [`Pool::scrub`] walks all blocks and
//! metadata online, [`Pool::check`] offline.
//!
//! ## Writes: redirect-on-write of 4 KiB blocks
//!
//! Every write goes to *newly allocated* blocks; a block referenced by
//! committed metadata is never overwritten. The new mapping is installed in
//! memory and queued as a log record; the replaced block is freed only
//! after the commit that unmaps it is durable.
//!
//! Why not overwrite unshared extents in place? Because then a crash
//! between the data write and the commit of its new checksum leaves
//! committed checksum ≠ on-disk data, i.e. a *checksum error on a block
//! whose write was never acknowledged as durable* (btrfs turns checksums off
//! for nodatacow files for exactly this reason). A data journal or an
//! intent log would avoid that at the cost of a second write or an fsync
//! per newly dirtied region. Redirect-on-write costs instead: per-4K
//! metadata (≈ 40 bytes of RAM per mapped block, ≈ 21 bytes of log per
//! write), fragmentation of sequential data after random overwrites, and
//! RMW for writes smaller than 4 KiB (512-byte LUNs). With it, the crash
//! argument is trivial:
//!
//! * an unflushed write either made it into a durable commit (new data,
//!   checksum of new data) or not (old mapping, old block untouched);
//!   reading it back returns old or new data, never a checksum error;
//! * a flushed/FUA write: its data was `fdatasync`ed *before* the log frame
//!   mapping it was written and `fdatasync`ed; the flush returns after both.
//!
//! ## Commit protocol (group commit)
//!
//! Writers only touch their volume's gate (shared), the allocator (a short
//! mutex) and one of 16 shard locks of the head map; each change gets a
//! ticket. [`flush`](scsi::BlockDevice::flush) / FUA / the background
//! committer / any admin operation run a commit under the commit mutex:
//!
//! 1. drain every head's pending records and frees (per shard, so the order
//!    of changes to one chunk is preserved);
//! 2. `fdatasync(data)`;
//! 3. append one log frame with all records, `fdatasync(wal)` — the commit
//!    point;
//! 4. release the frees to the allocator (punching holes for unmapped or
//!    deleted data), mark tickets committed.
//!
//! Concurrent flushes coalesce: a FUA writer whose ticket is already
//! covered returns without I/O. Structural operations (create, snapshot,
//! delete, rollback, clone, resize) are applied inside step 1 while holding
//! the affected volumes' gates exclusively, after draining those heads, so
//! the log order equals the order of effects. They are logged logically
//! and replayed by the same code ([`catalog`]), and are durable on return.
//!
//! ## Recovery
//!
//! Open loads the valid checkpoint copy with the highest sequence number,
//! replays log frames after it in order and stops at the first frame that is
//! short, fails its CRC or breaks the sequence: the tail of a commit that
//! never completed (it was never acknowledged) and is truncated. If a valid
//! later frame exists the damage is in the middle (not a crash artifact):
//! open fails with `Corrupt` rather than silently dropping committed
//! transactions; `check(repair)` truncates there. When the log exceeds
//! `checkpoint_log_bytes` (64 MiB) a checkpoint is written (both copies,
//! temp file + fsync + rename each) and the log emptied, bounding replay
//! time. Blocks written but never committed are simply unreferenced: the
//! allocator treats them as free, `check` counts and `check(repair)`
//! punches them.
//!
//! A failed fsync or log write makes the pool refuse further changes
//! (`Io`) until reopened: after a failed fsync the page cache can no longer
//! be trusted to reflect the disk.
//!
//! ## Limitations (not done yet)
//!
//! * The whole mapping is held in RAM and a checkpoint rewrites all of it
//!   (fine to tens of millions of mapped blocks; a persistent COW B-tree
//!   would lift that).
//! * No promote (clone ↔ origin swap); deleting a snapshot with clones is
//!   refused. Rollback only to the latest snapshot.
//! * FUA writes cost two fsyncs (data, log); sub-4K LUNs do RMW per chunk.
//! * Snapshots cannot be opened as read-only devices yet.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod alloc;
mod catalog;
mod ckpt;
mod codec;
mod device;
mod engine;
mod error;
mod info;
mod layer;
mod ops;
mod pool;
mod scrub;
mod wal;

pub use device::VolumeDevice;
pub use error::{ErrorKind, VolumeError};
pub use info::{ObjectKind, VolumeInfo};
pub use layer::CHUNK;
pub use pool::{Pool, PoolOptions, PoolStats};
pub use scrub::{CheckReport, Damage, ScrubReport};

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    pub fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "ironsan-volume-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_default();
        p
    }
}
