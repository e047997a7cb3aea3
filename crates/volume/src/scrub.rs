//! Online scrub and offline check/repair.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tracing::{error, info, warn};

use crate::catalog::Catalog;
use crate::ckpt;
use crate::codec::block_crc;
use crate::engine::{self, lock_dir, PoolInner, DATA};
use crate::error::{Result, VolumeError};
use crate::layer::{lock, Chain, Frozen, Head, LayerId, Ptr, VolState, CHUNK, CHUNK_U64};
use crate::pool::Pool;
use crate::wal::{self, LogDamage};

/// A data block that failed verification.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Damage {
    /// `VOL` (its current content) or `VOL@SNAP` (the snapshot owning the
    /// block; clones read it too).
    pub object: String,
    /// First logical block of the damaged range, in the object's block size.
    pub lba: u64,
    pub blocks: u64,
    /// Physical 4 KiB block in the data file.
    pub phys: u64,
    pub detail: String,
    /// Volumes whose current content reads this block (the owner itself,
    /// later volumes of a snapshot's chain, clones).
    pub visible_in: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ScrubReport {
    pub objects_scanned: u64,
    pub blocks_scanned: u64,
    pub bytes_scanned: u64,
    pub damaged: Vec<Damage>,
    /// Damaged metadata objects (checkpoint sections, log frames).
    pub metadata_errors: Vec<String>,
    pub elapsed_ms: u64,
}

impl ScrubReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.metadata_errors.is_empty()
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub volumes: usize,
    pub snapshots: usize,
    pub layers: usize,
    pub referenced_blocks: u64,
    pub blocks_verified: u64,
    /// Inconsistencies and metadata damage (empty when clean).
    pub errors: Vec<String>,
    /// Data blocks failing verification (not repairable without a copy).
    pub damaged: Vec<Damage>,
    /// Blocks holding data in the file that nothing references: leaked
    /// after a crash, or freed and not yet reused. Reclaimed by repair.
    pub unreferenced_blocks: u64,
    /// Notes that are not errors (e.g. a torn log tail after a crash).
    pub notes: Vec<String>,
    /// What `repair` changed.
    pub repairs: Vec<String>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.damaged.is_empty()
    }
}

/// (chunk, phys, crc) of a mapped data block.
type Entry = (u64, u64, u32);
/// An object to scrub: its head (volume) or frozen layer (snapshot).
type ScrubObj = (Obj, Option<Arc<Head>>, Option<Arc<Frozen>>);

/// What owns a block: for naming damage.
struct Obj {
    name: String,
    block_size: u32,
    volume: Option<Arc<VolState>>,
    layer: LayerId,
}

/// Verify `entries` (chunk, phys, crc) of one layer; `recheck` decides
/// whether a mismatching entry is still current (and re-reads it under
/// whatever lock makes that stable). Returns damaged chunks.
fn verify_entries(
    data: &std::fs::File,
    mut entries: Vec<Entry>,
    mut recheck: impl FnMut(u64, u64, u32) -> bool,
) -> (u64, Vec<(u64, u64, String)>) {
    entries.sort_unstable_by_key(|e| e.1);
    let mut bad = Vec::new();
    let mut buf = vec![0u8; 64 * CHUNK];
    let mut i = 0;
    while i < entries.len() {
        let mut j = i + 1;
        while j < entries.len() && j - i < 64 && entries[j].1 == entries[i].1 + (j - i) as u64 {
            j += 1;
        }
        let b = &mut buf[..(j - i) * CHUNK];
        let ok = data.read_exact_at(b, entries[i].1 * CHUNK_U64).is_ok();
        for (k, &(c, phys, crc)) in entries[i..j].iter().enumerate() {
            let blk = &b[k * CHUNK..(k + 1) * CHUNK];
            if !ok || block_crc(phys, blk) != crc {
                let mut one = [0u8; CHUNK];
                let short = data.read_exact_at(&mut one, phys * CHUNK_U64).is_err();
                if (short || block_crc(phys, &one) != crc) && recheck(c, phys, crc) {
                    let what = if short {
                        "block missing (beyond end of data file)"
                    } else {
                        "checksum mismatch"
                    };
                    bad.push((c, phys, what.to_string()));
                }
            }
        }
        i = j;
    }
    (entries.len() as u64, bad)
}

fn data_entries(f: impl FnOnce(&mut dyn FnMut(u64, Ptr))) -> Vec<Entry> {
    let mut v = Vec::new();
    f(&mut |c, p| {
        if let Ptr::Data { phys, crc } = p {
            v.push((c, phys, crc));
        }
    });
    v
}

