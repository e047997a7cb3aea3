//! Framing on the initiator side: whole PDUs off a byte stream, and PDUs
//! onto it.
//!
//! This is deliberately a separate implementation from the target's
//! `target::frame` reader: a test initiator that shared the target's framing
//! code could not catch a framing bug that both sides would then agree on.
//! Only the sans-IO pieces (`Bhs`, digests, padding) come from `iscsi-proto`.

use std::io;

use iscsi_proto::digest::{self, DIGEST_LEN};
use iscsi_proto::pdu::{padding, Bhs, BHS_LEN};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest AHS accepted from a target (targets rarely send any).
const MAX_AHS: usize = 1024;

/// Why a PDU could not be read. Every variant ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The target closed the connection between PDUs.
    #[error("connection closed by the target")]
    Closed,
    /// Socket error, or the connection closed in the middle of a PDU.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The header digest did not match: the header cannot be trusted.
    #[error("header digest mismatch")]
    HeaderDigest,
    /// DataSegmentLength above what this initiator declared it accepts.
    #[error("data segment of {len} bytes exceeds the limit of {limit}")]
    DataTooLong {
        /// Announced length.
        len: u32,
        /// Accepted length.
        limit: u32,
    },
    /// TotalAHSLength above what this initiator accepts.
    #[error("additional header segments of {0} bytes are too long")]
    AhsTooLong(usize),
}

/// One received PDU; the data borrows the reader's buffer.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The Basic Header Segment.
    pub bhs: Bhs,
    /// The data segment without padding.
    pub data: &'a [u8],
    /// False when data digests are on and the data digest did not match.
    pub data_digest_ok: bool,
}

/// Reads whole PDUs from a byte stream, checking limits and digests.
///
/// `next` is cancel-safe: partial progress lives in the reader's buffer.
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_data: u32,
    header_digest: bool,
    data_digest: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader accepting data segments of at most `max_data` bytes, digests off.
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

    /// Reads the next whole PDU.
    pub async fn next(&mut self) -> Result<Frame<'_>, FrameError> {
        self.fill(BHS_LEN).await?;
        let mut bhs = Bhs::default();
        bhs.0
            .copy_from_slice(&self.buf[self.start..self.start + BHS_LEN]);
        let ahs_len = bhs.ahs_len();
        if ahs_len > MAX_AHS {
            return Err(FrameError::AhsTooLong(ahs_len));
        }
        let header_len = BHS_LEN + ahs_len;
        let mut data_at = header_len;
        if self.header_digest {
            // Verified before any length in the header is trusted.
            self.fill(header_len + DIGEST_LEN).await?;
            let s = self.start;
            let received = &self.buf[s + header_len..s + header_len + DIGEST_LEN];
            if !digest::verify(&self.buf[s..s + header_len], received) {
                return Err(FrameError::HeaderDigest);
            }
            data_at += DIGEST_LEN;
        }
        let dsl = bhs.data_segment_len();
        if dsl > self.max_data {
            return Err(FrameError::DataTooLong {
                len: dsl,
                limit: self.max_data,
            });
        }
        let total = BHS_LEN + bhs.trailing_len(self.header_digest, self.data_digest);
        self.fill(total).await?;
        let data_at = self.start + data_at;
        let dsl = dsl as usize;
        let mut data_digest_ok = true;
        if self.data_digest && dsl > 0 {
            let padded = dsl + padding(dsl);
            let received = &self.buf[data_at + padded..data_at + padded + DIGEST_LEN];
            data_digest_ok = digest::verify(&self.buf[data_at..data_at + padded], received);
        }
        self.start += total;
        Ok(Frame {
            bhs,
            data: &self.buf[data_at..data_at + dsl],
            data_digest_ok,
        })
    }

    /// Ensures `n` bytes from `start` are buffered.
    async fn fill(&mut self, n: usize) -> Result<(), FrameError> {
        while self.end - self.start < n {
            if self.start + n > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if n > self.buf.len() {
                    self.buf.resize(n.next_power_of_two(), 0);
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

pub use iscsi_proto::pdu::encode_pdu;

#[cfg(test)]
mod tests {
    use super::*;
    use iscsi_proto::pdu::Opcode;

    fn pdu(dsl: usize, hd: bool, dd: bool) -> Vec<u8> {
        let mut b = Bhs::new(Opcode::NOP_IN);
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
        let mut r = FrameReader::new(&wire[..], 200_000);
        r.set_digests(true, true);
        assert_eq!(r.next().await.expect("pdu").data, &[7u8; 5]);
        assert!(r.next().await.expect("pdu").data.is_empty());
        let f = r.next().await.expect("pdu");
        assert_eq!(f.data.len(), 100_000);
        assert!(f.data_digest_ok);
        assert!(matches!(r.next().await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn refuses_a_long_segment_before_reading_it() {
        let mut b = Bhs::new(Opcode::SCSI_DATA_IN);
        b.set_data_segment_len(16 << 20);
        let mut r = FrameReader::new(&b.0[..], 8192);
        assert!(matches!(
            r.next().await,
            Err(FrameError::DataTooLong { .. })
        ));
    }

    #[tokio::test]
    async fn detects_digest_errors() {
        let mut wire = pdu(8, true, true);
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let mut r = FrameReader::new(&wire[..], 8192);
        r.set_digests(true, true);
        assert!(!r.next().await.expect("pdu").data_digest_ok);
        let mut wire = pdu(0, true, false);
        wire[3] ^= 1;
        let mut r = FrameReader::new(&wire[..], 8192);
        r.set_digests(true, false);
        assert!(matches!(r.next().await, Err(FrameError::HeaderDigest)));
    }

    #[tokio::test]
    async fn truncation_is_an_error_not_a_clean_close() {
        let wire = pdu(8, false, false);
        let mut r = FrameReader::new(&wire[..20], 8192);
        assert!(matches!(r.next().await, Err(FrameError::Io(_))));
    }
}
