//! Listing and space accounting (`zfs list`-style USED / REFER).
//!
//! Because every block is owned by exactly one layer, accounting is exact
//! and needs no reference counts:
//! * `referenced_bytes`: chunks with data visible through the object's
//!   chain (what a full read would return as non-zero mapped data).
//! * `used_bytes` of a snapshot: blocks it owns that all its child layers
//!   override — freed if the snapshot alone is deleted.
//! * `used_bytes` of a volume: blocks owned by its head and its own
//!   snapshots — freed if the volume and its snapshots are deleted.
//! * `used_by_snapshots_bytes`: blocks owned by the volume's snapshots that
//!   the volume's current content no longer references.
//!
//! Computed on demand, linear in the number of mapped chunks of the chains
//! involved (not stored, so never stale).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use crate::catalog::{Catalog, Child};
use crate::layer::{Frozen, Head, Ptr, CHUNK_U64};
use crate::pool::Pool;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Volume,
    Snapshot,
}

/// One line of `ironsan volume list`.
#[derive(Clone, Debug, Serialize)]
pub struct VolumeInfo {
    /// `VOL` or `VOL@SNAP`.
    pub name: String,
    pub kind: ObjectKind,
    pub volume: String,
    pub snapshot: Option<String>,
    pub block_size: u32,
    /// Size seen by the initiator.
    pub logical_bytes: u64,
    pub referenced_bytes: u64,
    pub used_bytes: u64,
    /// Volumes only (0 for snapshots).
    pub used_by_snapshots_bytes: u64,
    /// `VOL@SNAP` a clone was created from.
    pub origin: Option<String>,
    /// Snapshots only: volumes cloned from it.
    pub clones: Vec<String>,
    /// Unix seconds.
    pub created: u64,
    /// Volumes only: open device handles (LUNs).
    pub open_handles: usize,
    /// Volumes only: checksum errors seen since open.
    pub checksum_errors: u64,
}

fn count_data(f: impl FnOnce(&mut dyn FnMut(u64, Ptr))) -> u64 {
    let mut n = 0;
    f(&mut |_, p| {
        if matches!(p, Ptr::Data { .. }) {
            n += 1;
        }
    });
    n
}

fn referenced(head: Option<&Head>, layers: &[Arc<Frozen>], size: u64) -> u64 {
    let end = size.div_ceil(CHUNK_U64);
    let mut seen = HashSet::new();
    let mut n = 0u64;
    let mut visit = |c: u64, p: Ptr| {
        if c < end && seen.insert(c) && matches!(p, Ptr::Data { .. }) {
            n += 1;
        }
    };
    if let Some(h) = head {
        h.for_each(&mut visit);
    }
    for l in layers {
        l.for_each(&mut visit);
    }
    n * CHUNK_U64
}

pub(crate) fn list(cat: &Catalog) -> Vec<VolumeInfo> {
    let mut out = Vec::new();
    for (vn, v) in &cat.vols {
        // Children of this volume's snapshots, computed before taking its
        // gate (children() reads every volume's gate).
        let snaps = v.snaps_ordered();
        let kids: Vec<Vec<Child>> = snaps.iter().map(|(_, s)| cat.children(s.layer)).collect();
        let chain = v.state.read_gate();
        let head_owned = count_data(|f| chain.head.for_each(f));
        let mut snap_owned = 0;
        let mut by_snaps = 0;
        let mut snap_infos = Vec::new();
        for ((sn, s), kids) in snaps.iter().zip(kids) {
            let Some(l) = cat.frozen.get(&s.layer) else {
                continue;
            };
            snap_owned += count_data(|f| l.for_each(f));
            l.for_each(|c, p| {
                if matches!(p, Ptr::Data { .. }) && chain.lookup(c) != Some(p) {
                    by_snaps += 1;
                }
            });
            // Unique: overridden in every child layer.
            let mut unique = 0u64;
            l.for_each(|c, p| {
                if !matches!(p, Ptr::Data { .. }) {
                    return;
                }
                let all = kids.iter().all(|k| match k {
                    Child::Frozen(id) => cat.frozen.get(id).is_some_and(|f| f.contains(c)),
                    Child::Head(name) if name == vn => chain.head.get(c).is_some(),
                    Child::Head(name) => cat
                        .vols
                        .get(name)
                        .is_some_and(|o| o.state.read_gate().head.get(c).is_some()),
                });
                if all && !kids.is_empty() {
                    unique += 1;
                }
            });
            let layers = cat.resolve_chain(Some(s.layer)).unwrap_or_default();
            let full = format!("{vn}@{sn}");
            snap_infos.push(VolumeInfo {
                name: full.clone(),
                kind: ObjectKind::Snapshot,
                volume: vn.clone(),
                snapshot: Some((*sn).clone()),
                block_size: v.state.block_size,
                logical_bytes: s.size,
                referenced_bytes: referenced(None, &layers, s.size),
                used_bytes: unique * CHUNK_U64,
                used_by_snapshots_bytes: 0,
                origin: None,
                clones: cat
                    .vols
                    .iter()
                    .filter(|(_, o)| o.origin.as_deref() == Some(full.as_str()))
                    .map(|(n, _)| n.clone())
                    .collect(),
                created: s.created,
                open_handles: 0,
                checksum_errors: 0,
            });
        }
        out.push(VolumeInfo {
            name: vn.clone(),
            kind: ObjectKind::Volume,
            volume: vn.clone(),
            snapshot: None,
            block_size: v.state.block_size,
            logical_bytes: chain.size,
            referenced_bytes: referenced(Some(&chain.head), &chain.parents, chain.size),
            used_bytes: (head_owned + snap_owned) * CHUNK_U64,
            used_by_snapshots_bytes: by_snaps * CHUNK_U64,
            origin: v.origin.clone(),
            clones: Vec::new(),
            created: v.created,
            open_handles: v.state.open_handles.load(Ordering::SeqCst),
            checksum_errors: v.state.csum_errors.load(Ordering::Relaxed),
        });
        out.extend(snap_infos);
    }
    out
}

impl Pool {
    /// Volumes, each followed by its snapshots (oldest first).
    pub fn list(&self) -> Vec<VolumeInfo> {
        list(&crate::layer::lock(&self.inner.meta))
    }

    /// One volume (`VOL`) or snapshot (`VOL@SNAP`).
    pub fn info(&self, name: &str) -> Option<VolumeInfo> {
        self.list().into_iter().find(|i| i.name == name)
    }
}
