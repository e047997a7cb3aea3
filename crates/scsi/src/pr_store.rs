//! Persistence of persistent reservations across power loss (APTPL):
//! the [`PrStore`] trait, a crash-safe file implementation and the
//! versioned, checksummed encoding of the state.
//!
//! Layout: `b"IRPR"`, version (u8), payload length (u32 BE), payload,
//! CRC-32C (u32 BE) of everything before it. Payload: APTPL (u8),
//! generation (u32), registration count (u32), registrations (key u64,
//! relative port u16, ALL_TG_PT u8, port name length u16, port name),
//! reservation present (u8) [holder index u32, type u8].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::pr::{PrState, PrType, Registration, Reservation};

const MAGIC: &[u8; 4] = b"IRPR";
const VERSION: u8 = 1;
/// Sanity bound on the decoded registration count.
const MAX_REGS: usize = 1 << 16;

/// Where APTPL state lives. `load` returns None when nothing was saved;
/// `save` with an empty slice discards the saved state.
pub trait PrStore: Send + Sync {
    fn load(&self) -> Result<Option<Vec<u8>>, io::Error>;
    fn save(&self, bytes: &[u8]) -> Result<(), io::Error>;
}

/// Errors loading saved persistent reservation state.
#[derive(Debug, thiserror::Error)]
pub enum PrStoreError {
    #[error("reading persistent reservation state: {0}")]
    Io(#[from] io::Error),
    #[error("persistent reservation state is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("persistent reservation state has unsupported version {0}")]
    Version(u8),
}

/// A file holding the state, replaced atomically: write `<path>.tmp`,
/// fsync it, rename over `<path>`, fsync the directory.
#[derive(Clone, Debug)]
pub struct FilePrStore(pub PathBuf);

impl FilePrStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FilePrStore(path.into())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let dir = match self.0.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }
}

impl PrStore for FilePrStore {
    fn load(&self) -> Result<Option<Vec<u8>>, io::Error> {
        match fs::read(&self.0) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save(&self, bytes: &[u8]) -> Result<(), io::Error> {
        if bytes.is_empty() {
            match fs::remove_file(&self.0) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
            return self.sync_dir();
        }
        let mut tmp = self.0.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.0)?;
        self.sync_dir()
    }
}

/// Encode the state (see the module docs for the layout).
pub(crate) fn encode(st: &PrState) -> Vec<u8> {
    let mut p = Vec::new();
    p.push(u8::from(st.aptpl));
    p.extend_from_slice(&st.generation.to_be_bytes());
    p.extend_from_slice(&(st.regs.len() as u32).to_be_bytes());
    for r in &st.regs {
        p.extend_from_slice(&r.key.to_be_bytes());
        p.extend_from_slice(&r.rel_port.to_be_bytes());
        p.push(u8::from(r.all_tg_pt));
        let name = r.port.as_bytes();
        let n = name.len().min(u16::MAX as usize);
        p.extend_from_slice(&(n as u16).to_be_bytes());
        p.extend_from_slice(&name[..n]);
    }
    match &st.res {
        Some(res) => {
            p.push(1);
            p.extend_from_slice(&(res.holder as u32).to_be_bytes());
            p.push(res.pr_type as u8);
        }
        None => p.push(0),
    }
    let mut out = Vec::with_capacity(p.len() + 13);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(p.len() as u32).to_be_bytes());
    out.extend_from_slice(&p);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PrStoreError> {
        if self.0.len() < n {
            return Err(PrStoreError::Corrupt("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, PrStoreError> {
        Ok(self.take(1)?[0])
    }
    fn uint(&mut self, n: usize) -> Result<u64, PrStoreError> {
        Ok(crate::cdb::be(self.take(n)?))
    }
}

/// Decode and verify saved state.
pub(crate) fn decode(bytes: &[u8]) -> Result<PrState, PrStoreError> {
    if bytes.len() < 13 || &bytes[..4] != MAGIC {
        return Err(PrStoreError::Corrupt("bad header"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != crc {
        return Err(PrStoreError::Corrupt("checksum mismatch"));
    }
    if body[4] != VERSION {
        return Err(PrStoreError::Version(body[4]));
    }
    let len = crate::cdb::be(&body[5..9]) as usize;
    if len != body.len() - 9 {
        return Err(PrStoreError::Corrupt("length mismatch"));
    }
    let mut r = Reader(&body[9..]);
    let aptpl = r.u8()? != 0;
    let generation = r.uint(4)? as u32;
    let n = r.uint(4)? as usize;
    if n > MAX_REGS {
        return Err(PrStoreError::Corrupt("too many registrations"));
    }
    let mut regs = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let key = r.uint(8)?;
        let rel_port = r.uint(2)? as u16;
        let all_tg_pt = r.u8()? != 0;
        let name_len = r.uint(2)? as usize;
        let port = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| PrStoreError::Corrupt("port name is not UTF-8"))?
            .to_string();
        regs.push(Registration {
            key,
            port,
            rel_port,
            all_tg_pt,
        });
    }
    let res = match r.u8()? {
        0 => None,
        1 => {
            let holder = r.uint(4)? as usize;
            let pr_type =
                PrType::from_u8(r.u8()?).ok_or(PrStoreError::Corrupt("bad reservation type"))?;
            if holder >= regs.len() {
                return Err(PrStoreError::Corrupt("bad reservation holder"));
            }
            Some(Reservation { holder, pr_type })
        }
        _ => return Err(PrStoreError::Corrupt("bad reservation flag")),
    };
    if !r.0.is_empty() {
        return Err(PrStoreError::Corrupt("trailing bytes"));
    }
    Ok(PrState {
        generation,
        regs,
        res,
        aptpl,
    })
}
