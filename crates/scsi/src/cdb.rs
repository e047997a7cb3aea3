//! CDB parsing (SPC-4 / SBC-3) into typed commands.
//!
//! Every supported command has an entry in [`OPCODES`] whose CDB usage data
//! (as reported by REPORT SUPPORTED OPERATION CODES) doubles as the mask of
//! bits an initiator may set: any other bit set in the CDB is rejected with
//! ILLEGAL REQUEST / INVALID FIELD IN CDB and a field pointer to it. In
//! particular RDPROTECT / WRPROTECT / VRPROTECT are not in the masks since
//! the logical unit has no protection information.

use crate::sense::Sense;

pub mod op {
    //! Operation codes.
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const READ_6: u8 = 0x08;
    pub const WRITE_6: u8 = 0x0A;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SELECT_6: u8 = 0x15;
    pub const MODE_SENSE_6: u8 = 0x1A;
    pub const START_STOP_UNIT: u8 = 0x1B;
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1E;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2A;
    pub const WRITE_AND_VERIFY_10: u8 = 0x2E;
    pub const VERIFY_10: u8 = 0x2F;
    pub const PRE_FETCH_10: u8 = 0x34;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const READ_DEFECT_DATA_10: u8 = 0x37;
    pub const MODE_SELECT_10: u8 = 0x55;
    pub const MODE_SENSE_10: u8 = 0x5A;
    pub const READ_16: u8 = 0x88;
    pub const WRITE_16: u8 = 0x8A;
    pub const WRITE_AND_VERIFY_16: u8 = 0x8E;
    pub const VERIFY_16: u8 = 0x8F;
    pub const PRE_FETCH_16: u8 = 0x90;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
    pub const REPORT_LUNS: u8 = 0xA0;
    pub const MAINTENANCE_IN: u8 = 0xA3;
    pub const READ_12: u8 = 0xA8;
    pub const WRITE_12: u8 = 0xAA;
    pub const WRITE_AND_VERIFY_12: u8 = 0xAE;
    pub const VERIFY_12: u8 = 0xAF;
    pub const READ_DEFECT_DATA_12: u8 = 0xB7;

    /// SERVICE ACTION IN(16) service action READ CAPACITY(16).
    pub const SA_READ_CAPACITY_16: u16 = 0x10;
    /// MAINTENANCE IN service action REPORT SUPPORTED OPERATION CODES.
    pub const SA_REPORT_SUPPORTED_OPCODES: u16 = 0x0C;
}

/// One supported command: operation code, optional service action, CDB
/// length and CDB usage data (byte 0 = opcode, SA byte = service action).
#[derive(Clone, Copy, Debug)]
pub struct OpcodeInfo {
    pub opcode: u8,
    pub service_action: Option<u16>,
    pub usage: &'static [u8],
    /// Recommended command timeout in seconds (timeouts descriptor).
    pub timeout_secs: u32,
}

impl OpcodeInfo {
    pub fn cdb_len(&self) -> usize {
        self.usage.len()
    }
}

const fn info(opcode: u8, usage: &'static [u8]) -> OpcodeInfo {
    OpcodeInfo {
        opcode,
        service_action: None,
        usage,
        timeout_secs: 30,
    }
}

const fn info_sa(opcode: u8, sa: u16, usage: &'static [u8]) -> OpcodeInfo {
    OpcodeInfo {
        opcode,
        service_action: Some(sa),
        usage,
        timeout_secs: 30,
    }
}

