//! The public [`Pool`] API.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::{info, warn};

use crate::alloc::Allocator;
use crate::catalog::{check_size, valid_name, Catalog, Op};
use crate::ckpt;
use crate::device::VolumeDevice;
use crate::engine::{self, lock_dir, CommitCtx, PoolInner, DATA, WAL};
use crate::error::{ErrorKind, Result, VolumeError};
use crate::layer::{lock, CHUNK_U64};
use crate::wal::{LogDamage, Wal};

/// Tunables; [`Default`] is what the runtime should use.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Checkpoint (and truncate the log) once it grows past this. Bounds
    /// recovery time: replay is linear in the log size.
    pub checkpoint_log_bytes: u64,
    /// Commit pending writes in the background this often (like a ZFS txg
    /// timeout), bounding what a crash can lose when the initiator never
    /// flushes. `None`: only on flush/FUA/admin operations.
    pub commit_interval: Option<Duration>,
    /// Maximum bytes of data blocks; `None`: limited by the filesystem.
    pub capacity_bytes: Option<u64>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            checkpoint_log_bytes: 64 << 20,
            commit_interval: Some(Duration::from_secs(5)),
            capacity_bytes: None,
        }
    }
}

/// Pool-wide counters (`ironsan pool status`).
#[derive(Clone, Debug, Serialize)]
pub struct PoolStats {
    /// Blocks referenced or pending free, times the 4 KiB block size.
    pub allocated_bytes: u64,
    /// Apparent size of the data file.
    pub data_file_bytes: u64,
    /// Bytes the filesystem actually allocated for the data file.
    pub data_file_disk_bytes: u64,
    /// End of the used part of the data file.
    pub high_water_bytes: u64,
    pub free_runs: usize,
    pub log_bytes: u64,
    pub checkpoint_seq: u64,
    /// Map entries copied or moved by structural operations since open
    /// (snapshot and clone creation add nothing: they are O(1)).
    pub metadata_entries_touched: u64,
}

struct Bg {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

/// A storage pool in one directory. Cheap to share by reference; all
/// methods take `&self` and are safe to call concurrently with I/O.
pub struct Pool {
    pub(crate) inner: Arc<PoolInner>,
    bg: Option<Bg>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn split_snap(full: &str) -> Option<(&str, &str)> {
    full.split_once('@')
}

impl Pool {
    /// Create a new, empty pool in `dir` (created if missing).
    pub fn create(dir: &Path) -> Result<Pool> {
        Self::create_with(dir, PoolOptions::default())
    }

    pub fn create_with(dir: &Path, opts: PoolOptions) -> Result<Pool> {
        fs::create_dir_all(dir)
            .map_err(|e| VolumeError::io(format!("create {}", dir.display()), e))?;
        let lockf = lock_dir(dir)?;
        if ckpt::FILES.iter().any(|f| dir.join(f).exists()) {
            return Err(VolumeError::new(
                ErrorKind::AlreadyExists,
                format!("pool at {}", dir.display()),
            ));
        }
        for name in [DATA, WAL] {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join(name))
                .map_err(|e| VolumeError::io(format!("create {name}"), e))?;
        }
        let cat = Catalog::default();
        let img = ckpt::encode(&cat, &Default::default(), 0)?;
        ckpt::write_both(dir, &img).map_err(|e| VolumeError::io("write checkpoint", e))?;
        info!(dir = %dir.display(), "pool created");
        Self::open_locked(dir, opts, lockf)
    }

    /// Open an existing pool (recovering from a crash if needed).
    pub fn open(dir: &Path) -> Result<Pool> {
        Self::open_with(dir, PoolOptions::default())
    }

    pub fn open_with(dir: &Path, opts: PoolOptions) -> Result<Pool> {
        if !ckpt::FILES.iter().any(|f| dir.join(f).exists()) {
            return Err(VolumeError::new(
                ErrorKind::NotFound,
                format!("no pool at {}", dir.display()),
            ));
        }
        let lockf = lock_dir(dir)?;
        Self::open_locked(dir, opts, lockf)
    }

    /// Open, or create when `dir` holds no pool yet.
    pub fn open_or_create(dir: &Path, opts: PoolOptions) -> Result<Pool> {
        if ckpt::FILES.iter().any(|f| dir.join(f).exists()) {
            Self::open_with(dir, opts)
        } else {
            Self::create_with(dir, opts)
        }
    }

