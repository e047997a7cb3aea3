//! [`VolumeDevice`]: a volume exported through [`scsi::BlockDevice`].
//!
//! Data path (no pool-wide lock for reads or writes):
//! * read: volume gate (shared) → per-shard map lookup (shared) → `pread`
//!   → CRC32C verify. A mismatch is re-checked against the current mapping
//!   (the block may have been remapped and reused by a concurrent write)
//!   before it is reported.
//! * write: volume gate (shared) → allocate new block(s) (short allocator
//!   lock) → `pwrite` → per-shard map update + pending log record. The
//!   block previously mapped is freed only after the next commit.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use scsi::{BlockDevice, DeviceError, DeviceErrorKind, DeviceOp};
use tracing::error;

use crate::codec::block_crc;
use crate::engine::PoolInner;
use crate::layer::{lock, Chain, Ptr, VolState, CHUNK, CHUNK_U64, STRIPES};

/// Longest run of physically contiguous chunks read with one `pread`.
const MAX_RUN: usize = 64;
/// How far `provisioning` scans for the end of a run, in chunks.
const PROV_SCAN: u64 = 1 << 16;

/// An open volume. Dropping the last handle makes the volume deletable.
pub struct VolumeDevice {
    pool: Arc<PoolInner>,
    vs: Arc<VolState>,
}

fn is_zero(b: &[u8]) -> bool {
    let (pre, mid, post) = {
        // SAFETY: u64 has no invalid bit patterns; align_to only reinterprets
        // the aligned middle part of the slice.
        unsafe { b.align_to::<u64>() }
    };
    pre.iter().all(|&x| x == 0) && mid.iter().all(|&x| x == 0) && post.iter().all(|&x| x == 0)
}

impl VolumeDevice {
    pub(crate) fn new(pool: Arc<PoolInner>, vs: Arc<VolState>) -> Self {
        vs.open_handles.fetch_add(1, Ordering::SeqCst);
        VolumeDevice { pool, vs }
    }

    pub fn name(&self) -> &str {
        &self.vs.name
    }

    /// Checksum mismatches seen on this volume since the pool was opened.
    pub fn checksum_errors(&self) -> u64 {
        self.vs.csum_errors.load(Ordering::Relaxed)
    }

    fn lba_of(&self, chunk: u64) -> u64 {
        chunk * CHUNK_U64 / u64::from(self.vs.block_size)
    }

    /// Validates a request; returns its byte offset.
    fn range(&self, op: DeviceOp, lba: u64, len: u64, chain: &Chain) -> Result<u64, DeviceError> {
        let bs = u64::from(self.vs.block_size);
        if !len.is_multiple_of(bs) {
            return Err(DeviceError::new(DeviceErrorKind::OutOfRange, op, lba)
                .with_detail(format_args!("length {len} not a multiple of {bs}")));
        }
        if chain.deleted {
            return Err(DeviceError::new(DeviceErrorKind::Config, op, lba)
                .with_detail(format_args!("volume {} was deleted", self.vs.name)));
        }
        let end = lba
            .checked_add(len / bs)
            .and_then(|e| e.checked_mul(bs))
            .ok_or_else(|| DeviceError::new(DeviceErrorKind::OutOfRange, op, lba))?;
        if end > chain.size {
            return Err(DeviceError::new(DeviceErrorKind::OutOfRange, op, lba));
        }
        Ok(lba * bs)
    }

    fn csum_error(&self, op: DeviceOp, chunk: u64, phys: u64, detail: &str) -> DeviceError {
        self.vs.csum_errors.fetch_add(1, Ordering::Relaxed);
        let lba = self.lba_of(chunk);
        error!(
            volume = %self.vs.name,
            lba,
            phys,
            "{detail}"
        );
        DeviceError::new(DeviceErrorKind::Checksum, op, lba).with_detail(format_args!(
            "volume {} block {phys}: {detail}",
            self.vs.name
        ))
    }

    /// Slow path after a failed verification of `chunk` read via `seen`.
    fn reverify(
        &self,
        op: DeviceOp,
        chain: &Chain,
        chunk: u64,
        dst: &mut [u8],
        seen: Ptr,
    ) -> Result<(), DeviceError> {
        let mut cur = seen;
        for _ in 0..8 {
            let now = chain.lookup(chunk);
            if now == Some(cur) {
                break;
            }
            match now {
                None | Some(Ptr::Zero) => {
                    dst.fill(0);
                    return Ok(());
                }
                Some(p @ Ptr::Data { phys, crc }) => {
                    if self.pool.data.read_exact_at(dst, phys * CHUNK_U64).is_ok()
                        && block_crc(phys, dst) == crc
                    {
                        return Ok(());
                    }
                    cur = p;
                }
            }
        }
        let (phys, detail) = match cur {
            Ptr::Data { phys, .. } => (phys, "checksum mismatch"),
            Ptr::Zero => (0, "checksum mismatch"),
        };
        Err(self.csum_error(op, chunk, phys, detail))
    }

