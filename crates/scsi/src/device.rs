//! Block device backends: the [`BlockDevice`] trait, an in-memory sparse
//! device for tests ([`MemDevice`]) and a file / block-device backend using
//! positioned I/O ([`FileDevice`]).

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use crate::sense::{Asc, Sense, SenseKey};

/// A logical-block device. Implementations must be usable from many threads
/// at once; the SCSI layer never serializes calls.
pub trait BlockDevice: Send + Sync {
    /// Logical block size in bytes (512 default; 4096 must work too).
    fn block_size(&self) -> u32;
    /// Number of logical blocks.
    fn num_blocks(&self) -> u64;
    /// Positioned read of whole blocks; `buf.len()` is a multiple of block_size.
    fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    /// Positioned write. `fua`: the data must be durable when this returns.
    fn write_blocks(&self, lba: u64, buf: &[u8], fua: bool) -> Result<(), DeviceError>;
    /// Make every completed write durable (SYNCHRONIZE CACHE; fdatasync for files).
    fn flush(&self) -> Result<(), DeviceError>;
    /// Whether the device is thin provisioned: [`unmap`](Self::unmap) releases
    /// space and [`provisioning`](Self::provisioning) reports holes.
    fn is_thin(&self) -> bool {
        false
    }
    /// Deallocates `blocks` blocks from `lba` (UNMAP, WRITE SAME with UNMAP);
    /// afterwards they read as zeros. The default writes zeros.
    fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        write_zeros(self, lba, blocks)
    }
    /// Provisioning status at `lba` (GET LBA STATUS): whether the block is
    /// mapped, and how many blocks from `lba` share that status (at least 1).
    fn provisioning(&self, lba: u64) -> Result<(bool, u64), DeviceError> {
        Ok((true, self.num_blocks().saturating_sub(lba).max(1)))
    }
}

/// The operation a [`DeviceError`] happened in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DeviceOp {
    Open,
    Read,
    Write,
    Flush,
}

impl fmt::Display for DeviceOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceOp::Open => "open",
            DeviceOp::Read => "read",
            DeviceOp::Write => "write",
            DeviceOp::Flush => "flush",
        })
    }
}

/// Classification of a device error; each kind maps to one SCSI sense.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum DeviceErrorKind {
    #[error("I/O error")]
    Io,
    #[error("checksum mismatch")]
    Checksum,
    #[error("no space left on backing store")]
    NoSpace,
    #[error("backing store is read-only")]
    ReadOnly,
    #[error("block range out of bounds")]
    OutOfRange,
    #[error("invalid configuration")]
    Config,
}

impl DeviceErrorKind {
    /// The SCSI sense reported for this kind of error during `op`:
    /// Io on read -> MEDIUM ERROR 11h/00h, Io on write/flush -> MEDIUM ERROR
    /// 0Ch/00h, Checksum -> MEDIUM ERROR 11h/00h, NoSpace -> DATA PROTECT
    /// 27h/07h, ReadOnly -> DATA PROTECT 27h/00h, OutOfRange -> ILLEGAL
    /// REQUEST 21h/00h, Config -> HARDWARE ERROR 44h/00h.
    pub fn sense(self, op: DeviceOp) -> Sense {
        let (key, asc) = match self {
            DeviceErrorKind::Io => match op {
                DeviceOp::Write | DeviceOp::Flush => (SenseKey::MEDIUM_ERROR, Asc::WRITE_ERROR),
                DeviceOp::Read | DeviceOp::Open => {
                    (SenseKey::MEDIUM_ERROR, Asc::UNRECOVERED_READ_ERROR)
                }
            },
            DeviceErrorKind::Checksum => (SenseKey::MEDIUM_ERROR, Asc::UNRECOVERED_READ_ERROR),
            DeviceErrorKind::NoSpace => (
                SenseKey::DATA_PROTECT,
                Asc::SPACE_ALLOCATION_FAILED_WRITE_PROTECT,
            ),
            DeviceErrorKind::ReadOnly => (SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED),
            DeviceErrorKind::OutOfRange => (SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE),
            DeviceErrorKind::Config => (SenseKey::HARDWARE_ERROR, Asc::INTERNAL_TARGET_FAILURE),
        };
        Sense::new(key, asc)
    }

