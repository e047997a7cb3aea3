//! Reading whole PDUs off an async byte stream (the `tokio` feature): the
//! one framer the target and the project's initiator share.
//!
//! [`PduReader`] keeps one growable buffer per connection and hands out frames
//! that borrow it, so steady-state reading allocates nothing. Limits are checked
//! on the header before the data segment is read: a peer announcing a data
//! segment longer than negotiated is refused without the target allocating it.
//! `next` is cancel-safe: progress lives in the reader, not in the future.

use std::io;

use crate::digest;
use crate::pdu::{Bhs, BHS_LEN};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest AHS the target accepts (an extended CDB of up to 260 bytes fits).
const MAX_AHS: usize = 512;
/// Bytes read ahead per system call at least.
const READ_CHUNK: usize = 64 * 1024;

/// Why a frame could not be read. Every variant ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between PDUs.
    #[error("connection closed by the peer")]
    Closed,
    /// Socket error, or the peer closed in the middle of a PDU.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The header digest did not match: the header cannot be trusted.
    #[error("header digest mismatch")]
    HeaderDigest,
    /// DataSegmentLength above the negotiated maximum.
    #[error("data segment of {len} bytes exceeds the limit of {limit}")]
    DataTooLong {
        /// Announced length.
        len: u32,
        /// Allowed length.
        limit: u32,
    },
    /// TotalAHSLength above what the target accepts.
    #[error("additional header segments of {0} bytes are too long")]
    AhsTooLong(usize),
}

/// One received PDU; slices borrow the reader's buffer.
pub struct Frame<'a> {
    /// The Basic Header Segment.
    pub bhs: Bhs,
    /// Additional Header Segments (usually empty).
    pub ahs: &'a [u8],
    /// The data segment without padding.
    pub data: &'a [u8],
    /// False when data digests are on and the data digest did not match.
    pub data_digest_ok: bool,
}

/// Frames PDUs from a byte stream.
pub struct PduReader<R> {
    io: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_data: u32,
    header_digest: bool,
    data_digest: bool,
}

impl<R: AsyncRead + Unpin> PduReader<R> {
    /// A reader that accepts data segments of at most `max_data` bytes.
    pub fn new(io: R, max_data: u32) -> Self {
        Self {
            io,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            max_data,
            header_digest: false,
            data_digest: false,
        }
    }

    /// Changes the data segment limit (after login negotiation).
    pub fn set_max_data(&mut self, max_data: u32) {
        self.max_data = max_data;
    }

    /// Turns digest checking on or off (after login negotiation).
    pub fn set_digests(&mut self, header: bool, data: bool) {
        self.header_digest = header;
        self.data_digest = data;
    }

    /// Whether a whole PDU is already buffered, so `next` will not wait.
    pub fn has_frame(&self) -> bool {
        let avail = self.end - self.start;
        if avail < BHS_LEN {
            return false;
        }
        let mut bhs = Bhs::default();
        bhs.0
            .copy_from_slice(&self.buf[self.start..self.start + BHS_LEN]);
        avail >= BHS_LEN + bhs.trailing_len(self.header_digest, self.data_digest)
    }

