//! SANITIZE OVERWRITE / BLOCK ERASE: parameter validation, the background
//! operation, what other commands see while it runs, and its survival
//! across task management and nexus loss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sanitize::{parse_overwrite, pass_inverted};
use crate::tests::{cdb16, ident, lu_with, run, Out, INVALID_FIELD, N1, N2};
use crate::*;

const NOT_READY_SANITIZE: (u8, u16) = (2, 0x041B);
const INVALID_PARAM: (u8, u16) = (5, 0x2600);

/// SANITIZE CDB: service action, IMMED, PARAMETER LIST LENGTH.
fn sanitize_cdb(sa: u8, immed: bool, param_len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x48;
    c[1] = sa | if immed { 0x80 } else { 0 };
    c[7..9].copy_from_slice(&param_len.to_be_bytes());
    c
}

/// OVERWRITE parameter list: byte 0, pattern.
fn params(b0: u8, pattern: &[u8]) -> Vec<u8> {
    let mut p = vec![b0, 0];
    p.extend_from_slice(&(pattern.len() as u16).to_be_bytes());
    p.extend_from_slice(pattern);
    p
}

fn overwrite(lu: &LogicalUnit, n: Nexus, immed: bool, p: &[u8]) -> Out {
    let c = sanitize_cdb(0x01, immed, p.len() as u16);
    run(lu, n, &c, p, p.len() as u32)
}

fn read(lu: &LogicalUnit, n: Nexus, lba: u64, blocks: u32) -> Out {
    run(lu, n, &cdb16(0x88, 0, lba, blocks), &[], blocks * 512)
}

fn tur(lu: &LogicalUnit, n: Nexus) -> Out {
    run(lu, n, &[0; 6], &[], 0)
}

/// Progress indication of a SANITIZE IN PROGRESS sense (fixed format).
fn progress(o: &Out) -> u16 {
    let b = o.o.sense.as_bytes();
    assert_eq!(b[15] & 0x80, 0x80, "SKSV");
    u16::from_be_bytes([b[16], b[17]])
}

