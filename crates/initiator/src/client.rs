//! One initiator connection: login, SCSI commands, pings, text, task
//! management and logout.
//!
//! [`Client`] speaks one connection of one session, one command at a time,
//! and reports everything it receives (status, sense, rejects) instead of
//! judging it, so tests can assert on the target's behaviour and load tools
//! can classify failures. Nothing here panics on network input: malformed or
//! unexpected PDUs become [`ClientError`]s.

use std::io;

use iscsi_proto::initiator::{InitiatorConfig, InitiatorError, InitiatorLogin, InitiatorStep};
use iscsi_proto::login::LoginStatus;
use iscsi_proto::negotiation::{Digest, SessionParams};
use iscsi_proto::pdu::{
    encode_login_request, encode_logout_request, encode_nop_out, encode_text_request,
    encode_tmf_request, parse_login_response, Bhs, DataOut, LogoutReason, Opcode, ScsiCommand,
    TmfFunction, RESERVED_TAG,
};
use iscsi_proto::text::parse_text;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::wire::{encode_pdu, FrameError, FrameReader};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error while sending.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The connection closed or a PDU could not be framed (bad header digest...).
    #[error("receive: {0}")]
    Frame(#[from] FrameError),
    /// The login failed (status from the target, or mutual CHAP failure).
    #[error("login: {0}")]
    Login(#[from] InitiatorError),
    /// A received PDU's data digest did not match its data.
    #[error("data digest mismatch on a received {0:?} PDU")]
    DataDigest(Opcode),
    /// The target sent something this client did not expect.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The status of a login the target refused (e.g. 0x0301 SERVICE
    /// UNAVAILABLE, which asks the initiator to retry later).
    pub fn login_status(&self) -> Option<LoginStatus> {
        match self {
            Self::Login(InitiatorError::Rejected(status)) => Some(*status),
            _ => None,
        }
    }

    /// Whether the target closed (or reset) the connection.
    pub fn is_connection_closed(&self) -> bool {
        let kind_closed = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            )
        };
        match self {
            Self::Frame(FrameError::Closed) => true,
            Self::Frame(FrameError::Io(e)) | Self::Io(e) => kind_closed(e),
            _ => false,
        }
    }
}

fn protocol(msg: impl Into<String>) -> ClientError {
    ClientError::Protocol(msg.into())
}

/// One received PDU.
#[derive(Clone, Debug)]
pub struct Pdu {
    /// Basic Header Segment.
    pub bhs: Bhs,
    /// Data segment (digest verified when data digests are on).
    pub data: Vec<u8>,
}

impl Pdu {
    /// Byte `at` of the header.
    pub fn byte(&self, at: usize) -> u8 {
        self.bhs.0[at]
    }
}

/// How a SCSI command ended, as the target reported it.
#[derive(Clone, Debug, Default)]
pub struct CommandOutcome {
    /// SCSI status byte (0 GOOD, 2 CHECK CONDITION).
    pub status: u8,
    /// iSCSI response code of a SCSI Response PDU (0: completed at target).
    pub response: u8,
    /// Sense data (without the 2-byte SenseLength).
    pub sense: Vec<u8>,
    /// Data-In bytes, in buffer order.
    pub data: Vec<u8>,
    /// Reasons of Reject PDUs received while the command was outstanding.
    pub rejects: Vec<u8>,
    /// R2Ts answered.
    pub r2ts: u32,
    /// Data-Out PDUs sent (unsolicited and solicited).
    pub data_outs: u32,
    /// Bytes sent as immediate data.
    pub immediate: usize,
}

impl CommandOutcome {
    /// GOOD status, completed at the target.
    pub fn is_good(&self) -> bool {
        self.status == 0 && self.response == 0
    }

    /// CHECK CONDITION with sense key UNIT ATTENTION: the command was not
    /// executed and may simply be sent again.
    pub fn is_unit_attention(&self) -> bool {
        self.status == 0x02 && matches!(self.sense_code(), Some((0x06, _, _)))
    }

    /// Sense key, ASC and ASCQ from fixed or descriptor format sense data.
    pub fn sense_code(&self) -> Option<(u8, u8, u8)> {
        let s = &self.sense;
        match s.first().map(|b| b & 0x7f) {
            Some(0x70 | 0x71) if s.len() >= 14 => Some((s[2] & 0x0f, s[12], s[13])),
            Some(0x72 | 0x73) if s.len() >= 4 => Some((s[1] & 0x0f, s[2], s[3])),
            _ => None,
        }
    }
}