    /// Classify an OS error.
    pub fn from_io(e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => DeviceErrorKind::NoSpace,
            Some(libc::EROFS) => DeviceErrorKind::ReadOnly,
            _ => DeviceErrorKind::Io,
        }
    }
}

/// A device error: kind + context (operation, LBA, detail) + source.
#[derive(Debug, thiserror::Error)]
#[error("{op} failed at lba {lba}{detail}: {kind}")]
pub struct DeviceError {
    pub kind: DeviceErrorKind,
    pub op: DeviceOp,
    pub lba: u64,
    /// Extra human-readable context (path, size mismatch, ...), may be empty.
    pub detail: String,
    #[source]
    pub source: Option<io::Error>,
}

impl DeviceError {
    pub fn new(kind: DeviceErrorKind, op: DeviceOp, lba: u64) -> Self {
        DeviceError {
            kind,
            op,
            lba,
            detail: String::new(),
            source: None,
        }
    }

    /// From an OS error, classified with [`DeviceErrorKind::from_io`].
    pub fn io(op: DeviceOp, lba: u64, source: io::Error) -> Self {
        DeviceError {
            kind: DeviceErrorKind::from_io(&source),
            op,
            lba,
            detail: String::new(),
            source: Some(source),
        }
    }

    pub fn with_detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = format!(" ({detail})");
        self
    }

    /// The SCSI sense this error is reported with.
    pub fn sense(&self) -> Sense {
        self.kind.sense(self.op)
    }
}

fn check_io_range(
    op: DeviceOp,
    lba: u64,
    len: usize,
    block_size: u32,
    num_blocks: u64,
) -> Result<u64, DeviceError> {
    let bs = u64::from(block_size);
    let len = len as u64;
    if bs == 0 || !len.is_multiple_of(bs) {
        return Err(DeviceError::new(DeviceErrorKind::OutOfRange, op, lba)
            .with_detail(format_args!("buffer length {len} not a multiple of {bs}")));
    }
    match lba.checked_add(len / bs) {
        Some(end) if end <= num_blocks => lba
            .checked_mul(bs)
            .ok_or_else(|| DeviceError::new(DeviceErrorKind::OutOfRange, op, lba)),
        _ => Err(DeviceError::new(DeviceErrorKind::OutOfRange, op, lba)),
    }
}

const MEM_CHUNK: usize = 64 * 1024;

/// Sparse in-memory device for tests: unwritten areas read as zeros.
pub struct MemDevice {
    block_size: u32,
    num_blocks: u64,
    chunks: RwLock<HashMap<u64, Box<[u8]>>>,
    fault: Mutex<Option<DeviceErrorKind>>,
}

impl MemDevice {
    /// A zero-filled device of `num_blocks` blocks of `block_size` bytes.
    /// Memory is only allocated for written regions.
    pub fn new(block_size: u32, num_blocks: u64) -> Self {
        MemDevice {
            block_size,
            num_blocks,
            chunks: RwLock::new(HashMap::new()),
            fault: Mutex::new(None),
        }
    }

    /// Make every subsequent operation fail with `kind` (None: stop failing).
    pub fn set_fault(&self, kind: Option<DeviceErrorKind>) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = kind;
    }

    fn check_fault(&self, op: DeviceOp, lba: u64) -> Result<(), DeviceError> {
        match *self.fault.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(kind) => Err(DeviceError::new(kind, op, lba)),
            None => Ok(()),
        }
    }
}

impl BlockDevice for MemDevice {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn num_blocks(&self) -> u64 {
        self.num_blocks
    }

    fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.check_fault(DeviceOp::Read, lba)?;
        let mut off = check_io_range(
            DeviceOp::Read,
            lba,
            buf.len(),
            self.block_size,
            self.num_blocks,
        )?;
        let chunks = self.chunks.read().unwrap_or_else(|e| e.into_inner());
        let mut done = 0usize;
        while done < buf.len() {
            let idx = off / MEM_CHUNK as u64;
            let within = (off % MEM_CHUNK as u64) as usize;
            let n = (MEM_CHUNK - within).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            match chunks.get(&idx) {
                Some(c) => dst.copy_from_slice(&c[within..within + n]),
                None => dst.fill(0),
            }
            done += n;
            off += n as u64;
        }
        Ok(())
    }

    fn write_blocks(&self, lba: u64, buf: &[u8], _fua: bool) -> Result<(), DeviceError> {
        self.check_fault(DeviceOp::Write, lba)?;
        let mut off = check_io_range(
            DeviceOp::Write,
            lba,
            buf.len(),
            self.block_size,
            self.num_blocks,
        )?;
        let mut chunks = self.chunks.write().unwrap_or_else(|e| e.into_inner());
        let mut done = 0usize;
        while done < buf.len() {
            let idx = off / MEM_CHUNK as u64;
            let within = (off % MEM_CHUNK as u64) as usize;
            let n = (MEM_CHUNK - within).min(buf.len() - done);
            let c = chunks
                .entry(idx)
                .or_insert_with(|| vec![0u8; MEM_CHUNK].into_boxed_slice());
            c[within..within + n].copy_from_slice(&buf[done..done + n]);
            done += n;
            off += n as u64;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), DeviceError> {
        self.check_fault(DeviceOp::Flush, 0)
    }

    fn is_thin(&self) -> bool {
        true
    }

    /// Drops every chunk the range covers completely; zeroes partial ones.
    fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        self.check_fault(DeviceOp::Write, lba)?;
        let bs = u64::from(self.block_size);
        let (start, end) = byte_range(DeviceOp::Write, lba, blocks, bs, self.num_blocks)?;
        let chunk = MEM_CHUNK as u64;
        let mut chunks = self.chunks.write().unwrap_or_else(|e| e.into_inner());
        let mut off = start;
        while off < end {
            let idx = off / chunk;
            let within = (off % chunk) as usize;
            let n = (chunk - within as u64).min(end - off) as usize;
            if n == MEM_CHUNK {
                chunks.remove(&idx);
            } else if let Some(c) = chunks.get_mut(&idx) {
                c[within..within + n].fill(0);
                if c.iter().all(|&b| b == 0) {
                    chunks.remove(&idx);
                }
            }
            off += n as u64;
        }
        Ok(())
    }

    fn provisioning(&self, lba: u64) -> Result<(bool, u64), DeviceError> {
        self.check_fault(DeviceOp::Read, lba)?;
        let bs = u64::from(self.block_size.max(1));
        if lba >= self.num_blocks {
            return Err(DeviceError::new(
                DeviceErrorKind::OutOfRange,
                DeviceOp::Read,
                lba,
            ));
        }
        let chunk = MEM_CHUNK as u64;
        let chunks = self.chunks.read().unwrap_or_else(|e| e.into_inner());
        let end_byte = self.num_blocks.saturating_mul(bs);
        let mut off = lba.saturating_mul(bs);
        let mapped = chunks.contains_key(&(off / chunk));
        // Scan whole chunks with the same status (bounded).
        for _ in 0..4096 {
            let next = (off / chunk + 1).saturating_mul(chunk);
            off = next.min(end_byte);
            if off >= end_byte || chunks.contains_key(&(off / chunk)) != mapped {
                break;
            }
        }
        Ok((mapped, (off / bs).saturating_sub(lba).max(1)))
    }
}

/// A regular file or block device accessed with positioned I/O
/// (`pread`/`pwrite`): no seek, no lock on the data path.
pub struct FileDevice {
    file: File,
    path: PathBuf,
    /// A regular file (thin: holes can be punched), not a block device.
    regular: bool,
    block_size: u32,
    num_blocks: u64,
}

impl FileDevice {
    /// Open (or create) a backing file.
    ///
    /// * missing file: created sparse with `set_len(size_bytes)` when
    ///   `create` is set and a size is given, an error otherwise;
    /// * existing file: its size must equal `size_bytes` when one is given
    ///   (a mismatch is an error naming both sizes; nothing is resized);
    ///   without a size the whole file (rounded down to whole blocks) is used.
    ///
    /// `block_size` must be a power of two between 512 and 65536.
    pub fn open(
        path: impl AsRef<Path>,
        size_bytes: Option<u64>,
        block_size: u32,
        create: bool,
    ) -> Result<Self, DeviceError> {
        Self::open_inner(path.as_ref(), size_bytes, block_size, create, false)
    }