    /// Reads the next whole PDU. Cancel-safe.
    pub async fn next(&mut self) -> Result<Frame<'_>, FrameError> {
        self.fill(BHS_LEN).await?;
        let mut bhs = Bhs::default();
        bhs.0
            .copy_from_slice(&self.buf[self.start..self.start + BHS_LEN]);
        if self.header_digest {
            self.fill(BHS_LEN + bhs.ahs_len() + digest::DIGEST_LEN)
                .await?;
        }
        let ahs_len = bhs.ahs_len();
        if ahs_len > MAX_AHS {
            return Err(FrameError::AhsTooLong(ahs_len));
        }
        let hd_end = BHS_LEN + ahs_len;
        if self.header_digest {
            let covered = &self.buf[self.start..self.start + hd_end];
            let received = &self.buf[self.start + hd_end..self.start + hd_end + digest::DIGEST_LEN];
            if !digest::verify(covered, received) {
                return Err(FrameError::HeaderDigest);
            }
        }
        // The length is checked before anything of the data segment is buffered.
        let dsl = bhs.data_segment_len();
        if dsl > self.max_data {
            return Err(FrameError::DataTooLong {
                len: dsl,
                limit: self.max_data,
            });
        }
        let total = BHS_LEN + bhs.trailing_len(self.header_digest, self.data_digest);
        self.fill(total).await?;
        let s = self.start;
        let data_at = s
            + hd_end
            + if self.header_digest {
                digest::DIGEST_LEN
            } else {
                0
            };
        let dsl = dsl as usize;
        let mut data_digest_ok = true;
        if self.data_digest && dsl > 0 {
            let padded = dsl + crate::pdu::padding(dsl);
            let received = &self.buf[data_at + padded..data_at + padded + digest::DIGEST_LEN];
            data_digest_ok = digest::verify(&self.buf[data_at..data_at + padded], received);
        }
        self.start += total;
        Ok(Frame {
            bhs,
            ahs: &self.buf[s + BHS_LEN..s + hd_end],
            data: &self.buf[data_at..data_at + dsl],
            data_digest_ok,
        })
    }

    /// Ensures `n` bytes from `start` are buffered.
    async fn fill(&mut self, n: usize) -> Result<(), FrameError> {
        while self.end - self.start < n {
            if self.start + n > self.buf.len() {
                // Move the partial PDU to the front; grow only when one PDU
                // does not fit (that happens once, after login).
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if n > self.buf.len() {
                    self.buf.resize(n + READ_CHUNK, 0);
                }
            }
            let got = self.io.read(&mut self.buf[self.end..]).await?;
            if got == 0 {
                return Err(if self.end == self.start {
                    FrameError::Closed
                } else {
                    FrameError::Io(io::ErrorKind::UnexpectedEof.into())
                });
            }
            self.end += got;
        }
        Ok(())
    }
}

pub use crate::pdu::encode_pdu;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::Opcode;

    fn pdu(dsl: usize, hd: bool, dd: bool) -> Vec<u8> {
        let mut b = Bhs::new(Opcode::NOP_OUT);
        b.set_data_segment_len(dsl as u32);
        let mut out = Vec::new();
        encode_pdu(&mut out, &b, &vec![7u8; dsl], hd, dd);
        out
    }

    #[tokio::test]
    async fn reads_back_to_back_pdus_with_digests() {
        let mut wire = pdu(5, true, true);
        wire.extend(pdu(0, true, true));
        wire.extend(pdu(100_000, true, true));
        let mut r = PduReader::new(&wire[..], 200_000);
        r.set_digests(true, true);
        assert_eq!(r.next().await.expect("pdu").data.len(), 5);
        assert_eq!(r.next().await.expect("pdu").data.len(), 0);
        let f = r.next().await.expect("pdu");
        assert_eq!(f.data.len(), 100_000);
        assert!(f.data_digest_ok);
        assert!(matches!(r.next().await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn refuses_long_segment_before_reading_it() {
        let mut b = Bhs::new(Opcode::SCSI_COMMAND);
        b.set_data_segment_len(16 << 20);
        // Only the header is on the wire: the reader must fail without waiting for data.
        let mut r = PduReader::new(&b.0[..], 8192);
        assert!(matches!(
            r.next().await,
            Err(FrameError::DataTooLong { .. })
        ));
        assert!(r.buf.len() < 64 * 1024);
    }

    #[tokio::test]
    async fn detects_digest_errors() {
        let mut wire = pdu(8, true, true);
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let mut r = PduReader::new(&wire[..], 8192);
        r.set_digests(true, true);
        assert!(!r.next().await.expect("pdu").data_digest_ok);
        let mut wire = pdu(0, true, false);
        wire[3] ^= 1;
        let mut r = PduReader::new(&wire[..], 8192);
        r.set_digests(true, false);
        assert!(matches!(r.next().await, Err(FrameError::HeaderDigest)));
    }

    #[tokio::test]
    async fn truncated_pdu_is_an_error_not_a_clean_close() {
        let wire = pdu(8, false, false);
        let mut r = PduReader::new(&wire[..20], 8192);
        assert!(matches!(r.next().await, Err(FrameError::Io(_))));
    }
}
