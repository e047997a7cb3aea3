//! Third-party copy (SPC-4 6.4): EXTENDED COPY (LID1) with block-to-block
//! segment descriptors (02h) between logical units of the same target named
//! by identification CSCD descriptors (E4h, NAA designator), RECEIVE COPY
//! RESULTS (COPY STATUS, OPERATING PARAMETERS) and the Third-party Copy
//! VPD page data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::cdb::{be, Command, Rw};
use crate::lu::{finish, lock, CmdResult, LogicalUnit, Nexus, ScsiRequest};
use crate::sense::{Asc, Sense, SenseKey};

/// Finds the other logical units of the target by NAA designator. The
/// runtime installs one with [`LogicalUnit::set_copy_peers`].
pub trait CopyPeers: Send + Sync {
    fn lookup(&self, naa: &[u8]) -> Option<Arc<LogicalUnit>>;
}

pub(crate) const MAX_CSCD_DESCRIPTORS: u16 = 8;
pub(crate) const MAX_SEGMENT_DESCRIPTORS: u16 = 16;
pub(crate) const MAX_DESCRIPTOR_LIST_LEN: u32 = 1024;
/// Bytes per segment (65535 blocks of up to 64 KiB fit easily).
pub(crate) const MAX_SEGMENT_LEN: u32 = 256 * 1024 * 1024;
const CSCD_IDENTIFICATION: u8 = 0xE4;
const SEG_BLOCK_TO_BLOCK: u8 = 0x02;
const COPY_CHUNK: usize = 1024 * 1024;
/// Held results kept per I_T nexus.
const MAX_HELD: usize = 16;

/// Result of a completed EXTENDED COPY held for RECEIVE COPY RESULTS.
#[derive(Clone, Copy, Debug)]
struct CopyResult {
    ok: bool,
    segments: u16,
    bytes: u64,
}

/// Per-LU copy manager state.
#[derive(Default)]
pub(crate) struct CopyState {
    peers: RwLock<Option<Weak<dyn CopyPeers>>>,
    held: Mutex<HashMap<Nexus, Vec<(u8, CopyResult)>>>,
}

impl CopyState {
    pub(crate) fn nexus_lost(&self, nexus: Nexus) {
        lock(&self.held).remove(&nexus);
    }

    fn hold(&self, nexus: Nexus, list_id: u8, r: CopyResult) {
        let mut held = lock(&self.held);
        let v = held.entry(nexus).or_default();
        v.retain(|(id, _)| *id != list_id);
        if v.len() >= MAX_HELD {
            v.remove(0);
        }
        v.push((list_id, r));
    }
}

fn aborted(asc: Asc) -> Sense {
    Sense::new(SenseKey::COPY_ABORTED, asc)
}

/// A resolved copy target: this LU or a peer.
enum Target {
    This,
    Peer(Arc<LogicalUnit>),
}

impl LogicalUnit {
    /// Install the resolver for EXTENDED COPY targets on other logical
    /// units (may be called after all logical units exist; replaceable).
    pub fn set_copy_peers(&self, peers: Weak<dyn CopyPeers>) {
        *self.xcopy.peers.write().unwrap_or_else(|e| e.into_inner()) = Some(peers);
    }

    fn resolve(&self, d: &[u8]) -> Result<Target, Sense> {
        // d: 32-byte identification descriptor; designator header at 4..8.
        let code_set = d[4] & 0x0F;
        let assoc_type = d[5];
        let len = usize::from(d[7]);
        let Some(designator) = d.get(8..8 + len).filter(|_| len <= 20) else {
            return Err(Sense::invalid_field_in_param_list(7, None));
        };
        if d[1] & 0x1F != 0 {
            // Only direct access block devices.
            return Err(aborted(Asc::UNREACHABLE_COPY_TARGET));
        }
        // NAA (type 3), associated with the logical unit, binary.
        if code_set != 1 || assoc_type & 0x3F != 0x03 {
            return Err(aborted(Asc::UNREACHABLE_COPY_TARGET));
        }
        if designator == self.ident.naa {
            return Ok(Target::This);
        }
        let peers = self
            .xcopy
            .peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        peers
            .and_then(|w| w.upgrade())
            .and_then(|p| p.lookup(designator))
            .map(Target::Peer)
            .ok_or(aborted(Asc::UNREACHABLE_COPY_TARGET))
    }

