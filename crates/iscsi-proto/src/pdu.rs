//! The Basic Header Segment and typed PDUs (RFC 7143 section 11).
//!
//! A PDU is a 48-byte Basic Header Segment (BHS), optional Additional Header
//! Segments (AHS), an optional header digest, a data segment padded to four
//! bytes and an optional data digest. [`Bhs`] gives field access in place; the
//! typed structs below are the parsed form of each request the target accepts
//! and the builder form of each response it sends. Opcodes and codes are open
//! newtypes: unknown values parse and reach the Reject path instead of failing.

use crate::login::{LoginRequestHeader, LoginResponseHeader, LoginStatus, Stage};

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;

/// The reserved tag value (RFC 7143 section 11.2.1.6 and others).
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// Number of zero bytes that pad a data segment of `len` bytes to a 4-byte boundary.
pub const fn padding(len: usize) -> usize {
    (4 - (len % 4)) % 4
}

macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident($ty:ty) { $($(#[$cmeta:meta])* $cname:ident = $val:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub $ty);
        impl $name {
            $($(#[$cmeta])* pub const $cname: Self = Self($val);)*
            /// The specification's name for the value, when it has one.
            pub fn name(self) -> Option<&'static str> {
                match self { $(Self::$cname => Some(stringify!($cname)),)* _ => None }
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }
    };
}

open_enum! {
    /// PDU opcode (byte 0, low six bits).
    Opcode(u8) {
        NOP_OUT = 0x00,
        SCSI_COMMAND = 0x01,
        TASK_MGMT_REQUEST = 0x02,
        LOGIN_REQUEST = 0x03,
        TEXT_REQUEST = 0x04,
        SCSI_DATA_OUT = 0x05,
        LOGOUT_REQUEST = 0x06,
        SNACK_REQUEST = 0x10,
        NOP_IN = 0x20,
        SCSI_RESPONSE = 0x21,
        TASK_MGMT_RESPONSE = 0x22,
        LOGIN_RESPONSE = 0x23,
        TEXT_RESPONSE = 0x24,
        SCSI_DATA_IN = 0x25,
        LOGOUT_RESPONSE = 0x26,
        R2T = 0x31,
        ASYNC_MESSAGE = 0x32,
        REJECT = 0x3f,
    }
}

open_enum! {
    /// Task management function (RFC 7143 section 11.5.1).
    TmfFunction(u8) {
        ABORT_TASK = 1,
        ABORT_TASK_SET = 2,
        CLEAR_ACA = 3,
        CLEAR_TASK_SET = 4,
        LOGICAL_UNIT_RESET = 5,
        TARGET_WARM_RESET = 6,
        TARGET_COLD_RESET = 7,
        TASK_REASSIGN = 8,
    }
}

open_enum! {
    /// Task management response (RFC 7143 section 11.6.1).
    TmfResponse(u8) {
        FUNCTION_COMPLETE = 0,
        TASK_DOES_NOT_EXIST = 1,
        LUN_DOES_NOT_EXIST = 2,
        TASK_STILL_ALLEGIANT = 3,
        REASSIGNMENT_NOT_SUPPORTED = 4,
        FUNCTION_NOT_SUPPORTED = 5,
        AUTHORIZATION_FAILED = 6,
        FUNCTION_REJECTED = 255,
    }
}

open_enum! {
    /// Reject reason (RFC 7143 section 11.17.1).
    RejectReason(u8) {
        DATA_DIGEST_ERROR = 0x02,
        SNACK_REJECT = 0x03,
        PROTOCOL_ERROR = 0x04,
        COMMAND_NOT_SUPPORTED = 0x05,
        IMMEDIATE_COMMAND_REJECT = 0x06,
        TASK_IN_PROGRESS = 0x07,
        INVALID_DATA_ACK = 0x08,
        INVALID_PDU_FIELD = 0x09,
        LONG_OPERATION_REJECT = 0x0a,
        DEPRECATED = 0x0b,
        WAITING_FOR_LOGOUT = 0x0c,
    }
}

open_enum! {
    /// Logout reason code (RFC 7143 section 11.14.1).
    LogoutReason(u8) {
        CLOSE_SESSION = 0,
        CLOSE_CONNECTION = 1,
        REMOVE_CONNECTION_FOR_RECOVERY = 2,
    }
}

open_enum! {
    /// Logout response (RFC 7143 section 11.15.1).
    LogoutResponseCode(u8) {
        SUCCESS = 0,
        CID_NOT_FOUND = 1,
        RECOVERY_NOT_SUPPORTED = 2,
        CLEANUP_FAILED = 3,
    }
}

open_enum! {
    /// Asynchronous event code (RFC 7143 section 11.9.1).
    AsyncEvent(u8) {
        SCSI_ASYNC_EVENT = 0,
        LOGOUT_REQUESTED = 1,
        CONNECTION_DROP = 2,
        SESSION_DROP = 3,
        NEGOTIATION_REQUESTED = 4,
        TASK_TERMINATION = 5,
        VENDOR_SPECIFIC = 255,
    }
}

/// A Basic Header Segment, read and written in place.
#[derive(Clone, PartialEq, Eq)]
pub struct Bhs(pub [u8; BHS_LEN]);

impl Default for Bhs {
    fn default() -> Self {
        Self([0; BHS_LEN])
    }
}

impl std::fmt::Debug for Bhs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bhs")
            .field("opcode", &self.opcode())
            .field("itt", &format_args!("{:#x}", self.itt()))
            .field("dsl", &self.data_segment_len())
            .finish()
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Bhs {
    /// A header with `opcode` and every other field zero.
    pub fn new(opcode: Opcode) -> Self {
        let mut b = Self::default();
        b.0[0] = opcode.0 & 0x3f;
        b
    }
    /// Byte 0, low six bits.
    pub fn opcode(&self) -> Opcode {
        Opcode(self.0[0] & 0x3f)
    }
    /// The I bit: an immediate command.
    pub fn immediate(&self) -> bool {
        self.0[0] & 0x40 != 0
    }
    /// The F (final) bit.
    pub fn final_bit(&self) -> bool {
        self.0[1] & 0x80 != 0
    }
    /// TotalAHSLength in bytes.
    pub fn ahs_len(&self) -> usize {
        usize::from(self.0[4]) * 4
    }
    /// DataSegmentLength in bytes (without padding).
    pub fn data_segment_len(&self) -> u32 {
        u32::from_be_bytes([0, self.0[5], self.0[6], self.0[7]])
    }
    /// Sets DataSegmentLength; values above 2^24-1 are a caller bug and are clamped.
    pub fn set_data_segment_len(&mut self, len: u32) {
        let len = len.min(0x00ff_ffff).to_be_bytes();
        self.0[5..8].copy_from_slice(&len[1..]);
    }
    /// Logical unit number field (bytes 8..16) as raw SAM LUN bytes.
    pub fn lun(&self) -> u64 {
        u64::from_be_bytes(self.field8(8))
    }
    /// Initiator task tag.
    pub fn itt(&self) -> u32 {
        self.u32_at(16)
    }
    /// A 32-bit big-endian field at byte `at` (`at` <= 44).
    pub fn u32_at(&self, at: usize) -> u32 {
        be32(&self.0, at)
    }
    /// Writes a 32-bit big-endian field at byte `at` (`at` <= 44).
    pub fn set_u32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    fn set_u16(&mut self, at: usize, v: u16) {
        self.0[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    fn field8(&self, at: usize) -> [u8; 8] {
        let mut f = [0; 8];
        f.copy_from_slice(&self.0[at..at + 8]);
        f
    }
    /// Length of the whole PDU that follows this header on the wire, given
    /// which digests the connection uses: AHS, digests, data and padding.
    pub fn trailing_len(&self, header_digest: bool, data_digest: bool) -> usize {
        let dsl = self.data_segment_len() as usize;
        let mut n = self.ahs_len();
        if header_digest {
            n += crate::digest::DIGEST_LEN;
        }
        if dsl > 0 {
            n += dsl + padding(dsl);
            if data_digest {
                n += crate::digest::DIGEST_LEN;
            }
        }
        n
    }
    /// Sets the three sequence numbers every target PDU carries at bytes 24..36.
    pub fn set_sequence(&mut self, stat_sn: u32, exp_cmd_sn: u32, max_cmd_sn: u32) {
        self.set_u32(24, stat_sn);
        self.set_u32(28, exp_cmd_sn);
        self.set_u32(32, max_cmd_sn);
    }
}

/// A request PDU from the initiator, parsed from its BHS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// NOP-Out (ping or ping response).
    NopOut(NopOut),
    /// SCSI Command.
    ScsiCommand(ScsiCommand),
    /// Task Management Function Request.
    TaskMgmt(TaskMgmtRequest),
    /// Login Request.
    Login(LoginRequestHeader),
    /// Text Request.
    Text(TextRequest),
    /// SCSI Data-Out.
    DataOut(DataOut),
    /// Logout Request.
    Logout(LogoutRequest),
    /// SNACK Request (not supported at ErrorRecoveryLevel 0).
    Snack,
    /// Any opcode an initiator may not send: answered with a Reject.
    Unknown(Opcode),
}

impl Request {
    /// Parses a request BHS. Never fails: fields the target validates later
    /// (lengths, sequence numbers) are carried as received.
    pub fn parse(bhs: &Bhs) -> Self {
        match bhs.opcode() {
            Opcode::NOP_OUT => Self::NopOut(NopOut::parse(bhs)),
            Opcode::SCSI_COMMAND => Self::ScsiCommand(ScsiCommand::parse(bhs)),
            Opcode::TASK_MGMT_REQUEST => Self::TaskMgmt(TaskMgmtRequest::parse(bhs)),
            Opcode::LOGIN_REQUEST => Self::Login(parse_login_request(bhs)),
            Opcode::TEXT_REQUEST => Self::Text(TextRequest::parse(bhs)),
            Opcode::SCSI_DATA_OUT => Self::DataOut(DataOut::parse(bhs)),
            Opcode::LOGOUT_REQUEST => Self::Logout(LogoutRequest::parse(bhs)),
            Opcode::SNACK_REQUEST => Self::Snack,
            op => Self::Unknown(op),
        }
    }
}

/// NOP-Out (RFC 7143 section 11.18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NopOut {
    /// Immediate delivery.
    pub immediate: bool,
    /// LUN (echoed).
    pub lun: u64,
    /// 0xffffffff when this answers a NOP-In.
    pub itt: u32,
    /// The NOP-In's TTT being answered, or 0xffffffff.
    pub ttt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

impl NopOut {
    fn parse(b: &Bhs) -> Self {
        Self {
            immediate: b.immediate(),
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
        }
    }
}

/// SCSI Command (RFC 7143 section 11.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiCommand {
    /// Immediate delivery.
    pub immediate: bool,
    /// F bit: no unsolicited Data-Out follows the immediate data.
    pub final_bit: bool,
    /// R bit: data flows to the initiator.
    pub read: bool,
    /// W bit: data flows to the target.
    pub write: bool,
    /// Task attribute (0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA).
    pub attr: u8,
    /// LUN field (SAM encoding).
    pub lun: u64,
    /// Initiator task tag.
    pub itt: u32,
    /// Expected Data Transfer Length.
    pub edtl: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// The 16-byte CDB field (extended CDBs arrive in an AHS).
    pub cdb: [u8; 16],
}

impl ScsiCommand {
    fn parse(b: &Bhs) -> Self {
        let mut cdb = [0; 16];
        cdb.copy_from_slice(&b.0[32..48]);
        Self {
            immediate: b.immediate(),
            final_bit: b.final_bit(),
            read: b.0[1] & 0x40 != 0,
            write: b.0[1] & 0x20 != 0,
            attr: b.0[1] & 0x07,
            lun: b.lun(),
            itt: b.itt(),
            edtl: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
            cdb,
        }
    }

    /// Encodes the command (initiator side: tests and the load tool).
    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::SCSI_COMMAND);
        if self.immediate {
            b.0[0] |= 0x40;
        }
        b.0[1] = u8::from(self.final_bit) << 7
            | u8::from(self.read) << 6
            | u8::from(self.write) << 5
            | (self.attr & 7);
        b.0[8..16].copy_from_slice(&self.lun.to_be_bytes());
        b.set_u32(16, self.itt);
        b.set_u32(20, self.edtl);
        b.set_u32(24, self.cmd_sn);
        b.set_u32(28, self.exp_stat_sn);
        b.0[32..48].copy_from_slice(&self.cdb);
        b
    }
}

/// The CDB of a command, joining an extended CDB AHS (type 1) when present.
///
/// `ahs` is the raw AHS area that followed the BHS. Returns the CDB length, or
/// `None` when the AHS is malformed. The full CDB is written to `out`.
pub fn full_cdb(cmd: &ScsiCommand, ahs: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    out.extend_from_slice(&cmd.cdb);
    let mut rest = ahs;
    while rest.len() >= 4 {
        let len = usize::from(be16(rest, 0));
        let ty = rest[2];
        let total = 3 + len + padding(3 + len);
        if total > rest.len() || len == 0 {
            return None;
        }
        if ty == 1 {
            // AHSLength counts the reserved byte plus the CDB bytes beyond 16.
            out.extend_from_slice(&rest[4..3 + len]);
        }
        rest = &rest[total..];
    }
    if !rest.is_empty() {
        return None;
    }
    Some(out.len())
}

/// SCSI Data-Out (RFC 7143 section 11.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataOut {
    /// F bit: last PDU of the sequence.
    pub final_bit: bool,
    /// LUN.
    pub lun: u64,
    /// Initiator task tag of the command.
    pub itt: u32,
    /// Target transfer tag (of the R2T, or 0xffffffff for unsolicited data).
    pub ttt: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// DataSN within the sequence.
    pub data_sn: u32,
    /// Buffer offset of this PDU's data.
    pub buffer_offset: u32,
    /// Bytes of data in the segment.
    pub data_len: u32,
}

