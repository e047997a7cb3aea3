//! The pool engine: recovery (checkpoint + log replay), group commit,
//! deferred frees and checkpointing.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tracing::{error, info, warn};

use crate::alloc::Allocator;
use crate::catalog::{ApplyCtx, Catalog, Op};
use crate::ckpt;
use crate::error::{ErrorKind, Result, VolumeError};
use crate::layer::{lock, read, write, Chain, Free, Head, Ptr, VolState, CHUNK_U64};
use crate::ops::{decode_ops, encode_ops};
use crate::wal::{self, LogDamage, Wal};
use crate::PoolOptions;

pub(crate) const DATA: &str = "data";
pub(crate) const WAL: &str = "wal";
pub(crate) const LOCK: &str = "LOCK";

pub(crate) struct CommitCtx {
    pub wal: Wal,
}

pub(crate) struct PoolInner {
    pub dir: PathBuf,
    pub data: File,
    /// Structural lock; order: meta → commit → registry → gate → shard,
    /// alloc is a leaf.
    pub meta: Mutex<Catalog>,
    pub commit: Mutex<CommitCtx>,
    pub alloc: Mutex<Allocator>,
    pub registry: RwLock<Vec<Arc<VolState>>>,
    /// Incremented once per logged change; `committed` trails it.
    pub ticket: AtomicU64,
    pub committed: AtomicU64,
    /// Set after a failed fsync or log write: the on-disk state is unknown,
    /// every further change is refused until the pool is reopened.
    pub failed: AtomicBool,
    pub wal_len: AtomicU64,
    pub ckpt_seq: AtomicU64,
    pub touched: AtomicU64,
    pub opts: PoolOptions,
    pub _lock: File,
}

/// Take the pool's exclusive lock (released by the kernel on exit/kill).
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let p = dir.join(LOCK);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
        .map_err(|e| VolumeError::io(format!("open {}", p.display()), e))?;
    // A just-forked child (between fork and exec) can briefly hold a copy
    // of a previous holder's descriptor: retry for a moment.
    let mut rc = -1;
    for _ in 0..50 {
        // SAFETY: flock on a valid, owned file descriptor; no memory is shared.
        rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if rc != 0 {
        return Err(VolumeError::new(
            ErrorKind::InUse,
            format!(
                "pool {} is open by another process or handle",
                dir.display()
            ),
        ));
    }
    Ok(f)
}

/// Result of loading a pool's metadata.
pub(crate) struct Loaded {
    pub cat: Catalog,
    pub ckpt_seq: u64,
    pub last_seq: u64,
    pub wal_file: File,
    pub good_end: u64,
    pub damage: Option<LogDamage>,
    /// Damaged checkpoint copies (the one used is fine).
    pub ckpt_damage: Vec<String>,
    /// Lenient mode: replay stopped at this frame.
    pub replay_error: Option<String>,
}

pub(crate) fn load(dir: &Path, lenient: bool) -> Result<Loaded> {
    let mut best: Option<(u64, Catalog, &str)> = None;
    let mut problems = Vec::new();
    let mut damage = Vec::new();
    let mut missing = 0;
    for name in ckpt::FILES {
        let p = dir.join(name);
        let buf = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing += 1;
                problems.push(format!("{name}: missing"));
                continue;
            }
            Err(e) => return Err(VolumeError::io(format!("read {}", p.display()), e)),
        };
        match ckpt::decode(&buf, name) {
            Ok((seq, cat)) => {
                if best.as_ref().is_none_or(|b| seq > b.0) {
                    if let Some(b) = &best {
                        problems.push(format!("{}: older (seq {})", b.2, b.0));
                    }
                    best = Some((seq, cat, name));
                } else {
                    problems.push(format!("{name}: older (seq {seq})"));
                }
            }
            Err(e) => {
                error!(file = name, error = %e, "checkpoint copy is damaged");
                problems.push(e.context.clone());
                damage.push(e.context);
            }
        }
    }
    if missing == ckpt::FILES.len() {
        return Err(VolumeError::new(
            ErrorKind::NotFound,
            format!("no pool at {}", dir.display()),
        ));
    }
    let Some((ckpt_seq, mut cat, used)) = best else {
        return Err(VolumeError::corrupt(format!(
            "pool {}: no valid checkpoint ({})",
            dir.display(),
            problems.join("; ")
        )));
    };
    let wp = dir.join(WAL);
    let wal_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&wp)
        .map_err(|e| VolumeError::io(format!("open {}", wp.display()), e))?;
    let buf = wal::read_all(&wal_file).map_err(|e| VolumeError::io("read log", e))?;
    let scan = wal::scan(&buf, ckpt_seq);
    if let Some(LogDamage::Corrupt {
        offset,
        later_offset,
        later_seq,
    }) = &scan.damage
    {
        let msg = format!(
            "log damaged at byte {offset} after seq {}, but a valid frame (seq {later_seq}) \
             follows at byte {later_offset}; refusing to drop committed transactions \
             (`ironsan pool check --repair` truncates the log there)",
            scan.last_seq
        );
        if !lenient {
            return Err(VolumeError::corrupt(msg));
        }
        error!("{msg}");
    }
    let mut replay_error = None;
    let mut good_end = scan.good_end;
    let mut last_seq = ckpt_seq;
    let mut ctx = ApplyCtx::default();
    'frames: for (seq, payload) in &scan.frames {
        let res = decode_ops(payload).and_then(|ops| {
            for op in &ops {
                cat.apply(op, &mut ctx)
                    .map_err(|e| VolumeError::corrupt(format!("replaying log seq {seq}: {e}")))?;
            }
            Ok(())
        });
        if let Err(e) = res {
            if !lenient {
                return Err(e);
            }
            // Find the frame's offset again to truncate there on repair.
            good_end = frame_offset(&buf, *seq).unwrap_or(good_end);
            replay_error = Some(e.context);
            break 'frames;
        }
        last_seq = *seq;
    }
    info!(
        dir = %dir.display(),
        checkpoint = used,
        ckpt_seq,
        frames = scan.frames.len(),
        last_seq,
        "pool metadata loaded"
    );
    Ok(Loaded {
        cat,
        ckpt_seq,
        last_seq,
        wal_file,
        good_end,
        damage: scan.damage,
        ckpt_damage: damage,
        replay_error,
    })
}