    /// Read whole chunks starting at `first` into `out` (multiple of CHUNK).
    fn read_aligned(
        &self,
        op: DeviceOp,
        chain: &Chain,
        first: u64,
        out: &mut [u8],
    ) -> Result<(), DeviceError> {
        let n = out.len() / CHUNK;
        let mut i = 0;
        let mut crcs = [0u32; MAX_RUN];
        let mut pending: Option<Option<Ptr>> = None;
        while i < n {
            let c = first + i as u64;
            let p = pending.take().unwrap_or_else(|| chain.lookup(c));
            let (phys, crc) = match p {
                None | Some(Ptr::Zero) => {
                    out[i * CHUNK..(i + 1) * CHUNK].fill(0);
                    i += 1;
                    continue;
                }
                Some(Ptr::Data { phys, crc }) => (phys, crc),
            };
            crcs[0] = crc;
            let mut j = i + 1;
            while j < n && j - i < MAX_RUN {
                let q = chain.lookup(first + j as u64);
                match q {
                    Some(Ptr::Data { phys: p2, crc: c2 }) if p2 == phys + (j - i) as u64 => {
                        crcs[j - i] = c2;
                        j += 1;
                    }
                    other => {
                        pending = Some(other);
                        break;
                    }
                }
            }
            let buf = &mut out[i * CHUNK..j * CHUNK];
            let res = self.pool.data.read_exact_at(buf, phys * CHUNK_U64);
            let ok_read = match res {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
                Err(e) => {
                    return Err(DeviceError::io(op, self.lba_of(c), e)
                        .with_detail(format_args!("volume {}", self.vs.name)))
                }
            };
            for k in 0..j - i {
                let dst = &mut buf[k * CHUNK..(k + 1) * CHUNK];
                let b = phys + k as u64;
                if !ok_read || block_crc(b, dst) != crcs[k] {
                    let seen = Ptr::Data {
                        phys: b,
                        crc: crcs[k],
                    };
                    if !ok_read {
                        // Short read: retry this block alone.
                        if self.pool.data.read_exact_at(dst, b * CHUNK_U64).is_ok()
                            && block_crc(b, dst) == crcs[k]
                        {
                            continue;
                        }
                    }
                    self.reverify(op, chain, c + k as u64, dst, seen)?;
                }
            }
            i = j;
        }
        Ok(())
    }