/// Volumes whose current content maps `chunk` to `phys`.
fn visible_in(cat: &Catalog, chunk: u64, phys: u64) -> Vec<String> {
    cat.vols
        .iter()
        .filter(|(_, v)| matches!(v.state.read_gate().lookup(chunk), Some(Ptr::Data { phys: p, .. }) if p == phys))
        .map(|(n, _)| n.clone())
        .collect()
}

fn to_damage(obj: &Obj, bad: Vec<(u64, u64, String)>, cat: &Catalog) -> Vec<Damage> {
    let per = (CHUNK_U64 / u64::from(obj.block_size)).max(1);
    let mut bad = bad;
    bad.sort_unstable();
    let mut out: Vec<Damage> = Vec::new();
    for (c, phys, detail) in bad {
        let lba = c * CHUNK_U64 / u64::from(obj.block_size);
        let vis = visible_in(cat, c, phys);
        if let Some(last) = out.last_mut() {
            if last.lba + last.blocks == lba && last.detail == detail && last.visible_in == vis {
                last.blocks += per;
                continue;
            }
        }
        error!(object = %obj.name, lba, phys, "{detail}");
        out.push(Damage {
            object: obj.name.clone(),
            lba,
            blocks: per,
            phys,
            detail,
            visible_in: vis,
        });
    }
    out
}

/// Problems in the on-disk metadata files (both checkpoint copies, log).
pub(crate) fn verify_metadata_files(dir: &Path, log: Option<&[u8]>, ckpt_seq: u64) -> Vec<String> {
    let mut errs = Vec::new();
    for name in ckpt::FILES {
        match std::fs::read(dir.join(name)) {
            Ok(buf) => {
                let (_, _, e) = ckpt::sections(&buf);
                errs.extend(e.into_iter().map(|e| format!("{name}: {e}")));
            }
            Err(e) => errs.push(format!("{name}: {e}")),
        }
    }
    if let Some(buf) = log {
        let s = wal::scan(buf, ckpt_seq);
        if let Some(d) = s.damage {
            errs.push(format!("log: {d}"));
        }
    }
    errs
}

impl Pool {
    /// Verify every data block of `volume` (all layers it reads through),
    /// or of the whole pool, and the metadata files. Runs online; damage is
    /// logged, counted on the volume and reported.
    pub fn scrub(&self, volume: Option<&str>) -> Result<ScrubReport> {
        let t0 = Instant::now();
        let inner: &PoolInner = &self.inner;
        let mut report = ScrubReport::default();
        // Objects to scan: (object, head or frozen layer).
        let mut objs: Vec<ScrubObj> = Vec::new();
        {
            let cat = lock(&inner.meta);
            let mut seen: HashSet<LayerId> = HashSet::new();
            let vols: Vec<_> = match volume {
                Some(v) => vec![(v.to_string(), cat.vol(v)?)],
                None => cat.vols.iter().map(|(n, v)| (n.clone(), v)).collect(),
            };
            for (vn, v) in vols {
                let ch = v.state.read_gate();
                objs.push((
                    Obj {
                        name: vn.clone(),
                        block_size: v.state.block_size,
                        volume: Some(v.state.clone()),
                        layer: ch.head.id,
                    },
                    Some(ch.head.clone()),
                    None,
                ));
                let layers: Vec<Arc<Frozen>> = if volume.is_some() {
                    ch.parents.clone()
                } else {
                    v.snaps
                        .values()
                        .filter_map(|s| cat.frozen.get(&s.layer).cloned())
                        .collect()
                };
                for l in layers {
                    if !seen.insert(l.id) {
                        continue;
                    }
                    let name = cat
                        .snapshot_name(l.id)
                        .unwrap_or_else(|| format!("layer {}", l.id));
                    let owner = name
                        .split('@')
                        .next()
                        .and_then(|o| cat.vols.get(o))
                        .map(|o| o.state.clone());
                    let bs = owner.as_ref().map_or(v.state.block_size, |o| o.block_size);
                    objs.push((
                        Obj {
                            name,
                            block_size: bs,
                            volume: owner,
                            layer: l.id,
                        },
                        None,
                        Some(l),
                    ));
                }
            }
        }
        for (obj, head, frozen) in &objs {
            let entries = match (head, frozen) {
                (Some(h), _) => data_entries(|f| h.for_each(f)),
                (_, Some(l)) => data_entries(|f| l.for_each(f)),
                _ => continue,
            };
            let (n, bad) = verify_entries(&inner.data, entries, |c, phys, crc| {
                let want = Some(Ptr::Data { phys, crc });
                let reread = |buf: &mut [u8; CHUNK]| {
                    inner.data.read_exact_at(buf, phys * CHUNK_U64).is_err()
                        || block_crc(phys, buf) != crc
                };
                let mut buf = [0u8; CHUNK];
                match (head, frozen) {
                    // Still mapped (checked under the shard lock, which
                    // keeps it from being remapped and reused meanwhile)?
                    (Some(h), _) => {
                        let sh = h.read(c);
                        sh.map.get(&c).copied() == want && reread(&mut buf)
                    }
                    (_, Some(l)) => {
                        let cat = lock(&inner.meta);
                        cat.frozen
                            .get(&obj.layer)
                            .is_some_and(|cur| Arc::ptr_eq(cur, l))
                            && reread(&mut buf)
                    }
                    _ => false,
                }
            });
            report.objects_scanned += 1;
            report.blocks_scanned += n;
            if !bad.is_empty() {
                if let Some(vs) = &obj.volume {
                    vs.csum_errors
                        .fetch_add(bad.len() as u64, Ordering::Relaxed);
                }
                let cat = lock(&inner.meta);
                report.damaged.extend(to_damage(obj, bad, &cat));
            }
        }
        report.bytes_scanned = report.blocks_scanned * CHUNK_U64;
        {
            let cc = lock(&inner.commit);
            let log = wal::read_all(&cc.wal.file).map_err(|e| VolumeError::io("read log", e))?;
            report.metadata_errors = verify_metadata_files(
                &inner.dir,
                Some(&log),
                inner.ckpt_seq.load(Ordering::SeqCst),
            );
        }
        for e in &report.metadata_errors {
            error!(pool = %inner.dir.display(), "metadata damage: {e}");
        }
        report.elapsed_ms = t0.elapsed().as_millis() as u64;
        info!(
            blocks = report.blocks_scanned,
            damaged = report.damaged.len(),
            "scrub finished"
        );
        Ok(report)
    }