    /// EXTENDED COPY (LID1).
    pub(crate) fn extended_copy(&self, req: &ScsiRequest<'_>, param_len: u32) -> CmdResult {
        let plen = param_len as usize;
        if plen == 0 {
            return Ok(0);
        }
        if plen < 16 || req.data_out.len() < plen {
            return Err(Sense::parameter_list_length_error());
        }
        let p = &req.data_out[..plen];
        let list_id = p[0];
        let usage = (p[1] >> 3) & 0x03;
        let tgt_len = be(&p[2..4]) as usize;
        let seg_len = be(&p[8..12]) as usize;
        let inline_len = be(&p[12..16]) as usize;
        let lists = tgt_len.saturating_add(seg_len);
        if lists.saturating_add(inline_len).saturating_add(16) > plen {
            return Err(Sense::parameter_list_length_error());
        }
        if lists > MAX_DESCRIPTOR_LIST_LEN as usize {
            return Err(Sense::parameter_list_length_error());
        }
        if inline_len != 0 {
            return Err(Sense::invalid_field_in_param_list(12, None));
        }
        let tgts = &p[16..16 + tgt_len];
        let segs = &p[16 + tgt_len..16 + lists];
        if !tgt_len.is_multiple_of(32) {
            return Err(Sense::invalid_field_in_param_list(2, None));
        }
        if tgt_len / 32 > usize::from(MAX_CSCD_DESCRIPTORS) {
            return Err(Sense::illegal(Asc::TOO_MANY_TARGET_DESCRIPTORS));
        }
        for (i, d) in tgts.chunks_exact(32).enumerate() {
            if d[0] != CSCD_IDENTIFICATION {
                return Err(Sense::illegal(Asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE)
                    .with_information((16 + i * 32) as u64));
            }
        }
        // Split the segment descriptors (4-byte header + DESCRIPTOR LENGTH).
        let mut seg_list = Vec::new();
        let mut off = 0;
        while off < segs.len() {
            let hdr = segs
                .get(off..off + 4)
                .ok_or_else(Sense::parameter_list_length_error)?;
            let dlen = 4 + be(&hdr[2..4]) as usize;
            let d = segs
                .get(off..off + dlen)
                .ok_or_else(Sense::parameter_list_length_error)?;
            seg_list.push(d);
            off += dlen;
        }
        if seg_list.len() > usize::from(MAX_SEGMENT_DESCRIPTORS) {
            return Err(Sense::illegal(Asc::TOO_MANY_SEGMENT_DESCRIPTORS));
        }
        for d in &seg_list {
            if d[0] != SEG_BLOCK_TO_BLOCK {
                return Err(Sense::illegal(
                    Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE,
                ));
            }
            if d.len() != 28 {
                return Err(Sense::invalid_field_in_param_list(18, None));
            }
        }
        let mut result = CopyResult {
            ok: true,
            segments: 0,
            bytes: 0,
        };
        let outcome = (|| {
            for d in &seg_list {
                let bytes = self.copy_segment(req, tgts, d)?;
                result.segments += 1;
                result.bytes += bytes;
            }
            Ok(())
        })();
        if outcome.is_err() {
            result.ok = false;
        }
        if usage < 2 {
            self.xcopy.hold(req.nexus, list_id, result);
        }
        outcome.map(|()| u64::from(param_len))
    }

    /// Run one block-to-block segment; returns the bytes copied.
    fn copy_segment(&self, req: &ScsiRequest<'_>, tgts: &[u8], d: &[u8]) -> Result<u64, Sense> {
        let dc = d[1] & 0x02 != 0;
        let cscd = |idx: usize| -> Result<Target, Sense> {
            let t = tgts
                .get(idx * 32..idx * 32 + 32)
                .ok_or(aborted(Asc::UNREACHABLE_COPY_TARGET))?;
            self.resolve(t)
        };
        let src = cscd(be(&d[4..6]) as usize)?;
        let dst = cscd(be(&d[6..8]) as usize)?;
        let nblocks = be(&d[10..12]);
        let src_lba = be(&d[12..20]);
        let dst_lba = be(&d[20..28]);
        let (src_lu, dst_lu): (&LogicalUnit, &LogicalUnit) = (
            match &src {
                Target::This => self,
                Target::Peer(p) => p,
            },
            match &dst {
                Target::This => self,
                Target::Peer(p) => p,
            },
        );
        let sbs = u64::from(src_lu.dev.block_size().max(1));
        let dbs = u64::from(dst_lu.dev.block_size().max(1));
        let bytes = nblocks.saturating_mul(if dc { dbs } else { sbs });
        if bytes % sbs != 0 || bytes % dbs != 0 || bytes > u64::from(MAX_SEGMENT_LEN) {
            return Err(aborted(Asc::NO_ADDITIONAL_SENSE));
        }
        let (sn, dn) = (bytes / sbs, bytes / dbs);
        if src_lu.check_range(src_lba, sn).is_err() || dst_lu.check_range(dst_lba, dn).is_err() {
            return Err(aborted(Asc::NO_ADDITIONAL_SENSE));
        }
        if bytes == 0 {
            return Ok(0);
        }
        if let Some(s) = dst_lu.write_protect_sense() {
            return Err(s);
        }
        // Peers apply their own reservations to this nexus.
        for (l, cmd) in [
            (src_lu, Command::Read(rw(src_lba))),
            (dst_lu, Command::Write(rw(dst_lba))),
        ] {
            if !std::ptr::eq(l, self) {
                // A peer being sanitized is not reachable.
                if l.sanitize_gate(&cmd).is_err() {
                    return Err(aborted(Asc::COPY_TARGET_DEVICE_NOT_REACHABLE));
                }
                l.check_conflict(&cmd, req)?;
            }
        }
        let chunk = (COPY_CHUNK as u64 / sbs / dbs).max(1) * sbs * dbs;
        let mut buf = vec![0u8; chunk.min(bytes) as usize];
        let fua = !dst_lu.mode.wce();
        let mut done = 0u64;
        while done < bytes {
            let n = (bytes - done).min(chunk) as usize;
            let b = &mut buf[..n];
            src_lu
                .dev
                .read_blocks(src_lba + done / sbs, b)
                .map_err(|e| src_lu.device_error(&e))?;
            let _shared = dst_lu.io_locks.shared(dst_lba);
            dst_lu
                .dev
                .write_blocks(dst_lba + done / dbs, b, fua)
                .map_err(|e| dst_lu.device_error(&e))?;
            done += n as u64;
        }
        Ok(bytes)
    }