    /// Map `chunk` to `new` in the head; returns the change's ticket (0: no
    /// change).
    fn install(&self, chain: &Chain, chunk: u64, new: Option<Ptr>, punch_old: bool) -> u64 {
        let mut sh = chain.head.write(chunk);
        let old = match new {
            Some(p) => sh.map.insert(chunk, p),
            None => sh.map.remove(&chunk),
        };
        if old == new {
            return 0;
        }
        sh.log.push((chunk, new));
        if let Some(Ptr::Data { phys, .. }) = old {
            sh.frees.push((phys, punch_old));
        }
        self.pool.ticket.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn unmap_chunk(&self, chain: &Chain, chunk: u64) -> u64 {
        let new = match chain.lookup_parents(chunk) {
            Some(Ptr::Data { .. }) => Some(Ptr::Zero),
            _ => None,
        };
        self.install(chain, chunk, new, true)
    }

    fn unmap_whole(&self, chain: &Chain, chunk: u64) {
        if (self.vs.block_size as usize) < CHUNK {
            let _g = lock(&self.vs.stripes[chunk as usize % STRIPES]);
            self.unmap_chunk(chain, chunk);
        } else {
            self.unmap_chunk(chain, chunk);
        }
    }

    /// Redirect-on-write of whole chunks; all-zero chunks are unmapped.
    fn write_aligned(&self, chain: &Chain, first: u64, data: &[u8]) -> Result<u64, DeviceError> {
        let n = data.len() / CHUNK;
        let chunk = |k: usize| &data[k * CHUNK..(k + 1) * CHUNK];
        let mut ticket = 0;
        let mut i = 0;
        while i < n {
            if is_zero(chunk(i)) {
                ticket = ticket.max(self.unmap_chunk(chain, first + i as u64));
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < n && !is_zero(chunk(j)) {
                j += 1;
            }
            let lba = self.lba_of(first + i as u64);
            let runs = self.pool.alloc_blocks((j - i) as u64).ok_or_else(|| {
                DeviceError::new(DeviceErrorKind::NoSpace, DeviceOp::Write, lba)
                    .with_detail("pool capacity exhausted")
            })?;
            let mut k = i;
            for &(start, len) in &runs {
                let bytes = &data[k * CHUNK..(k + len as usize) * CHUNK];
                if let Err(e) = self.pool.data.write_all_at(bytes, start * CHUNK_U64) {
                    self.pool.free_now(&runs);
                    return Err(DeviceError::io(DeviceOp::Write, lba, e));
                }
                k += len as usize;
            }
            let mut k = i;
            for &(start, len) in &runs {
                for m in 0..len {
                    let phys = start + m;
                    let crc = block_crc(phys, chunk(k));
                    let t = self.install(
                        chain,
                        first + k as u64,
                        Some(Ptr::Data { phys, crc }),
                        false,
                    );
                    ticket = ticket.max(t);
                    k += 1;
                }
            }
            i = j;
        }
        Ok(ticket)
    }

    /// Write `data` at byte offset `off` (already range-checked).
    fn write_bytes(&self, chain: &Chain, off: u64, data: &[u8]) -> Result<u64, DeviceError> {
        if self.vs.block_size as usize >= CHUNK {
            return self.write_aligned(chain, off / CHUNK_U64, data);
        }
        // Blocks smaller than a chunk: serialize per chunk (stripe lock) so
        // concurrent read-modify-writes of one chunk cannot lose updates.
        let mut ticket = 0;
        let mut done = 0usize;
        let mut pos = off;
        let mut tmp = [0u8; CHUNK];
        while done < data.len() {
            let c = pos / CHUNK_U64;
            let within = (pos % CHUNK_U64) as usize;
            let n = (CHUNK - within).min(data.len() - done);
            let _g = lock(&self.vs.stripes[c as usize % STRIPES]);
            let t = if n == CHUNK {
                self.write_aligned(chain, c, &data[done..done + n])?
            } else {
                self.read_aligned(DeviceOp::Write, chain, c, &mut tmp)?;
                tmp[within..within + n].copy_from_slice(&data[done..done + n]);
                self.write_aligned(chain, c, &tmp)?
            };
            ticket = ticket.max(t);
            done += n;
            pos += n as u64;
        }
        Ok(ticket)
    }

    /// Zero `len` bytes at `off` (resize helper).
    pub(crate) fn zero_bytes(&self, off: u64, len: u64) -> Result<(), DeviceError> {
        let chain = self.vs.read_gate();
        let zeros = vec![0u8; len as usize];
        self.write_bytes(&chain, off, &zeros).map(|_| ())
    }

    fn io_err(op: DeviceOp, lba: u64, e: crate::VolumeError) -> DeviceError {
        let kind = match e.kind {
            crate::ErrorKind::NoSpace => DeviceErrorKind::NoSpace,
            _ => DeviceErrorKind::Io,
        };
        DeviceError::new(kind, op, lba).with_detail(e)
    }
}

impl Drop for VolumeDevice {
    fn drop(&mut self) {
        self.vs.open_handles.fetch_sub(1, Ordering::SeqCst);
    }
}

impl BlockDevice for VolumeDevice {
    fn block_size(&self) -> u32 {
        self.vs.block_size
    }

    fn num_blocks(&self) -> u64 {
        self.vs.size.load(Ordering::Relaxed) / u64::from(self.vs.block_size)
    }

    fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let op = DeviceOp::Read;
        let chain = self.vs.read_gate();
        let off = self.range(op, lba, buf.len() as u64, &chain)?;
        let len = buf.len();
        // Leading partial chunk, aligned middle, trailing partial chunk.
        let head = ((CHUNK_U64 - off % CHUNK_U64) % CHUNK_U64) as usize;
        let head = head.min(len);
        if head == 0 && len.is_multiple_of(CHUNK) {
            // Common case (4K-aligned I/O): straight into the caller's buffer.
            return self.read_aligned(op, &chain, off / CHUNK_U64, buf);
        }
        let mut tmp = [0u8; CHUNK];
        if head > 0 {
            let c = off / CHUNK_U64;
            let within = (off % CHUNK_U64) as usize;
            self.read_aligned(op, &chain, c, &mut tmp)?;
            buf[..head].copy_from_slice(&tmp[within..within + head]);
        }
        let mid = (len - head) / CHUNK * CHUNK;
        if mid > 0 {
            let c = (off + head as u64) / CHUNK_U64;
            self.read_aligned(op, &chain, c, &mut buf[head..head + mid])?;
        }
        let tail = len - head - mid;
        if tail > 0 {
            let c = (off + (head + mid) as u64) / CHUNK_U64;
            self.read_aligned(op, &chain, c, &mut tmp)?;
            buf[head + mid..].copy_from_slice(&tmp[..tail]);
        }
        Ok(())
    }

    fn write_blocks(&self, lba: u64, buf: &[u8], fua: bool) -> Result<(), DeviceError> {
        let op = DeviceOp::Write;
        self.pool
            .check_failed()
            .map_err(|e| Self::io_err(op, lba, e))?;
        let ticket = {
            let chain = self.vs.read_gate();
            let off = self.range(op, lba, buf.len() as u64, &chain)?;
            self.write_bytes(&chain, off, buf)?
        };
        if fua {
            self.pool
                .commit_upto(ticket)
                .map_err(|e| Self::io_err(op, lba, e))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), DeviceError> {
        self.pool
            .flush()
            .map_err(|e| Self::io_err(DeviceOp::Flush, 0, e))
    }

    fn is_thin(&self) -> bool {
        true
    }

    fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        let op = DeviceOp::Write;
        self.pool
            .check_failed()
            .map_err(|e| Self::io_err(op, lba, e))?;
        let bs = u64::from(self.vs.block_size);
        let chain = self.vs.read_gate();
        let len = blocks
            .checked_mul(bs)
            .ok_or_else(|| DeviceError::new(DeviceErrorKind::OutOfRange, op, lba))?;
        let off = self.range(op, lba, len, &chain)?;
        let end = off + len;
        let first = off.div_ceil(CHUNK_U64);
        let last = end / CHUNK_U64; // exclusive
        if first >= last {
            // Inside one chunk: zero it (unmaps if the chunk becomes zero).
            let zeros = vec![0u8; len as usize];
            self.write_bytes(&chain, off, &zeros)?;
            return Ok(());
        }
        let lead = first * CHUNK_U64 - off;
        if lead > 0 {
            self.write_bytes(&chain, off, &vec![0u8; lead as usize])?;
        }
        let trail = end - last * CHUNK_U64;
        if trail > 0 {
            self.write_bytes(&chain, last * CHUNK_U64, &vec![0u8; trail as usize])?;
        }
        // Whole chunks: walk the range, or the mapped entries when the
        // range is much larger than what is mapped.
        let mapped =
            chain.head.len() as u64 + chain.parents.iter().map(|p| p.len() as u64).sum::<u64>();
        if last - first <= mapped.saturating_mul(2) {
            for c in first..last {
                self.unmap_whole(&chain, c);
            }
        } else {
            let mut cs = Vec::new();
            let mut add = |c: u64, _| {
                if (first..last).contains(&c) {
                    cs.push(c);
                }
            };
            chain.head.for_each(&mut add);
            for p in &chain.parents {
                p.for_each(&mut add);
            }
            cs.sort_unstable();
            cs.dedup();
            for c in cs {
                self.unmap_whole(&chain, c);
            }
        }
        Ok(())
    }

    fn provisioning(&self, lba: u64) -> Result<(bool, u64), DeviceError> {
        let bs = u64::from(self.vs.block_size);
        let chain = self.vs.read_gate();
        let nblocks = chain.size / bs;
        if lba >= nblocks {
            return Err(DeviceError::new(
                DeviceErrorKind::OutOfRange,
                DeviceOp::Read,
                lba,
            ));
        }
        let is_mapped = |c: u64| matches!(chain.lookup(c), Some(Ptr::Data { .. }));
        let c0 = lba * bs / CHUNK_U64;
        let mapped = is_mapped(c0);
        let total = chain.size.div_ceil(CHUNK_U64);
        let limit = total.min(c0 + PROV_SCAN);
        let mut c = c0 + 1;
        while c < limit && is_mapped(c) == mapped {
            c += 1;
        }
        let end = (c * CHUNK_U64).min(chain.size);
        Ok((mapped, ((end / bs).saturating_sub(lba)).max(1)))
    }
}