fn frame_offset(buf: &[u8], seq: u64) -> Option<u64> {
    let mut pos = 0u64;
    let s = wal::scan(buf, 0);
    for (fs, p) in &s.frames {
        if *fs == seq {
            return Some(pos);
        }
        pos += (wal::HDR + p.len()) as u64;
    }
    None
}

/// Every block referenced by any layer.
pub(crate) fn referenced_blocks(cat: &Catalog) -> Vec<u64> {
    let mut used = Vec::new();
    let mut push = |_: u64, p: Ptr| {
        if let Ptr::Data { phys, .. } = p {
            used.push(phys);
        }
    };
    for f in cat.frozen.values() {
        f.for_each(&mut push);
    }
    for v in cat.vols.values() {
        v.state.read_gate().head.for_each(&mut push);
    }
    used
}

impl PoolInner {
    pub fn check_failed(&self) -> Result<()> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(VolumeError::new(
                ErrorKind::Io,
                "pool failed an earlier write or fsync; reopen it to recover",
            ));
        }
        Ok(())
    }

    fn fail(&self, what: &str, e: &std::io::Error) {
        error!(dir = %self.dir.display(), error = %e, "{what} failed; pool is now read-only until reopened");
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Current heads of all volumes (caller holds the commit lock, so no
    /// structural operation can swap them meanwhile).
    pub fn heads(&self) -> Vec<Arc<Head>> {
        read(&self.registry)
            .iter()
            .map(|vs| vs.read_gate().head.clone())
            .collect()
    }

    /// Group commit: log every pending change (plus `structural`, applied
    /// here under the commit lock) in one frame, after making the data
    /// blocks it points at durable; then release the blocks it freed.
    pub fn commit_locked(
        &self,
        cc: &mut CommitCtx,
        heads: &[Arc<Head>],
        structural: Option<(&mut Catalog, &Op)>,
    ) -> Result<()> {
        self.check_failed()?;
        let target = self.ticket.load(Ordering::SeqCst);
        let mut ops = Vec::new();
        let mut frees: Vec<Free> = Vec::new();
        for h in heads {
            let mut recs = Vec::new();
            for s in h.shards.iter() {
                let mut sh = write(s);
                recs.append(&mut sh.log);
                frees.append(&mut sh.frees);
            }
            if !recs.is_empty() {
                ops.push(Op::Data { layer: h.id, recs });
            }
        }
        let mut result = Ok(());
        if let Some((cat, op)) = structural {
            let mut ctx = ApplyCtx::default();
            match cat.apply(op, &mut ctx) {
                Ok(()) => {
                    ops.append(&mut ctx.pre);
                    ops.push(op.clone());
                    frees.append(&mut ctx.frees);
                    self.touched.fetch_add(ctx.touched, Ordering::Relaxed);
                }
                Err(e) => {
                    if e.kind == ErrorKind::Corrupt {
                        error!(error = %e, "structural operation failed half-way");
                        self.failed.store(true, Ordering::SeqCst);
                    }
                    ops.append(&mut ctx.pre);
                    frees.append(&mut ctx.frees);
                    result = Err(e);
                }
            }
        }
        if ops.is_empty() {
            self.committed.fetch_max(target, Ordering::SeqCst);
            return result;
        }
        if let Err(e) = self.data.sync_data() {
            self.fail("data fsync", &e);
            return Err(VolumeError::io("fsync data file", e));
        }
        let payload = encode_ops(&ops);
        if let Err(e) = cc.wal.append(&payload) {
            self.fail("log append", &e);
            return Err(VolumeError::io("append to log", e));
        }
        self.wal_len.store(cc.wal.len, Ordering::SeqCst);
        self.committed.fetch_max(target, Ordering::SeqCst);
        self.release(frees);
        result
    }

    /// Frees become reusable only now that the change dropping them is
    /// durable: until then a crash would bring back a mapping to them.
    fn release(&self, mut frees: Vec<Free>) {
        if frees.is_empty() {
            return;
        }
        frees.sort_unstable();
        let mut runs: Vec<(u64, u64, bool)> = Vec::new();
        for (p, punch) in frees {
            match runs.last_mut() {
                Some((s, l, pu)) if *s + *l == p && *pu == punch => *l += 1,
                Some((s, l, _)) if p < *s + *l => {
                    error!(phys = p, "block freed twice in one commit; ignored");
                }
                _ => runs.push((p, 1, punch)),
            }
        }
        for &(s, l, punch) in &runs {
            if punch {
                self.punch(s, l);
            }
        }
        let mut a = lock(&self.alloc);
        for (s, l, _) in runs {
            a.free(s, l);
        }
    }

    pub fn punch(&self, start: u64, len: u64) {
        // SAFETY: fallocate on a valid fd with in-range offsets; no memory
        // is passed to the kernel.
        let rc = unsafe {
            libc::fallocate(
                self.data.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                (start * CHUNK_U64) as libc::off_t,
                (len * CHUNK_U64) as libc::off_t,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            warn!(start, len, error = %e, "punching freed blocks failed; space is reused later");
        }
    }

    pub fn commit_upto(&self, t: u64) -> Result<()> {
        if self.committed.load(Ordering::SeqCst) >= t {
            return self.check_failed();
        }
        let mut cc = lock(&self.commit);
        if self.committed.load(Ordering::SeqCst) >= t {
            return self.check_failed();
        }
        let heads = self.heads();
        self.commit_locked(&mut cc, &heads, None)
    }

    /// SYNCHRONIZE CACHE for the whole pool.
    pub fn flush(&self) -> Result<()> {
        self.commit_upto(self.ticket.load(Ordering::SeqCst))?;
        if self.wal_len.load(Ordering::SeqCst) > self.opts.checkpoint_log_bytes {
            if let Ok(cat) = self.meta.try_lock() {
                self.checkpoint(&cat)?;
            }
        }
        Ok(())
    }

    /// Write a checkpoint of everything committed and truncate the log.
    /// I/O pauses only while the image is encoded in memory.
    pub fn checkpoint(&self, cat: &Catalog) -> Result<()> {
        let mut cc = lock(&self.commit);
        let states: Vec<Arc<VolState>> = cat.vols.values().map(|v| v.state.clone()).collect();
        let img = {
            let guards: Vec<_> = states.iter().map(|s| s.write_gate()).collect();
            let heads: Vec<Arc<Head>> = guards.iter().map(|g| g.head.clone()).collect();
            self.commit_locked(&mut cc, &heads, None)?;
            let seq = cc.wal.next_seq - 1;
            let chains: HashMap<String, &Chain> = states
                .iter()
                .zip(guards.iter())
                .map(|(s, g)| (s.name.clone(), &**g))
                .collect();
            (seq, ckpt::encode(cat, &chains, seq)?)
        };
        let (seq, bytes) = img;
        ckpt::write_both(&self.dir, &bytes).map_err(|e| VolumeError::io("write checkpoint", e))?;
        if let Err(e) = cc.wal.reset() {
            self.fail("log truncate", &e);
            return Err(VolumeError::io("truncate log", e));
        }
        self.wal_len.store(0, Ordering::SeqCst);
        self.ckpt_seq.store(seq, Ordering::SeqCst);
        info!(seq, bytes = bytes.len(), "checkpoint written");
        Ok(())
    }

    /// Log and apply a structural operation (durable on return).
    pub fn structural(&self, cat: &mut Catalog, op: &Op) -> Result<()> {
        cat.validate(op)?;
        let mut cc = lock(&self.commit);
        let heads = self.heads();
        let r = self.commit_locked(&mut cc, &heads, Some((cat, op)));
        *write(&self.registry) = cat.vols.values().map(|v| v.state.clone()).collect();
        r
    }

    pub fn alloc_blocks(&self, n: u64) -> Option<Vec<(u64, u64)>> {
        lock(&self.alloc).alloc(n)
    }

    /// Give back blocks that were never referenced (failed write).
    pub fn free_now(&self, runs: &[(u64, u64)]) {
        let mut a = lock(&self.alloc);
        for &(s, l) in runs {
            a.free(s, l);
        }
    }
}
