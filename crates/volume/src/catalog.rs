//! The catalog (volumes, snapshots, layers) and the metadata operations that
//! change it.
//!
//! Structural operations are logged *logically* ([`Op`]) and applied by the
//! same [`Catalog::apply`] code live and during recovery, so replay cannot
//! drift from what the running pool did. Data-path changes are logged
//! *physically* as [`Op::Data`] records (chunk → pointer) drained from the
//! heads' shard logs.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::error::{ErrorKind, Result, VolumeError};
use crate::layer::{
    Chain, ChunkMap, Free, Frozen, Head, LayerId, Ptr, Rec, VolState, CHUNK_U64, SHARDS,
};

/// One logged metadata operation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    Data {
        layer: LayerId,
        recs: Vec<Rec>,
    },
    CreateVolume {
        name: String,
        size: u64,
        block_size: u32,
        head: LayerId,
        parent: Option<LayerId>,
        origin: Option<String>,
        created: u64,
    },
    Resize {
        name: String,
        size: u64,
    },
    DeleteVolume {
        name: String,
    },
    Snapshot {
        vol: String,
        snap: String,
        new_head: LayerId,
        created: u64,
    },
    DeleteSnapshot {
        vol: String,
        snap: String,
    },
    Rollback {
        vol: String,
        snap: String,
        new_head: LayerId,
    },
}

pub(crate) struct SnapMeta {
    pub layer: LayerId,
    pub size: u64,
    pub created: u64,
    pub order: u64,
}

pub(crate) struct Vol {
    pub state: Arc<VolState>,
    pub snaps: BTreeMap<String, SnapMeta>,
    /// `vol@snap` this volume was cloned from.
    pub origin: Option<String>,
    pub created: u64,
}

