//! CDB parser tests.
use super::*;
use crate::sense::{Asc, SenseKey};

fn field_ptr(s: &Sense) -> (u16, u8) {
    let sks = s.sks.unwrap();
    (u16::from_be_bytes([sks[1], sks[2]]), sks[0])
}

#[test]
fn table_is_consistent() {
    for o in OPCODES {
        assert_eq!(o.usage[0], o.opcode);
        assert!(matches!(o.cdb_len(), 6 | 10 | 12 | 16), "{:02x}", o.opcode);
        if let Some(sa) = o.service_action {
            assert_eq!(u16::from(o.usage[1] & 0x1F), sa);
        }
    }
    let mut v: Vec<_> = OPCODES
        .iter()
        .map(|o| (o.opcode, o.service_action))
        .collect();
    v.dedup();
    assert_eq!(v.len(), OPCODES.len());
}

#[test]
fn read10_and_flags() {
    let c = [0x28, 0x18, 0, 0, 1, 0, 3, 0, 8, 0];
    let Command::Read(rw) = Command::parse(&c).unwrap() else {
        panic!()
    };
    assert_eq!((rw.lba, rw.blocks, rw.dpo, rw.fua), (256, 8, true, true));
    // RDPROTECT rejected with a pointer to byte 1 bit 7..5.
    for p in 1..8u8 {
        let s = Command::parse(&[0x28, p << 5, 0, 0, 0, 0, 0, 0, 1, 0]).unwrap_err();
        assert_eq!(s.asc, Asc::INVALID_FIELD_IN_CDB);
        assert_eq!(field_ptr(&s).0, 1);
    }
    // Reserved bit in group byte.
    let s = Command::parse(&[0x28, 0, 0, 0, 0, 0, 0x80, 0, 1, 0]).unwrap_err();
    assert_eq!(field_ptr(&s), (6, 0xC8 | 7));
    // NACA in control byte.
    let s = Command::parse(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 4]).unwrap_err();
    assert_eq!(field_ptr(&s).0, 9);
}

#[test]
fn read6_zero_means_256() {
    let Command::Read(rw) = Command::parse(&[0x08, 0x1F, 0xFF, 0xFF, 0, 0]).unwrap() else {
        panic!()
    };
    assert_eq!((rw.lba, rw.blocks), (0x1F_FFFF, 256));
    let Command::Write(rw) = Command::parse(&[0x0A, 0, 0, 5, 3, 0]).unwrap() else {
        panic!()
    };
    assert_eq!((rw.lba, rw.blocks), (5, 3));
}