/// Geometry of a logical unit, from READ CAPACITY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Number of logical blocks (READ CAPACITY(10) saturates at 2^32).
    pub blocks: u64,
    /// Logical block size in bytes.
    pub block_size: u32,
}

/// Which received PDUs carry a StatSN that advances ExpStatSN.
fn carries_status(bhs: &Bhs) -> bool {
    match bhs.opcode() {
        Opcode::SCSI_RESPONSE
        | Opcode::TASK_MGMT_RESPONSE
        | Opcode::LOGIN_RESPONSE
        | Opcode::TEXT_RESPONSE
        | Opcode::LOGOUT_RESPONSE
        | Opcode::REJECT
        | Opcode::ASYNC_MESSAGE => true,
        Opcode::NOP_IN => bhs.itt() != RESERVED_TAG,
        Opcode::SCSI_DATA_IN => bhs.0[1] & 0x01 != 0,
        _ => false,
    }
}

/// A READ(10) CDB.
pub fn read10(lba: u32, blocks: u16) -> [u8; 16] {
    rw10(0x28, lba, blocks)
}

/// A WRITE(10) CDB.
pub fn write10(lba: u32, blocks: u16) -> [u8; 16] {
    rw10(0x2a, lba, blocks)
}

fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = op;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

/// One initiator connection.
///
/// Every `lun` argument is the 8-byte LUN field exactly as sent (SAM
/// encoding): LUN 0 is 0, LUN `n` is `iscsi_proto::pdu::lun_to_sam(n)`.
/// Raw values let tests send malformed LUN fields on purpose.
pub struct Client {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    header_digest: bool,
    data_digest: bool,
    /// Negotiated parameters (valid after login).
    pub params: SessionParams,
    /// TSIH the target assigned.
    pub tsih: u16,
    cmd_sn: u32,
    exp_stat_sn: u32,
    next_itt: u32,
    corrupt_next_data: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("tsih", &self.tsih)
            .field("cmd_sn", &self.cmd_sn)
            .field("exp_stat_sn", &self.exp_stat_sn)
            .field("header_digest", &self.header_digest)
            .field("data_digest", &self.data_digest)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens a TCP connection; nothing is sent yet.
    pub async fn connect(addr: std::net::SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        Ok(Self {
            // Until login tells otherwise, accept what our default offer declares.
            reader: FrameReader::new(rd, 262_144),
            writer: wr,
            header_digest: false,
            data_digest: false,
            params: SessionParams::default(),
            tsih: 0,
            cmd_sn: 0,
            exp_stat_sn: 0,
            next_itt: 0x100,
            corrupt_next_data: false,
        })
    }

    /// Runs the login phase. On success digests and limits are in force.
    pub async fn login(&mut self, cfg: InitiatorConfig) -> Result<(), ClientError> {
        self.reader
            .set_max_data(cfg.offer.max_recv_data_segment_length);
        self.cmd_sn = cfg.cmd_sn;
        self.next_itt = cfg.itt.wrapping_add(1);
        let mut login = InitiatorLogin::new(cfg);
        let (mut hdr, mut data) = login.start();
        loop {
            let bhs = encode_login_request(&hdr, data.len() as u32);
            self.send(&bhs, &data).await?;
            let pdu = self.recv().await?;
            if pdu.bhs.opcode() != Opcode::LOGIN_RESPONSE {
                return Err(protocol(format!("{:?} during login", pdu.bhs.opcode())));
            }
            let resp = parse_login_response(&pdu.bhs);
            match login.handle(&resp, &pdu.data)? {
                InitiatorStep::Send(h, d) => (hdr, data) = (h, d),
                InitiatorStep::Done(params, tsih) => {
                    self.header_digest = params.header_digest == Digest::Crc32c;
                    self.data_digest = params.data_digest == Digest::Crc32c;
                    self.reader
                        .set_digests(self.header_digest, self.data_digest);
                    self.reader
                        .set_max_data(params.max_recv_data_segment_length);
                    self.params = params;
                    self.tsih = tsih;
                    return Ok(());
                }
            }
        }
    }

    /// The next CmdSN (what an immediate PDU carries).
    pub fn cmd_sn(&self) -> u32 {
        self.cmd_sn
    }