/// Wait (bounded) until no sanitize operation is in progress.
fn wait_done(lu: &LogicalUnit) {
    let t = Instant::now();
    while lu.sanitize_in_progress() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "sanitize never ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Clear unit attentions of `n` (TEST UNIT READY until not a UA).
fn clear_ua(lu: &LogicalUnit, n: Nexus) -> Out {
    loop {
        let o = tur(lu, n);
        if o.good() || o.sense().0 != 6 {
            return o;
        }
    }
}

#[test]
fn overwrite_parameter_list_validation() {
    let bs = 512;
    let full = params(0x01, &[0xAA; 512]);
    // PARAMETER LIST LENGTH must be 5..=block size + 4 (a CDB field).
    for len in 0..5u16 {
        assert_eq!(
            parse_overwrite(len, &full, bs).unwrap_err(),
            Sense::invalid_field_in_cdb(7, None)
        );
    }
    let mut long = full.clone();
    long.push(0);
    assert_eq!(
        parse_overwrite(517, &long, bs).unwrap_err(),
        Sense::invalid_field_in_cdb(7, None)
    );
    // Less Data-Out than the list length.
    assert_eq!(
        parse_overwrite(516, &full[..100], bs).unwrap_err(),
        Sense::parameter_list_length_error()
    );
    let bad = |b0: u8, b1: u8, ipl: u16| {
        let mut p = full.clone();
        p[0] = b0;
        p[1] = b1;
        p[2..4].copy_from_slice(&ipl.to_be_bytes());
        parse_overwrite(516, &p, bs).unwrap_err()
    };
    // OVERWRITE COUNT 0, TEST != 00b, reserved bits, pattern length 0,
    // larger than the block or than the list.
    assert_eq!(
        bad(0x00, 0, 512),
        Sense::invalid_field_in_param_list(0, Some(3))
    );
    assert_eq!(
        bad(0x11, 0, 512),
        Sense::invalid_field_in_param_list(0, Some(5))
    );
    assert_eq!(
        bad(0x21, 0, 512),
        Sense::invalid_field_in_param_list(0, Some(5))
    );
    assert_eq!(
        bad(0x41, 0, 512),
        Sense::invalid_field_in_param_list(0, Some(6))
    );
    assert_eq!(
        bad(0x01, 1, 512),
        Sense::invalid_field_in_param_list(1, None)
    );
    assert_eq!(bad(0x01, 0, 0), Sense::invalid_field_in_param_list(2, None));
    assert_eq!(
        bad(0x01, 0, 516),
        Sense::invalid_field_in_param_list(2, None)
    );
    let p = params(0x01, &[1, 2, 3]);
    assert_eq!(
        parse_overwrite(6, &p, bs).unwrap_err(),
        Sense::invalid_field_in_param_list(2, None)
    );
    // Good lists: the pattern repeats from the start of every block; a
    // list longer than the pattern is fine.
    let ow = parse_overwrite(7, &p, bs).unwrap();
    assert_eq!((ow.passes, ow.invert), (1, false));
    assert_eq!(ow.block.len(), 512);
    assert_eq!(&ow.block[..7], &[1, 2, 3, 1, 2, 3, 1]);
    assert_eq!(ow.block[511], 2);
    let mut half = params(0x8F, &[0x55; 256]);
    half.resize(516, 0xEE);
    let ow = parse_overwrite(516, &half, bs).unwrap();
    assert_eq!((ow.passes, ow.invert), (15, true));
    assert!(ow.block.iter().all(|&b| b == 0x55));
}

#[test]
fn invert_alternates_ending_with_the_pattern() {
    // Odd count: first pass as given; even count: first pass inverted.
    assert_eq!(
        (0..3)
            .map(|p| pass_inverted(true, p, 3))
            .collect::<Vec<_>>(),
        [false, true, false]
    );
    assert_eq!(
        (0..4)
            .map(|p| pass_inverted(true, p, 4))
            .collect::<Vec<_>>(),
        [true, false, true, false]
    );
    assert!(!(0..4).any(|p| pass_inverted(false, p, 4)));
}

#[test]
fn overwrite_cdb_errors_and_report_supported_opcodes() {
    let (lu, _) = lu_with(512, 64);
    lu.set_sanitize_rate(0);
    let p = params(0x01, &[0xAA; 512]);
    // List length out of range, reserved CDB bit / bytes.
    for len in [0u16, 4, 517] {
        let c = sanitize_cdb(0x01, false, len);
        let mut d = p.clone();
        d.resize(600, 0);
        assert_eq!(run(&lu, N1, &c, &d, u32::from(len)).sense(), INVALID_FIELD);
    }
    let mut c = sanitize_cdb(0x01, false, 516);
    c[1] |= 0x40;
    assert_eq!(run(&lu, N1, &c, &p, 516).sense(), INVALID_FIELD);
    for i in 2..7 {
        let mut c = sanitize_cdb(0x01, false, 516);
        c[i] = i as u8;
        assert_eq!(run(&lu, N1, &c, &p, 516).sense(), INVALID_FIELD, "byte {i}");
    }
    // Bad parameter list.
    assert_eq!(
        overwrite(&lu, N1, false, &params(0x00, &[1; 4])).sense(),
        INVALID_PARAM
    );
    // CRYPTOGRAPHIC ERASE and EXIT FAILURE MODE are not offered.
    for sa in [0x03u8, 0x1F] {
        let o = run(&lu, N1, &sanitize_cdb(sa, false, 0), &[], 0);
        assert_eq!(o.sense(), INVALID_FIELD, "{sa:#x}");
    }
    // REPORT SUPPORTED OPERATION CODES (one command, with service action).
    let rsoc = |sa: u8| {
        let c = [0xA3, 0x0C, 0x03, 0x48, 0, sa, 0, 0, 1, 0, 0, 0];
        run(&lu, N1, &c, &[], 256)
    };
    let o = rsoc(0x01);
    assert!(o.good());
    assert_eq!(o.data[1] & 0x07, 0x03, "supported");
    assert_eq!(&o.data[4..14], &[0x48, 0xA1, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]);
    assert_eq!(rsoc(0x02).data[1] & 0x07, 0x03);
    assert_eq!(
        rsoc(0x03).data[1] & 0x07,
        0x01,
        "crypto erase not supported"
    );
    assert_eq!(rsoc(0x1F).data[1] & 0x07, 0x01);
}

#[test]
fn overwrite_immed0_completes_with_the_pattern() {
    let (lu, _) = lu_with(512, 3000);
    lu.set_sanitize_rate(0);
    assert!(run(&lu, N1, &cdb16(0x8A, 0, 0, 1), &[b'a'; 512], 512).good());
    // One full block, three passes with INVERT: the last pass is plain.
    let o = overwrite(&lu, N1, false, &params(0x83, &[0xAA; 512]));
    assert!(o.good(), "{:?}", o.o);
    assert_eq!(o.o.transfer_len, 516);
    assert!(!lu.sanitize_in_progress());
    assert!(tur(&lu, N1).good());
    for lba in [0, 1500, 2744] {
        let r = read(&lu, N1, lba, 256);
        assert!(r.good());
        assert!(r.data.iter().all(|&b| b == 0xAA), "lba {lba}");
    }
    // Two passes with INVERT, half-block pattern, padded list.
    let mut p = params(0x82, &[1, 2, 3, 4]);
    p.resize(516, 0);
    assert!(overwrite(&lu, N2, false, &p).good());
    let r = read(&lu, N1, 2999, 1);
    assert_eq!(&r.data[..8], &[1, 2, 3, 4, 1, 2, 3, 4]);
    assert!(r.data.chunks(4).all(|c| c == [1, 2, 3, 4]));
    // REQUEST SENSE afterwards: nothing to report.
    let rs = run(&lu, N1, &[0x03, 0, 0, 0, 252, 0], &[], 252);
    assert_eq!(rs.data[2] & 0x0F, 0);
}

#[test]
fn overwrite_in_progress_blocks_media_access_from_every_nexus() {
    // 1 MiB at 2 MiB/s: about half a second, in 64 KiB steps.
    let (lu, dev) = lu_with(512, 2048);
    lu.set_sanitize_rate(2 * 1024 * 1024);
    let o = overwrite(&lu, N1, true, &params(0x01, &[0x5A]));
    assert!(o.good());
    assert!(lu.sanitize_in_progress());
    let data = [7u8; 512];
    for n in [N1, N2] {
        for (cdb, dout, len) in [
            (&[0u8; 6][..], &[][..], 0u32),
            (&cdb16(0x88, 0, 0, 1)[..], &[][..], 512),
            (&cdb16(0x8A, 0, 0, 1)[..], &data[..], 512),
            (&cdb16(0x8F, 0, 0, 1)[..], &[][..], 0),
            (&[0x1B, 0, 0, 0, 1, 0][..], &[][..], 0),
            (&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], &[][..], 8),
            (&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], &[][..], 0),
            (&[0x1A, 0, 0x3F, 0, 255, 0][..], &[][..], 255),
            (&[0x16, 0, 0, 0, 0, 0][..], &[][..], 0),
            (&sanitize_cdb(0x02, false, 0)[..], &[][..], 0),
        ] {
            let o = run(&lu, n, cdb, dout, len);
            assert_eq!(o.sense(), NOT_READY_SANITIZE, "{:02x?}", cdb);
            assert!(o.data.is_empty());
        }
        // A second OVERWRITE is refused too.
        let o = overwrite(&lu, n, false, &params(0x01, &[0]));
        assert_eq!(o.sense(), NOT_READY_SANITIZE);
        // INQUIRY, REPORT LUNS, REPORT SUPPORTED OPCODES, REPORT TARGET
        // PORT GROUPS keep working.
        assert!(run(&lu, n, &[0x12, 0, 0, 0, 255, 0], &[], 255).good());
        assert!(run(&lu, n, &[0x12, 1, 0xB0, 0, 255, 0], &[], 255).good());
        let rl = [0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        assert!(run(&lu, n, &rl, &[], 256).good());
        let rsoc = [0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
        assert!(run(&lu, n, &rsoc, &[], 4096).good());
        let rtpg = [0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        assert!(run(&lu, n, &rtpg, &[], 256).good());
    }
    // REQUEST SENSE reports the progress, fixed and descriptor format; it
    // grows as the operation advances.
    let rs = run(&lu, N2, &[0x03, 0, 0, 0, 252, 0], &[], 252);
    assert!(rs.good());
    assert_eq!(
        (rs.data[2] & 0x0F, rs.data[12], rs.data[13]),
        (2, 0x04, 0x1B)
    );
    assert_eq!(rs.data[15] & 0x80, 0x80);
    let first = u16::from_be_bytes([rs.data[16], rs.data[17]]);
    std::thread::sleep(Duration::from_millis(200));
    let rs = run(&lu, N2, &[0x03, 1, 0, 0, 252, 0], &[], 252);
    assert_eq!(
        (rs.data[0], rs.data[1], rs.data[2], rs.data[3]),
        (0x72, 2, 0x04, 0x1B)
    );
    assert_eq!((rs.data[8], rs.data[12] & 0x80), (0x02, 0x80));
    let later = u16::from_be_bytes([rs.data[13], rs.data[14]]);
    assert!(later > first, "{first} -> {later}");
    let o = tur(&lu, N1);
    assert!(progress(&o) >= later);
    // Completion: normal operation resumes, no unit attention, the medium
    // holds the pattern.
    wait_done(&lu);
    assert!(tur(&lu, N1).good());
    assert!(tur(&lu, N2).good());
    let r = read(&lu, N2, 0, 256);
    assert!(r.data.iter().all(|&b| b == 0x5A));
    let mut buf = vec![0u8; 2048 * 512];
    dev.read_blocks(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0x5A));
    assert!(run(&lu, N1, &cdb16(0x8A, 0, 5, 1), &data, 512).good());
    assert_eq!(read(&lu, N1, 5, 1).data, data);
}

#[test]
fn overwrite_survives_resets_and_nexus_loss() {
    let (lu, _) = lu_with(512, 2048);
    lu.set_sanitize_rate(2 * 1024 * 1024);
    assert!(run(&lu, N2, &[0x12, 0, 0, 0, 36, 0], &[], 36).good());
    assert!(overwrite(&lu, N1, true, &params(0x01, &[0xC3; 8])).good());
    lu.reset(Some(N1), ResetKind::LogicalUnit);
    lu.reset(Some(N1), ResetKind::TargetWarm);
    lu.reset(Some(N1), ResetKind::TargetCold);
    lu.nexus_lost(N1);
    assert!(lu.sanitize_in_progress());
    // The reset unit attention comes first, then the sanitize.
    assert_eq!(tur(&lu, N2).sense(), (6, 0x2901));
    assert_eq!(tur(&lu, N2).sense(), NOT_READY_SANITIZE);
    // A new nexus (the initiator logged in again) sees it running.
    assert_eq!(tur(&lu, N1).sense(), NOT_READY_SANITIZE);
    wait_done(&lu);
    assert!(clear_ua(&lu, N2).good());
    assert!(read(&lu, N2, 2040, 8).data.iter().all(|&b| b == 0xC3));
}

#[test]
fn immed0_waits_until_aborted_and_the_operation_continues() {
    let (lu, _) = lu_with(512, 2048);
    lu.set_sanitize_rate(2 * 1024 * 1024);
    let lu = Arc::new(lu);
    let l2 = lu.clone();
    let t = std::thread::spawn(move || overwrite(&l2, N1, false, &params(0x01, &[0x11])).o);
    let start = Instant::now();
    while !lu.sanitize_in_progress() {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(1));
    }
    // Another nexus's abort leaves the command waiting.
    lu.abort_waiting(Some(N2));
    std::thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished());
    lu.abort_waiting(Some(N1));
    let o = t.join().unwrap();
    assert_eq!(o.status, ScsiStatus::TASK_ABORTED);
    assert!(o.sense.is_empty());
    assert!(lu.sanitize_in_progress());
    // A LOGICAL UNIT RESET also ends a waiting IMMED=0 SANITIZE.
    wait_done(&lu);
    assert!(clear_ua(&lu, N1).good());
    let l2 = lu.clone();
    let t = std::thread::spawn(move || overwrite(&l2, N1, false, &params(0x01, &[0x22])).o);
    while !lu.sanitize_in_progress() {
        std::thread::sleep(Duration::from_millis(1));
    }
    lu.reset(None, ResetKind::LogicalUnit);
    assert_eq!(t.join().unwrap().status, ScsiStatus::TASK_ABORTED);
    wait_done(&lu);
    assert!(clear_ua(&lu, N1).good());
    assert!(read(&lu, N1, 0, 1).data.iter().all(|&b| b == 0x22));
}

