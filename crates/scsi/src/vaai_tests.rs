//! COMPARE AND WRITE, ORWRITE, WRITE ATOMIC and EXTENDED COPY / RECEIVE
//! COPY RESULTS, mirroring libiscsi's CompareAndWrite, OrWrite,
//! WriteAtomic16, ExtendedCopy, ReceiveCopyResults and MultipathIO suites.

use std::sync::{Arc, Weak};

use crate::tests::{cdb16, ident, lu_with, run, INVALID_FIELD, LBA_OOB, N1, N2};
use crate::*;

fn caw(lba: u64, n: u8, b1: u8) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x89;
    c[1] = b1;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = n;
    c
}

fn read(lu: &LogicalUnit, lba: u64, n: u32) -> Vec<u8> {
    let r = run(lu, N1, &cdb16(0x88, 0, lba, n), &[], n * 512);
    assert!(r.good());
    r.data
}

#[test]
fn compare_and_write() {
    let (lu, _) = lu_with(512, 1024);
    let a = vec![b'A'; 2 * 512];
    assert!(run(&lu, N1, &cdb16(0x8A, 0, 10, 2), &a, 1024).good());
    // Good compare: the second half is written.
    let mut buf = a.clone();
    buf.extend_from_slice(&[b'B'; 1024]);
    let r = run(&lu, N1, &caw(10, 2, 0x18), &buf, 2048);
    assert!(r.good());
    assert_eq!(r.o.transfer_len, 2048);
    assert_eq!(read(&lu, 10, 2), vec![b'B'; 1024]);
    // Miscompare: nothing written, INFORMATION = offset of the first
    // differing byte.
    let r = run(&lu, N1, &caw(10, 2, 0), &buf, 2048);
    assert_eq!(r.sense(), (0x0E, 0x1D00));
    let s = r.o.sense.as_bytes();
    assert_eq!(s[0], 0xF0);
    assert_eq!(&s[3..7], &0u32.to_be_bytes());
    let mut cmp = vec![b'B'; 1024];
    cmp[1024 - 27] = b'C';
    cmp.extend_from_slice(&[b'D'; 1024]);
    let r = run(&lu, N1, &caw(10, 2, 0), &cmp, 2048);
    assert_eq!(&r.o.sense.as_bytes()[3..7], &997u32.to_be_bytes());
    assert_eq!(read(&lu, 10, 2), vec![b'B'; 1024]);
    // Data-Out size must be exactly 2 x N blocks (InvalidDataOutSize).
    let big = vec![0u8; 4 * 512];
    assert_eq!(
        run(&lu, N1, &caw(0, 1, 0), &big, 2048).sense(),
        INVALID_FIELD
    );
    assert_eq!(
        run(&lu, N1, &caw(0, 3, 0), &big, 2048).sense(),
        INVALID_FIELD
    );
    // NUMBER OF LOGICAL BLOCKS 0 with data (libiscsi's 256-block case).
    assert_eq!(
        run(&lu, N1, &caw(0, 0, 0), &big, 2048).sense(),
        INVALID_FIELD
    );
    assert!(run(&lu, N1, &caw(0, 0, 0), &[], 0).good());
    // Range, protection and WRPROTECT checks.
    assert_eq!(run(&lu, N1, &caw(1023, 2, 0), &buf, 2048).sense(), LBA_OOB);
    assert_eq!(
        run(&lu, N1, &caw(0, 1, 0x20), &buf, 1024).sense(),
        INVALID_FIELD
    );
    // Block Limits advertises the maximum compare and write length.
    let r = run(&lu, N1, &[0x12, 1, 0xB0, 0, 255, 0], &[], 255);
    assert_eq!(r.data[5], 255);
}

#[test]
fn compare_and_write_is_atomic_across_nexuses() {
    let (lu, _) = lu_with(512, 64);
    let lu = Arc::new(lu);
    assert!(run(&lu, N1, &cdb16(0x8A, 0, 0, 1), &[0u8; 512], 512).good());
    // Two paths each move the block from their value to the next one
    // (MultipathIO.CompareAndWriteAsync); every successful CAW must have
    // seen the value it compared against, so the successes alternate.
    let threads: Vec<_> = [N1, N2]
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let lu = lu.clone();
            std::thread::spawn(move || {
                let mut buf = vec![i as u8; 512];
                buf.extend_from_slice(&[(i as u8 + 1) % 2; 512]);
                let mut ok = 0;
                for _ in 0..500 {
                    let r = run(&lu, n, &caw(0, 1, 0), &buf, 1024);
                    if r.good() {
                        ok += 1;
                    } else {
                        assert_eq!(r.sense(), (0x0E, 0x1D00));
                    }
                }
                ok
            })
        })
        .collect();
    let ok: Vec<i32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!((ok[0] - ok[1]).abs() <= 1, "{ok:?}");
    let v = read(&lu, 0, 1);
    assert!(v.iter().all(|&b| b == v[0]));
}

