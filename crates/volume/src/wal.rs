//! The metadata write-ahead log.
//!
//! The log is a sequence of frames, one per committed transaction:
//!
//! ```text
//! +-------+-------+--------+-------+----------+------------------+
//! | magic | len   | seq    | crc   | reserved | payload (len B)  |
//! | u32   | u32   | u64    | u32   | u32      | encoded ops      |
//! +-------+-------+--------+-------+----------+------------------+
//! crc = CRC32C(len ‖ seq ‖ payload)
//! ```
//!
//! Frames are appended with one `pwrite` and made durable with
//! `fdatasync`; a transaction is committed exactly when its frame is
//! durable. Sequence numbers are consecutive. Recovery replays frames in
//! order and stops at the first frame that is incomplete, fails its CRC or
//! breaks the sequence. If no valid later frame exists, that frame is the
//! torn tail of a commit that was never acknowledged and is truncated away.
//! If a valid frame with a higher sequence number follows, the damage is in
//! the middle of the log (bit rot, not a crash): opening refuses with
//! `Corrupt` instead of silently dropping committed transactions, and only
//! `check --repair` truncates there.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub(crate) const MAGIC: u32 = 0x4C41_5749; // "IWAL" little-endian
pub(crate) const HDR: usize = 24;
/// Upper bound on one frame's payload (sanity check against a corrupt length).
const MAX_PAYLOAD: usize = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogDamage {
    /// Incomplete or invalid bytes at the end, nothing valid after them.
    TornTail { offset: u64, bytes: u64 },
    /// Invalid frame (or sequence gap) followed by a valid later frame.
    Corrupt {
        offset: u64,
        later_offset: u64,
        later_seq: u64,
    },
}

impl std::fmt::Display for LogDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogDamage::TornTail { offset, bytes } => {
                write!(f, "{bytes} invalid bytes at the end (byte {offset})")
            }
            LogDamage::Corrupt {
                offset,
                later_offset,
                later_seq,
            } => write!(
                f,
                "invalid frame at byte {offset}, followed by a valid frame (seq {later_seq}) at byte {later_offset}"
            ),
        }
    }
}

pub(crate) struct Scan {
    /// Frames after the checkpoint, in order: (seq, payload).
    pub frames: Vec<(u64, Vec<u8>)>,
    /// Offset just past the last good frame.
    pub good_end: u64,
    /// Sequence number of the last good frame (or the checkpoint's).
    pub last_seq: u64,
    pub damage: Option<LogDamage>,
}

enum Parsed<'a> {
    End,
    Bad,
    Frame {
        seq: u64,
        payload: &'a [u8],
        next: usize,
    },
}

fn frame_crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(&len.to_le_bytes());
    h[4..].copy_from_slice(&seq.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&h), payload)
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_le_bytes(a))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn parse(buf: &[u8], pos: usize) -> Parsed<'_> {
    if pos >= buf.len() {
        return Parsed::End;
    }
    if buf.len() - pos < HDR {
        return Parsed::Bad;
    }
    let (Some(magic), Some(len), Some(seq), Some(crc)) = (
        le_u32(buf, pos),
        le_u32(buf, pos + 4),
        le_u64(buf, pos + 8),
        le_u32(buf, pos + 16),
    ) else {
        return Parsed::Bad;
    };
    let plen = len as usize;
    if magic != MAGIC || plen > MAX_PAYLOAD || buf.len() - pos - HDR < plen {
        return Parsed::Bad;
    }
    let start = pos + HDR;
    let Some(payload) = buf.get(start..start + plen) else {
        return Parsed::Bad;
    };
    if frame_crc(len, seq, payload) != crc {
        return Parsed::Bad;
    }
    Parsed::Frame {
        seq,
        payload,
        next: start + plen,
    }
}

/// Scan a whole log image; frames with `seq <= after_seq` (already in the
/// checkpoint) are skipped.
pub(crate) fn scan(buf: &[u8], after_seq: u64) -> Scan {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    let mut last = after_seq;
    let mut damage = None;
    loop {
        match parse(buf, pos) {
            Parsed::End => break,
            Parsed::Frame { seq, payload, next } => {
                if seq <= after_seq && frames.is_empty() {
                    pos = next;
                    continue;
                }
                if seq != last + 1 {
                    damage = Some(LogDamage::Corrupt {
                        offset: pos as u64,
                        later_offset: pos as u64,
                        later_seq: seq,
                    });
                    break;
                }
                frames.push((seq, payload.to_vec()));
                last = seq;
                pos = next;
            }
            Parsed::Bad => {
                damage = Some(match find_later(buf, pos + 1, last) {
                    Some((off, seq)) => LogDamage::Corrupt {
                        offset: pos as u64,
                        later_offset: off as u64,
                        later_seq: seq,
                    },
                    None => LogDamage::TornTail {
                        offset: pos as u64,
                        bytes: (buf.len() - pos) as u64,
                    },
                });
                break;
            }
        }
    }
    Scan {
        frames,
        good_end: pos as u64,
        last_seq: last,
        damage,
    }
}