    /// Offline consistency check of the pool in `dir` (must not be open).
    /// With `repair`: truncates a damaged log at the last good transaction,
    /// drops orphaned layers, punches out unreferenced blocks and rewrites
    /// both checkpoint copies.
    pub fn check(dir: &Path, repair: bool) -> Result<CheckReport> {
        let _lock = lock_dir(dir)?;
        let mut r = CheckReport::default();
        let mut loaded = engine::load(dir, true)?;
        let mut rewrite = false;
        match &loaded.damage {
            Some(LogDamage::TornTail { offset, bytes }) => {
                r.notes.push(format!(
                    "torn log tail: {bytes} bytes at offset {offset} (an unacknowledged commit)"
                ));
                rewrite |= repair;
            }
            Some(d @ LogDamage::Corrupt { .. }) => {
                r.errors.push(format!(
                    "log damaged: {d}; the pool does not open, repair truncates the log there (transactions after seq {} are lost)",
                    loaded.last_seq
                ));
                rewrite |= repair;
            }
            None => {}
        }
        if let Some(e) = &loaded.replay_error {
            r.errors.push(format!("log replay stopped: {e}"));
            rewrite |= repair;
        }
        for d in &loaded.ckpt_damage {
            r.errors.push(d.clone());
            rewrite |= repair;
        }
        let cat = &mut loaded.cat;
        structure(cat, &mut r, repair, &mut rewrite);
        let data = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(DATA))
            .map_err(|e| VolumeError::io("open data file", e))?;
        let referenced = ownership_and_data(cat, &data, &mut r);
        r.unreferenced_blocks = unreferenced(&data, &referenced, repair, &mut r);
        if rewrite {
            let guards: Vec<_> = cat
                .vols
                .iter()
                .map(|(n, v)| (n.clone(), v.state.read_gate()))
                .collect();
            let chains: HashMap<String, &Chain> =
                guards.iter().map(|(n, g)| (n.clone(), &**g)).collect();
            let img = ckpt::encode(cat, &chains, loaded.last_seq)?;
            ckpt::write_both(dir, &img).map_err(|e| VolumeError::io("write checkpoint", e))?;
            loaded
                .wal_file
                .set_len(0)
                .and_then(|_| loaded.wal_file.sync_all())
                .map_err(|e| VolumeError::io("truncate log", e))?;
            r.repairs.push(format!(
                "rewrote both checkpoints at seq {} and emptied the log",
                loaded.last_seq
            ));
        }
        if !r.is_clean() {
            warn!(dir = %dir.display(), errors = r.errors.len(), damaged = r.damaged.len(), "check found problems");
        }
        Ok(r)
    }
}