#[test]
fn failed_overwrite_enters_failure_mode_until_a_good_sanitize() {
    let (lu, dev) = lu_with(512, 256);
    lu.set_sanitize_rate(0);
    dev.set_fault(Some(DeviceErrorKind::Io));
    let o = overwrite(&lu, N1, false, &params(0x01, &[1]));
    assert_eq!(o.sense(), (3, 0x3103));
    dev.set_fault(None);
    assert_eq!(tur(&lu, N1).sense(), (3, 0x3100));
    assert_eq!(read(&lu, N2, 0, 1).sense(), (3, 0x3100));
    assert!(run(&lu, N1, &[0x12, 0, 0, 0, 255, 0], &[], 255).good());
    let rs = run(&lu, N1, &[0x03, 0, 0, 0, 252, 0], &[], 252);
    assert_eq!((rs.data[2], rs.data[12], rs.data[13]), (3, 0x31, 0x03));
    // Another sanitize operation that succeeds leaves failure mode.
    assert!(overwrite(&lu, N2, false, &params(0x01, &[9])).good());
    assert!(tur(&lu, N1).good());
    assert_eq!(read(&lu, N1, 255, 1).data, vec![9; 512]);
}

#[test]
fn write_protect_and_reservations_refuse_sanitize() {
    let dev = Arc::new(MemDevice::new(512, 64));
    let mut id = ident();
    id.read_only = true;
    let lu = LogicalUnit::new(dev, id);
    let p = params(0x01, &[1; 512]);
    assert_eq!(overwrite(&lu, N1, false, &p).sense(), (7, 0x2700));
    assert_eq!(
        run(&lu, N1, &sanitize_cdb(0x02, false, 0), &[], 0).sense(),
        (7, 0x2700)
    );
    assert!(!lu.sanitize_in_progress());

    let (lu, _) = lu_with(512, 64);
    lu.set_sanitize_rate(0);
    assert!(run(&lu, N2, &[0x16, 0, 0, 0, 0, 0], &[], 0).good());
    let o = overwrite(&lu, N1, false, &p);
    assert_eq!(o.o.status, ScsiStatus::RESERVATION_CONFLICT);
    assert!(!lu.sanitize_in_progress());
    assert!(overwrite(&lu, N2, false, &p).good());
}

#[test]
fn block_erase_still_works() {
    let (lu, _) = lu_with(512, 64);
    assert!(run(&lu, N1, &cdb16(0x8A, 0, 0, 1), &[3; 512], 512).good());
    assert!(run(&lu, N1, &sanitize_cdb(0x02, true, 0), &[], 0).good());
    assert!(!lu.sanitize_in_progress());
    assert_eq!(read(&lu, N1, 0, 1).data, vec![0; 512]);
}