impl DataOut {
    fn parse(b: &Bhs) -> Self {
        Self {
            final_bit: b.final_bit(),
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            exp_stat_sn: b.u32_at(28),
            data_sn: b.u32_at(36),
            buffer_offset: b.u32_at(40),
            data_len: b.data_segment_len(),
        }
    }

    /// Encodes a Data-Out header (initiator side).
    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::SCSI_DATA_OUT);
        b.0[1] = u8::from(self.final_bit) << 7;
        b.0[8..16].copy_from_slice(&self.lun.to_be_bytes());
        b.set_u32(16, self.itt);
        b.set_u32(20, self.ttt);
        b.set_u32(28, self.exp_stat_sn);
        b.set_u32(36, self.data_sn);
        b.set_u32(40, self.buffer_offset);
        b.set_data_segment_len(self.data_len);
        b
    }
}

/// Task Management Function Request (RFC 7143 section 11.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// The function.
    pub function: TmfFunction,
    /// LUN.
    pub lun: u64,
    /// Initiator task tag of this request.
    pub itt: u32,
    /// Referenced task tag (ABORT TASK).
    pub rtt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// RefCmdSN (ABORT TASK).
    pub ref_cmd_sn: u32,
}

impl TaskMgmtRequest {
    fn parse(b: &Bhs) -> Self {
        Self {
            immediate: b.immediate(),
            function: TmfFunction(b.0[1] & 0x7f),
            lun: b.lun(),
            itt: b.itt(),
            rtt: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
            ref_cmd_sn: b.u32_at(32),
        }
    }
}