/// Layer graph: parents exist, snapshots are in their volume's chain,
/// no orphaned layers.
fn structure(cat: &mut Catalog, r: &mut CheckReport, repair: bool, rewrite: &mut bool) {
    let mut reachable: HashSet<LayerId> = HashSet::new();
    r.volumes = cat.vols.len();
    for (vn, v) in &cat.vols {
        let ch = v.state.read_gate();
        let chain_ids: Vec<LayerId> = ch.parents.iter().map(|p| p.id).collect();
        reachable.extend(chain_ids.iter().copied());
        for (sn, s) in &v.snaps {
            r.snapshots += 1;
            if !chain_ids.contains(&s.layer) {
                r.errors.push(format!(
                    "snapshot {vn}@{sn}: layer {} not in the volume's chain",
                    s.layer
                ));
            }
            reachable.insert(s.layer);
        }
    }
    r.layers = cat.frozen.len() + cat.vols.len();
    let orphans: Vec<LayerId> = cat
        .frozen
        .keys()
        .filter(|id| !reachable.contains(id))
        .copied()
        .collect();
    for id in orphans {
        r.errors.push(format!(
            "layer {id} is not referenced by any volume or snapshot (orphan)"
        ));
        if repair {
            cat.frozen.remove(&id);
            r.repairs.push(format!("dropped orphaned layer {id}"));
            *rewrite = true;
        }
    }
}

/// Every block owned once, every block readable and matching its checksum.
fn ownership_and_data(cat: &Catalog, data: &std::fs::File, r: &mut CheckReport) -> HashSet<u64> {
    let mut owner: HashMap<u64, String> = HashMap::new();
    let mut objs: Vec<(Obj, Vec<Entry>)> = Vec::new();
    for (vn, v) in &cat.vols {
        let ch = v.state.read_gate();
        let obj = Obj {
            name: vn.clone(),
            block_size: v.state.block_size,
            volume: None,
            layer: ch.head.id,
        };
        objs.push((obj, data_entries(|f| ch.head.for_each(f))));
    }
    for l in cat.frozen.values() {
        let name = cat
            .snapshot_name(l.id)
            .unwrap_or_else(|| format!("layer {}", l.id));
        let bs = name
            .split('@')
            .next()
            .and_then(|o| cat.vols.get(o))
            .map_or(512, |o| o.state.block_size);
        let obj = Obj {
            name,
            block_size: bs,
            volume: None,
            layer: l.id,
        };
        objs.push((obj, data_entries(|f| l.for_each(f))));
    }
    for (obj, entries) in &objs {
        for &(c, phys, _) in entries {
            if let Some(prev) = owner.insert(phys, obj.name.clone()) {
                r.errors.push(format!(
                    "block {phys} is referenced by both {prev} and {} (chunk {c})",
                    obj.name
                ));
            }
        }
    }
    r.referenced_blocks = owner.len() as u64;
    for (obj, entries) in objs {
        let (n, bad) = verify_entries(data, entries, |_, _, _| true);
        r.blocks_verified += n;
        r.damaged.extend(to_damage(&obj, bad, cat));
    }
    owner.into_keys().collect()
}

/// Blocks with data in the file (SEEK_DATA/SEEK_HOLE) that nothing
/// references; punched out on repair.
fn unreferenced(
    data: &std::fs::File,
    referenced: &HashSet<u64>,
    repair: bool,
    r: &mut CheckReport,
) -> u64 {
    let fd = data.as_raw_fd();
    let len = data.metadata().map_or(0, |m| m.len());
    let mut off: i64 = 0;
    let mut count = 0u64;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    while (off as u64) < len {
        // SAFETY: lseek on a valid fd; no memory is passed.
        let start = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
        if start < 0 {
            break;
        }
        // SAFETY: as above.
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        if end <= start {
            break;
        }
        let (b0, b1) = (start as u64 / CHUNK_U64, (end as u64).div_ceil(CHUNK_U64));
        for b in b0..b1 {
            if !referenced.contains(&b) {
                count += 1;
                match runs.last_mut() {
                    Some((s, l)) if *s + *l == b => *l += 1,
                    _ => runs.push((b, 1)),
                }
            }
        }
        off = end;
    }
    if repair && count > 0 {
        for &(s, l) in &runs {
            // SAFETY: fallocate on a valid fd with in-range offsets.
            let rc = unsafe {
                libc::fallocate(
                    fd,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    (s * CHUNK_U64) as libc::off_t,
                    (l * CHUNK_U64) as libc::off_t,
                )
            };
            if rc != 0 {
                r.errors.push(format!(
                    "punching blocks {s}+{l}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        let _ = data.sync_all();
        r.repairs
            .push(format!("reclaimed {count} unreferenced blocks"));
    }
    count
}
