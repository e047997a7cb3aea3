//! PDUs the target sends: SCSI Response, Data-In, R2T, NOP-In, Task
//! Management, Text and Logout responses, Asynchronous Message, Reject.

use super::*;

/// Residual condition of a completed command (RFC 7143 section 11.4.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Residual {
    /// All expected bytes were transferred.
    #[default]
    None,
    /// Fewer bytes than expected were transferred (U bit).
    Underflow(u32),
    /// The command wanted more than the expected length (O bit).
    Overflow(u32),
}

impl Residual {
    /// The residual of a command that transfers `transfer` bytes by its CDB
    /// when the initiator expected `expected`.
    pub fn compute(expected: u32, transfer: u64) -> Self {
        let expected64 = u64::from(expected);
        match transfer.cmp(&expected64) {
            std::cmp::Ordering::Equal => Self::None,
            std::cmp::Ordering::Less => Self::Underflow(expected - transfer as u32),
            std::cmp::Ordering::Greater => {
                Self::Overflow(u32::try_from(transfer - expected64).unwrap_or(u32::MAX))
            }
        }
    }
    fn flags(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Underflow(_) => 0x02,
            Self::Overflow(_) => 0x04,
        }
    }
    fn count(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Underflow(n) | Self::Overflow(n) => n,
        }
    }
}

/// SCSI Response header fields (RFC 7143 section 11.4). The data segment, if
/// any, carries SenseLength (2 bytes) followed by the sense data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiResponse {
    /// iSCSI response code: 0 command completed at target, 1 target failure.
    pub response: u8,
    /// SCSI status byte.
    pub status: u8,
    /// Initiator task tag.
    pub itt: u32,
    /// ExpDataSN: number of Data-In (and R2T) PDUs sent for the command.
    pub exp_data_sn: u32,
    /// Residual.
    pub residual: Residual,
}

impl ScsiResponse {
    /// Encodes the header; sequence numbers are set by the caller.
    pub fn encode(&self, data_len: u32) -> Bhs {
        let mut b = Bhs::new(Opcode::SCSI_RESPONSE);
        b.0[1] = 0x80 | self.residual.flags();
        b.0[2] = self.response;
        b.0[3] = self.status;
        b.set_u32(16, self.itt);
        b.set_u32(36, self.exp_data_sn);
        b.set_u32(44, self.residual.count());
        b.set_data_segment_len(data_len);
        b
    }
}

/// SCSI Data-In header fields (RFC 7143 section 11.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataIn {
    /// F bit: last PDU of the sequence.
    pub final_bit: bool,
    /// Status is present (S bit); only with F.
    pub status: Option<u8>,
    /// Residual (only meaningful with status).
    pub residual: Residual,
    /// Initiator task tag.
    pub itt: u32,
    /// DataSN.
    pub data_sn: u32,
    /// Buffer offset of this PDU's data.
    pub buffer_offset: u32,
}

impl DataIn {
    /// Encodes the header. The caller sets ExpCmdSN/MaxCmdSN, and StatSN when
    /// status is present (other target PDUs carry it too, harmlessly).
    pub fn encode(&self, data_len: u32) -> Bhs {
        let mut b = Bhs::new(Opcode::SCSI_DATA_IN);
        let mut flags = u8::from(self.final_bit) << 7;
        if let Some(status) = self.status {
            flags |= 0x01 | self.residual.flags();
            b.0[3] = status;
            b.set_u32(44, self.residual.count());
        }
        b.0[1] = flags;
        b.set_u32(16, self.itt);
        b.set_u32(20, RESERVED_TAG);
        b.set_u32(36, self.data_sn);
        b.set_u32(40, self.buffer_offset);
        b.set_data_segment_len(data_len);
        b
    }
}

/// Ready To Transfer (RFC 7143 section 11.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct R2t {
    /// LUN of the command.
    pub lun: u64,
    /// Initiator task tag.
    pub itt: u32,
    /// Target transfer tag the Data-Out PDUs must echo.
    pub ttt: u32,
    /// R2TSN.
    pub r2t_sn: u32,
    /// Buffer offset requested.
    pub buffer_offset: u32,
    /// Desired Data Transfer Length.
    pub desired_len: u32,
}

impl R2t {
    /// Encodes the header; sequence numbers are set by the caller.
    pub fn encode(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::R2T);
        b.0[1] = 0x80;
        b.0[8..16].copy_from_slice(&self.lun.to_be_bytes());
        b.set_u32(16, self.itt);
        b.set_u32(20, self.ttt);
        b.set_u32(36, self.r2t_sn);
        b.set_u32(40, self.buffer_offset);
        b.set_u32(44, self.desired_len);
        b
    }
}

/// Encodes a NOP-In header (answer or ping).
pub fn encode_nop_in(lun: u64, itt: u32, ttt: u32, data_len: u32) -> Bhs {
    let mut b = Bhs::new(Opcode::NOP_IN);
    b.0[1] = 0x80;
    b.0[8..16].copy_from_slice(&lun.to_be_bytes());
    b.set_u32(16, itt);
    b.set_u32(20, ttt);
    b.set_data_segment_len(data_len);
    b
}

/// Encodes a Task Management Function Response header.
pub fn encode_tmf_response(itt: u32, response: TmfResponse) -> Bhs {
    let mut b = Bhs::new(Opcode::TASK_MGMT_RESPONSE);
    b.0[1] = 0x80;
    b.0[2] = response.0;
    b.set_u32(16, itt);
    b
}

/// Encodes a Text Response header.
pub fn encode_text_response(
    final_bit: bool,
    cont: bool,
    lun: u64,
    itt: u32,
    ttt: u32,
    data_len: u32,
) -> Bhs {
    let mut b = Bhs::new(Opcode::TEXT_RESPONSE);
    b.0[1] = u8::from(final_bit) << 7 | u8::from(cont) << 6;
    b.0[8..16].copy_from_slice(&lun.to_be_bytes());
    b.set_u32(16, itt);
    b.set_u32(20, ttt);
    b.set_data_segment_len(data_len);
    b
}

/// Encodes a Logout Response header.
pub fn encode_logout_response(
    itt: u32,
    response: LogoutResponseCode,
    time2wait: u16,
    time2retain: u16,
) -> Bhs {
    let mut b = Bhs::new(Opcode::LOGOUT_RESPONSE);
    b.0[1] = 0x80;
    b.0[2] = response.0;
    b.set_u32(16, itt);
    b.set_u16(40, time2wait);
    b.set_u16(42, time2retain);
    b
}

/// Encodes an Asynchronous Message header; `params` are Parameter1..3.
pub fn encode_async(lun: u64, event: AsyncEvent, params: [u16; 3], data_len: u32) -> Bhs {
    let mut b = Bhs::new(Opcode::ASYNC_MESSAGE);
    b.0[1] = 0x80;
    b.0[8..16].copy_from_slice(&lun.to_be_bytes());
    b.set_u32(16, RESERVED_TAG);
    b.0[36] = event.0;
    b.set_u16(38, params[0]);
    b.set_u16(40, params[1]);
    b.set_u16(42, params[2]);
    b.set_data_segment_len(data_len);
    b
}

/// Encodes a Reject header; its data segment is the rejected BHS (48 bytes).
pub fn encode_reject(reason: RejectReason, data_sn: u32) -> Bhs {
    let mut b = Bhs::new(Opcode::REJECT);
    b.0[1] = 0x80;
    b.0[2] = reason.0;
    b.set_u32(16, RESERVED_TAG);
    b.set_u32(36, data_sn);
    b.set_data_segment_len(BHS_LEN as u32);
    b
}
