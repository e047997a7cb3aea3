//! End-to-end tests of `LogicalUnit::execute`, mirroring the libiscsi
//! `iscsi-test-cu` expectations, plus a proptest fuzzing `execute`.

use std::sync::Arc;

use crate::*;

pub(crate) const N1: Nexus = Nexus {
    id: 1,
    relative_port: 1,
};
pub(crate) const N2: Nexus = Nexus {
    id: 2,
    relative_port: 1,
};

pub(crate) fn ident() -> LuIdentity {
    LuIdentity {
        vendor: "IRONSAN".into(),
        product: "VDISK".into(),
        revision: "0001".into(),
        serial: "0123456789".into(),
        naa: [0x60, 0x01, 0x40, 0x5F, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        target_name: "iqn.2024-01.org.ironsan:test".into(),
        write_cache: true,
        read_only: false,
    }
}

pub(crate) fn lu_with(bs: u32, blocks: u64) -> (LogicalUnit, Arc<MemDevice>) {
    let dev = Arc::new(MemDevice::new(bs, blocks));
    (LogicalUnit::new(dev.clone(), ident()), dev)
}

pub(crate) fn lu() -> LogicalUnit {
    lu_with(512, 2048).0
}

pub(crate) struct Out {
    pub(crate) o: ScsiOutcome,
    pub(crate) data: Vec<u8>,
}

impl Out {
    pub(crate) fn good(&self) -> bool {
        self.o.status == ScsiStatus::GOOD
    }
    pub(crate) fn sense(&self) -> (u8, u16) {
        let (k, a) = self.o.sense.key_asc().expect("sense");
        (k.0, a.0)
    }
}

pub(crate) fn run(
    lu: &LogicalUnit,
    n: Nexus,
    cdb: &[u8],
    data_out: &[u8],
    expected_len: u32,
) -> Out {
    let mut data = Vec::new();
    // Each nexus id is its own initiator port (ISID = id).
    let port = format!("iqn.2024-01.org.test:host,i,0x{:012x}", n.id);
    let o = lu.execute(
        &ScsiRequest {
            cdb,
            data_out,
            expected_len,
            nexus: n,
            initiator_port: &port,
        },
        &mut data,
    );
    assert!(data.len() as u64 <= o.transfer_len.min(u64::from(expected_len)));
    Out { o, data }
}

pub(crate) fn cdb10(op: u8, b1: u8, lba: u32, len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[1] = b1;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

fn cdb12(op: u8, b1: u8, lba: u32, len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = op;
    c[1] = b1;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[6..10].copy_from_slice(&len.to_be_bytes());
    c
}

pub(crate) fn cdb16(op: u8, b1: u8, lba: u64, len: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[1] = b1;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&len.to_be_bytes());
    c
}

pub(crate) const LBA_OOB: (u8, u16) = (5, 0x2100);
pub(crate) const INVALID_FIELD: (u8, u16) = (5, 0x2400);

#[test]
fn logical_unit_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LogicalUnit>();
    assert_send_sync::<FileDevice>();
    assert_send_sync::<MemDevice>();
}