#[test]
fn orwrite_and_write_atomic() {
    let (lu, _) = lu_with(512, 256);
    let mut c = cdb16(0x8B, 0, 4, 2);
    assert!(run(&lu, N1, &cdb16(0x8A, 0, 4, 2), &[0xA5; 1024], 1024).good());
    assert!(run(&lu, N1, &c, &[0x5A; 1024], 1024).good());
    assert_eq!(read(&lu, 4, 2), vec![0xFF; 1024]);
    c[1] = 0x18; // DPO + FUA accepted
    assert!(run(&lu, N1, &c, &[0; 1024], 1024).good());
    c[1] = 0x20; // ORPROTECT
    assert_eq!(run(&lu, N1, &c, &[0; 1024], 1024).sense(), INVALID_FIELD);
    assert_eq!(
        run(&lu, N1, &cdb16(0x8B, 0, 255, 2), &[0; 1024], 1024).sense(),
        LBA_OOB
    );
    assert!(run(&lu, N1, &cdb16(0x8B, 0, 0, 0), &[], 0).good());

    let wa = |lba: u64, n: u16| {
        let mut c = [0u8; 16];
        c[0] = 0x9C;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[12..14].copy_from_slice(&n.to_be_bytes());
        c
    };
    assert!(run(&lu, N1, &wa(8, 2), &[7; 1024], 1024).good());
    assert_eq!(read(&lu, 8, 2), vec![7; 1024]);
    assert!(run(&lu, N1, &wa(0, 0), &[], 0).good());
    assert_eq!(run(&lu, N1, &wa(255, 2), &[0; 1024], 1024).sense(), LBA_OOB);
    assert_eq!(run(&lu, N1, &wa(256, 0), &[], 0).sense(), LBA_OOB);
    let (big, _) = lu_with(512, 4096);
    assert_eq!(
        run(&big, N1, &wa(0, 257), &vec![0; 257 * 512], 257 * 512).sense(),
        INVALID_FIELD
    );
    // Short Data-Out: refused, nothing written.
    assert_eq!(
        run(&lu, N1, &wa(20, 2), &[1; 512], 1024).sense(),
        INVALID_FIELD
    );
    assert_eq!(read(&lu, 20, 1), vec![0; 512]);
}

/// XCOPY parameter list: one identification CSCD per NAA, then one
/// block-to-block segment per (src index, dst index, blocks, src, dst).
fn xcopy_params(naas: &[[u8; 16]], segs: &[(u16, u16, u16, u64, u64)], list_id: u8) -> Vec<u8> {
    let mut p = vec![0u8; 16];
    p[0] = list_id;
    for naa in naas {
        let mut d = [0u8; 32];
        d[0] = 0xE4;
        d[4] = 0x01;
        d[5] = 0x03;
        d[7] = 16;
        d[8..24].copy_from_slice(naa);
        d[29..32].copy_from_slice(&[0, 2, 0]);
        p.extend_from_slice(&d);
    }
    let tgt = (p.len() - 16) as u16;
    for &(s, d, n, sl, dl) in segs {
        let mut x = [0u8; 28];
        x[0] = 0x02;
        x[3] = 0x18;
        x[4..6].copy_from_slice(&s.to_be_bytes());
        x[6..8].copy_from_slice(&d.to_be_bytes());
        x[10..12].copy_from_slice(&n.to_be_bytes());
        x[12..20].copy_from_slice(&sl.to_be_bytes());
        x[20..28].copy_from_slice(&dl.to_be_bytes());
        p.extend_from_slice(&x);
    }
    p[2..4].copy_from_slice(&tgt.to_be_bytes());
    let seg = (p.len() - 16) as u32 - u32::from(tgt);
    p[8..12].copy_from_slice(&seg.to_be_bytes());
    p
}

fn xcopy(lu: &LogicalUnit, p: &[u8]) -> crate::tests::Out {
    let mut c = [0u8; 16];
    c[0] = 0x83;
    c[10..14].copy_from_slice(&(p.len() as u32).to_be_bytes());
    run(lu, N1, &c, p, p.len() as u32)
}

fn rcr(lu: &LogicalUnit, sa: u8, list_id: u8) -> crate::tests::Out {
    let mut c = [0u8; 16];
    c[0] = 0x84;
    c[1] = sa;
    c[2] = list_id;
    c[10..14].copy_from_slice(&1024u32.to_be_bytes());
    run(lu, N1, &c, &[], 1024)
}