/// Every command the logical unit (plus the transport's REPORT LUNS)
/// supports, in opcode order.
#[rustfmt::skip]
pub static OPCODES: &[OpcodeInfo] = &[
    info(op::TEST_UNIT_READY, &[0x00, 0, 0, 0, 0, 0]),
    info(op::REQUEST_SENSE, &[0x03, 0x01, 0, 0, 0xFF, 0]),
    info(op::READ_6, &[0x08, 0x1F, 0xFF, 0xFF, 0xFF, 0]),
    info(op::WRITE_6, &[0x0A, 0x1F, 0xFF, 0xFF, 0xFF, 0]),
    info(op::INQUIRY, &[0x12, 0x01, 0xFF, 0xFF, 0xFF, 0]),
    info(op::MODE_SELECT_6, &[0x15, 0x11, 0, 0, 0xFF, 0]),
    info(op::MODE_SENSE_6, &[0x1A, 0x08, 0xFF, 0xFF, 0xFF, 0]),
    info(op::START_STOP_UNIT, &[0x1B, 0x01, 0, 0x0F, 0xF7, 0]),
    info(op::PREVENT_ALLOW_MEDIUM_REMOVAL, &[0x1E, 0, 0, 0, 0x03, 0]),
    info(op::READ_CAPACITY_10, &[0x25, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x01, 0]),
    info(op::READ_10, &[0x28, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0]),
    info(op::WRITE_10, &[0x2A, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0]),
    info(op::WRITE_AND_VERIFY_10, &[0x2E, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0]),
    info(op::VERIFY_10, &[0x2F, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0]),
    info(op::PRE_FETCH_10, &[0x34, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0]),
    info(op::SYNCHRONIZE_CACHE_10, &[0x35, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0]),
    info(op::READ_DEFECT_DATA_10, &[0x37, 0, 0x1F, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    info(op::MODE_SELECT_10, &[0x55, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    info(op::MODE_SENSE_10, &[0x5A, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0]),
    info(op::READ_16, &[0x88, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::WRITE_16, &[0x8A, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::WRITE_AND_VERIFY_16, &[0x8E, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::VERIFY_16, &[0x8F, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::PRE_FETCH_16, &[0x90, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::SYNCHRONIZE_CACHE_16, &[0x91, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info_sa(op::SERVICE_ACTION_IN_16, op::SA_READ_CAPACITY_16, &[0x9E, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0]),
    info(op::REPORT_LUNS, &[0xA0, 0, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
    info_sa(op::MAINTENANCE_IN, op::SA_REPORT_SUPPORTED_OPCODES, &[0xA3, 0x0C, 0x87, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
    info(op::READ_12, &[0xA8, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::WRITE_12, &[0xAA, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::WRITE_AND_VERIFY_12, &[0xAE, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::VERIFY_12, &[0xAF, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::READ_DEFECT_DATA_12, &[0xB7, 0x1F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
];

/// True if `opcode` has service actions (in our table).
pub fn has_service_actions(opcode: u8) -> bool {
    OPCODES
        .iter()
        .any(|o| o.opcode == opcode && o.service_action.is_some())
}

/// Look up a supported (opcode, service action) pair.
pub fn lookup(opcode: u8, service_action: Option<u16>) -> Option<&'static OpcodeInfo> {
    OPCODES
        .iter()
        .find(|o| o.opcode == opcode && o.service_action == service_action)
}

/// A parsed, validated CDB.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Command {
    TestUnitReady,
    RequestSense {
        desc: bool,
        alloc_len: u32,
    },
    Inquiry {
        evpd: bool,
        page_code: u8,
        alloc_len: u32,
    },
    ModeSense(ModeSense),
    ModeSelect {
        ten: bool,
        pf: bool,
        sp: bool,
        param_len: u32,
    },
    StartStopUnit(StartStopUnit),
    PreventAllowMediumRemoval {
        prevent: bool,
    },
    ReadCapacity10 {
        lba: u32,
        pmi: bool,
    },
    ReadCapacity16 {
        lba: u64,
        pmi: bool,
        alloc_len: u32,
    },
    Read(Rw),
    Write(Rw),
    /// `bytchk`: compare the Data-Out buffer with the medium.
    WriteAndVerify {
        rw: Rw,
        bytchk: bool,
    },
    Verify {
        rw: Rw,
        bytchk: bool,
    },
    PreFetch {
        lba: u64,
        blocks: u32,
        immed: bool,
    },
    SynchronizeCache {
        lba: u64,
        blocks: u32,
        immed: bool,
    },
    ReadDefectData {
        twelve: bool,
        req_plist: bool,
        req_glist: bool,
        format: u8,
        alloc_len: u32,
    },
    ReportLuns {
        select_report: u8,
        alloc_len: u32,
    },
    ReportSupportedOpcodes {
        rctd: bool,
        options: u8,
        opcode: u8,
        service_action: u16,
        alloc_len: u32,
    },
}

/// READ / WRITE / VERIFY addressing and flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rw {
    pub lba: u64,
    /// Transfer length in blocks (READ(6)/WRITE(6) 0 already mapped to 256).
    pub blocks: u32,
    pub dpo: bool,
    pub fua: bool,
    /// Which CDB size the command came in (6, 10, 12 or 16).
    pub cdb_len: u8,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ModeSense {
    pub ten: bool,
    pub dbd: bool,
    pub llbaa: bool,
    /// Page control: 0 current, 1 changeable, 2 default, 3 saved.
    pub pc: u8,
    pub page_code: u8,
    pub subpage_code: u8,
    pub alloc_len: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StartStopUnit {
    pub immed: bool,
    pub power_condition_modifier: u8,
    pub power_condition: u8,
    pub no_flush: bool,
    pub loej: bool,
    pub start: bool,
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

impl Command {
    /// Parse and validate a CDB. Never panics; unsupported opcodes give
    /// INVALID COMMAND OPERATION CODE, unsupported service actions and any
    /// bit outside the command's usage map INVALID FIELD IN CDB.
    pub fn parse(cdb: &[u8]) -> Result<Command, Sense> {
        let Some(&opcode) = cdb.first() else {
            return Err(Sense::invalid_opcode());
        };
        let entry = if has_service_actions(opcode) {
            let sa = u16::from(cdb.get(1).copied().unwrap_or(0) & 0x1F);
            lookup(opcode, Some(sa)).ok_or(Sense::invalid_field_in_cdb(1, Some(4)))?
        } else {
            lookup(opcode, None).ok_or(Sense::invalid_opcode())?
        };
        let len = entry.cdb_len();
        let Some(c) = cdb.get(..len) else {
            return Err(Sense::invalid_field_in_cdb(cdb.len() as u16, None));
        };
        for (i, (&b, &allowed)) in c.iter().zip(entry.usage).enumerate().skip(1) {
            let allowed = if i == 1 && entry.service_action.is_some() {
                allowed | 0x1F
            } else {
                allowed
            };
            let bad = b & !allowed;
            if bad != 0 {
                let bit = 7 - bad.leading_zeros() as u8;
                return Err(Sense::invalid_field_in_cdb(i as u16, Some(bit)));
            }
        }
        let rw = |lba: u64, blocks: u32| Rw {
            lba,
            blocks,
            dpo: c[1] & 0x10 != 0,
            fua: c[1] & 0x08 != 0,
            cdb_len: len as u8,
        };
        let cmd = match opcode {
            op::TEST_UNIT_READY => Command::TestUnitReady,
            op::REQUEST_SENSE => Command::RequestSense {
                desc: c[1] & 1 != 0,
                alloc_len: u32::from(c[4]),
            },
            op::INQUIRY => {
                let evpd = c[1] & 1 != 0;
                if !evpd && c[2] != 0 {
                    return Err(Sense::invalid_field_in_cdb(2, None));
                }
                Command::Inquiry {
                    evpd,
                    page_code: c[2],
                    alloc_len: be(&c[3..5]) as u32,
                }
            }
            op::MODE_SENSE_6 | op::MODE_SENSE_10 => {
                let ten = opcode == op::MODE_SENSE_10;
                Command::ModeSense(ModeSense {
                    ten,
                    dbd: c[1] & 0x08 != 0,
                    llbaa: ten && c[1] & 0x10 != 0,
                    pc: c[2] >> 6,
                    page_code: c[2] & 0x3F,
                    subpage_code: c[3],
                    alloc_len: if ten {
                        be(&c[7..9]) as u32
                    } else {
                        u32::from(c[4])
                    },
                })
            }
            op::MODE_SELECT_6 | op::MODE_SELECT_10 => {
                let ten = opcode == op::MODE_SELECT_10;
                Command::ModeSelect {
                    ten,
                    pf: c[1] & 0x10 != 0,
                    sp: c[1] & 0x01 != 0,
                    param_len: if ten {
                        be(&c[7..9]) as u32
                    } else {
                        u32::from(c[4])
                    },
                }
            }
            op::START_STOP_UNIT => Command::StartStopUnit(StartStopUnit {
                immed: c[1] & 1 != 0,
                power_condition_modifier: c[3] & 0x0F,
                power_condition: c[4] >> 4,
                no_flush: c[4] & 0x04 != 0,
                loej: c[4] & 0x02 != 0,
                start: c[4] & 0x01 != 0,
            }),
            op::PREVENT_ALLOW_MEDIUM_REMOVAL => match c[4] & 0x03 {
                0 => Command::PreventAllowMediumRemoval { prevent: false },
                1 => Command::PreventAllowMediumRemoval { prevent: true },
                _ => return Err(Sense::invalid_field_in_cdb(4, Some(1))),
            },
            op::READ_CAPACITY_10 => {
                let lba = be(&c[2..6]) as u32;
                let pmi = c[8] & 1 != 0;
                if !pmi && lba != 0 {
                    return Err(Sense::invalid_field_in_cdb(2, None));
                }
                Command::ReadCapacity10 { lba, pmi }
            }
            op::SERVICE_ACTION_IN_16 => {
                let lba = be(&c[2..10]);
                let pmi = c[14] & 1 != 0;
                if !pmi && lba != 0 {
                    return Err(Sense::invalid_field_in_cdb(2, None));
                }
                Command::ReadCapacity16 {
                    lba,
                    pmi,
                    alloc_len: be(&c[10..14]) as u32,
                }
            }
            op::READ_6 | op::WRITE_6 => {
                let lba = be(&c[1..4]) & 0x1F_FFFF;
                let blocks = if c[4] == 0 { 256 } else { u32::from(c[4]) };
                let r = Rw {
                    lba,
                    blocks,
                    dpo: false,
                    fua: false,
                    cdb_len: 6,
                };
                if opcode == op::READ_6 {
                    Command::Read(r)
                } else {
                    Command::Write(r)
                }
            }
            op::READ_10 | op::WRITE_10 | op::WRITE_AND_VERIFY_10 | op::VERIFY_10 => {
                let r = rw(be(&c[2..6]), be(&c[7..9]) as u32);
                rw_command(opcode, r, c[1])
            }
            op::READ_12 | op::WRITE_12 | op::WRITE_AND_VERIFY_12 | op::VERIFY_12 => {
                let r = rw(be(&c[2..6]), be(&c[6..10]) as u32);
                rw_command(opcode, r, c[1])
            }
            op::READ_16 | op::WRITE_16 | op::WRITE_AND_VERIFY_16 | op::VERIFY_16 => {
                let r = rw(be(&c[2..10]), be(&c[10..14]) as u32);
                rw_command(opcode, r, c[1])
            }
            op::PRE_FETCH_10
            | op::SYNCHRONIZE_CACHE_10
            | op::PRE_FETCH_16
            | op::SYNCHRONIZE_CACHE_16 => {
                let (lba, blocks) = if len == 10 {
                    (be(&c[2..6]), be(&c[7..9]) as u32)
                } else {
                    (be(&c[2..10]), be(&c[10..14]) as u32)
                };
                let immed = c[1] & 0x02 != 0;
                if opcode == op::PRE_FETCH_10 || opcode == op::PRE_FETCH_16 {
                    Command::PreFetch { lba, blocks, immed }
                } else {
                    Command::SynchronizeCache { lba, blocks, immed }
                }
            }
            op::READ_DEFECT_DATA_10 => Command::ReadDefectData {
                twelve: false,
                req_plist: c[2] & 0x10 != 0,
                req_glist: c[2] & 0x08 != 0,
                format: c[2] & 0x07,
                alloc_len: be(&c[7..9]) as u32,
            },
            op::READ_DEFECT_DATA_12 => Command::ReadDefectData {
                twelve: true,
                req_plist: c[1] & 0x10 != 0,
                req_glist: c[1] & 0x08 != 0,
                format: c[1] & 0x07,
                alloc_len: be(&c[6..10]) as u32,
            },
            op::REPORT_LUNS => Command::ReportLuns {
                select_report: c[2],
                alloc_len: be(&c[6..10]) as u32,
            },
            op::MAINTENANCE_IN => {
                let options = c[2] & 0x07;
                if options > 3 {
                    return Err(Sense::invalid_field_in_cdb(2, Some(2)));
                }
                Command::ReportSupportedOpcodes {
                    rctd: c[2] & 0x80 != 0,
                    options,
                    opcode: c[3],
                    service_action: be(&c[4..6]) as u16,
                    alloc_len: be(&c[6..10]) as u32,
                }
            }
            _ => return Err(Sense::invalid_opcode()),
        };
        Ok(cmd)
    }

    /// Commands that access the medium (fail with NOT READY when there is none).
    pub fn needs_medium(&self) -> bool {
        matches!(
            self,
            Command::TestUnitReady
                | Command::ReadCapacity10 { .. }
                | Command::ReadCapacity16 { .. }
                | Command::Read(_)
                | Command::Write(_)
                | Command::WriteAndVerify { .. }
                | Command::Verify { .. }
                | Command::PreFetch { .. }
                | Command::SynchronizeCache { .. }
        )
    }
}

fn rw_command(opcode: u8, r: Rw, b1: u8) -> Command {
    match opcode {
        op::READ_10 | op::READ_12 | op::READ_16 => Command::Read(r),
        op::WRITE_10 | op::WRITE_12 | op::WRITE_16 => Command::Write(r),
        op::WRITE_AND_VERIFY_10 | op::WRITE_AND_VERIFY_12 | op::WRITE_AND_VERIFY_16 => {
            Command::WriteAndVerify {
                rw: Rw { fua: false, ..r },
                bytchk: b1 & 0x02 != 0,
            }
        }
        _ => Command::Verify {
            rw: Rw { fua: false, ..r },
            bytchk: b1 & 0x02 != 0,
        },
    }
}

#[cfg(test)]
mod tests {
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
            0x42u8, 0x41, 0x93, 0x89, 0x8B, 0x9C, 0x83, 0x84, 0x48, 0x5E, 0x5F, 0x16, 0x17, 0x56,
            0x57, 0xFF,
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
        // GET LBA STATUS (9E/12): invalid field with pointer at byte 1.
        let mut c = [0u8; 16];
        c[0] = 0x9E;
        c[1] = 0x12;
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
}
