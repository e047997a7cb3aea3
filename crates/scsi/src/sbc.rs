//! SBC-3 block commands: READ, WRITE, WRITE AND VERIFY, VERIFY, READ
//! CAPACITY, START STOP UNIT and the LBA range checks.

use std::sync::atomic::Ordering;

use crate::cdb::{Rw, StartStopUnit};
use crate::inquiry::MAX_TRANSFER_BYTES;
use crate::lu::{CmdResult, LogicalUnit};
use crate::sense::{Asc, Sense, SenseKey};

/// Scratch chunk used by VERIFY with BYTCHK=1.
const VERIFY_CHUNK: usize = 1024 * 1024;

impl LogicalUnit {
    /// LBA OUT OF RANGE unless `lba .. lba + blocks` lies on the medium.
    /// The LBA itself must be on the medium even for 0 blocks.
    pub(crate) fn check_range(&self, lba: u64, blocks: u64) -> Result<(), Sense> {
        let cap = self.dev.num_blocks();
        match lba.checked_add(blocks) {
            Some(end) if lba < cap && end <= cap => Ok(()),
            _ => Err(Sense::lba_out_of_range()),
        }
    }

    /// Range check where 0 blocks means "to the end of the medium"
    /// (PRE-FETCH, SYNCHRONIZE CACHE).
    pub(crate) fn check_range_to_end(&self, lba: u64, blocks: u32) -> Result<(), Sense> {
        self.check_range(lba, u64::from(blocks))
    }

    /// INVALID FIELD IN CDB (pointing at the TRANSFER LENGTH field) if the
    /// transfer exceeds the Block Limits MAXIMUM TRANSFER LENGTH.
    pub(crate) fn check_transfer_length(&self, rw: &Rw) -> Result<(), Sense> {
        let max_blocks = MAX_TRANSFER_BYTES / self.dev.block_size().max(1);
        if rw.blocks > max_blocks {
            let byte = match rw.cdb_len {
                6 => 4,
                10 => 7,
                12 => 6,
                _ => 10,
            };
            return Err(Sense::invalid_field_in_cdb(byte, None));
        }
        Ok(())
    }

    pub(crate) fn read(&self, rw: &Rw, expected_len: u32, data_in: &mut Vec<u8>) -> CmdResult {
        self.check_transfer_length(rw)?;
        self.check_range(rw.lba, u64::from(rw.blocks))?;
        let bs = u64::from(self.dev.block_size().max(1));
        let total = u64::from(rw.blocks) * bs;
        // Never read more than the initiator can take: the whole blocks
        // covering min(total, expected_len).
        let want = total.min(u64::from(expected_len));
        if want == 0 {
            return Ok(total);
        }
        let read_len = want.div_ceil(bs) * bs;
        data_in.resize(read_len as usize, 0);
        self.dev
            .read_blocks(rw.lba, data_in)
            .map_err(|e| self.device_error(&e))?;
        data_in.truncate(want as usize);
        Ok(total)
    }

    /// WRITE and WRITE AND VERIFY. Writes the whole blocks the initiator
    /// actually sent (at most the CDB's transfer length); a shorter Data-Out
    /// buffer is reported through the residual by the transport.
    pub(crate) fn write(&self, rw: &Rw, data_out: &[u8], verify: bool) -> CmdResult {
        if let Some(s) = self.write_protect_sense() {
            return Err(s);
        }
        self.check_transfer_length(rw)?;
        self.check_range(rw.lba, u64::from(rw.blocks))?;
        let bs = self.dev.block_size().max(1) as usize;
        let total = u64::from(rw.blocks) * bs as u64;
        let avail_blocks = data_out.len() / bs;
        let n = avail_blocks.min(rw.blocks as usize);
        if n > 0 {
            // WRITE AND VERIFY: data must be on the medium before "verifying".
            let fua = rw.fua || verify || !self.mode.wce();
            let _shared = self.io_locks.shared(rw.lba);
            self.dev
                .write_blocks(rw.lba, &data_out[..n * bs], fua)
                .map_err(|e| self.device_error(&e))?;
        }
        Ok(total)
    }

    /// VERIFY. BYTCHK=0: medium verification only (range check; the backing
    /// store has no separate media check). BYTCHK=1: compare the Data-Out
    /// buffer with the medium; MISCOMPARE with INFORMATION = byte offset.
    pub(crate) fn verify(
        &self,
        rw: &Rw,
        bytchk: bool,
        data_out: &[u8],
        scratch: &mut Vec<u8>,
    ) -> CmdResult {
        if bytchk {
            self.check_transfer_length(rw)?;
        }
        self.check_range(rw.lba, u64::from(rw.blocks))?;
        if !bytchk {
            return Ok(0);
        }
        let bs = self.dev.block_size().max(1) as usize;
        let total = u64::from(rw.blocks) * bs as u64;
        let cmp_len = (total.min(data_out.len() as u64)) as usize;
        let chunk = (VERIFY_CHUNK / bs).max(1) * bs;
        let mut off = 0usize;
        let result = loop {
            if off >= cmp_len {
                break Ok(total);
            }
            let n = (cmp_len - off).min(chunk);
            let read_len = n.div_ceil(bs) * bs;
            scratch.clear();
            scratch.resize(read_len, 0);
            let lba = rw.lba + (off / bs) as u64;
            if let Err(e) = self.dev.read_blocks(lba, scratch) {
                break Err(self.device_error(&e));
            }
            if let Some(i) = scratch[..n]
                .iter()
                .zip(&data_out[off..off + n])
                .position(|(a, b)| a != b)
            {
                break Err(
                    Sense::new(SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY)
                        .with_information((off + i) as u64),
                );
            }
            off += n;
        };
        scratch.clear();
        result
    }

    pub(crate) fn read_capacity_10(&self, out: &mut Vec<u8>) {
        let last = self.dev.num_blocks().saturating_sub(1);
        let last = u32::try_from(last).unwrap_or(u32::MAX);
        out.extend_from_slice(&last.to_be_bytes());
        out.extend_from_slice(&self.dev.block_size().to_be_bytes());
    }

    pub(crate) fn read_capacity_16(&self, out: &mut Vec<u8>) {
        let last = self.dev.num_blocks().saturating_sub(1);
        out.extend_from_slice(&last.to_be_bytes());
        out.extend_from_slice(&self.dev.block_size().to_be_bytes());
        // P_TYPE/PROT_EN 0, P_I_EXPONENT/LBPPBE 0; thin devices: LBPME and
        // LBPRZ (unmapped blocks read as zeros); lowest aligned LBA 0.
        out.resize(32, 0);
        if self.dev.is_thin() {
            out[14] = 0xC0;
        }
    }

    /// START STOP UNIT. A POWER CONDITION other than START_VALID is accepted
    /// and ignored. Stopping flushes the cache unless NO_FLUSH. LOEJ fails
    /// with MEDIUM REMOVAL PREVENTED while any nexus holds a PREVENT; on a
    /// removable LU it ejects (START=0) or loads (START=1) the medium.
    pub(crate) fn start_stop_unit(&self, ssu: &StartStopUnit) -> CmdResult {
        if ssu.power_condition != 0 {
            return Ok(0);
        }
        if ssu.loej && self.removal_prevented() {
            return Err(Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::MEDIUM_REMOVAL_PREVENTED,
            ));
        }
        if !ssu.start && !ssu.no_flush && self.medium_present() {
            self.dev.flush().map_err(|e| self.device_error(&e))?;
        }
        if ssu.loej && self.removable {
            self.medium_present.store(ssu.start, Ordering::Release);
        }
        Ok(0)
    }
}