    /// The next StatSN expected.
    pub fn exp_stat_sn(&self) -> u32 {
        self.exp_stat_sn
    }

    /// A fresh initiator task tag.
    pub fn next_itt(&mut self) -> u32 {
        let itt = self.next_itt;
        self.next_itt = self.next_itt.wrapping_add(1);
        if self.next_itt == RESERVED_TAG {
            self.next_itt = 1;
        }
        itt
    }

    /// Takes a CmdSN for a non-immediate PDU.
    fn take_cmd_sn(&mut self) -> u32 {
        let sn = self.cmd_sn;
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        sn
    }

    /// The next PDU sent with a data segment gets a wrong data digest.
    pub fn corrupt_next_data_digest(&mut self) {
        self.corrupt_next_data = true;
    }

    /// Sends one PDU with the negotiated digests (and a pending corruption).
    pub async fn send(&mut self, bhs: &Bhs, data: &[u8]) -> Result<(), ClientError> {
        let mut wire = Vec::with_capacity(bhs.0.len() + data.len() + 12);
        encode_pdu(&mut wire, bhs, data, self.header_digest, self.data_digest);
        if self.corrupt_next_data && !data.is_empty() {
            if !self.data_digest {
                return Err(protocol("cannot corrupt a data digest: digests are off"));
            }
            self.corrupt_next_data = false;
            if let Some(last) = wire.last_mut() {
                *last ^= 0x5a;
            }
        }
        self.send_raw(&wire).await
    }