#[test]
fn extended_copy_within_the_lu() {
    let (lu, _) = lu_with(512, 4096);
    let naa = ident().naa;
    assert!(run(&lu, N1, &cdb16(0x8A, 0, 0, 8), &[b'A'; 4096], 4096).good());
    // No copy status before any copy with that list id.
    assert_eq!(rcr(&lu, 0, 1).sense(), INVALID_FIELD);
    let p = xcopy_params(&[naa], &[(0, 0, 8, 0, 4088)], 1);
    assert!(xcopy(&lu, &p).good());
    assert_eq!(read(&lu, 4088, 8), vec![b'A'; 4096]);
    let r = rcr(&lu, 0, 1);
    assert!(r.good());
    assert_eq!(&r.data[..8], &[0, 0, 0, 8, 1, 0, 1, 0]);
    assert_eq!(&r.data[8..12], &4096u32.to_be_bytes());
    // Nexus loss drops held results.
    lu.nexus_lost(N1);
    assert_eq!(rcr(&lu, 0, 1).sense(), INVALID_FIELD);
    // Operating parameters.
    let r = rcr(&lu, 3, 0);
    assert!(r.good());
    assert_eq!(
        u32::from_be_bytes(r.data[..4].try_into().unwrap()) as usize,
        r.data.len() - 4
    );
    assert_eq!(&r.data[8..10], &8u16.to_be_bytes());
    assert_eq!(&r.data[10..12], &16u16.to_be_bytes());
    assert_eq!(&r.data[43..46], &[2, 0x02, 0xE4]);
    // Empty parameter list: nothing to do.
    assert!(xcopy(&lu, &[]).good());
}

#[test]
fn extended_copy_errors() {
    let (lu, _) = lu_with(512, 4096);
    let naa = ident().naa;
    let p = xcopy_params(&[naa], &[(0, 0, 8, 0, 100)], 1);
    // Truncated parameter lists.
    for cut in [47, 16 + 32 + 27, 10] {
        let mut c = [0u8; 16];
        c[0] = 0x83;
        c[13] = cut as u8;
        assert_eq!(run(&lu, N1, &c, &p[..cut], cut as u32).sense(), (5, 0x1A00));
    }
    // Too many descriptors.
    let many = xcopy_params(&[naa; 9], &[(0, 0, 1, 0, 1)], 1);
    assert_eq!(xcopy(&lu, &many).sense(), (5, 0x2606));
    let many = xcopy_params(&[naa], &[(0, 0, 1, 0, 1); 17], 1);
    assert_eq!(xcopy(&lu, &many).sense(), (5, 0x2608));
    // Unsupported descriptor types.
    let mut bad = p.clone();
    bad[16] = 0xE0;
    assert_eq!(xcopy(&lu, &bad).sense(), (5, 0x2607));
    let mut bad = p.clone();
    bad[48] = 0x03;
    assert_eq!(xcopy(&lu, &bad).sense(), (5, 0x2609));
    // Bad index, beyond the end, unknown LU.
    let bad = xcopy_params(&[naa], &[(0, 1, 8, 0, 100)], 1);
    assert_eq!(xcopy(&lu, &bad).sense().0, 0x0A);
    let bad = xcopy_params(&[naa], &[(0, 0, 8, 0, 4095)], 1);
    assert_eq!(xcopy(&lu, &bad).sense().0, 0x0A);
    let mut other = naa;
    other[15] ^= 1;
    let bad = xcopy_params(&[other], &[(0, 0, 8, 0, 100)], 1);
    assert_eq!(xcopy(&lu, &bad).sense(), (0x0A, 0x0804));
}

struct Peers(Vec<Arc<LogicalUnit>>);

impl CopyPeers for Peers {
    fn lookup(&self, naa: &[u8]) -> Option<Arc<LogicalUnit>> {
        self.0.iter().find(|l| l.identity().naa == naa).cloned()
    }
}

#[test]
fn extended_copy_between_lus() {
    let mut id2 = ident();
    id2.naa[15] = 0x77;
    let src = Arc::new(LogicalUnit::new(Arc::new(MemDevice::new(512, 64)), ident()));
    let dst = Arc::new(LogicalUnit::new(
        Arc::new(MemDevice::new(512, 64)),
        id2.clone(),
    ));
    let peers: Arc<dyn CopyPeers> = Arc::new(Peers(vec![src.clone(), dst.clone()]));
    src.set_copy_peers(Arc::downgrade(&peers));
    assert!(run(&src, N1, &cdb16(0x8A, 0, 0, 4), &[9; 2048], 2048).good());
    let p = xcopy_params(&[ident().naa, id2.naa], &[(0, 1, 4, 0, 60)], 5);
    assert!(xcopy(&src, &p).good());
    assert_eq!(read(&dst, 60, 4), vec![9; 2048]);
    // Resolver gone: unreachable.
    drop(peers);
    assert_eq!(xcopy(&src, &p).sense(), (0x0A, 0x0804));
    src.set_copy_peers(Weak::<Peers>::new());
}