    /// Open an existing file or block device read-only (writes fail with
    /// [`DeviceErrorKind::ReadOnly`]).
    pub fn open_read_only(path: impl AsRef<Path>, block_size: u32) -> Result<Self, DeviceError> {
        Self::open_inner(path.as_ref(), None, block_size, false, true)
    }

    fn open_inner(
        path: &Path,
        size_bytes: Option<u64>,
        block_size: u32,
        create: bool,
        read_only: bool,
    ) -> Result<Self, DeviceError> {
        let cfg = |msg: String| {
            DeviceError::new(DeviceErrorKind::Config, DeviceOp::Open, 0)
                .with_detail(format_args!("{}: {msg}", path.display()))
        };
        if !block_size.is_power_of_two() || !(512..=65536).contains(&block_size) {
            return Err(cfg(format!("invalid block size {block_size}")));
        }
        let bs = u64::from(block_size);
        if let Some(sz) = size_bytes {
            if sz == 0 || sz % bs != 0 {
                return Err(cfg(format!("size {sz} is not a non-zero multiple of {bs}")));
            }
        }
        let with_path =
            |e: io::Error| DeviceError::io(DeviceOp::Open, 0, e).with_detail(path.display());
        let exists = path.exists();
        let mut file = if exists {
            OpenOptions::new()
                .read(true)
                .write(!read_only)
                .open(path)
                .map_err(with_path)?
        } else {
            let Some(sz) = size_bytes else {
                return Err(cfg("file does not exist and no size was given".into()));
            };
            if !create || read_only {
                return Err(cfg("file does not exist".into()));
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(with_path)?;
            f.set_len(sz).map_err(with_path)?;
            f
        };
        // Seek to the end works for both regular files and block devices.
        let actual = file.seek(SeekFrom::End(0)).map_err(with_path)?;
        if let Some(sz) = size_bytes {
            if actual != sz {
                return Err(cfg(format!(
                    "existing size {actual} bytes does not match configured size {sz} bytes"
                )));
            }
        }
        let num_blocks = actual / bs;
        if num_blocks == 0 {
            return Err(cfg(format!(
                "size {actual} bytes is smaller than one block"
            )));
        }
        let regular = file.metadata().map_err(with_path)?.is_file();
        Ok(FileDevice {
            file,
            regular,
            path: path.to_path_buf(),
            block_size,
            num_blocks,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl BlockDevice for FileDevice {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn num_blocks(&self) -> u64 {
        self.num_blocks
    }

    fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let off = check_io_range(
            DeviceOp::Read,
            lba,
            buf.len(),
            self.block_size,
            self.num_blocks,
        )?;
        self.file
            .read_exact_at(buf, off)
            .map_err(|e| DeviceError::io(DeviceOp::Read, lba, e))
    }

    fn write_blocks(&self, lba: u64, buf: &[u8], fua: bool) -> Result<(), DeviceError> {
        let off = check_io_range(
            DeviceOp::Write,
            lba,
            buf.len(),
            self.block_size,
            self.num_blocks,
        )?;
        self.file.write_all_at(buf, off).map_err(|e| {
            if e.raw_os_error() == Some(libc::EBADF) {
                DeviceError::new(DeviceErrorKind::ReadOnly, DeviceOp::Write, lba)
            } else {
                DeviceError::io(DeviceOp::Write, lba, e)
            }
        })?;
        if fua {
            self.file
                .sync_data()
                .map_err(|e| DeviceError::io(DeviceOp::Write, lba, e))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), DeviceError> {
        self.file
            .sync_data()
            .map_err(|e| DeviceError::io(DeviceOp::Flush, 0, e))
    }

    fn is_thin(&self) -> bool {
        self.regular
    }

    /// Punches a hole (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE); the
    /// kernel zeroes partial file system blocks at unaligned edges. Falls
    /// back to writing zeros where hole punching is not supported.
    fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        let bs = u64::from(self.block_size);
        let (start, end) = byte_range(DeviceOp::Write, lba, blocks, bs, self.num_blocks)?;
        if start == end {
            return Ok(());
        }
        if self.regular {
            let (Ok(off), Ok(len)) = (
                libc::off_t::try_from(start),
                libc::off_t::try_from(end - start),
            ) else {
                return Err(DeviceError::new(
                    DeviceErrorKind::OutOfRange,
                    DeviceOp::Write,
                    lba,
                ));
            };
            // SAFETY: fallocate only reads its integer arguments; the file
            // descriptor is owned by `self.file` and open for writing.
            let rc = unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    off,
                    len,
                )
            };
            if rc == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if !matches!(
                err.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
            ) {
                return Err(DeviceError::io(DeviceOp::Write, lba, err));
            }
        }
        write_zeros(self, lba, blocks)
    }

    /// SEEK_DATA / SEEK_HOLE around the block's offset.
    fn provisioning(&self, lba: u64) -> Result<(bool, u64), DeviceError> {
        let bs = u64::from(self.block_size);
        if lba >= self.num_blocks {
            return Err(DeviceError::new(
                DeviceErrorKind::OutOfRange,
                DeviceOp::Read,
                lba,
            ));
        }
        let remaining = self.num_blocks - lba;
        if !self.regular {
            return Ok((true, remaining));
        }
        let off = lba * bs;
        let end = self.num_blocks * bs;
        let seek = |whence: libc::c_int| -> Result<Option<u64>, DeviceError> {
            let Ok(o) = libc::off_t::try_from(off) else {
                return Err(DeviceError::new(
                    DeviceErrorKind::OutOfRange,
                    DeviceOp::Read,
                    lba,
                ));
            };
            // SAFETY: lseek only reads its integer arguments; the descriptor
            // is owned by `self.file`. The file offset it moves is never
            // used: all I/O is positioned (pread / pwrite).
            let r = unsafe { libc::lseek(self.file.as_raw_fd(), o, whence) };
            if r >= 0 {
                return Ok(Some(r as u64));
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                Ok(None)
            } else {
                Err(DeviceError::io(DeviceOp::Read, lba, err))
            }
        };
        let blocks_to = |b: u64| (b.min(end).saturating_sub(off) / bs).clamp(1, remaining);
        match seek(libc::SEEK_DATA)? {
            Some(d) if d <= off => {
                let hole = seek(libc::SEEK_HOLE)?.unwrap_or(end);
                Ok((true, blocks_to(hole)))
            }
            Some(d) => Ok((false, blocks_to(d))),
            None => Ok((false, remaining)),
        }
    }
}

/// Byte range of `blocks` blocks from `lba`, checked against the device.
fn byte_range(
    op: DeviceOp,
    lba: u64,
    blocks: u64,
    bs: u64,
    num_blocks: u64,
) -> Result<(u64, u64), DeviceError> {
    match lba.checked_add(blocks) {
        Some(e) if e <= num_blocks && bs > 0 => Ok((lba * bs, e * bs)),
        _ => Err(DeviceError::new(DeviceErrorKind::OutOfRange, op, lba)),
    }
}

/// Write zeros over `blocks` blocks from `lba` in 1 MiB pieces.
fn write_zeros<D: BlockDevice + ?Sized>(dev: &D, lba: u64, blocks: u64) -> Result<(), DeviceError> {
    let bs = u64::from(dev.block_size().max(1));
    let chunk_blocks = (1024 * 1024 / bs).max(1);
    let zeros = vec![0u8; (chunk_blocks.min(blocks.max(1)) * bs) as usize];
    let mut done = 0;
    while done < blocks {
        let n = (blocks - done).min(chunk_blocks);
        dev.write_blocks(lba + done, &zeros[..(n * bs) as usize], false)?;
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        std::env::temp_dir().join(format!(
            "ironsan-scsi-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    #[test]
    fn mem_device_roundtrip_and_sparse() {
        let d = MemDevice::new(512, 1 << 40);
        let mut buf = vec![0xFFu8; 1024];
        d.read_blocks(5, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        // Write across a chunk boundary.
        let lba = (MEM_CHUNK as u64 / 512) - 1;
        let data: Vec<u8> = (0..2048).map(|i| i as u8).collect();
        d.write_blocks(lba, &data, false).unwrap();
        let mut back = vec![0u8; 2048];
        d.read_blocks(lba, &mut back).unwrap();
        assert_eq!(back, data);
        // Near the end of a huge device.
        d.write_blocks((1 << 40) - 1, &data[..512], true).unwrap();
        assert!(d.read_blocks(1 << 40, &mut back[..512]).is_err());
        assert!(d.read_blocks(u64::MAX, &mut back[..512]).is_err());
        assert!(d.read_blocks(0, &mut back[..100]).is_err());
    }

    #[test]
    fn mem_device_fault_injection() {
        let d = MemDevice::new(4096, 16);
        d.set_fault(Some(DeviceErrorKind::Io));
        let mut b = vec![0u8; 4096];
        let e = d.read_blocks(0, &mut b).unwrap_err();
        assert_eq!(e.sense().asc, Asc::UNRECOVERED_READ_ERROR);
        let e = d.write_blocks(0, &b, false).unwrap_err();
        assert_eq!(e.sense().asc, Asc::WRITE_ERROR);
        d.set_fault(None);
        d.read_blocks(0, &mut b).unwrap();
    }

    #[test]
    fn error_kind_sense_mapping() {
        use DeviceErrorKind::*;
        let m = |k: DeviceErrorKind, op| {
            let s = k.sense(op);
            (s.key, s.asc)
        };
        assert_eq!(m(Io, DeviceOp::Read), (SenseKey::MEDIUM_ERROR, Asc(0x1100)));
        assert_eq!(
            m(Io, DeviceOp::Write),
            (SenseKey::MEDIUM_ERROR, Asc(0x0C00))
        );
        assert_eq!(
            m(Checksum, DeviceOp::Read),
            (SenseKey::MEDIUM_ERROR, Asc(0x1100))
        );
        assert_eq!(
            m(NoSpace, DeviceOp::Write),
            (SenseKey::DATA_PROTECT, Asc(0x2707))
        );
        assert_eq!(
            m(ReadOnly, DeviceOp::Write),
            (SenseKey::DATA_PROTECT, Asc(0x2700))
        );
        assert_eq!(
            m(OutOfRange, DeviceOp::Read),
            (SenseKey::ILLEGAL_REQUEST, Asc(0x2100))
        );
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(DeviceErrorKind::from_io(&e), NoSpace);
    }

    #[test]
    fn file_device_create_reopen_and_mismatch() {
        let p = temp_path("file");
        assert!(FileDevice::open(&p, Some(1 << 20), 512, false).is_err());
        assert!(FileDevice::open(&p, None, 512, true).is_err());
        {
            let d = FileDevice::open(&p, Some(1 << 20), 4096, true).unwrap();
            assert_eq!(d.num_blocks(), 256);
            assert_eq!(d.block_size(), 4096);
            let data = vec![0x5Au8; 8192];
            d.write_blocks(254, &data, true).unwrap();
            assert!(d.write_blocks(255, &data, false).is_err());
            d.flush().unwrap();
        }
        let d = FileDevice::open(&p, Some(1 << 20), 4096, true).unwrap();
        let mut back = vec![0u8; 8192];
        d.read_blocks(254, &mut back).unwrap();
        assert!(back.iter().all(|&b| b == 0x5A));
        d.read_blocks(0, &mut back[..4096]).unwrap();
        assert!(back[..4096].iter().all(|&b| b == 0));
        let e = FileDevice::open(&p, Some(2 << 20), 4096, true)
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(msg.contains("1048576") && msg.contains("2097152"), "{msg}");
        let d = FileDevice::open(&p, None, 512, false).unwrap();
        assert_eq!(d.num_blocks(), 2048);
        assert!(FileDevice::open(&p, None, 1000, false).is_err());
        let ro = FileDevice::open_read_only(&p, 512).unwrap();
        let e = ro.write_blocks(0, &[0u8; 512], false).unwrap_err();
        assert_eq!(e.kind, DeviceErrorKind::ReadOnly);
        std::fs::remove_file(&p).unwrap();
    }
}