fn find_later(buf: &[u8], from: usize, last: u64) -> Option<(usize, u64)> {
    let magic = MAGIC.to_le_bytes();
    let mut off = from;
    while off + HDR <= buf.len() {
        if buf[off..off + 4] == magic {
            if let Parsed::Frame { seq, .. } = parse(buf, off) {
                if seq > last {
                    return Some((off, seq));
                }
            }
        }
        off += 1;
    }
    None
}

pub(crate) fn read_all(file: &File) -> io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Appender. Not thread-safe by itself: lives inside the commit mutex.
pub(crate) struct Wal {
    pub file: File,
    pub len: u64,
    pub next_seq: u64,
    buf: Vec<u8>,
}

impl Wal {
    pub fn new(file: File, len: u64, next_seq: u64) -> Self {
        Wal {
            file,
            len,
            next_seq,
            buf: Vec::new(),
        }
    }

    /// Append one frame and make it durable. Returns its sequence number.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<u64> {
        let seq = self.next_seq;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| (l as usize) <= MAX_PAYLOAD)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "log frame too large"))?;
        self.buf.clear();
        self.buf.extend_from_slice(&MAGIC.to_le_bytes());
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf
            .extend_from_slice(&frame_crc(len, seq, payload).to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.buf.extend_from_slice(payload);
        self.file.write_all_at(&self.buf, self.len)?;
        self.file.sync_data()?;
        self.len += self.buf.len() as u64;
        self.next_seq += 1;
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        Ok(seq)
    }

    /// Drop everything (after a checkpoint made it redundant).
    pub fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpfile(tag: &str) -> (File, std::path::PathBuf) {
        let p = crate::test_util::temp_dir(tag).join("wal");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        (f, p)
    }

    fn log_with(n: u64, first_seq: u64) -> (Wal, Vec<u64>) {
        let (f, _) = tmpfile("wal");
        let mut w = Wal::new(f, 0, first_seq);
        let mut ends = Vec::new();
        for i in 0..n {
            w.append(&vec![i as u8; 10 + i as usize * 7]).unwrap();
            ends.push(w.len);
        }
        (w, ends)
    }

    #[test]
    fn append_and_scan() {
        let (w, _) = log_with(5, 1);
        let buf = read_all(&w.file).unwrap();
        let s = scan(&buf, 0);
        assert_eq!(s.frames.len(), 5);
        assert_eq!(s.last_seq, 5);
        assert_eq!(s.damage, None);
        assert_eq!(s.good_end, buf.len() as u64);
        assert_eq!(s.frames[3].1, vec![3u8; 31]);
        // Frames covered by a checkpoint are skipped.
        let s = scan(&buf, 3);
        assert_eq!(s.frames.iter().map(|f| f.0).collect::<Vec<_>>(), vec![4, 5]);
    }

    #[test]
    fn torn_tail_at_every_cut() {
        let (w, ends) = log_with(4, 1);
        let buf = read_all(&w.file).unwrap();
        for cut in ends[2] as usize + 1..buf.len() {
            let s = scan(&buf[..cut], 0);
            assert_eq!(s.frames.len(), 3, "cut {cut}");
            assert_eq!(s.good_end, ends[2]);
            assert!(matches!(s.damage, Some(LogDamage::TornTail { .. })));
        }
        // Zero fill after the last frame (file extended, data not written).
        let mut z = buf.clone();
        z.extend_from_slice(&[0u8; 100]);
        let s = scan(&z, 0);
        assert_eq!(s.frames.len(), 4);
        assert!(matches!(
            s.damage,
            Some(LogDamage::TornTail { bytes: 100, .. })
        ));
    }

    #[test]
    fn corrupt_last_frame_is_tail_middle_is_corrupt() {
        let (w, ends) = log_with(4, 1);
        let buf = read_all(&w.file).unwrap();
        let mut b = buf.clone();
        b[ends[2] as usize + HDR + 3] ^= 0x40; // payload of frame 4
        let s = scan(&b, 0);
        assert_eq!(s.frames.len(), 3);
        assert!(matches!(s.damage, Some(LogDamage::TornTail { .. })));
        let mut b = buf.clone();
        b[ends[0] as usize + HDR + 1] ^= 1; // payload of frame 2
        let s = scan(&b, 0);
        assert_eq!(s.frames.len(), 1);
        match s.damage {
            Some(LogDamage::Corrupt {
                offset, later_seq, ..
            }) => {
                assert_eq!(offset, ends[0]);
                assert_eq!(later_seq, 3);
            }
            d => panic!("{d:?}"),
        }
        // Corrupt header length: same classification.
        let mut b = buf.clone();
        b[ends[1] as usize + 5] = 0xff;
        let s = scan(&b, 0);
        assert_eq!(s.frames.len(), 2);
        assert!(matches!(
            s.damage,
            Some(LogDamage::Corrupt { later_seq: 4, .. })
        ));
    }

    #[test]
    fn sequence_gap_is_corrupt() {
        let (w, _) = log_with(3, 10);
        let buf = read_all(&w.file).unwrap();
        // Checkpoint at 5 but the log starts at 10.
        let s = scan(&buf, 5);
        assert!(s.frames.is_empty());
        assert!(matches!(
            s.damage,
            Some(LogDamage::Corrupt { later_seq: 10, .. })
        ));
        let s = scan(&buf, 9);
        assert_eq!(s.frames.len(), 3);
    }
}