    /// Sends bytes exactly as given.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.writer.write_all(bytes).await?;
        Ok(())
    }

    /// Sends only a header (and header digest), whatever its DataSegmentLength says.
    pub async fn send_header_only(&mut self, bhs: &Bhs) -> Result<(), ClientError> {
        let mut wire = Vec::new();
        encode_pdu(&mut wire, bhs, &[], self.header_digest, false);
        self.send_raw(&wire).await
    }

    /// Receives the next PDU, verifying its digests and tracking StatSN.
    pub async fn recv(&mut self) -> Result<Pdu, ClientError> {
        let pdu = {
            let frame = self.reader.next().await?;
            if !frame.data_digest_ok {
                return Err(ClientError::DataDigest(frame.bhs.opcode()));
            }
            Pdu {
                bhs: frame.bhs.clone(),
                data: frame.data.to_vec(),
            }
        };
        if carries_status(&pdu.bhs) {
            let stat_sn = pdu.bhs.u32_at(24);
            self.exp_stat_sn = stat_sn.wrapping_add(1);
        }
        Ok(pdu)
    }

    /// Receives the next PDU that is not a target ping; pings are answered.
    pub async fn recv_response(&mut self) -> Result<Pdu, ClientError> {
        loop {
            let pdu = self.recv().await?;
            if pdu.bhs.opcode() == Opcode::NOP_IN && pdu.bhs.itt() == RESERVED_TAG {
                let ttt = pdu.bhs.u32_at(20);
                if ttt != RESERVED_TAG {
                    let bhs =
                        encode_nop_out(true, RESERVED_TAG, ttt, self.cmd_sn, self.exp_stat_sn, 0);
                    self.send(&bhs, &[]).await?;
                }
                continue;
            }
            return Ok(pdu);
        }
    }

    /// Reads until the target closes the connection; returns what arrived before.
    pub async fn wait_closed(&mut self) -> Result<Vec<Pdu>, ClientError> {
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                Ok(pdu) => seen.push(pdu),
                Err(e) if e.is_connection_closed() => return Ok(seen),
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs one SCSI command to completion: immediate data, unsolicited and
    /// R2T-solicited Data-Out for writes, Data-In collection for reads.
    pub async fn command(
        &mut self,
        lun: u64,
        cdb: [u8; 16],
        read_len: u32,
        write: &[u8],
    ) -> Result<CommandOutcome, ClientError> {
        let itt = self.next_itt();
        let p = &self.params;
        let max_pdu = p.target_max_recv_data_segment_length.max(512) as usize;
        let immediate = if p.immediate_data {
            write.len().min(p.first_burst_length as usize).min(max_pdu)
        } else {
            0
        };
        let unsolicited_end = if p.initial_r2t {
            immediate
        } else {
            write
                .len()
                .min(p.first_burst_length as usize)
                .max(immediate)
        };
        let cmd = ScsiCommand {
            immediate: false,
            final_bit: unsolicited_end == immediate,
            read: read_len > 0,
            write: !write.is_empty(),
            attr: 1,
            lun,
            itt,
            edtl: if write.is_empty() {
                read_len
            } else {
                write.len() as u32
            },
            cmd_sn: self.take_cmd_sn(),
            exp_stat_sn: self.exp_stat_sn,
            cdb,
        };
        let mut bhs = cmd.encode();
        bhs.set_data_segment_len(immediate as u32);
        self.send(&bhs, &write[..immediate]).await?;
        let mut out = CommandOutcome {
            immediate,
            ..CommandOutcome::default()
        };
        if unsolicited_end > immediate {
            out.data_outs += self
                .data_out(lun, itt, RESERVED_TAG, write, immediate, unsolicited_end)
                .await?;
        }
        let mut next_data_sn = 0u32;
        loop {
            let pdu = self.recv_response().await?;
            match pdu.bhs.opcode() {
                Opcode::REJECT => out.rejects.push(pdu.byte(2)),
                Opcode::R2T if pdu.bhs.itt() == itt => {
                    let ttt = pdu.bhs.u32_at(20);
                    let offset = pdu.bhs.u32_at(40) as usize;
                    let end = offset.saturating_add(pdu.bhs.u32_at(44) as usize);
                    if end > write.len() || offset >= end {
                        return Err(protocol(format!("R2T for bytes {offset}..{end}")));
                    }
                    out.r2ts += 1;
                    out.data_outs += self.data_out(lun, itt, ttt, write, offset, end).await?;
                }
                Opcode::SCSI_DATA_IN if pdu.bhs.itt() == itt => {
                    let data_sn = pdu.bhs.u32_at(36);
                    let offset = pdu.bhs.u32_at(40) as usize;
                    if data_sn != next_data_sn || offset != out.data.len() {
                        return Err(protocol(format!(
                            "Data-In DataSN {data_sn} offset {offset}, expected {next_data_sn} at {}",
                            out.data.len()
                        )));
                    }
                    next_data_sn += 1;
                    out.data.extend_from_slice(&pdu.data);
                    if pdu.byte(1) & 0x01 != 0 {
                        out.status = pdu.byte(3);
                        return Ok(out);
                    }
                }
                Opcode::SCSI_RESPONSE if pdu.bhs.itt() == itt => {
                    out.response = pdu.byte(2);
                    out.status = pdu.byte(3);
                    if pdu.data.len() >= 2 {
                        let n = usize::from(u16::from_be_bytes([pdu.data[0], pdu.data[1]]));
                        let end = (2 + n).min(pdu.data.len());
                        out.sense = pdu.data[2..end].to_vec();
                    }
                    return Ok(out);
                }
                op => return Err(protocol(format!("unexpected {op:?} during a command"))),
            }
        }
    }

    /// Sends `write[from..to]` as one Data-Out sequence; returns the PDU count.
    async fn data_out(
        &mut self,
        lun: u64,
        itt: u32,
        ttt: u32,
        write: &[u8],
        from: usize,
        to: usize,
    ) -> Result<u32, ClientError> {
        let max_pdu = self.params.target_max_recv_data_segment_length.max(512) as usize;
        let mut data_sn = 0;
        let mut offset = from;
        while offset < to {
            let end = (offset + max_pdu).min(to);
            let bhs = DataOut {
                final_bit: end == to,
                lun,
                itt,
                ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn,
                buffer_offset: offset as u32,
                data_len: (end - offset) as u32,
            }
            .encode();
            self.send(&bhs, &write[offset..end]).await?;
            data_sn += 1;
            offset = end;
        }
        Ok(data_sn)
    }

    /// READ(10) of `blocks` blocks of `block_size` bytes.
    pub async fn read(
        &mut self,
        lun: u64,
        lba: u32,
        blocks: u16,
        block_size: u32,
    ) -> Result<CommandOutcome, ClientError> {
        let len = u32::from(blocks) * block_size;
        self.command(lun, read10(lba, blocks), len, &[]).await
    }

    /// WRITE(10) of `data` (a whole number of `block_size` blocks).
    pub async fn write(
        &mut self,
        lun: u64,
        lba: u32,
        data: &[u8],
        block_size: u32,
    ) -> Result<CommandOutcome, ClientError> {
        let blocks = u16::try_from(data.len() / block_size.max(1) as usize)
            .map_err(|_| protocol("write too large for WRITE(10)"))?;
        self.command(lun, write10(lba, blocks), 0, data).await
    }

    /// READ CAPACITY(10): the number of blocks and the block size of `lun`.
    ///
    /// A CHECK CONDITION comes back as `Ok(Err(outcome))` so the caller can
    /// look at the sense data (a unit attention after login is normal).
    pub async fn read_capacity(
        &mut self,
        lun: u64,
    ) -> Result<Result<Capacity, CommandOutcome>, ClientError> {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x25;
        let out = self.command(lun, cdb, 8, &[]).await?;
        if out.status != 0 || out.response != 0 {
            return Ok(Err(out));
        }
        let field = |at: usize| -> Option<u32> {
            let b = out.data.get(at..at + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match (field(0), field(4)) {
            (Some(last_lba), Some(block_size)) if block_size > 0 => Ok(Ok(Capacity {
                blocks: u64::from(last_lba) + 1,
                block_size,
            })),
            _ => Err(protocol(format!(
                "READ CAPACITY(10) returned {} bytes: {:02x?}",
                out.data.len(),
                out.data
            ))),
        }
    }

    /// NOP-Out ping carrying `data`; returns the echoed NOP-In data.
    pub async fn ping(&mut self, data: &[u8]) -> Result<Vec<u8>, ClientError> {
        let itt = self.next_itt();
        let bhs = encode_nop_out(
            true,
            itt,
            RESERVED_TAG,
            self.cmd_sn,
            self.exp_stat_sn,
            data.len() as u32,
        );
        self.send(&bhs, data).await?;
        let pdu = self.recv_response().await?;
        if pdu.bhs.opcode() != Opcode::NOP_IN || pdu.bhs.itt() != itt {
            return Err(protocol(format!("{:?} answering a ping", pdu.bhs)));
        }
        Ok(pdu.data)
    }

    /// A text exchange (e.g. `SendTargets=All`), following continuations.
    pub async fn text(&mut self, request: &str) -> Result<Vec<(String, String)>, ClientError> {
        let itt = self.next_itt();
        let mut body = request.as_bytes().to_vec();
        body.push(0);
        let mut ttt = RESERVED_TAG;
        let mut answer = Vec::new();
        loop {
            let bhs =
                encode_text_request(itt, ttt, self.cmd_sn, self.exp_stat_sn, body.len() as u32);
            self.send(&bhs, &body).await?;
            body.clear();
            let pdu = self.recv_response().await?;
            if pdu.bhs.opcode() != Opcode::TEXT_RESPONSE || pdu.bhs.itt() != itt {
                return Err(protocol(format!("{:?} answering a text request", pdu.bhs)));
            }
            answer.extend_from_slice(&pdu.data);
            if pdu.byte(1) & 0x80 != 0 {
                break;
            }
            ttt = pdu.bhs.u32_at(20);
        }
        let pairs = parse_text(&answer).map_err(|e| protocol(format!("text response: {e}")))?;
        Ok(pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// A task management request; returns the response code.
    pub async fn task_mgmt(
        &mut self,
        function: TmfFunction,
        lun: u64,
        rtt: u32,
        ref_cmd_sn: u32,
    ) -> Result<u8, ClientError> {
        let itt = self.next_itt();
        let bhs = encode_tmf_request(
            function,
            lun,
            itt,
            rtt,
            self.cmd_sn,
            self.exp_stat_sn,
            ref_cmd_sn,
        );
        self.send(&bhs, &[]).await?;
        let pdu = self.recv_response().await?;
        if pdu.bhs.opcode() != Opcode::TASK_MGMT_RESPONSE || pdu.bhs.itt() != itt {
            return Err(protocol(format!("{:?} answering a TMF", pdu.bhs)));
        }
        Ok(pdu.byte(2))
    }

    /// Logs the session out; returns the logout response code.
    pub async fn logout(&mut self) -> Result<u8, ClientError> {
        let itt = self.next_itt();
        let bhs = encode_logout_request(
            LogoutReason::CLOSE_SESSION,
            itt,
            0,
            self.cmd_sn,
            self.exp_stat_sn,
        );
        self.send(&bhs, &[]).await?;
        let pdu = self.recv_response().await?;
        if pdu.bhs.opcode() != Opcode::LOGOUT_RESPONSE || pdu.bhs.itt() != itt {
            return Err(protocol(format!("{:?} answering a logout", pdu.bhs)));
        }
        Ok(pdu.byte(2))
    }
}