impl Vol {
    /// Snapshots in creation order.
    pub fn snaps_ordered(&self) -> Vec<(&String, &SnapMeta)> {
        let mut v: Vec<_> = self.snaps.iter().collect();
        v.sort_by_key(|(_, s)| s.order);
        v
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Child {
    Frozen(LayerId),
    Head(String),
}

/// Side effects of applying an operation live.
#[derive(Default)]
pub(crate) struct ApplyCtx {
    /// Data records drained from affected heads; logged before the op.
    pub pre: Vec<Op>,
    /// Blocks to release once the op is durable.
    pub frees: Vec<Free>,
    /// Map entries copied or moved (work done; snapshot/clone add 0).
    pub touched: u64,
}

#[derive(Default)]
pub(crate) struct Catalog {
    pub vols: BTreeMap<String, Vol>,
    pub frozen: HashMap<LayerId, Arc<Frozen>>,
    pub next_layer: LayerId,
    pub next_order: u64,
}

pub(crate) fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(crate) fn check_size(size: u64, block_size: u32) -> Result<()> {
    if size == 0 || !size.is_multiple_of(u64::from(block_size.max(1))) || size > (1u64 << 62) {
        return Err(VolumeError::new(
            ErrorKind::InvalidSize,
            format!("size {size} is not a positive multiple of the block size {block_size}"),
        ));
    }
    Ok(())
}

fn nf(what: &str) -> VolumeError {
    VolumeError::new(ErrorKind::NotFound, what.to_string())
}

/// Move every pending record of `chain.head` into `ctx` (so it is logged
/// before the structural op that follows).
fn drain(chain: &Chain, ctx: &mut ApplyCtx) {
    let mut recs = Vec::new();
    for s in chain.head.shards.iter() {
        let mut sh = crate::layer::write(s);
        recs.append(&mut sh.log);
        ctx.frees.append(&mut sh.frees);
    }
    if !recs.is_empty() {
        ctx.pre.push(Op::Data {
            layer: chain.head.id,
            recs,
        });
    }
}

fn free_all(entries: impl FnOnce(&mut dyn FnMut(u64, Ptr)), ctx: &mut ApplyCtx) {
    let frees = &mut ctx.frees;
    entries(&mut |_, p| {
        if let Ptr::Data { phys, .. } = p {
            frees.push((phys, true));
        }
    });
}

impl Catalog {
    pub fn vol(&self, name: &str) -> Result<&Vol> {
        self.vols
            .get(name)
            .ok_or_else(|| nf(&format!("volume {name}")))
    }

    fn snap(&self, vol: &str, snap: &str) -> Result<&SnapMeta> {
        self.vol(vol)?
            .snaps
            .get(snap)
            .ok_or_else(|| nf(&format!("snapshot {vol}@{snap}")))
    }

    /// The frozen layers below `parent` (inclusive), nearest first.
    pub fn resolve_chain(&self, parent: Option<LayerId>) -> Result<Vec<Arc<Frozen>>> {
        let mut out = Vec::new();
        let mut cur = parent;
        while let Some(id) = cur {
            if out.len() > self.frozen.len() {
                return Err(VolumeError::corrupt(format!("layer {id}: parent cycle")));
            }
            let l = self
                .frozen
                .get(&id)
                .ok_or_else(|| VolumeError::corrupt(format!("missing layer {id}")))?;
            out.push(l.clone());
            cur = l.parent;
        }
        Ok(out)
    }

    pub fn children(&self, layer: LayerId) -> Vec<Child> {
        let mut v: Vec<Child> = self
            .frozen
            .values()
            .filter(|f| f.parent == Some(layer))
            .map(|f| Child::Frozen(f.id))
            .collect();
        for (name, vol) in &self.vols {
            if vol.state.read_gate().head_parent() == Some(layer) {
                v.push(Child::Head(name.clone()));
            }
        }
        v
    }

    /// Name of `vol@snap` for a frozen layer that is a snapshot.
    pub fn snapshot_name(&self, layer: LayerId) -> Option<String> {
        self.vols.iter().find_map(|(vn, v)| {
            v.snaps
                .iter()
                .find(|(_, s)| s.layer == layer)
                .map(|(sn, _)| format!("{vn}@{sn}"))
        })
    }

    fn bump_layer(&mut self, id: LayerId) {
        self.next_layer = self.next_layer.max(id + 1);
    }

    /// Checks that `op` can be applied; nothing is changed.
    pub fn validate(&self, op: &Op) -> Result<()> {
        match op {
            Op::Data { layer, .. } => {
                if !self
                    .vols
                    .values()
                    .any(|v| v.state.read_gate().head.id == *layer)
                {
                    return Err(VolumeError::corrupt(format!(
                        "data record for unknown head layer {layer}"
                    )));
                }
            }
            Op::CreateVolume {
                name,
                parent,
                head,
                block_size,
                size,
                ..
            } => {
                if !valid_name(name) {
                    return Err(VolumeError::new(ErrorKind::InvalidName, name.clone()));
                }
                if self.vols.contains_key(name) {
                    return Err(VolumeError::new(
                        ErrorKind::AlreadyExists,
                        format!("volume {name}"),
                    ));
                }
                if !block_size.is_power_of_two() || !(512..=65536).contains(block_size) {
                    return Err(VolumeError::new(
                        ErrorKind::InvalidSize,
                        format!("block size {block_size}"),
                    ));
                }
                check_size(*size, *block_size)?;
                if self.frozen.contains_key(head) {
                    return Err(VolumeError::corrupt(format!("layer {head} reused")));
                }
                self.resolve_chain(*parent)?;
            }
            Op::Resize { name, size } => {
                let vol = self.vol(name)?;
                check_size(*size, vol.state.block_size)?;
            }
            Op::DeleteVolume { name } => {
                let vol = self.vol(name)?;
                if matches!(op, Op::DeleteVolume { .. }) {
                    let own: Vec<LayerId> = vol.snaps.values().map(|s| s.layer).collect();
                    for (sn, s) in &vol.snaps {
                        for c in self.children(s.layer) {
                            let inside = match &c {
                                Child::Frozen(id) => own.contains(id),
                                Child::Head(v) => v == name,
                            };
                            if !inside {
                                return Err(VolumeError::new(
                                    ErrorKind::HasClones,
                                    format!("snapshot {name}@{sn} has clone {c:?}"),
                                ));
                            }
                        }
                    }
                }
            }
            Op::Snapshot { vol, snap, .. } => {
                if !valid_name(snap) {
                    return Err(VolumeError::new(ErrorKind::InvalidName, snap.clone()));
                }
                if self.vol(vol)?.snaps.contains_key(snap) {
                    return Err(VolumeError::new(
                        ErrorKind::AlreadyExists,
                        format!("snapshot {vol}@{snap}"),
                    ));
                }
            }
            Op::DeleteSnapshot { vol, snap } => {
                let s = self.snap(vol, snap)?;
                let ch = self.children(s.layer);
                if ch.len() != 1 {
                    let clones: Vec<String> = ch
                        .iter()
                        .map(|c| match c {
                            Child::Head(v) => v.clone(),
                            Child::Frozen(id) => self
                                .snapshot_name(*id)
                                .unwrap_or_else(|| format!("layer {id}")),
                        })
                        .collect();
                    return Err(VolumeError::new(
                        ErrorKind::HasClones,
                        format!(
                            "snapshot {vol}@{snap} is the origin of {}",
                            clones.join(", ")
                        ),
                    ));
                }
            }
            Op::Rollback { vol, snap, .. } => {
                let v = self.vol(vol)?;
                let s = self.snap(vol, snap)?;
                if v.snaps.values().any(|o| o.order > s.order) {
                    return Err(VolumeError::new(
                        ErrorKind::HasSnapshots,
                        format!("{vol}@{snap} is not the latest snapshot; delete newer ones first"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Validate and apply `op`. Live, the caller holds the commit lock; the
    /// affected volumes' gates are taken exclusively in here.
    pub fn apply(&mut self, op: &Op, ctx: &mut ApplyCtx) -> Result<()> {
        self.validate(op)?;
        match op {
            Op::Data { layer, recs } => {
                let vol = self
                    .vols
                    .values()
                    .find(|v| v.state.read_gate().head.id == *layer)
                    .ok_or_else(|| VolumeError::corrupt("data record for unknown layer"))?;
                let ch = vol.state.write_gate();
                for &(c, p) in recs {
                    let mut sh = ch.head.write(c);
                    match p {
                        Some(p) => sh.map.insert(c, p),
                        None => sh.map.remove(&c),
                    };
                }
            }
            Op::CreateVolume {
                name,
                size,
                block_size,
                head,
                parent,
                origin,
                created,
            } => {
                let parents = self.resolve_chain(*parent)?;
                let chain = Chain {
                    head: Arc::new(Head::new(*head)),
                    parents,
                    size: *size,
                    deleted: false,
                };
                let state = Arc::new(VolState::new(name, *block_size, chain));
                self.vols.insert(
                    name.clone(),
                    Vol {
                        state,
                        snaps: BTreeMap::new(),
                        origin: origin.clone(),
                        created: *created,
                    },
                );
                self.bump_layer(*head);
            }
            Op::Resize { name, size } => {
                let vol = self.vol(name)?;
                let mut ch = vol.state.write_gate();
                if *size < ch.size {
                    drain(&ch, ctx);
                    let end = size.div_ceil(CHUNK_U64);
                    for s in ch.head.shards.iter() {
                        let mut sh = crate::layer::write(s);
                        sh.map.retain(|&c, p| {
                            if c < end {
                                return true;
                            }
                            if let Ptr::Data { phys, .. } = *p {
                                ctx.frees.push((phys, true));
                            }
                            false
                        });
                    }
                    // Hide parent data beyond the end, so a later grow reads zeros.
                    let mut hide = Vec::new();
                    for l in &ch.parents {
                        l.for_each(|c, _| {
                            if c >= end {
                                hide.push(c);
                            }
                        });
                    }
                    for c in hide {
                        if matches!(ch.lookup_parents(c), Some(Ptr::Data { .. })) {
                            ch.head.write(c).map.insert(c, Ptr::Zero);
                            ctx.touched += 1;
                        }
                    }
                }
                ch.size = *size;
                vol.state
                    .size
                    .store(*size, std::sync::atomic::Ordering::SeqCst);
            }
            Op::DeleteVolume { name } => {
                let vol = self
                    .vols
                    .remove(name)
                    .ok_or_else(|| nf(&format!("volume {name}")))?;
                {
                    let mut ch = vol.state.write_gate();
                    drain(&ch, ctx);
                    ch.deleted = true;
                    let head = ch.head.clone();
                    free_all(|f| head.for_each(f), ctx);
                    ch.head = Arc::new(Head::new(u64::MAX));
                    ch.parents.clear();
                }
                for s in vol.snaps.values() {
                    if let Some(l) = self.frozen.remove(&s.layer) {
                        free_all(|f| l.for_each(f), ctx);
                    }
                }
            }
            Op::Snapshot {
                vol,
                snap,
                new_head,
                created,
            } => {
                let order = self.next_order;
                let v = self.vols.get_mut(vol).ok_or_else(|| nf(vol))?;
                let frozen = {
                    let mut ch = v.state.write_gate();
                    drain(&ch, ctx);
                    let maps: Vec<ChunkMap> = ch
                        .head
                        .shards
                        .iter()
                        .map(|s| std::mem::take(&mut crate::layer::write(s).map))
                        .collect();
                    let frozen = Arc::new(Frozen {
                        id: ch.head.id,
                        parent: ch.head_parent(),
                        maps: maps.into_boxed_slice(),
                    });
                    ch.parents.insert(0, frozen.clone());
                    ch.head = Arc::new(Head::new(*new_head));
                    frozen
                };
                v.snaps.insert(
                    snap.clone(),
                    SnapMeta {
                        layer: frozen.id,
                        size: v.state.size.load(std::sync::atomic::Ordering::SeqCst),
                        created: *created,
                        order,
                    },
                );
                self.frozen.insert(frozen.id, frozen);
                self.next_order += 1;
                self.bump_layer(*new_head);
            }
            Op::DeleteSnapshot { vol, snap } => self.delete_snapshot(vol, snap, ctx)?,
            Op::Rollback {
                vol,
                snap,
                new_head,
            } => {
                let s = self.snap(vol, snap)?;
                let (layer, size) = (s.layer, s.size);
                let v = self.vol(vol)?;
                {
                    let mut ch = v.state.write_gate();
                    if ch.head_parent() != Some(layer) {
                        return Err(VolumeError::corrupt(format!(
                            "{vol}@{snap}: latest snapshot is not the head's parent"
                        )));
                    }
                    drain(&ch, ctx);
                    let head = ch.head.clone();
                    free_all(|f| head.for_each(f), ctx);
                    ch.head = Arc::new(Head::new(*new_head));
                    ch.size = size;
                    v.state
                        .size
                        .store(size, std::sync::atomic::Ordering::SeqCst);
                }
                self.bump_layer(*new_head);
            }
        }
        Ok(())
    }

    fn delete_snapshot(&mut self, vol: &str, snap: &str, ctx: &mut ApplyCtx) -> Result<()> {
        let layer_id = self.snap(vol, snap)?.layer;
        let l = self
            .frozen
            .get(&layer_id)
            .cloned()
            .ok_or_else(|| VolumeError::corrupt(format!("missing layer {layer_id}")))?;
        let child = self.children(layer_id).pop();
        match child {
            Some(Child::Head(vname)) => {
                let v = self.vol(&vname)?;
                let mut ch = v.state.write_gate();
                drain(&ch, ctx);
                for m in l.maps.iter() {
                    for (&c, &p) in m {
                        let mut sh = ch.head.write(c);
                        match sh.map.entry(c) {
                            Entry::Occupied(_) => {
                                if let Ptr::Data { phys, .. } = p {
                                    ctx.frees.push((phys, true));
                                }
                            }
                            Entry::Vacant(e) => {
                                e.insert(p);
                            }
                        }
                        ctx.touched += 1;
                    }
                }
                ch.parents.remove(0);
            }
            Some(Child::Frozen(cid)) => {
                let c = self
                    .frozen
                    .get(&cid)
                    .cloned()
                    .ok_or_else(|| VolumeError::corrupt(format!("missing layer {cid}")))?;
                let mut maps: Vec<ChunkMap> = c.maps.to_vec();
                for (i, m) in l.maps.iter().enumerate().take(SHARDS) {
                    for (&k, &p) in m {
                        match maps[i].entry(k) {
                            Entry::Occupied(_) => {
                                if let Ptr::Data { phys, .. } = p {
                                    ctx.frees.push((phys, true));
                                }
                            }
                            Entry::Vacant(e) => {
                                e.insert(p);
                            }
                        }
                    }
                }
                ctx.touched += (l.len() + c.len()) as u64;
                let merged = Arc::new(Frozen {
                    id: cid,
                    parent: l.parent,
                    maps: maps.into_boxed_slice(),
                });
                self.frozen.insert(cid, merged);
                self.frozen.remove(&layer_id);
                let states: Vec<Arc<VolState>> =
                    self.vols.values().map(|v| v.state.clone()).collect();
                for st in states {
                    let mut ch = st.write_gate();
                    if ch.parents.iter().any(|p| p.id == layer_id) {
                        ch.parents = self.resolve_chain(ch.head_parent())?;
                    }
                }
            }
            None => {
                return Err(VolumeError::corrupt(format!(
                    "snapshot {vol}@{snap} has no child layer"
                )))
            }
        }
        self.frozen.remove(&layer_id);
        if let Some(v) = self.vols.get_mut(vol) {
            v.snaps.remove(snap);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("vol-1.a_B"));
        assert!(!valid_name(""));
        assert!(!valid_name("a@b"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(65)));
        assert!(valid_name(&"x".repeat(64)));
    }
}