#[test]
fn rw16_full_lba() {
    let mut c = [0u8; 16];
    c[0] = 0x8A;
    c[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
    c[10..14].copy_from_slice(&7u32.to_be_bytes());
    c[14] = 3;
    let Command::Write(rw) = Command::parse(&c).unwrap() else {
        panic!()
    };
    assert_eq!((rw.lba, rw.blocks, rw.cdb_len), (u64::MAX, 7, 16));
    c[0] = 0x8F;
    c[1] = 0x02;
    assert!(matches!(
        Command::parse(&c).unwrap(),
        Command::Verify { bytchk: true, .. }
    ));
    c[1] = 0x04; // BYTCHK 10b unsupported
    assert!(Command::parse(&c).is_err());
}

#[test]
fn unsupported_opcodes_and_service_actions() {
    for opc in [
        0x04u8, 0x07, 0x1C, 0x1D, 0x3B, 0x3C, 0x4C, 0x4D, 0x80, 0x9D, 0xA4, 0xFF,
    ] {
        let s = Command::parse(&[opc; 16]).unwrap_err();
        assert_eq!(
            (s.key, s.asc),
            (
                SenseKey::ILLEGAL_REQUEST,
                Asc::INVALID_COMMAND_OPERATION_CODE
            ),
            "{opc:02x}"
        );
    }
    // SERVICE ACTION IN(16) SA 13h: invalid field with pointer at byte 1.
    let mut c = [0u8; 16];
    c[0] = 0x9E;
    c[1] = 0x13;
    let s = Command::parse(&c).unwrap_err();
    assert_eq!(s.asc, Asc::INVALID_FIELD_IN_CDB);
    assert_eq!(field_ptr(&s).0, 1);
    assert!(Command::parse(&[]).is_err());
    assert!(Command::parse(&[0x28, 0, 0]).is_err());
}

#[test]
fn inquiry_evpd_rules() {
    assert!(Command::parse(&[0x12, 0, 0, 1, 0, 0]).is_ok());
    let s = Command::parse(&[0x12, 0, 1, 1, 0, 0]).unwrap_err();
    assert_eq!(field_ptr(&s).0, 2);
    assert_eq!(
        Command::parse(&[0x12, 1, 0x83, 0x01, 0x00, 0]).unwrap(),
        Command::Inquiry {
            evpd: true,
            page_code: 0x83,
            alloc_len: 256
        }
    );
    // CMDDT (obsolete) rejected.
    assert!(Command::parse(&[0x12, 2, 0, 0, 36, 0]).is_err());
}

#[test]
fn read_capacity_and_rsoc() {
    assert_eq!(
        Command::parse(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
        Command::ReadCapacity10 { lba: 0, pmi: false }
    );
    assert!(Command::parse(&[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]).is_err());
    let mut c = [0u8; 16];
    c[0] = 0x9E;
    c[1] = 0x10;
    c[13] = 32;
    assert_eq!(
        Command::parse(&c).unwrap(),
        Command::ReadCapacity16 {
            lba: 0,
            pmi: false,
            alloc_len: 32
        }
    );
    let c = [0xA3, 0x0C, 0x81, 0x28, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
    assert_eq!(
        Command::parse(&c).unwrap(),
        Command::ReportSupportedOpcodes {
            rctd: true,
            options: 1,
            opcode: 0x28,
            service_action: 0,
            alloc_len: 0xFFFF
        }
    );
    let c = [0xA3, 0x0C, 0x05, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
    assert!(Command::parse(&c).is_err());
}

#[test]
fn misc_commands() {
    assert_eq!(
        Command::parse(&[0x1B, 1, 0, 0, 0x32, 0]).unwrap(),
        Command::StartStopUnit(StartStopUnit {
            immed: true,
            power_condition_modifier: 0,
            power_condition: 3,
            no_flush: false,
            loej: true,
            start: false
        })
    );
    assert_eq!(
        Command::parse(&[0x1E, 0, 0, 0, 1, 0]).unwrap(),
        Command::PreventAllowMediumRemoval { prevent: true }
    );
    assert!(Command::parse(&[0x1E, 0, 0, 0, 2, 0]).is_err());
    assert_eq!(
        Command::parse(&[0x35, 0x06, 0, 0, 0, 9, 0, 0, 2, 0]).unwrap(),
        Command::SynchronizeCache {
            lba: 9,
            blocks: 2,
            immed: true
        }
    );
    assert_eq!(
        Command::parse(&[0x34, 0x02, 0, 0, 0, 9, 3, 0, 2, 0]).unwrap(),
        Command::PreFetch {
            lba: 9,
            blocks: 2,
            immed: true
        }
    );
    assert_eq!(
        Command::parse(&[0x1A, 0x08, 0x3F, 0, 255, 0]).unwrap(),
        Command::ModeSense(ModeSense {
            ten: false,
            dbd: true,
            llbaa: false,
            pc: 0,
            page_code: 0x3F,
            subpage_code: 0,
            alloc_len: 255
        })
    );
    assert_eq!(
        Command::parse(&[0x55, 0x10, 0, 0, 0, 0, 0, 0, 24, 0]).unwrap(),
        Command::ModeSelect {
            ten: true,
            pf: true,
            sp: false,
            param_len: 24
        }
    );
    assert_eq!(
        Command::parse(&[0x37, 0, 0x18, 0, 0, 0, 0, 0, 32, 0]).unwrap(),
        Command::ReadDefectData {
            twelve: false,
            req_plist: true,
            req_glist: true,
            format: 0,
            alloc_len: 32
        }
    );
}