    fn open_locked(dir: &Path, opts: PoolOptions, lockf: fs::File) -> Result<Pool> {
        let loaded = engine::load(dir, false)?;
        if let Some(LogDamage::TornTail { offset, bytes }) = loaded.damage {
            warn!(
                offset,
                bytes, "discarding torn log tail (an unacknowledged commit)"
            );
        }
        loaded
            .wal_file
            .set_len(loaded.good_end)
            .and_then(|_| loaded.wal_file.sync_all())
            .map_err(|e| VolumeError::io("truncate log tail", e))?;
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(DATA))
            .map_err(|e| VolumeError::io("open data file", e))?;
        let used = engine::referenced_blocks(&loaded.cat);
        let alloc = Allocator::from_used(used, opts.capacity_bytes.map(|b| b / CHUNK_U64));
        let registry = loaded.cat.vols.values().map(|v| v.state.clone()).collect();
        let inner = Arc::new(PoolInner {
            dir: dir.to_path_buf(),
            data,
            meta: Mutex::new(loaded.cat),
            commit: Mutex::new(CommitCtx {
                wal: Wal::new(loaded.wal_file, loaded.good_end, loaded.last_seq + 1),
            }),
            alloc: Mutex::new(alloc),
            registry: RwLock::new(registry),
            ticket: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            wal_len: AtomicU64::new(loaded.good_end),
            ckpt_seq: AtomicU64::new(loaded.ckpt_seq),
            touched: AtomicU64::new(0),
            opts: opts.clone(),
            _lock: lockf,
        });
        if loaded.good_end > opts.checkpoint_log_bytes {
            let cat = lock(&inner.meta);
            inner.checkpoint(&cat)?;
        }
        let bg = opts.commit_interval.map(|every| {
            let stop = Arc::new((Mutex::new(false), Condvar::new()));
            let weak = Arc::downgrade(&inner);
            let s2 = stop.clone();
            let handle = std::thread::Builder::new()
                .name("volume-commit".into())
                .spawn(move || loop {
                    {
                        let (m, cv) = &*s2;
                        let g = lock(m);
                        if *g {
                            break;
                        }
                        let (g, _) = cv.wait_timeout(g, every).unwrap_or_else(|e| e.into_inner());
                        if *g {
                            break;
                        }
                    }
                    let Some(p) = weak.upgrade() else { break };
                    if let Err(e) = p.flush() {
                        warn!(error = %e, "background commit failed");
                    }
                })
                .ok();
            Bg { stop, handle }
        });
        Ok(Pool { inner, bg })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn cat(&self) -> std::sync::MutexGuard<'_, Catalog> {
        lock(&self.inner.meta)
    }

    /// Make every acknowledged write durable (all volumes).
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    /// Flush, write a checkpoint (empty log: fastest next open) and close.
    pub fn close(self) -> Result<()> {
        self.inner.flush()?;
        let cat = self.cat();
        self.inner.checkpoint(&cat)
    }

    /// Create a thin volume of `size` bytes (no space is allocated).
    pub fn create_volume(&self, name: &str, size: u64, block_size: u32) -> Result<()> {
        let mut cat = self.cat();
        let op = Op::CreateVolume {
            name: name.to_string(),
            size,
            block_size,
            head: cat.next_layer,
            parent: None,
            origin: None,
            created: now(),
        };
        self.inner.structural(&mut cat, &op)
    }

    /// Grow, or shrink with `force` (data past the new end is discarded).
    pub fn resize_volume(&self, name: &str, size: u64, force: bool) -> Result<()> {
        let (old, bs, vs) = {
            let cat = self.cat();
            let v = cat.vol(name)?;
            (
                v.state.size.load(Ordering::SeqCst),
                v.state.block_size,
                v.state.clone(),
            )
        };
        check_size(size, bs)?;
        if size < old {
            if !force {
                return Err(VolumeError::new(
                    ErrorKind::InvalidSize,
                    format!("shrinking {name} from {old} to {size} bytes discards data; use force"),
                ));
            }
            let tail_end = size.next_multiple_of(CHUNK_U64).min(old);
            if tail_end > size {
                // Zero the rest of the last, partial chunk so a later grow
                // reads zeros there.
                let dev = VolumeDevice::new(self.inner.clone(), vs);
                dev.zero_bytes(size, tail_end - size).map_err(|e| {
                    VolumeError::new(ErrorKind::Io, format!("zero tail of {name}: {e}"))
                })?;
            }
        }
        let mut cat = self.cat();
        self.inner.structural(
            &mut cat,
            &Op::Resize {
                name: name.to_string(),
                size,
            },
        )
    }

    /// Delete a volume and all its snapshots. Refused while it is open as a
    /// LUN or any of its snapshots has clones.
    pub fn delete_volume(&self, name: &str) -> Result<()> {
        let mut cat = self.cat();
        let open = cat.vol(name)?.state.open_handles.load(Ordering::SeqCst);
        if open > 0 {
            return Err(VolumeError::new(
                ErrorKind::InUse,
                format!("volume {name} has {open} open device handle(s)"),
            ));
        }
        self.inner.structural(
            &mut cat,
            &Op::DeleteVolume {
                name: name.to_string(),
            },
        )
    }