/// Text Request (RFC 7143 section 11.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// F bit.
    pub final_bit: bool,
    /// C bit: the text continues in the next PDU.
    pub cont: bool,
    /// LUN.
    pub lun: u64,
    /// Initiator task tag.
    pub itt: u32,
    /// Target transfer tag (0xffffffff to start a new exchange).
    pub ttt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

impl TextRequest {
    fn parse(b: &Bhs) -> Self {
        Self {
            immediate: b.immediate(),
            final_bit: b.final_bit(),
            cont: b.0[1] & 0x40 != 0,
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
        }
    }
}

/// Logout Request (RFC 7143 section 11.14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// Reason code.
    pub reason: LogoutReason,
    /// Initiator task tag.
    pub itt: u32,
    /// Connection to close (reason 1 and 2).
    pub cid: u16,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

impl LogoutRequest {
    fn parse(b: &Bhs) -> Self {
        Self {
            immediate: b.immediate(),
            reason: LogoutReason(b.0[1] & 0x7f),
            itt: b.itt(),
            cid: be16(&b.0, 20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
        }
    }
}

fn parse_login_request(b: &Bhs) -> LoginRequestHeader {
    let mut isid = [0; 6];
    isid.copy_from_slice(&b.0[8..14]);
    LoginRequestHeader {
        transit: b.0[1] & 0x80 != 0,
        cont: b.0[1] & 0x40 != 0,
        csg: Stage((b.0[1] >> 2) & 3),
        nsg: Stage(b.0[1] & 3),
        version_max: b.0[2],
        version_min: b.0[3],
        isid,
        tsih: be16(&b.0, 14),
        itt: b.itt(),
        cid: be16(&b.0, 20),
        cmd_sn: b.u32_at(24),
        exp_stat_sn: b.u32_at(28),
    }
}

/// Encodes a Login Request header (initiator side).
pub fn encode_login_request(h: &LoginRequestHeader, data_len: u32) -> Bhs {
    let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
    b.0[0] |= 0x40;
    b.0[1] = u8::from(h.transit) << 7 | u8::from(h.cont) << 6 | (h.csg.0 & 3) << 2 | (h.nsg.0 & 3);
    b.0[2] = h.version_max;
    b.0[3] = h.version_min;
    b.0[8..14].copy_from_slice(&h.isid);
    b.set_u16(14, h.tsih);
    b.set_u32(16, h.itt);
    b.set_u16(20, h.cid);
    b.set_u32(24, h.cmd_sn);
    b.set_u32(28, h.exp_stat_sn);
    b.set_data_segment_len(data_len);
    b
}

/// Encodes a Login Response header. Sequence numbers are set by the caller.
pub fn encode_login_response(h: &LoginResponseHeader, data_len: u32) -> Bhs {
    let mut b = Bhs::new(Opcode::LOGIN_RESPONSE);
    b.0[1] = u8::from(h.transit) << 7 | u8::from(h.cont) << 6 | (h.csg.0 & 3) << 2 | (h.nsg.0 & 3);
    b.0[2] = h.version_max;
    b.0[3] = h.version_active;
    b.0[8..14].copy_from_slice(&h.isid);
    b.set_u16(14, h.tsih);
    b.set_u32(16, h.itt);
    let [class, detail] = h.status.0.to_be_bytes();
    b.0[36] = class;
    b.0[37] = detail;
    b.set_data_segment_len(data_len);
    b
}

/// Parses a Login Response header (initiator side).
pub fn parse_login_response(b: &Bhs) -> LoginResponseHeader {
    let mut isid = [0; 6];
    isid.copy_from_slice(&b.0[8..14]);
    LoginResponseHeader {
        transit: b.0[1] & 0x80 != 0,
        cont: b.0[1] & 0x40 != 0,
        csg: Stage((b.0[1] >> 2) & 3),
        nsg: Stage(b.0[1] & 3),
        version_max: b.0[2],
        version_active: b.0[3],
        isid,
        tsih: be16(&b.0, 14),
        itt: b.itt(),
        status: LoginStatus(be16(&b.0, 36)),
    }
}

/// Encodes a NOP-Out header (initiator side).
pub fn encode_nop_out(
    immediate: bool,
    itt: u32,
    ttt: u32,
    cmd_sn: u32,
    exp_stat_sn: u32,
    data_len: u32,
) -> Bhs {
    let mut b = Bhs::new(Opcode::NOP_OUT);
    if immediate {
        b.0[0] |= 0x40;
    }
    b.0[1] = 0x80;
    b.set_u32(16, itt);
    b.set_u32(20, ttt);
    b.set_u32(24, cmd_sn);
    b.set_u32(28, exp_stat_sn);
    b.set_data_segment_len(data_len);
    b
}

/// Encodes a Logout Request header (initiator side).
pub fn encode_logout_request(
    reason: LogoutReason,
    itt: u32,
    cid: u16,
    cmd_sn: u32,
    exp_stat_sn: u32,
) -> Bhs {
    let mut b = Bhs::new(Opcode::LOGOUT_REQUEST);
    b.0[0] |= 0x40;
    b.0[1] = 0x80 | (reason.0 & 0x7f);
    b.set_u32(16, itt);
    b.set_u16(20, cid);
    b.set_u32(24, cmd_sn);
    b.set_u32(28, exp_stat_sn);
    b
}

/// Encodes a Text Request header (initiator side).
pub fn encode_text_request(
    itt: u32,
    ttt: u32,
    cmd_sn: u32,
    exp_stat_sn: u32,
    data_len: u32,
) -> Bhs {
    let mut b = Bhs::new(Opcode::TEXT_REQUEST);
    b.0[0] |= 0x40;
    b.0[1] = 0x80;
    b.set_u32(16, itt);
    b.set_u32(20, ttt);
    b.set_u32(24, cmd_sn);
    b.set_u32(28, exp_stat_sn);
    b.set_data_segment_len(data_len);
    b
}

/// Encodes a Task Management Function Request header (initiator side).
pub fn encode_tmf_request(
    f: TmfFunction,
    lun: u64,
    itt: u32,
    rtt: u32,
    cmd_sn: u32,
    exp_stat_sn: u32,
    ref_cmd_sn: u32,
) -> Bhs {
    let mut b = Bhs::new(Opcode::TASK_MGMT_REQUEST);
    b.0[0] |= 0x40;
    b.0[1] = 0x80 | (f.0 & 0x7f);
    b.0[8..16].copy_from_slice(&lun.to_be_bytes());
    b.set_u32(16, itt);
    b.set_u32(20, rtt);
    b.set_u32(24, cmd_sn);
    b.set_u32(28, exp_stat_sn);
    b.set_u32(32, ref_cmd_sn);
    b
}

/// Serial number arithmetic (RFC 1982, 32 bits) as iSCSI uses it for CmdSN and
/// StatSN: `a < b` in sequence space.
pub fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// `a <= b` in sequence space.
pub fn sn_le(a: u32, b: u32) -> bool {
    a == b || sn_lt(a, b)
}

/// Converts a SAM LUN field to a LUN number (peripheral and flat addressing).
/// Returns `None` for address methods the target does not use.
pub fn lun_from_sam(raw: u64) -> Option<u64> {
    let b = raw.to_be_bytes();
    if b[2..].iter().any(|&x| x != 0) {
        return None;
    }
    match b[0] >> 6 {
        0 => Some(u64::from(u16::from_be_bytes([b[0] & 0x3f, b[1]]))),
        1 => Some(u64::from(u16::from_be_bytes([b[0] & 0x3f, b[1]]))),
        _ => None,
    }
}

/// Converts a LUN number (< 16384) to the SAM field: peripheral addressing
/// below 256, flat space addressing above.
pub fn lun_to_sam(lun: u64) -> u64 {
    let lun = (lun & 0x3fff) as u16;
    let hi = if lun < 256 { 0 } else { 0x4000 };
    u64::from(hi | lun) << 48
}

/// Appends a whole PDU to `out`: header, header digest, data, padding and
/// data digest, as negotiated.
pub fn encode_pdu(
    out: &mut Vec<u8>,
    bhs: &Bhs,
    data: &[u8],
    header_digest: bool,
    data_digest: bool,
) {
    use crate::digest;
    out.extend_from_slice(&bhs.0);
    if header_digest {
        out.extend_from_slice(&digest::digest_bytes(&bhs.0));
    }
    if !data.is_empty() {
        out.extend_from_slice(data);
        out.extend_from_slice(&[0u8; 3][..padding(data.len())]);
        if data_digest {
            out.extend_from_slice(&digest::data_digest(data).to_le_bytes());
        }
    }
}

#[path = "pdu_response.rs"]
mod response;
pub use response::*;

#[cfg(test)]
#[path = "pdu_tests.rs"]
mod tests;
