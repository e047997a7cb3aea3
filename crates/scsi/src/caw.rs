//! Read-modify-write commands that must be atomic against every other
//! writer of the logical unit: COMPARE AND WRITE (SBC-3 5.2), ORWRITE(16)
//! and WRITE ATOMIC(16).
//!
//! Plain writers take one stripe of [`IoLocks`] shared (chosen by LBA, so
//! concurrent writers rarely touch the same lock word); these commands take
//! every stripe exclusively. Reads take no lock.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::cdb::Rw;
use crate::lu::{CmdResult, LogicalUnit};
use crate::sense::{Asc, Sense, SenseKey};

/// MAXIMUM COMPARE AND WRITE LENGTH advertised in the Block Limits page
/// (the largest value the one-byte CDB field can hold).
pub(crate) const MAX_CAW_BLOCKS: u8 = 255;
/// MAXIMUM ATOMIC TRANSFER LENGTH advertised in the Block Limits page.
pub(crate) const MAX_ATOMIC_BLOCKS: u32 = 256;

const STRIPES: usize = 8;

/// Striped writer lock of a logical unit.
#[derive(Default)]
pub(crate) struct IoLocks {
    stripes: [RwLock<()>; STRIPES],
}

impl IoLocks {
    /// Shared access for a plain write starting at `lba`.
    pub(crate) fn shared(&self, lba: u64) -> RwLockReadGuard<'_, ()> {
        let i = ((lba >> 8) as usize) % STRIPES;
        self.stripes[i].read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive access against every writer (stripes taken in order).
    pub(crate) fn exclusive(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.stripes
            .iter()
            .map(|s| s.write().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }
}

impl LogicalUnit {
    /// COMPARE AND WRITE: the Data-Out buffer holds N verify blocks then N
    /// write blocks; both the CDB and the Expected Data Transfer Length
    /// must describe exactly 2 x N blocks.
    pub(crate) fn compare_and_write(
        &self,
        lba: u64,
        blocks: u8,
        fua: bool,
        data_out: &[u8],
        expected_len: u32,
    ) -> CmdResult {
        if let Some(s) = self.write_protect_sense() {
            return Err(s);
        }
        // NUMBER OF LOGICAL BLOCKS is one byte: MAX_CAW_BLOCKS (255) bounds
        // it already.
        let bs = self.dev.block_size().max(1) as usize;
        let n = usize::from(blocks) * bs;
        let total = 2 * n;
        if expected_len as usize != total || data_out.len() < total {
            return Err(Sense::invalid_field_in_cdb(13, None));
        }
        self.check_range(lba, u64::from(blocks))?;
        if blocks == 0 {
            return Ok(0);
        }
        let mut cur = vec![0u8; n];
        let _excl = self.io_locks.exclusive();
        self.dev
            .read_blocks(lba, &mut cur)
            .map_err(|e| self.device_error(&e))?;
        if let Some(i) = cur.iter().zip(&data_out[..n]).position(|(a, b)| a != b) {
            return Err(
                Sense::new(SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY)
                    .with_information(i as u64),
            );
        }
        self.dev
            .write_blocks(lba, &data_out[n..total], fua || !self.mode.wce())
            .map_err(|e| self.device_error(&e))?;
        Ok(total as u64)
    }

    /// ORWRITE(16): OR the Data-Out blocks into the medium.
    pub(crate) fn orwrite(&self, rw: &Rw, data_out: &[u8]) -> CmdResult {
        if let Some(s) = self.write_protect_sense() {
            return Err(s);
        }
        self.check_transfer_length(rw)?;
        self.check_range(rw.lba, u64::from(rw.blocks))?;
        let bs = self.dev.block_size().max(1) as usize;
        let total = u64::from(rw.blocks) * bs as u64;
        let n = (data_out.len() / bs).min(rw.blocks as usize) * bs;
        if n == 0 {
            return Ok(total);
        }
        let mut cur = vec![0u8; n];
        let _excl = self.io_locks.exclusive();
        self.dev
            .read_blocks(rw.lba, &mut cur)
            .map_err(|e| self.device_error(&e))?;
        for (c, d) in cur.iter_mut().zip(&data_out[..n]) {
            *c |= *d;
        }
        self.dev
            .write_blocks(rw.lba, &cur, rw.fua || !self.mode.wce())
            .map_err(|e| self.device_error(&e))?;
        Ok(total)
    }

    /// WRITE ATOMIC(16): all blocks are written under the exclusive writer
    /// lock, so no other writer interleaves; a short Data-Out buffer is
    /// refused rather than written partially.
    pub(crate) fn write_atomic(&self, rw: &Rw, data_out: &[u8]) -> CmdResult {
        if let Some(s) = self.write_protect_sense() {
            return Err(s);
        }
        self.check_range(rw.lba, u64::from(rw.blocks))?;
        if rw.blocks > MAX_ATOMIC_BLOCKS {
            return Err(Sense::invalid_field_in_cdb(12, None));
        }
        let bs = self.dev.block_size().max(1) as usize;
        let n = rw.blocks as usize * bs;
        if n == 0 {
            return Ok(0);
        }
        let Some(data) = data_out.get(..n) else {
            return Err(Sense::invalid_field_in_cdb(12, None));
        };
        let _excl = self.io_locks.exclusive();
        self.dev
            .write_blocks(rw.lba, data, rw.fua || !self.mode.wce())
            .map_err(|e| self.device_error(&e))?;
        Ok(n as u64)
    }
}
