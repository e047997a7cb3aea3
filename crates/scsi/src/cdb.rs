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
    pub const RESERVE_6: u8 = 0x16;
    pub const RELEASE_6: u8 = 0x17;
    pub const WRITE_SAME_10: u8 = 0x41;
    pub const UNMAP: u8 = 0x42;
    pub const SANITIZE: u8 = 0x48;
    pub const RESERVE_10: u8 = 0x56;
    pub const RELEASE_10: u8 = 0x57;
    pub const PERSISTENT_RESERVE_IN: u8 = 0x5E;
    pub const PERSISTENT_RESERVE_OUT: u8 = 0x5F;
    pub const EXTENDED_COPY: u8 = 0x83;
    pub const RECEIVE_COPY_RESULTS: u8 = 0x84;
    pub const COMPARE_AND_WRITE: u8 = 0x89;
    pub const ORWRITE_16: u8 = 0x8B;
    pub const WRITE_SAME_16: u8 = 0x93;
    pub const WRITE_ATOMIC_16: u8 = 0x9C;

    /// SERVICE ACTION IN(16) service action READ CAPACITY(16).
    pub const SA_READ_CAPACITY_16: u16 = 0x10;
    /// MAINTENANCE IN service action REPORT SUPPORTED OPERATION CODES.
    pub const SA_REPORT_SUPPORTED_OPCODES: u16 = 0x0C;
    /// MAINTENANCE IN service action REPORT TARGET PORT GROUPS.
    pub const SA_REPORT_TARGET_PORT_GROUPS: u16 = 0x0A;
    /// SERVICE ACTION IN(16) service action GET LBA STATUS.
    pub const SA_GET_LBA_STATUS: u16 = 0x12;
    /// SANITIZE service actions offered: OVERWRITE and BLOCK ERASE
    /// (CRYPTOGRAPHIC ERASE 03h and EXIT FAILURE MODE 1Fh are not).
    pub const SA_SANITIZE_OVERWRITE: u16 = 0x01;
    pub const SA_SANITIZE_BLOCK_ERASE: u16 = 0x02;
    /// RECEIVE COPY RESULTS service actions.
    pub const SA_COPY_STATUS: u16 = 0x00;
    pub const SA_OPERATING_PARAMETERS: u16 = 0x03;
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
    info(op::RESERVE_6, &[0x16, 0, 0, 0, 0, 0]),
    info(op::RELEASE_6, &[0x17, 0, 0, 0, 0, 0]),
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
    info(op::WRITE_SAME_10, &[0x41, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0]),
    info(op::UNMAP, &[0x42, 0, 0, 0, 0, 0, 0x1F, 0xFF, 0xFF, 0]),
    info_sa(op::SANITIZE, op::SA_SANITIZE_OVERWRITE, &[0x48, 0xA1, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    info_sa(op::SANITIZE, op::SA_SANITIZE_BLOCK_ERASE, &[0x48, 0xA2, 0, 0, 0, 0, 0, 0, 0, 0]),
    info(op::MODE_SELECT_10, &[0x55, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    info(op::RESERVE_10, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    info(op::RELEASE_10, &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    info(op::MODE_SENSE_10, &[0x5A, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_IN, 0x00, &[0x5E, 0x00, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_IN, 0x01, &[0x5E, 0x01, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_IN, 0x02, &[0x5E, 0x02, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_IN, 0x03, &[0x5E, 0x03, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_OUT, 0x00, &[0x5F, 0x00, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_OUT, 0x01, &[0x5F, 0x01, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_OUT, 0x02, &[0x5F, 0x02, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_OUT, 0x03, &[0x5F, 0x03, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_OUT, 0x04, &[0x5F, 0x04, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_OUT, 0x05, &[0x5F, 0x05, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_OUT, 0x06, &[0x5F, 0x06, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
    info_sa(op::PERSISTENT_RESERVE_OUT, 0x07, &[0x5F, 0x07, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
    info_sa(op::EXTENDED_COPY, 0x00, &[0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
    info_sa(op::RECEIVE_COPY_RESULTS, op::SA_COPY_STATUS, &[0x84, 0x00, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
    info_sa(op::RECEIVE_COPY_RESULTS, op::SA_OPERATING_PARAMETERS, &[0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
    info(op::READ_16, &[0x88, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::COMPARE_AND_WRITE, &[0x89, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0x1F, 0]),
    info(op::WRITE_16, &[0x8A, 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::ORWRITE_16, &[0x8B, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::WRITE_AND_VERIFY_16, &[0x8E, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::VERIFY_16, &[0x8F, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::PRE_FETCH_16, &[0x90, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::SYNCHRONIZE_CACHE_16, &[0x91, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::WRITE_SAME_16, &[0x93, 0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0]),
    info(op::WRITE_ATOMIC_16, &[0x9C, 0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0xFF, 0xFF, 0x1F, 0]),
    info_sa(op::SERVICE_ACTION_IN_16, op::SA_READ_CAPACITY_16, &[0x9E, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0]),
    info_sa(op::SERVICE_ACTION_IN_16, op::SA_GET_LBA_STATUS, &[0x9E, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
    info(op::REPORT_LUNS, &[0xA0, 0, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
    info_sa(op::MAINTENANCE_IN, op::SA_REPORT_TARGET_PORT_GROUPS, &[0xA3, 0x2A, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]),
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
    /// RESERVE(6) / RESERVE(10) (SPC-2 logical unit reservation).
    Reserve,
    /// RELEASE(6) / RELEASE(10).
    Release,
    PersistentReserveIn {
        service_action: u8,
        alloc_len: u32,
    },
    PersistentReserveOut {
        service_action: u8,
        scope: u8,
        pr_type: u8,
        param_len: u32,
    },
    CompareAndWrite {
        lba: u64,
        blocks: u8,
        dpo: bool,
        fua: bool,
    },
    OrWrite(Rw),
    WriteAtomic(Rw),
    WriteSame(WriteSame),
    Unmap {
        param_len: u32,
    },
    GetLbaStatus {
        lba: u64,
        alloc_len: u32,
    },
    ExtendedCopy {
        param_len: u32,
    },
    ReceiveCopyResults {
        service_action: u8,
        list_id: u8,
        alloc_len: u32,
    },
    ReportTargetPortGroups {
        extended: bool,
        alloc_len: u32,
    },
    /// SANITIZE: OVERWRITE (with a parameter list) or BLOCK ERASE.
    Sanitize {
        service_action: u8,
        immed: bool,
        ause: bool,
        param_len: u16,
    },
}

/// WRITE SAME(10/16).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WriteSame {
    pub lba: u64,
    /// Number of blocks; 0 means "to the end of the medium".
    pub blocks: u32,
    pub unmap: bool,
    /// NDOB (WRITE SAME(16) only): no Data-Out buffer, write zeros.
    pub ndob: bool,
    pub sixteen: bool,
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

pub(crate) fn be(b: &[u8]) -> u64 {
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
            op::SERVICE_ACTION_IN_16 if u16::from(c[1] & 0x1F) == op::SA_GET_LBA_STATUS => {
                Command::GetLbaStatus {
                    lba: be(&c[2..10]),
                    alloc_len: be(&c[10..14]) as u32,
                }
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
            op::MAINTENANCE_IN if u16::from(c[1] & 0x1F) == op::SA_REPORT_TARGET_PORT_GROUPS => {
                Command::ReportTargetPortGroups {
                    extended: c[1] & 0xE0 == 0x20,
                    alloc_len: be(&c[6..10]) as u32,
                }
            }
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
            _ => return crate::cdb_ext::parse_ext(opcode, c),
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
                | Command::CompareAndWrite { .. }
                | Command::OrWrite(_)
                | Command::WriteAtomic(_)
                | Command::WriteSame(_)
                | Command::Unmap { .. }
                | Command::GetLbaStatus { .. }
                | Command::ExtendedCopy { .. }
                | Command::Sanitize { .. }
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
#[path = "cdb_tests.rs"]
mod tests;
