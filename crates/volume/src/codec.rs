//! Little-endian binary encoding used by the log and the checkpoints, and
//! the checksum helpers. Decoding never panics: every read is bounds-checked
//! and returns [`Corrupt`](crate::ErrorKind::Corrupt) on short input.

use crate::error::{Result, VolumeError};

/// CRC32C of a data block, seeded with its physical block number so that a
/// block written to (or read from) the wrong place fails verification too.
pub(crate) fn block_crc(phys: u64, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&phys.to_le_bytes()), data)
}

#[derive(Default)]
pub(crate) struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn with_capacity(n: usize) -> Self {
        Enc {
            buf: Vec::with_capacity(n),
        }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.u64(x);
            }
            None => self.u8(0),
        }
    }
    pub fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.str(x);
            }
            None => self.u8(0),
        }
    }
}

pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8], what: &'a str) -> Self {
        Dec { buf, pos: 0, what }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(VolumeError::corrupt(format!(
                "{}: truncated record at byte {} (need {n}, have {})",
                self.what,
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| VolumeError::corrupt(format!("{}: invalid UTF-8 string", self.what)))
    }
    pub fn opt_u64(&mut self) -> Result<Option<u64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            t => Err(self.bad_tag(t)),
        }
    }
    pub fn opt_str(&mut self) -> Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            t => Err(self.bad_tag(t)),
        }
    }
    pub fn bad_tag(&self, t: u8) -> VolumeError {
        VolumeError::corrupt(format!(
            "{}: unknown tag {t} at byte {}",
            self.what,
            self.pos.saturating_sub(1)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_truncation() {
        let mut e = Enc::default();
        e.u8(7);
        e.u32(0xdead_beef);
        e.u64(u64::MAX - 3);
        e.str("vol@snap");
        e.opt_u64(Some(5));
        e.opt_u64(None);
        e.opt_str(Some("x"));
        let mut d = Dec::new(&e.buf, "test");
        assert_eq!(d.u8().unwrap(), 7);
        assert_eq!(d.u32().unwrap(), 0xdead_beef);
        assert_eq!(d.u64().unwrap(), u64::MAX - 3);
        assert_eq!(d.str().unwrap(), "vol@snap");
        assert_eq!(d.opt_u64().unwrap(), Some(5));
        assert_eq!(d.opt_u64().unwrap(), None);
        assert_eq!(d.opt_str().unwrap().as_deref(), Some("x"));
        assert!(d.is_empty());
        // Every truncation fails cleanly.
        for cut in 0..e.buf.len() {
            let mut d = Dec::new(&e.buf[..cut], "t");
            let r = (|| -> Result<()> {
                d.u8()?;
                d.u32()?;
                d.u64()?;
                d.str()?;
                d.opt_u64()?;
                d.opt_u64()?;
                d.opt_str()?;
                Ok(())
            })();
            assert!(r.is_err(), "cut {cut}");
        }
        // A huge string length does not allocate or panic.
        let mut e = Enc::default();
        e.u32(u32::MAX);
        assert!(Dec::new(&e.buf, "t").str().is_err());
    }

    #[test]
    fn block_crc_depends_on_location() {
        let d = [0x5au8; 4096];
        assert_ne!(block_crc(1, &d), block_crc(2, &d));
        assert_eq!(block_crc(9, &d), block_crc(9, &d));
    }
}
