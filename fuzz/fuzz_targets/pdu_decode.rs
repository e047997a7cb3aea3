//! Arbitrary bytes as received from an initiator.
//!
//! 1. The first 48 bytes (zero-padded) are a BHS, the rest is AHS / data:
//!    `Request::parse`, `full_cdb` with the rest as an arbitrary AHS area,
//!    `Bhs::trailing_len` and digest verification, plus encode/parse round
//!    trips of the request kinds that have an encoder.
//! 2. The whole input is a byte stream read by `target::frame::PduReader`
//!    with each combination of header/data digests, until it ends or fails.
//!
//! Reading from `&[u8]` never returns `Pending`, so the reader's future is
//! polled directly with a no-op waker: no runtime needed.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use iscsi_proto::digest;
use iscsi_proto::pdu::{self, encode_login_request, full_cdb, Bhs, Request, BHS_LEN};
use libfuzzer_sys::fuzz_target;
use target::frame::{encode_pdu, FrameError, PduReader};

/// Data segment limit for the reader: big enough for any seed, small enough
/// that a hostile DataSegmentLength cannot make the fuzzer allocate much.
const MAX_DATA: u32 = 64 * 1024;

fn poll_now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("reading from a slice returned Pending"),
    }
}

fn check_header(data: &[u8]) {
    let mut bhs = Bhs::default();
    let n = data.len().min(BHS_LEN);
    bhs.0[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];

    let plain = bhs.trailing_len(false, false);
    assert_eq!(bhs.trailing_len(true, false), plain + digest::DIGEST_LEN);
    let dsl = bhs.data_segment_len() as usize;
    assert!(plain >= bhs.ahs_len() + dsl);
    assert_eq!((plain - bhs.ahs_len()) % 4, 0);

    let _ = digest::verify(&bhs.0, rest.get(..digest::DIGEST_LEN).unwrap_or(rest));
    let _ = digest::data_digest(rest);

    let req = Request::parse(&bhs);
    let _ = format!("{req:?} {bhs:?}");
    match &req {
        Request::ScsiCommand(cmd) => {
            let mut cdb = Vec::new();
            if let Some(len) = full_cdb(cmd, rest, &mut cdb) {
                assert_eq!(len, cdb.len());
                assert!(len >= 16);
                assert_eq!(&cdb[..16], &cmd.cdb);
            }
            assert_eq!(Request::parse(&cmd.encode()), req);
        }
        Request::DataOut(d) => {
            assert_eq!(Request::parse(&d.encode()), req);
        }
        Request::Login(h) => {
            let b = encode_login_request(h, bhs.data_segment_len());
            assert_eq!(Request::parse(&b), req);
            assert_eq!(b.data_segment_len(), bhs.data_segment_len());
        }
        Request::Unknown(op) => assert!(!matches!(
            *op,
            pdu::Opcode::NOP_OUT
                | pdu::Opcode::SCSI_COMMAND
                | pdu::Opcode::LOGIN_REQUEST
                | pdu::Opcode::SCSI_DATA_OUT
        )),
        _ => {}
    }
}

fn read_stream(data: &[u8], header_digest: bool, data_digest: bool) {
    let mut reader = PduReader::new(data, MAX_DATA);
    reader.set_digests(header_digest, data_digest);
    let mut consumed = 0usize;
    // Each PDU consumes at least 48 bytes, so this ends.
    loop {
        match poll_now(reader.next()) {
            Ok(frame) => {
                let dsl = frame.bhs.data_segment_len();
                assert!(dsl <= MAX_DATA);
                assert_eq!(frame.data.len(), dsl as usize);
                assert_eq!(frame.ahs.len(), frame.bhs.ahs_len());
                let total = BHS_LEN + frame.bhs.trailing_len(header_digest, data_digest);
                assert!(consumed + total <= data.len());
                let pdu_bytes = &data[consumed..consumed + total];
                assert_eq!(&pdu_bytes[..BHS_LEN], &frame.bhs.0);
                if !data_digest {
                    assert!(frame.data_digest_ok);
                }
                if frame.ahs.is_empty() {
                    // Re-encoding gives the same PDU up to the padding bytes
                    // (sent as zeros; received as whatever the peer put there).
                    let mut out = Vec::new();
                    encode_pdu(&mut out, &frame.bhs, frame.data, header_digest, data_digest);
                    assert_eq!(out.len(), total);
                    let at = BHS_LEN + if header_digest { digest::DIGEST_LEN } else { 0 };
                    assert_eq!(
                        &out[..at + frame.data.len()],
                        &pdu_bytes[..at + frame.data.len()]
                    );
                    let pad = pdu::padding(frame.data.len());
                    let pad_at = at + frame.data.len();
                    let zero_pad = pdu_bytes[pad_at..pad_at + pad].iter().all(|&b| b == 0);
                    if data_digest && frame.data_digest_ok && !frame.data.is_empty() && zero_pad {
                        assert_eq!(out[total - 4..], pdu_bytes[total - 4..]);
                    }
                }
                consumed += total;
            }
            Err(FrameError::Closed) => {
                assert_eq!(consumed, data.len());
                break;
            }
            Err(_) => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_header(data);
    for (hd, dd) in [(false, false), (true, false), (false, true), (true, true)] {
        read_stream(data, hd, dd);
    }
});
