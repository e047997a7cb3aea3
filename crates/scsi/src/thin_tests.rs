//! Thin provisioning (UNMAP, WRITE SAME, GET LBA STATUS, VPD B0h / B2h,
//! READ CAPACITY(16) LBPME / LBPRZ), SANITIZE and ALUA.

use std::sync::Arc;

use crate::tests::{cdb10, cdb16, ident, lu_with, run, INVALID_FIELD, LBA_OOB, N1, N2};
use crate::*;

fn unmap_params(descs: &[(u64, u32)]) -> Vec<u8> {
    let mut p = vec![0u8; 8];
    for &(lba, n) in descs {
        p.extend_from_slice(&lba.to_be_bytes());
        p.extend_from_slice(&n.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
    }
    let len = p.len() as u16;
    p[0..2].copy_from_slice(&(len - 2).to_be_bytes());
    p[2..4].copy_from_slice(&(len - 8).to_be_bytes());
    p
}

fn unmap(lu: &LogicalUnit, p: &[u8]) -> crate::tests::Out {
    let c = cdb10(0x42, 0, 0, p.len() as u16);
    run(lu, N1, &c, p, p.len() as u32)
}

/// (lba, blocks, provisioning status) descriptors from GET LBA STATUS.
fn lba_status(lu: &LogicalUnit, lba: u64) -> Vec<(u64, u32, u8)> {
    let mut c = cdb16(0x9E, 0x12, lba, 0);
    c[10..14].copy_from_slice(&1024u32.to_be_bytes());
    let r = run(lu, N1, &c, &[], 1024);
    assert!(r.good());
    let len = u32::from_be_bytes(r.data[..4].try_into().unwrap()) as usize;
    assert_eq!(len + 4, r.data.len());
    r.data[8..]
        .chunks(16)
        .map(|d| {
            (
                u64::from_be_bytes(d[..8].try_into().unwrap()),
                u32::from_be_bytes(d[8..12].try_into().unwrap()),
                d[12],
            )
        })
        .collect()
}

fn read(lu: &LogicalUnit, lba: u32, n: u16) -> Vec<u8> {
    let r = run(lu, N1, &cdb10(0x28, 0, lba, n), &[], u32::from(n) * 512);
    assert!(r.good());
    r.data
}

#[test]
fn vpd_and_read_capacity_advertise_thin_provisioning() {
    let (lu, _) = lu_with(512, 1 << 20);
    let r = run(
        &lu,
        N1,
        &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        &[],
        32,
    );
    assert_eq!(r.data[14] & 0xC0, 0xC0);
    let r = run(&lu, N1, &[0x12, 1, 0xB2, 0, 255, 0], &[], 255);
    assert_eq!(&r.data[4..8], &[0, 0xE4, 0x02, 0]);
    let r = run(&lu, N1, &[0x12, 1, 0xB0, 0, 255, 0], &[], 255);
    assert_eq!(&r.data[20..24], &(1u32 << 20).to_be_bytes());
    assert_eq!(&r.data[24..28], &256u32.to_be_bytes());
    assert_eq!(&r.data[36..44], &65536u64.to_be_bytes());
    assert_eq!(&r.data[44..48], &256u32.to_be_bytes());
}

#[test]
fn unmap_deallocates_and_validates() {
    let (lu, _) = lu_with(512, 4096);
    assert!(run(
        &lu,
        N1,
        &cdb10(0x2A, 0, 0, 256),
        &[b'a'; 256 * 512],
        256 * 512
    )
    .good());
    assert_eq!(lba_status(&lu, 0)[0], (0, 256, 0));
    assert!(unmap(&lu, &unmap_params(&[(0, 128), (128, 128)])).good());
    assert_eq!(read(&lu, 0, 256), vec![0; 256 * 512]);
    assert_eq!(lba_status(&lu, 0), vec![(0, 4096, 1)]);
    // Zero-block descriptors are ignored, even past the end.
    assert!(unmap(&lu, &unmap_params(&[(4096, 0)])).good());
    assert!(unmap(&lu, &unmap_params(&[])).good());
    assert!(run(&lu, N1, &cdb10(0x42, 0, 0, 0), &[], 0).good());
    assert_eq!(unmap(&lu, &unmap_params(&[(4095, 2)])).sense(), LBA_OOB);
    assert_eq!(
        unmap(&lu, &unmap_params(&[(0, 1); 257])).sense(),
        (5, 0x2600)
    );
    assert_eq!(unmap(&lu, &[0; 6]).sense(), (5, 0x1A00));
    // ANCHOR is not supported.
    let c = cdb10(0x42, 1, 0, 8);
    assert_eq!(
        run(&lu, N1, &c, &unmap_params(&[]), 8).sense(),
        INVALID_FIELD
    );
    // Unmapping a partial chunk keeps the rest.
    assert!(run(&lu, N1, &cdb10(0x2A, 0, 0, 4), &[7; 2048], 2048).good());
    assert!(unmap(&lu, &unmap_params(&[(1, 1)])).good());
    let d = read(&lu, 0, 4);
    assert!(d[..512].iter().all(|&b| b == 7) && d[512..1024].iter().all(|&b| b == 0));
    assert!(d[1024..].iter().all(|&b| b == 7));
}

#[test]
fn write_same() {
    let (lu, _) = lu_with(512, 4096);
    let ws10 = |lba: u32, n: u16, b1: u8| cdb10(0x41, b1, lba, n);
    let block = vec![0x5Au8; 512];
    assert!(run(&lu, N1, &ws10(10, 300, 0), &block, 512).good());
    assert_eq!(read(&lu, 10, 300), vec![0x5A; 300 * 512]);
    // UNMAP bit deallocates (reads zeros afterwards).
    assert!(run(&lu, N1, &ws10(10, 300, 0x08), &[0xFF; 512], 512).good());
    assert_eq!(read(&lu, 10, 300), vec![0; 300 * 512]);
    // 0 blocks: to the end of the medium.
    assert!(run(&lu, N1, &ws10(4000, 0, 0), &block, 512).good());
    assert_eq!(read(&lu, 4000, 96), vec![0x5A; 96 * 512]);
    // Beyond the end, ANCHOR, WRPROTECT, wrong Data-Out size.
    assert_eq!(
        run(&lu, N1, &ws10(4090, 7, 0), &block, 512).sense(),
        LBA_OOB
    );
    assert_eq!(
        run(&lu, N1, &ws10(4097, 0, 0), &block, 512).sense(),
        LBA_OOB
    );
    assert_eq!(
        run(&lu, N1, &ws10(0, 1, 0x10), &block, 512).sense(),
        INVALID_FIELD
    );
    assert_eq!(
        run(&lu, N1, &ws10(0, 1, 0x18), &block, 512).sense(),
        INVALID_FIELD
    );
    assert_eq!(
        run(&lu, N1, &ws10(0, 1, 0x20), &block, 512).sense(),
        INVALID_FIELD
    );
    assert_eq!(
        run(&lu, N1, &ws10(0, 1, 0x08), &block[..256], 256).sense(),
        INVALID_FIELD
    );
    assert_eq!(
        run(&lu, N1, &ws10(0, 1, 0x08), &[0; 1024], 1024).sense(),
        INVALID_FIELD
    );
    // WRITE SAME(16) with NDOB writes zeros without a Data-Out buffer.
    assert!(run(&lu, N1, &cdb16(0x93, 0x01, 4000, 4), &[], 0).good());
    assert_eq!(read(&lu, 4000, 4), vec![0; 2048]);
    // More than MAXIMUM WRITE SAME LENGTH.
    let (big, _) = lu_with(512, 1 << 17);
    assert_eq!(
        run(&big, N1, &ws10(0, 0, 0), &block, 512).sense(),
        INVALID_FIELD
    );
    assert!(run(&big, N1, &cdb16(0x93, 0x08, 0, 65536), &[0; 512], 512).good());
}

#[test]
fn get_lba_status_bounds() {
    let (lu, _) = lu_with(512, 4096);
    assert_eq!(lba_status(&lu, 4095), vec![(4095, 1, 1)]);
    for lba in [4096u64, 1 << 63, u64::MAX] {
        let mut c = cdb16(0x9E, 0x12, lba, 0);
        c[13] = 24;
        assert_eq!(run(&lu, N1, &c, &[], 24).sense(), LBA_OOB);
    }
    // Allocation length 24: one descriptor.
    let mut c = cdb16(0x9E, 0x12, 0, 0);
    c[13] = 24;
    assert_eq!(run(&lu, N1, &c, &[], 24).data.len(), 24);
}

#[test]
fn file_device_punches_holes() {
    let p = std::env::temp_dir().join(format!("ironsan-thin-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    let dev = Arc::new(FileDevice::open(&p, Some(8 << 20), 512, true).unwrap());
    assert!(dev.is_thin());
    let lu = LogicalUnit::new(dev.clone(), ident());
    assert_eq!(lba_status(&lu, 0), vec![(0, 16384, 1)]);
    assert!(run(
        &lu,
        N1,
        &cdb10(0x2A, 0, 2048, 2048),
        &[1; 2048 * 512],
        2048 * 512
    )
    .good());
    let st = lba_status(&lu, 0);
    assert_eq!(st[0], (0, 2048, 1));
    assert_eq!(st[1], (2048, 2048, 0));
    assert_eq!(st[2], (4096, 12288, 1));
    // Unmap an unaligned range inside the data: zeros read back, the
    // whole file system blocks in between become a hole.
    assert!(unmap(&lu, &unmap_params(&[(2049, 1000)])).good());
    let d = read(&lu, 2048, 1002);
    assert!(d[..512].iter().all(|&b| b == 1));
    assert!(d[512..1001 * 512].iter().all(|&b| b == 0));
    assert!(d[1001 * 512..].iter().all(|&b| b == 1));
    let st = lba_status(&lu, 2048);
    assert_eq!(st[0].2, 0);
    assert!(st.iter().any(|s| s.2 == 1 && s.0 > 2048 && s.0 < 3049));
    // SANITIZE BLOCK ERASE deallocates everything.
    assert!(run(&lu, N1, &[0x48, 0x02, 0, 0, 0, 0, 0, 0, 0, 0], &[], 0).good());
    assert_eq!(lba_status(&lu, 0), vec![(0, 16384, 1)]);
    assert_eq!(read(&lu, 2048, 4), vec![0; 2048]);
    // Parameter data, reserved bits and other service actions are refused.
    assert_eq!(
        run(&lu, N1, &[0x48, 0x02, 0, 0, 0, 0, 0, 0, 8, 0], &[0; 8], 8).sense(),
        INVALID_FIELD
    );
    assert_eq!(
        run(&lu, N1, &[0x48, 0x42, 0, 0, 0, 0, 0, 0, 0, 0], &[], 0).sense(),
        INVALID_FIELD
    );
    for sa in [0u8, 1, 3, 4, 0x1F] {
        let c = [0x48, sa, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(run(&lu, N1, &c, &[], 0).sense(), INVALID_FIELD, "{sa}");
    }
    drop(lu);
    drop(dev);
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn alua_states_and_report_target_port_groups() {
    let (lu, _) = lu_with(512, 64);
    let r = run(&lu, N1, &[0x12, 0, 0, 0, 96, 0], &[], 96);
    assert_eq!(r.data[5], 0x18); // TPGS 01b, 3PC
                                 // Default: one active/optimized group 1 with relative port 1.
    let rtpg = |n: Nexus, fmt: u8| {
        run(
            &lu,
            n,
            &[0xA3, 0x0A | fmt, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
            &[],
            256,
        )
    };
    let r = rtpg(N1, 0);
    assert_eq!(r.data, [0, 0, 0, 12, 0, 0x0F, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
    lu.set_alua(Arc::from(vec![
        AluaGroup {
            id: 1,
            state: AluaState::ActiveOptimized,
            relative_ports: vec![1],
        },
        AluaGroup {
            id: 2,
            state: AluaState::Standby,
            relative_ports: vec![2, 3],
        },
        AluaGroup {
            id: 3,
            state: AluaState::Unavailable,
            relative_ports: vec![4],
        },
    ]));
    let r = rtpg(N1, 0x20);
    assert_eq!(&r.data[4..8], &[0x10, 0, 0, 0]);
    assert_eq!(
        u32::from_be_bytes(r.data[..4].try_into().unwrap()) as usize,
        r.data.len() - 4
    );
    assert_eq!(&r.data[20..24], &[0x02, 0x0F, 0, 2]);
    assert_eq!(r.data[27], 2);
    let standby = Nexus {
        id: 5,
        relative_port: 3,
    };
    let unavailable = Nexus {
        id: 6,
        relative_port: 4,
    };
    assert_eq!(run(&lu, standby, &[0; 6], &[], 0).sense(), (2, 0x040B));
    assert_eq!(
        run(&lu, standby, &cdb10(0x28, 0, 0, 1), &[], 512).sense(),
        (2, 0x040B)
    );
    assert!(run(&lu, standby, &[0x1A, 0, 0x3F, 0, 255, 0], &[], 255).good());
    assert!(run(&lu, standby, &[0x5E, 0, 0, 0, 0, 0, 0, 0, 8, 0], &[], 8).good());
    assert_eq!(run(&lu, unavailable, &[0; 6], &[], 0).sense(), (2, 0x040C));
    assert_eq!(
        run(&lu, unavailable, &[0x1A, 0, 0x3F, 0, 255, 0], &[], 255).sense(),
        (2, 0x040C)
    );
    for n in [standby, unavailable] {
        assert!(run(&lu, n, &[0x12, 0, 0, 0, 96, 0], &[], 96).good());
        assert!(run(&lu, n, &[0x03, 0, 0, 0, 18, 0], &[], 18).good());
        assert!(rtpg(n, 0).good());
    }
    // Device Identification reports the group of the arrival port.
    let r = run(&lu, standby, &[0x12, 1, 0x83, 0, 255, 0], &[], 255);
    let pos = r
        .data
        .windows(4)
        .position(|w| w == [0x51, 0x95, 0, 4])
        .unwrap();
    assert_eq!(&r.data[pos + 4..pos + 8], &[0, 0, 0, 2]);
    assert!(run(&lu, N2, &[0; 6], &[], 0).good());
}