    /// Point-in-time, read-only snapshot in O(1). Every write acknowledged
    /// before this call is in it, and it is durable on return.
    pub fn create_snapshot(&self, volume: &str, snap: &str) -> Result<()> {
        let mut cat = self.cat();
        let op = Op::Snapshot {
            vol: volume.to_string(),
            snap: snap.to_string(),
            new_head: cat.next_layer,
            created: now(),
        };
        self.inner.structural(&mut cat, &op)
    }

    /// Delete a snapshot; its blocks still needed by the next layer move
    /// there (cost proportional to the snapshot's own data). Refused with
    /// `HasClones` when a clone depends on it.
    pub fn delete_snapshot(&self, volume: &str, snap: &str) -> Result<()> {
        let mut cat = self.cat();
        let op = Op::DeleteSnapshot {
            vol: volume.to_string(),
            snap: snap.to_string(),
        };
        self.inner.structural(&mut cat, &op)
    }

    /// Discard everything written since `snap` (which must be the latest
    /// snapshot; `HasSnapshots` otherwise). Safe while the LUN is open: I/O
    /// pauses briefly and then sees the snapshot's content (and size).
    pub fn rollback(&self, volume: &str, snap: &str) -> Result<()> {
        let mut cat = self.cat();
        let op = Op::Rollback {
            vol: volume.to_string(),
            snap: snap.to_string(),
            new_head: cat.next_layer,
        };
        self.inner.structural(&mut cat, &op)
    }

    /// New writable volume `new` from `volume@snap` in O(1), sharing every
    /// block until written.
    pub fn clone_snapshot(&self, volume: &str, snap: &str, new: &str) -> Result<()> {
        let mut cat = self.cat();
        let v = cat.vol(volume)?;
        let s = v.snaps.get(snap).ok_or_else(|| {
            VolumeError::new(ErrorKind::NotFound, format!("snapshot {volume}@{snap}"))
        })?;
        let op = Op::CreateVolume {
            name: new.to_string(),
            size: s.size,
            block_size: v.state.block_size,
            head: cat.next_layer,
            parent: Some(s.layer),
            origin: Some(format!("{volume}@{snap}")),
            created: now(),
        };
        self.inner.structural(&mut cat, &op)
    }

    /// Same as [`create_snapshot`](Self::create_snapshot) etc. with a
    /// `VOL@SNAP` argument.
    pub fn snapshot_full(&self, full: &str) -> Result<()> {
        let (v, s) = split_snap(full)
            .ok_or_else(|| VolumeError::new(ErrorKind::InvalidName, full.to_string()))?;
        self.create_snapshot(v, s)
    }

    /// A handle for exporting the volume as a LUN.
    pub fn device(&self, name: &str) -> Result<Arc<dyn scsi::BlockDevice>> {
        Ok(self.volume_device(name)?)
    }

    /// Like [`device`](Self::device), with access to the concrete type
    /// (checksum error counter, name).
    pub fn volume_device(&self, name: &str) -> Result<Arc<VolumeDevice>> {
        if !valid_name(name) {
            return Err(VolumeError::new(ErrorKind::InvalidName, name.to_string()));
        }
        let cat = self.cat();
        let vs = cat.vol(name)?.state.clone();
        Ok(Arc::new(VolumeDevice::new(self.inner.clone(), vs)))
    }

    /// Checksum errors seen on `name` (reads and scrubs) since open.
    pub fn checksum_errors(&self, name: &str) -> Result<u64> {
        Ok(self
            .cat()
            .vol(name)?
            .state
            .csum_errors
            .load(Ordering::Relaxed))
    }

    pub fn stats(&self) -> PoolStats {
        use std::os::unix::fs::MetadataExt;
        let (apparent, disk) = self
            .inner
            .data
            .metadata()
            .map_or((0, 0), |m| (m.len(), m.blocks() * 512));
        let a = lock(&self.inner.alloc);
        PoolStats {
            allocated_bytes: a.used_blocks() * CHUNK_U64,
            data_file_bytes: apparent,
            data_file_disk_bytes: disk,
            high_water_bytes: a.high_water() * CHUNK_U64,
            free_runs: a.free_runs(),
            log_bytes: self.inner.wal_len.load(Ordering::SeqCst),
            checkpoint_seq: self.inner.ckpt_seq.load(Ordering::SeqCst),
            metadata_entries_touched: self.inner.touched.load(Ordering::Relaxed),
        }
    }

    /// Path of the data file (tests, diagnostics).
    pub fn data_path(&self) -> PathBuf {
        self.inner.dir.join(DATA)
    }
}

impl Drop for Pool {
    /// Stops the background committer. Does *not* flush: dropping a pool
    /// behaves like a crash for everything not yet flushed (use
    /// [`Pool::close`] for an orderly shutdown).
    fn drop(&mut self) {
        if let Some(bg) = &mut self.bg {
            let (m, cv) = &*bg.stop;
            *lock(m) = true;
            cv.notify_all();
            if let Some(h) = bg.handle.take() {
                let _ = h.join();
            }
        }
    }
}
