//! Thin provisioning (SBC-3 4.7): UNMAP, WRITE SAME(10/16) with the UNMAP
//! bit and GET LBA STATUS. (SANITIZE BLOCK ERASE is in `sanitize.rs`.)

use crate::cdb::{be, WriteSame};
use crate::lu::{finish, CmdResult, LogicalUnit};
use crate::sense::Sense;

/// Block Limits: MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
pub(crate) const MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// Block Limits: MAXIMUM UNMAP LBA COUNT (per command).
pub(crate) const MAX_UNMAP_LBA_COUNT: u32 = 1024 * 1024;
/// Bytes written per device call by WRITE SAME.
const WRITE_SAME_CHUNK: usize = 1024 * 1024;
/// At most this many descriptors per GET LBA STATUS.
const MAX_LBA_STATUS_DESCRIPTORS: usize = 64;

impl LogicalUnit {
    /// Block Limits: MAXIMUM WRITE SAME LENGTH (blocks).
    pub(crate) fn max_write_same_blocks(&self) -> u64 {
        u64::from(crate::inquiry::MAX_TRANSFER_BYTES / self.dev.block_size().max(1))
    }

    fn require_thin(&self, byte: u16) -> Result<(), Sense> {
        if self.dev.is_thin() {
            Ok(())
        } else {
            Err(Sense::invalid_field_in_cdb(byte, None))
        }
    }

    /// UNMAP (SBC-3 5.28). Descriptors with zero blocks are ignored (even
    /// at an LBA past the end); all descriptors are validated first.
    pub(crate) fn unmap(&self, param_len: u32, data_out: &[u8]) -> CmdResult {
        if let Some(s) = self.write_protect_sense() {
            return Err(s);
        }
        self.require_thin(0)?;
        let plen = param_len as usize;
        if plen == 0 {
            return Ok(0);
        }
        if plen < 8 || data_out.len() < plen {
            return Err(Sense::parameter_list_length_error());
        }
        let p = &data_out[..plen];
        let bd_len = (be(&p[2..4]) as usize).min(plen - 8) / 16 * 16;
        let descs: Vec<(u64, u64)> = p[8..8 + bd_len]
            .chunks_exact(16)
            .map(|d| (be(&d[0..8]), be(&d[8..12])))
            .collect();
        if descs.len() > MAX_UNMAP_DESCRIPTORS as usize {
            return Err(Sense::invalid_field_in_param_list(2, None));
        }
        let mut total = 0u64;
        for (i, &(lba, n)) in descs.iter().enumerate() {
            if n == 0 {
                continue;
            }
            total = total.saturating_add(n);
            if total > u64::from(MAX_UNMAP_LBA_COUNT) {
                return Err(Sense::invalid_field_in_param_list(
                    (8 + i * 16 + 8) as u16,
                    None,
                ));
            }
            self.check_range(lba, n)?;
        }
        let _shared = self.io_locks.shared(descs.first().map_or(0, |d| d.0));
        for (lba, n) in descs {
            if n > 0 {
                self.dev.unmap(lba, n).map_err(|e| self.device_error(&e))?;
            }
        }
        Ok(u64::from(param_len))
    }

    /// WRITE SAME(10/16). 0 blocks means "to the end of the medium". With
    /// UNMAP set the range is deallocated whatever the Data-Out block holds
    /// (as Linux LIO does, and libiscsi's WriteSame10.UnmapUntilEnd
    /// expects); it then reads as zeros (LBPRZ=1). Otherwise the block is
    /// written.
    pub(crate) fn write_same(
        &self,
        ws: &WriteSame,
        data_out: &[u8],
        expected_len: u32,
    ) -> CmdResult {
        if let Some(s) = self.write_protect_sense() {
            return Err(s);
        }
        if ws.unmap {
            self.require_thin(1)?;
        }
        let bs = self.dev.block_size().max(1) as usize;
        let len_byte = if ws.sixteen { 10 } else { 7 };
        self.check_range(ws.lba, 0)?;
        let cap = self.dev.num_blocks();
        let blocks = if ws.blocks == 0 {
            cap.saturating_sub(ws.lba)
        } else {
            u64::from(ws.blocks)
        };
        if blocks > self.max_write_same_blocks() {
            return Err(Sense::invalid_field_in_cdb(len_byte, None));
        }
        let zeros;
        let block: &[u8] = if ws.ndob {
            if expected_len != 0 {
                return Err(Sense::invalid_field_in_cdb(1, Some(0)));
            }
            zeros = vec![0u8; bs];
            &zeros
        } else {
            match data_out.get(..bs) {
                Some(b) if expected_len as usize == bs => b,
                _ => return Err(Sense::invalid_field_in_cdb(len_byte, None)),
            }
        };
        self.check_range(ws.lba, blocks)?;
        let transfer = if ws.ndob { 0 } else { bs as u64 };
        if blocks == 0 {
            return Ok(transfer);
        }
        let _shared = self.io_locks.shared(ws.lba);
        if ws.unmap {
            self.dev
                .unmap(ws.lba, blocks)
                .map_err(|e| self.device_error(&e))?;
            return Ok(transfer);
        }
        let per_chunk = (WRITE_SAME_CHUNK / bs).max(1) as u64;
        let chunk_blocks = per_chunk.min(blocks) as usize;
        let buf: Vec<u8> = block.repeat(chunk_blocks);
        let fua = !self.mode.wce();
        let mut done = 0u64;
        while done < blocks {
            let n = (blocks - done).min(per_chunk) as usize;
            self.dev
                .write_blocks(ws.lba + done, &buf[..n * bs], fua)
                .map_err(|e| self.device_error(&e))?;
            done += n as u64;
        }
        Ok(transfer)
    }

    /// GET LBA STATUS (SBC-3 5.6): provisioning status descriptors from
    /// `lba` on (mapped 0, deallocated 1).
    pub(crate) fn get_lba_status(
        &self,
        lba: u64,
        alloc_len: u32,
        expected: u32,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        self.check_range(lba, 1)?;
        let cap = self.dev.num_blocks();
        out.extend_from_slice(&[0; 8]);
        let want = (alloc_len.saturating_sub(8) as usize / 16).clamp(1, MAX_LBA_STATUS_DESCRIPTORS);
        let mut at = lba;
        while at < cap && (out.len() - 8) / 16 < want {
            let (mapped, run) = self
                .dev
                .provisioning(at)
                .map_err(|e| self.device_error(&e))?;
            let run = run.clamp(1, cap - at).min(u64::from(u32::MAX));
            out.extend_from_slice(&at.to_be_bytes());
            out.extend_from_slice(&(run as u32).to_be_bytes());
            out.push(if mapped { 0 } else { 1 });
            out.extend_from_slice(&[0; 3]);
            at += run;
        }
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Ok(finish(out, alloc_len, expected))
    }
}