#[test]
fn concurrent_io() {
    let (lu, _) = lu_with(512, 4096);
    let lu = Arc::new(lu);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let lu = lu.clone();
            std::thread::spawn(move || {
                let n = Nexus {
                    id: t,
                    relative_port: 1,
                };
                let data = vec![t as u8; 4096];
                let mut din = Vec::new();
                for i in 0..200u32 {
                    let lba = t as u32 * 1000 + (i % 100) * 8;
                    let w = cdb10(0x2A, 0, lba, 8);
                    let o = lu.execute(
                        &ScsiRequest {
                            cdb: &w,
                            data_out: &data,
                            expected_len: 4096,
                            nexus: n,
                            initiator_port: "iqn.2024-01.org.test:host,i,0x000000000001",
                        },
                        &mut din,
                    );
                    assert_eq!(o.status, ScsiStatus::GOOD);
                    let r = cdb10(0x28, 0, lba, 8);
                    let o = lu.execute(
                        &ScsiRequest {
                            cdb: &r,
                            data_out: &[],
                            expected_len: 4096,
                            nexus: n,
                            initiator_port: "iqn.2024-01.org.test:host,i,0x000000000001",
                        },
                        &mut din,
                    );
                    assert_eq!(o.status, ScsiStatus::GOOD);
                    assert_eq!(din, data);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn mode_parameters_survive_lu_reset_but_not_cold_reset() {
    let lu = lu();
    let ms = run(&lu, N1, &[0x1A, 0x08, 0x08, 0, 255, 0], &[], 255);
    let mut p = ms.data.clone();
    p[0] = 0;
    p[4 + 2] &= !0x04;
    assert!(run(
        &lu,
        N1,
        &[0x15, 0x10, 0, 0, p.len() as u8, 0],
        &p,
        p.len() as u32
    )
    .good());
    assert!(!lu.write_cache_enabled());
    lu.reset(None, ResetKind::LogicalUnit);
    assert!(!lu.write_cache_enabled());
    lu.reset(None, ResetKind::TargetCold);
    assert!(lu.write_cache_enabled());
}

#[test]
fn read_write_roundtrip_and_residuals() {
    let lu = lu();
    let data = vec![0xA6u8; 1024];
    let w = run(&lu, N1, &cdb10(0x2A, 0, 10, 2), &data, 1024);
    assert!(w.good());
    assert_eq!(w.o.transfer_len, 1024);
    let r = run(&lu, N1, &cdb10(0x28, 0, 10, 2), &[], 1024);
    assert!(r.good());
    assert_eq!(r.data, data);
    // EDTL 0: GOOD, nothing transferred, transfer_len reports the CDB amount.
    let r = run(&lu, N1, &cdb10(0x28, 0, 0, 1), &[], 0);
    assert!(r.good() && r.data.is_empty());
    assert_eq!(r.o.transfer_len, 512);
    // EDTL 200 < one block: 200 bytes.
    let r = run(&lu, N1, &cdb10(0x28, 0, 10, 1), &[], 200);
    assert_eq!((r.data.len(), r.o.transfer_len), (200, 512));
    // EDTL 10000 > one block.
    let r = run(&lu, N1, &cdb10(0x28, 0, 10, 1), &[], 10000);
    assert_eq!((r.data.len(), r.o.transfer_len), (512, 512));
}

#[test]
fn write_residuals_like_libiscsi() {
    let lu = lu();
    for op in [0x2Au8, 0x2E] {
        let bytchk = if op == 0x2E { 0x02 } else { 0 };
        // EDTL 0 for a one block write: GOOD, nothing written.
        let w = run(&lu, N1, &cdb10(op, bytchk, 0, 1), &[], 0);
        assert!(w.good());
        assert_eq!(w.o.transfer_len, 512);
        // 'a' x 2 blocks, then CDB 1 block with 2 blocks of 'b' sent.
        assert!(run(&lu, N1, &cdb10(0x2A, 0, 0, 2), &[b'a'; 1024], 1024).good());
        let w = run(&lu, N1, &cdb10(op, bytchk, 0, 1), &[b'b'; 1024], 1024);
        assert!(w.good());
        assert_eq!(w.o.transfer_len, 512);
        let r = run(&lu, N1, &cdb10(0x28, 0, 0, 2), &[], 1024);
        assert!(r.data[..512].iter().all(|&b| b == b'b'));
        assert!(r.data[512..].iter().all(|&b| b == b'a'));
        // 'a' x 2, then CDB 2 blocks but only one block of 'b' sent.
        assert!(run(&lu, N1, &cdb10(0x2A, 0, 0, 2), &[b'a'; 1024], 1024).good());
        let w = run(&lu, N1, &cdb10(op, bytchk, 0, 2), &[b'b'; 512], 512);
        assert!(w.good());
        assert_eq!(w.o.transfer_len, 1024);
        let r = run(&lu, N1, &cdb10(0x28, 0, 0, 2), &[], 1024);
        assert!(r.data[..512].iter().all(|&b| b == b'b'));
        assert!(r.data[512..].iter().all(|&b| b == b'a'));
        // 200 bytes of a one block write: GOOD, nothing written.
        assert!(run(&lu, N1, &cdb10(op, bytchk, 0, 1), &[b'c'; 200], 200).good());
        let r = run(&lu, N1, &cdb10(0x28, 0, 0, 1), &[], 512);
        assert_eq!(r.data[0], b'b');
    }
}

#[test]
fn lba_out_of_range_all_sizes() {
    let (lu, _) = lu_with(512, 2048);
    let nb = 2048u32;
    let bad10 = [
        (nb + 1 - 1, 1u16),
        (nb - 1, 2),
        (0x8000_0000, 1),
        (u32::MAX, 1),
        (nb + 1, 0),
        (u32::MAX, 0),
        (nb, 0),
    ];
    for (lba, len) in bad10 {
        for op in [0x28u8, 0x2F] {
            assert_eq!(
                run(&lu, N1, &cdb10(op, 0, lba, len), &[], 0).sense(),
                LBA_OOB,
                "{op:02x} {lba} {len}"
            );
        }
        let data = vec![0u8; usize::from(len) * 512];
        for op in [0x2Au8, 0x2E] {
            let r = run(&lu, N1, &cdb10(op, 0, lba, len), &data, data.len() as u32);
            assert_eq!(r.sense(), LBA_OOB);
        }
        assert_eq!(
            run(&lu, N1, &cdb10(0x34, 0, lba, len), &[], 0).sense(),
            LBA_OOB
        );
        assert_eq!(
            run(&lu, N1, &cdb10(0x35, 0, lba, len), &[], 0).sense(),
            LBA_OOB
        );
    }
    for (lba, len) in [
        (u64::MAX, 1u32),
        (u64::MAX, 0),
        (1 << 63, 0),
        (u64::MAX - 1, 3),
        (2047, 2),
    ] {
        for op in [0x88u8, 0x8A, 0x8E, 0x8F, 0x90, 0x91] {
            let r = run(&lu, N1, &cdb16(op, 0, lba, len), &[0; 1536], 1536);
            assert_eq!(r.sense(), LBA_OOB, "{op:02x} {lba}");
        }
        if lba as u32 >= 2047 {
            let r = run(&lu, N1, &cdb12(0xA8, 0, lba as u32, len), &[], 4096);
            assert_eq!(r.sense(), LBA_OOB);
        }
    }
    // At end of medium: fine.
    assert!(run(&lu, N1, &cdb10(0x28, 0, nb - 256, 256), &[], 256 * 512).good());
    assert!(run(&lu, N1, &cdb16(0x90, 0, 0, 0), &[], 0).good());
    assert!(run(&lu, N1, &cdb10(0x34, 0x02, 0, 1), &[], 0).good());
    assert!(run(&lu, N1, &cdb10(0x28, 0, 0, 0), &[], 0).good());
    // READ(6): 0 means 256 blocks; LBA 0x1fffff is out of range.
    let r = run(&lu, N1, &[0x08, 0, 0, 0, 0, 0], &[], 256 * 512);
    assert!(r.good());
    assert_eq!(r.data.len(), 256 * 512);
    assert_eq!(
        run(&lu, N1, &[0x08, 0x1F, 0xFF, 0xFF, 1, 0], &[], 512).sense(),
        LBA_OOB
    );
    assert_eq!(
        run(&lu, N1, &[0x08, 0, 0x07, 0xFF, 2, 0], &[], 1024).sense(),
        LBA_OOB
    );
}

#[test]
fn protect_fields_and_dpofua() {
    let lu = lu();
    for p in 1..8u8 {
        assert_eq!(
            run(&lu, N1, &cdb10(0x28, p << 5, 0, 1), &[], 512).sense(),
            INVALID_FIELD
        );
        assert_eq!(
            run(&lu, N1, &cdb16(0x8A, p << 5, 0, 1), &[0; 512], 512).sense(),
            INVALID_FIELD
        );
        assert_eq!(
            run(&lu, N1, &cdb12(0xAF, (p << 5) | 2, 0, 1), &[0; 512], 512).sense(),
            INVALID_FIELD
        );
        assert_eq!(
            run(&lu, N1, &cdb10(0x2E, (p << 5) | 2, 0, 1), &[0; 512], 512).sense(),
            INVALID_FIELD
        );
    }
    for b1 in [0x10u8, 0x08, 0x18, 0x0A, 0x02, 0x1A] {
        assert!(run(&lu, N1, &cdb10(0x28, b1, 0, 1), &[], 512).good());
        assert!(run(&lu, N1, &cdb16(0x8A, b1, 0, 1), &[0; 512], 512).good());
    }
    assert!(run(&lu, N1, &cdb10(0x2F, 0x10, 0, 1), &[], 0).good());
    // Group number accepted.
    let mut c = cdb10(0x34, 0x02, 0, 1);
    c[6] = 3;
    assert!(run(&lu, N1, &c, &[], 0).good());
    // Mode sense advertises DPOFUA.
    let r = run(&lu, N1, &[0x1A, 0, 0x3F, 0, 255, 0], &[], 255);
    assert_eq!(r.data[2] & 0x10, 0x10);
}

#[test]
fn verify_bytchk_and_miscompare() {
    let lu = lu();
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
    assert!(run(&lu, N1, &cdb10(0x2A, 0, 100, 8), &data, 4096).good());
    let v = run(&lu, N1, &cdb10(0x2F, 0x02, 100, 8), &data, 4096);
    assert!(v.good());
    assert_eq!(v.o.transfer_len, 4096);
    let mut bad = data.clone();
    bad[1234] ^= b'X';
    let v = run(&lu, N1, &cdb16(0x8F, 0x02, 100, 8), &bad, 4096);
    assert_eq!(v.sense(), (0x0E, 0x1D00));
    let s = v.o.sense.as_bytes();
    assert_eq!(s[0], 0xF0);
    assert_eq!(u32::from_be_bytes([s[3], s[4], s[5], s[6]]), 1234);
    // BYTCHK=0 does not compare.
    assert!(run(&lu, N1, &cdb12(0xAF, 0, 100, 8), &bad, 0).good());
}

#[test]
fn read_capacity() {
    let (lu, _) = lu_with(4096, 1 << 33);
    let r = run(&lu, N1, &cdb10(0x25, 0, 0, 0), &[], 8);
    assert_eq!(r.data, [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x10, 0]);
    for alloc in 0..40u32 {
        let mut c = cdb16(0x9E, 0x10, 0, alloc);
        c[10..14].copy_from_slice(&alloc.to_be_bytes());
        let r = run(&lu, N1, &c, &[], alloc);
        assert!(r.good());
        assert_eq!(r.data.len() as u32, alloc.min(32));
        if alloc >= 12 {
            assert_eq!(
                &r.data[..12],
                &[0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x10, 0]
            );
        }
    }
}

#[test]
fn inquiry_alloc_lengths_and_evpd() {
    let lu = lu();
    for alloc in 5..=512u32 {
        let c = [0x12, 0, 0, (alloc >> 8) as u8, alloc as u8, 0];
        let r = run(&lu, N1, &c, &[], alloc);
        assert!(r.good());
        assert_eq!(r.data.len(), (alloc as usize).min(96));
    }
    assert_eq!(
        run(&lu, N1, &[0x12, 0, 1, 1, 0, 0], &[], 256).sense(),
        INVALID_FIELD
    );
    let r = run(&lu, N1, &[0x12, 1, 0, 0, 255, 0], &[], 255);
    for &p in &r.data[4..] {
        assert!(run(&lu, N1, &[0x12, 1, p, 0, 255, 0], &[], 255).good());
    }
    let r = run(&lu, N1, &[0x12, 1, 0x83, 0, 255, 0], &[], 255);
    assert_eq!(&r.data[8..24], &ident().naa);
}

#[test]
fn sense_format_follows_d_sense() {
    let lu = lu();
    assert!(run(&lu, N2, &[0; 6], &[], 0).good());
    let r = run(&lu, N1, &cdb16(0x88, 0, u64::MAX, 1), &[], 512);
    assert_eq!(r.o.sense.as_bytes()[0], 0x70);
    // Set D_SENSE through MODE SELECT(6).
    let ms = run(&lu, N1, &[0x1A, 0x08, 0x0A, 0, 255, 0], &[], 255);
    let mut p = ms.data.clone();
    p[0] = 0;
    p[6] |= 0x04;
    let sel = run(
        &lu,
        N1,
        &[0x15, 0x10, 0, 0, p.len() as u8, 0],
        &p,
        p.len() as u32,
    );
    assert!(sel.good());
    assert_eq!(sel.o.transfer_len, p.len() as u64);
    let r = run(&lu, N1, &cdb16(0x88, 0, u64::MAX, 1), &[], 512);
    assert_eq!(r.o.sense.as_bytes()[0], 0x72);
    assert_eq!(r.sense(), LBA_OOB);
    // The other nexus gets MODE PARAMETERS CHANGED once (in descriptor format).
    let r = run(&lu, N2, &[0; 6], &[], 0);
    assert_eq!(r.sense(), (6, 0x2A01));
    assert!(run(&lu, N2, &[0; 6], &[], 0).good());
    // The nexus that changed the parameters gets no UA.
    assert!(run(&lu, N1, &[0; 6], &[], 0).good());
}

#[test]
fn swp_write_protects() {
    let lu = lu();
    let ch = run(&lu, N1, &[0x1A, 0x08, 0x4A, 0, 255, 0], &[], 255);
    assert_eq!(ch.data[4 + 4] & 0x08, 0x08, "SWP changeable");
    let cur = run(&lu, N1, &[0x1A, 0x08, 0x0A, 0, 255, 0], &[], 255);
    let mut p = cur.data.clone();
    p[0] = 0;
    p[8] |= 0x08;
    assert!(run(
        &lu,
        N1,
        &[0x15, 0x10, 0, 0, p.len() as u8, 0],
        &p,
        p.len() as u32
    )
    .good());
    assert!(run(&lu, N1, &cdb10(0x28, 0, 0, 1), &[], 512).good());
    assert_eq!(
        run(&lu, N1, &cdb10(0x2A, 0, 0, 1), &[0; 512], 512).sense(),
        (7, 0x2702)
    );
    let r = run(&lu, N1, &[0x1A, 0, 0x3F, 0, 255, 0], &[], 255);
    assert_eq!(r.data[2] & 0x80, 0x80, "WP bit");
    p[8] &= !0x08;
    assert!(run(
        &lu,
        N1,
        &[0x15, 0x10, 0, 0, p.len() as u8, 0],
        &p,
        p.len() as u32
    )
    .good());
    assert!(run(&lu, N1, &cdb10(0x2A, 0, 0, 1), &[0; 512], 512).good());
}

#[test]
fn read_only_lu() {
    let dev = Arc::new(MemDevice::new(512, 64));
    let lu = LogicalUnit::new(
        dev,
        LuIdentity {
            read_only: true,
            ..ident()
        },
    );
    let r = run(&lu, N1, &[0x1A, 0, 0x3F, 0, 255, 0], &[], 255);
    assert_eq!(r.data[2] & 0x80, 0x80);
    for c in [
        &cdb10(0x2A, 0, 0, 1)[..],
        &cdb12(0xAA, 0, 0, 1),
        &cdb16(0x8A, 0, 0, 1),
        &cdb10(0x2E, 2, 0, 1),
    ] {
        assert_eq!(run(&lu, N1, c, &[0; 512], 512).sense(), (7, 0x2700));
    }
    assert!(run(&lu, N1, &cdb10(0x28, 0, 0, 1), &[], 512).good());
}

#[test]
fn write_cache_and_fua() {
    struct Probe(MemDevice, std::sync::Mutex<Vec<bool>>);
    impl BlockDevice for Probe {
        fn block_size(&self) -> u32 {
            self.0.block_size()
        }
        fn num_blocks(&self) -> u64 {
            self.0.num_blocks()
        }
        fn read_blocks(&self, lba: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
            self.0.read_blocks(lba, buf)
        }
        fn write_blocks(&self, lba: u64, buf: &[u8], fua: bool) -> Result<(), DeviceError> {
            self.1.lock().unwrap().push(fua);
            self.0.write_blocks(lba, buf, fua)
        }
        fn flush(&self) -> Result<(), DeviceError> {
            self.0.flush()
        }
    }
    let dev = Arc::new(Probe(MemDevice::new(512, 64), Default::default()));
    let lu = LogicalUnit::new(dev.clone(), ident());
    assert!(run(&lu, N1, &cdb10(0x2A, 0, 0, 1), &[0; 512], 512).good());
    assert!(run(&lu, N1, &cdb10(0x2A, 0x08, 0, 1), &[0; 512], 512).good());
    // Turn WCE off via MODE SELECT(10) of the caching page.
    let ms = run(
        &lu,
        N1,
        &[0x5A, 0x08, 0x08, 0, 0, 0, 0, 0, 255, 0],
        &[],
        255,
    );
    let mut p = ms.data.clone();
    p[0] = 0;
    p[1] = 0;
    p[8 + 2] &= !0x04;
    let c = [0x55, 0x10, 0, 0, 0, 0, 0, 0, p.len() as u8, 0];
    assert!(run(&lu, N1, &c, &p, p.len() as u32).good());
    assert!(!lu.write_cache_enabled());
    assert!(run(&lu, N1, &cdb10(0x2A, 0, 0, 1), &[0; 512], 512).good());
    assert_eq!(*dev.1.lock().unwrap(), vec![false, true, true]);
    // SYNCHRONIZE CACHE range.
    assert!(run(&lu, N1, &cdb10(0x35, 0, 0, 0), &[], 0).good());
    assert_eq!(
        run(&lu, N1, &cdb16(0x91, 0, 64, 0), &[], 0).sense(),
        LBA_OOB
    );
}

#[test]
fn device_errors_map_to_sense() {
    let (lu, dev) = lu_with(512, 64);
    dev.set_fault(Some(DeviceErrorKind::Io));
    assert_eq!(
        run(&lu, N1, &cdb10(0x28, 0, 0, 1), &[], 512).sense(),
        (3, 0x1100)
    );
    assert_eq!(
        run(&lu, N1, &cdb10(0x2A, 0, 0, 1), &[0; 512], 512).sense(),
        (3, 0x0C00)
    );
    dev.set_fault(Some(DeviceErrorKind::NoSpace));
    assert_eq!(
        run(&lu, N1, &cdb10(0x2A, 0, 0, 1), &[0; 512], 512).sense(),
        (7, 0x2707)
    );
}

#[test]
fn unit_attention_on_reset() {
    let lu = lu();
    assert!(run(&lu, N1, &[0; 6], &[], 0).good());
    assert!(run(&lu, N2, &[0; 6], &[], 0).good());
    lu.reset(Some(N1), ResetKind::LogicalUnit);
    // The requesting nexus gets the unit attention too.
    assert_eq!(run(&lu, N1, &[0; 6], &[], 0).sense(), (6, 0x2903));
    assert!(run(&lu, N1, &[0; 6], &[], 0).good());
    // INQUIRY is not affected and does not clear it.
    assert!(run(&lu, N2, &[0x12, 0, 0, 0, 36, 0], &[], 36).good());
    let r = run(&lu, N2, &cdb10(0x28, 0, 0, 1), &[], 512);
    assert_eq!(r.sense(), (6, 0x2903));
    assert!(run(&lu, N2, &cdb10(0x28, 0, 0, 1), &[], 512).good());
    // REQUEST SENSE reports and clears a pending UA with GOOD status.
    lu.reset(None, ResetKind::TargetWarm);
    let r = run(&lu, N1, &[0x03, 0, 0, 0, 252, 0], &[], 252);
    assert!(r.good());
    assert_eq!((r.data[2], r.data[12], r.data[13]), (6, 0x29, 0x02));
    assert!(run(&lu, N1, &[0; 6], &[], 0).good());
    let r = run(&lu, N1, &[0x03, 1, 0, 0, 252, 0], &[], 252);
    assert_eq!(&r.data[..4], &[0x72, 0, 0, 0]);
    // Nexus loss forgets the pending UA.
    lu.nexus_lost(N2);
    assert!(run(&lu, N2, &[0; 6], &[], 0).good());
}

#[test]
fn prevent_allow_and_start_stop_removable() {
    let dev = Arc::new(MemDevice::new(512, 64));
    let lu = LogicalUnit::new(dev, ident()).with_removable(true);
    let inq = run(&lu, N1, &[0x12, 0, 0, 0, 36, 0], &[], 36);
    assert_eq!(inq.data[1], 0x80);
    let eject = [0x1B, 0, 0, 0, 0x02, 0];
    let load = [0x1B, 0, 0, 0, 0x03, 0];
    let no_medium = (2u8, 0x3A02u16);
    // Eject test sequence.
    assert!(run(&lu, N1, &[0x1E, 0, 0, 0, 1, 0], &[], 0).good());
    assert_eq!(run(&lu, N1, &eject, &[], 0).sense(), (5, 0x5302));
    assert!(run(&lu, N1, &[0; 6], &[], 0).good());
    // 2 I_T nexuses: the PREVENT of N1 blocks N2.
    assert_eq!(run(&lu, N2, &eject, &[], 0).sense(), (5, 0x5302));
    assert!(run(&lu, N1, &[0x1E, 0, 0, 0, 0, 0], &[], 0).good());
    assert!(run(&lu, N1, &eject, &[], 0).good());
    assert_eq!(run(&lu, N1, &[0; 6], &[], 0).sense(), no_medium);
    assert_eq!(
        run(&lu, N1, &cdb10(0x28, 0, 0, 1), &[], 512).sense(),
        no_medium
    );
    assert_eq!(
        run(&lu, N1, &cdb10(0x25, 0, 0, 0), &[], 8).sense(),
        no_medium
    );
    assert!(run(&lu, N1, &[0x1E, 0, 0, 0, 1, 0], &[], 0).good());
    assert_eq!(run(&lu, N1, &load, &[], 0).sense(), (5, 0x5302));
    assert!(run(&lu, N1, &[0x1E, 0, 0, 0, 0, 0], &[], 0).good());
    assert!(run(&lu, N1, &load, &[], 0).good());
    assert!(run(&lu, N1, &[0; 6], &[], 0).good());
    // Power conditions and LOEJ=0 never eject.
    for pc in 1..16u8 {
        assert!(run(&lu, N1, &[0x1B, 1, 0, 0, (pc << 4) | 0x02, 0], &[], 0).good());
        assert!(run(&lu, N1, &[0; 6], &[], 0).good());
    }
    for b4 in [0u8, 1, 4, 5] {
        assert!(run(&lu, N1, &[0x1B, 1, 0, 0, b4, 0], &[], 0).good());
        assert!(run(&lu, N1, &[0; 6], &[], 0).good());
    }
    // PREVENT is cleared by LU reset and by nexus loss.
    for how in 0..2 {
        assert!(run(&lu, N1, &[0x1E, 0, 0, 0, 1, 0], &[], 0).good());
        if how == 0 {
            lu.reset(Some(N2), ResetKind::LogicalUnit);
            assert_eq!(run(&lu, N1, &[0; 6], &[], 0).sense(), (6, 0x2903));
        } else {
            lu.nexus_lost(N1);
        }
        assert!(run(&lu, N1, &eject, &[], 0).good());
        assert_eq!(run(&lu, N1, &[0; 6], &[], 0).sense(), no_medium);
        assert!(run(&lu, N1, &load, &[], 0).good());
    }
}

#[test]
fn start_stop_fixed_medium() {
    let lu = lu();
    assert_eq!(run(&lu, N1, &[0x12, 0, 0, 0, 36, 0], &[], 36).data[1], 0);
    assert!(run(&lu, N1, &[0x1B, 0, 0, 0, 0x02, 0], &[], 0).good());
    assert!(run(&lu, N1, &[0; 6], &[], 0).good());
    assert!(run(&lu, N1, &[0x1E, 0, 0, 0, 1, 0], &[], 0).good());
    assert_eq!(
        run(&lu, N1, &[0x1B, 0, 0, 0, 0x02, 0], &[], 0).sense(),
        (5, 0x5302)
    );
    assert!(run(&lu, N1, &[0x1B, 0, 0, 0, 0x00, 0], &[], 0).good());
}

#[test]
fn unsupported_commands_skip_cleanly() {
    let lu = lu();
    // FORMAT UNIT, WRITE BUFFER, READ BUFFER, LOG SENSE, MAINTENANCE OUT.
    for op in [0x04u8, 0x3B, 0x3C, 0x4D, 0xA4] {
        let mut c = [0u8; 16];
        c[0] = op;
        assert_eq!(run(&lu, N1, &c, &[], 0).sense(), (5, 0x2000), "{op:02x}");
    }
    // SERVICE ACTION IN(16) with an unknown service action: INVALID FIELD
    // IN CDB pointing at byte 1.
    let mut c = [0u8; 16];
    c[0] = 0x9E;
    c[1] = 0x13;
    let r = run(&lu, N1, &c, &[], 24);
    assert_eq!(r.sense(), INVALID_FIELD);
    assert_eq!(&r.o.sense.as_bytes()[15..18], &[0xCC, 0, 1]);
}

#[test]
fn mode_sense_residuals_and_defect_data() {
    let lu = lu();
    let r = run(&lu, N1, &[0x1A, 0, 0x3F, 0, 4, 0], &[], 4);
    assert_eq!((r.data.len(), r.o.transfer_len), (4, 4));
    let r = run(&lu, N1, &[0x1A, 0, 0x3F, 0, 255, 0], &[], 255);
    assert_eq!(r.o.transfer_len, r.data.len() as u64);
    assert!(r.data.len() < 255);
    assert_eq!(
        run(&lu, N1, &[0x1A, 0, 0xFF, 0, 255, 0], &[], 255).sense(),
        (5, 0x3900)
    );
    let r = run(&lu, N1, &[0x37, 0, 0, 0, 0, 0, 0, 0, 32, 0], &[], 32);
    assert_eq!(r.data, [0, 0, 0, 0]);
    let r = run(&lu, N1, &[0xB7, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], &[], 32);
    assert_eq!(r.data.len(), 8);
}

#[test]
fn rsoc_matches_dispatch() {
    let lu = lu();
    let r = run(
        &lu,
        N1,
        &[0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0],
        &[],
        0xFFFF,
    );
    assert!(r.good());
    // Every listed command is accepted by the parser with a zeroed CDB body,
    // one-command queries work, and the usage data echoes the opcode.
    for d in r.data[4..].chunks(8) {
        let (opc, sa, servactv) = (d[0], u16::from_be_bytes([d[2], d[3]]), d[5] & 1 != 0);
        let opts = if servactv { 2 } else { 1 };
        let c = [
            0xA3,
            0x0C,
            opts,
            opc,
            (sa >> 8) as u8,
            sa as u8,
            0,
            0,
            0xFF,
            0xFF,
            0,
            0,
        ];
        let one = run(&lu, N1, &c, &[], 0xFFFF);
        assert!(one.good());
        assert_eq!(one.data[1] & 7, 3);
        assert_eq!(one.data[4], opc);
        let wrong = [
            0xA3,
            0x0C,
            3 - opts,
            opc,
            (sa >> 8) as u8,
            sa as u8,
            0,
            0,
            0xFF,
            0xFF,
            0,
            0,
        ];
        assert_eq!(run(&lu, N1, &wrong, &[], 0xFFFF).sense(), INVALID_FIELD);
    }
}

#[test]
fn report_luns_fallback_and_no_lun() {
    let lu = lu();
    let r = run(&lu, N1, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], &[], 16);
    assert!(r.good());
    let mut d = Vec::new();
    let o = execute_no_lun(
        &ScsiRequest {
            cdb: &[0x12, 0, 0, 0, 36, 0],
            data_out: &[],
            expected_len: 36,
            nexus: N1,
            initiator_port: "iqn.2024-01.org.test:host,i,0x000000000001",
        },
        &mut d,
    );
    assert_eq!((o.status, d[0]), (ScsiStatus::GOOD, 0x7F));
}

#[test]
fn block_size_4096() {
    let (lu, _) = lu_with(4096, 256);
    let data = vec![7u8; 8192];
    assert!(run(&lu, N1, &cdb10(0x2A, 0, 254, 2), &data, 8192).good());
    let r = run(&lu, N1, &cdb16(0x88, 0, 254, 2), &[], 8192);
    assert_eq!(r.data, data);
    assert_eq!(
        run(&lu, N1, &cdb16(0x88, 0, 255, 2), &[], 8192).sense(),
        LBA_OOB
    );
    // Transfers beyond the Block Limits maximum are rejected.
    let r = run(&lu, N1, &cdb12(0xA8, 0, 0, 8193), &[], 0);
    assert_eq!(r.sense(), INVALID_FIELD);
}

#[test]
fn zero_block_size_device_does_not_panic() {
    let (lu, _) = lu_with(0, 16);
    for c in [
        &cdb10(0x28, 0, 0, 1)[..],
        &cdb10(0x2A, 0, 0, 1),
        &cdb10(0x2F, 2, 0, 1),
        &[0x1A, 0, 0x3F, 0, 255, 0],
        &[0x12, 1, 0xB0, 0, 255, 0],
    ] {
        let _ = run(&lu, N1, c, &[0; 512], 512);
    }
}