    /// RECEIVE COPY RESULTS: COPY STATUS (00h) and OPERATING PARAMETERS (03h).
    pub(crate) fn receive_copy_results(
        &self,
        req: &ScsiRequest<'_>,
        sa: u8,
        list_id: u8,
        alloc_len: u32,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        match sa {
            0x00 => {
                let held = lock(&self.xcopy.held);
                let r = held
                    .get(&req.nexus)
                    .and_then(|v| v.iter().find(|(id, _)| *id == list_id))
                    .map(|(_, r)| *r)
                    .ok_or(Sense::invalid_field_in_cdb(2, None))?;
                drop(held);
                out.extend_from_slice(&8u32.to_be_bytes());
                out.push(if r.ok { 0x01 } else { 0x02 });
                out.extend_from_slice(&r.segments.to_be_bytes());
                out.push(0x00); // transfer count in bytes
                out.extend_from_slice(&(r.bytes.min(u64::from(u32::MAX)) as u32).to_be_bytes());
            }
            0x03 => {
                out.extend_from_slice(&[0; 8]);
                out.extend_from_slice(&MAX_CSCD_DESCRIPTORS.to_be_bytes());
                out.extend_from_slice(&MAX_SEGMENT_DESCRIPTORS.to_be_bytes());
                out.extend_from_slice(&MAX_DESCRIPTOR_LIST_LEN.to_be_bytes());
                out.extend_from_slice(&MAX_SEGMENT_LEN.to_be_bytes());
                out.extend_from_slice(&[0; 12]); // inline, held data, stream
                out.extend_from_slice(&[0, 0, 0, 1, 1]); // total / max concurrent copies
                out.push(9); // data segment granularity: 512 bytes
                out.extend_from_slice(&[0, 0, 0, 0, 0]);
                out.push(2); // implemented descriptor list length
                out.extend_from_slice(&[SEG_BLOCK_TO_BLOCK, CSCD_IDENTIFICATION]);
                let avail = (out.len() - 4) as u32;
                out[..4].copy_from_slice(&avail.to_be_bytes());
            }
            _ => return Err(Sense::invalid_field_in_cdb(1, Some(4))),
        }
        Ok(finish(out, alloc_len, req.expected_len))
    }
}

fn rw(lba: u64) -> Rw {
    Rw {
        lba,
        blocks: 1,
        dpo: false,
        fua: false,
        cdb_len: 16,
    }
}

/// Third-party Copy VPD page (8Fh) body: the Block Device ROD Limits are
/// not offered (no token copy); one Supported Commands descriptor (0001h)
/// listing EXTENDED COPY (LID1) and RECEIVE COPY RESULTS, then the
/// Parameter Data descriptor (0008h) with the LID1 limits.
pub(crate) fn third_party_copy_vpd(out: &mut Vec<u8>) {
    // Supported commands: opcode 83h with SA 00h, opcode 84h with SA 00h, 03h.
    let cmds: [&[u8]; 2] = [&[0x83, 1, 0x00], &[0x84, 2, 0x00, 0x03]];
    let list_len: usize = cmds.iter().map(|c| c.len()).sum();
    let mut d = vec![list_len as u8];
    for c in cmds {
        d.extend_from_slice(c);
    }
    while (d.len() + 4) % 4 != 0 {
        d.push(0);
    }
    out.extend_from_slice(&0x0001u16.to_be_bytes());
    out.extend_from_slice(&(d.len() as u16).to_be_bytes());
    out.extend_from_slice(&d);
    // Parameter data descriptor (SPC-4 7.8.17.4): 28 bytes after header.
    out.extend_from_slice(&0x0008u16.to_be_bytes());
    out.extend_from_slice(&28u16.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&MAX_CSCD_DESCRIPTORS.to_be_bytes());
    out.extend_from_slice(&MAX_SEGMENT_DESCRIPTORS.to_be_bytes());
    out.extend_from_slice(&MAX_DESCRIPTOR_LIST_LEN.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // maximum inline data length
    out.extend_from_slice(&[0; 12]);
}
