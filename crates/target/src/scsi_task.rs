//! SCSI commands on a session: collecting write data (immediate, unsolicited
//! and R2T-solicited), executing on an I/O thread, and completing.

use std::sync::Arc;

use iscsi_proto::pdu::{full_cdb, lun_from_sam, DataOut, R2t, Residual, ScsiCommand, RESERVED_TAG};
use scsi::sense::{Asc, Sense, SenseKey};
use scsi::{LogicalUnit, ScsiRequest, ScsiStatus, SenseData};
use tracing::{debug, info, warn};

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::budget::Reservation;
use crate::metrics::{Kind, Stats};
use crate::session::Session;
use crate::targets::LunRef;
use crate::writer::{Completion, Out};

/// Largest Expected Data Transfer Length accepted (the Block Limits VPD
/// maximum); larger commands fail before any buffer is allocated.
const MAX_TRANSFER: u32 = scsi::MAX_TRANSFER_BYTES;

/// A transport-detected error: sense key, ASC, ASCQ.
pub(crate) type TransportError = (u8, u8, u8);
/// ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR (digest mismatch).
pub(crate) const DIGEST_ERROR: TransportError = (0x0b, 0x47, 0x05);
/// ABORTED COMMAND, DATA PHASE ERROR (bad DataSN, offset or length).
const DATA_PHASE_ERROR: TransportError = (0x0b, 0x4b, 0x00);
/// UNIT ATTENTION, REPORTED LUNS DATA HAS CHANGED.
const REPORTED_LUNS_CHANGED: TransportError = (0x06, 0x3f, 0x0e);
/// ILLEGAL REQUEST, INVALID FIELD IN CDB.
const INVALID_CDB: TransportError = (0x05, 0x24, 0x00);

/// The command descriptor block: the 16-byte BHS field, or longer with an
/// extended CDB AHS.
pub(crate) enum Cdb {
    Short([u8; 16]),
    Long(Box<[u8]>),
}

impl Cdb {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Short(c) => c,
            Self::Long(c) => c,
        }
    }
}

/// One Data-Out sequence the target expects: unsolicited, or answering an R2T.
struct Sequence {
    ttt: u32,
    next_offset: u32,
    end: u32,
    next_data_sn: u32,
}

/// A write command waiting for its data.
pub(crate) struct PendingWrite {
    /// The command; its `data_out` fills as Data-Out arrives.
    pub exec: Exec,
    pub lun_field: u64,
    received: u32,
    sequences: Vec<Sequence>,
    next_r2t_offset: u32,
}

impl Session {
    pub(crate) fn scsi_command(&mut self, cmd: ScsiCommand, ahs: &[u8], data: &[u8]) {
        if !self.accept_cmd_sn(cmd.immediate, cmd.cmd_sn) {
            return;
        }
        self.window.begin();
        let cdb = if ahs.is_empty() {
            Cdb::Short(cmd.cdb)
        } else {
            let mut full = Vec::new();
            if full_cdb(&cmd, ahs, &mut full).is_none() {
                self.complete_transport_error(cmd.itt, INVALID_CDB);
                return;
            }
            Cdb::Long(full.into_boxed_slice())
        };
        let lu = match self.resolve(cmd.lun) {
            LunRef::Mapped(lu) => Some(lu),
            // A LUN removed by force: one unit attention per nexus (INQUIRY
            // and REPORT LUNS excepted), then LOGICAL UNIT NOT SUPPORTED.
            LunRef::JustRemoved if !matches!(cmd.cdb[0], 0x12 | 0xa0) => {
                self.complete_transport_error(cmd.itt, REPORTED_LUNS_CHANGED);
                return;
            }
            LunRef::JustRemoved | LunRef::None => None,
        };
        // Reserve the data buffer's memory before allocating it.
        let Some(reservation) = self
            .shared
            .budget
            .try_reserve(u64::from(cmd.edtl.min(MAX_TRANSFER)))
        else {
            debug!(initiator = %self.initiator, edtl = cmd.edtl, "I/O memory budget exhausted; TASK SET FULL");
            self.complete_status(cmd.itt, ScsiStatus::TASK_SET_FULL, SenseData::default());
            return;
        };
        let lun_stats = lun_from_sam(cmd.lun)
            .filter(|_| lu.is_some())
            .map(|id| self.lun_stats(id));
        let mut exec = Exec {
            itt: cmd.itt,
            read: cmd.read,
            lu,
            lun_stats,
            luns: None,
            cdb,
            data_out: Vec::new(),
            edtl: cmd.edtl,
            r2t_count: 0,
            reservation,
            arrived: Instant::now(),
        };
        if !cmd.write || cmd.edtl == 0 {
            self.execute(exec);
            return;
        }
        if cmd.edtl > MAX_TRANSFER || data.len() > cmd.edtl as usize {
            // Unsolicited Data-Out that may follow is discarded: its ITT is unknown.
            warn!(initiator = %self.initiator, edtl = cmd.edtl, "write transfer too large; refused");
            self.complete_transport_error(cmd.itt, INVALID_CDB);
            return;
        }
        let mut buf = self.pool.get();
        buf.resize(cmd.edtl as usize, 0);
        buf[..data.len()].copy_from_slice(data);
        exec.data_out = buf;
        let immediate = data.len() as u32;
        let p = &self.params;
        // Unsolicited Data-Out follows unless F is set (RFC 7143 section 11.3.4).
        let unsolicited_end = if cmd.final_bit || p.initial_r2t {
            immediate
        } else {
            p.first_burst_length.min(cmd.edtl).max(immediate)
        };
        let mut pending = PendingWrite {
            exec,
            lun_field: cmd.lun,
            received: immediate,
            sequences: Vec::new(),
            next_r2t_offset: unsolicited_end,
        };
        if unsolicited_end > immediate {
            pending.sequences.push(Sequence {
                ttt: RESERVED_TAG,
                next_offset: immediate,
                end: unsolicited_end,
                next_data_sn: 0,
            });
        }
        self.pending.insert(cmd.itt, pending);
        self.solicit(cmd.itt);
    }

    /// Sends R2Ts up to MaxOutstandingR2T, or executes once all data is in.
    fn solicit(&mut self, itt: u32) {
        let max_outstanding = usize::from(self.params.max_outstanding_r2t.max(1));
        let max_burst = self.params.max_burst_length.max(512);
        loop {
            let Some(p) = self.pending.get(&itt) else {
                return;
            };
            if p.received == p.exec.edtl {
                if let Some(p) = self.pending.remove(&itt) {
                    self.execute(p.exec);
                }
                return;
            }
            let solicited = p.sequences.iter().filter(|s| s.ttt != RESERVED_TAG).count();
            if p.next_r2t_offset >= p.exec.edtl || solicited >= max_outstanding {
                return;
            }
            let ttt = self.alloc_ttt();
            let Some(p) = self.pending.get_mut(&itt) else {
                return;
            };
            let offset = p.next_r2t_offset;
            let len = (p.exec.edtl - offset).min(max_burst);
            p.next_r2t_offset += len;
            p.sequences.push(Sequence {
                ttt,
                next_offset: offset,
                end: offset + len,
                next_data_sn: 0,
            });
            let r2t = R2t {
                lun: p.lun_field,
                itt,
                ttt,
                r2t_sn: p.exec.r2t_count,
                buffer_offset: offset,
                desired_len: len,
            };
            p.exec.r2t_count += 1;
            self.send(r2t.encode(), Vec::new(), false);
        }
    }

    pub(crate) fn data_out(&mut self, d: DataOut, data: &[u8]) {
        let Some(p) = self.pending.get_mut(&d.itt) else {
            // Data for a command that failed, was aborted or never existed.
            debug!(initiator = %self.initiator, itt = d.itt, "Data-Out for no pending command; discarded");
            return;
        };
        let Some(seq_idx) = p.sequences.iter().position(|s| s.ttt == d.ttt) else {
            warn!(initiator = %self.initiator, itt = d.itt, ttt = d.ttt, "Data-Out with unknown TTT");
            self.fail_pending(d.itt, DATA_PHASE_ERROR);
            return;
        };
        let seq = &mut p.sequences[seq_idx];
        let len = data.len() as u32;
        let end = d.buffer_offset.checked_add(len);
        if d.data_sn != seq.next_data_sn
            || d.buffer_offset != seq.next_offset
            || end.is_none_or(|e| e > seq.end)
        {
            warn!(
                initiator = %self.initiator, itt = d.itt, data_sn = d.data_sn, expected = seq.next_data_sn,
                offset = d.buffer_offset, "Data-Out out of sequence; failing the command"
            );
            self.fail_pending(d.itt, DATA_PHASE_ERROR);
            return;
        }
        let start = d.buffer_offset as usize;
        p.exec.data_out[start..start + data.len()].copy_from_slice(data);
        seq.next_data_sn += 1;
        seq.next_offset += len;
        p.received += len;
        if d.final_bit {
            if seq.next_offset != seq.end {
                warn!(initiator = %self.initiator, itt = d.itt, "Data-Out sequence ended early; failing the command");
                self.fail_pending(d.itt, DATA_PHASE_ERROR);
                return;
            }
            p.sequences.swap_remove(seq_idx);
            self.solicit(d.itt);
        }
    }

    /// Ends a pending write with CHECK CONDITION and `error` as sense.
    pub(crate) fn fail_pending(&mut self, itt: u32, error: TransportError) {
        if let Some(p) = self.pending.remove(&itt) {
            self.pool.put(p.exec.data_out);
            self.complete_transport_error(itt, error);
        }
    }

    /// Completes a command with CHECK CONDITION for an error the transport found.
    pub(crate) fn complete_transport_error(&self, itt: u32, (key, asc, ascq): TransportError) {
        let sense =
            Sense::new(SenseKey(key), Asc(u16::from(asc) << 8 | u16::from(ascq))).encode(false);
        self.complete_status(itt, ScsiStatus::CHECK_CONDITION, sense);
    }

    /// Completes a command that moved no data with `status`.
    fn complete_status(&self, itt: u32, status: ScsiStatus, sense: SenseData) {
        let c = Completion {
            itt,
            status,
            sense,
            data: Vec::new(),
            residual: Residual::None,
            r2t_count: 0,
            reservation: None,
        };
        let _ = self.tx.send(Out::Complete(Box::new(c)));
    }

    /// Executes a command whose data is complete. Media access runs off the
    /// async threads: commands are collected while the reader has PDUs
    /// buffered and handed to I/O threads in batches by [`flush_ready`](Self::flush_ready).
    fn execute(&mut self, mut exec: Exec) {
        if exec.cdb.as_slice().first() == Some(&0xa0) {
            exec.luns = Some(self.visible_luns());
        }
        let blocking = exec.lu.is_some() && exec.luns.is_none();
        self.running.start(1);
        for s in exec.stats(&self.istats, &self.pstats) {
            s.inflight.fetch_add(1, Relaxed);
        }
        if blocking {
            self.ready.push(exec);
        } else {
            // REPORT LUNS and commands to unmapped LUNs touch no media.
            let c = exec.run(&self.exec_ctx());
            let _ = self.tx.send(Out::Complete(Box::new(c)));
            self.running.finish(1);
        }
    }

    /// The counters of LUN `id` of this session's target (cached).
    fn lun_stats(&mut self, id: u64) -> Arc<Stats> {
        if let Some(s) = self.lun_stats.get(&id) {
            return s.clone();
        }
        let target = self
            .target
            .as_ref()
            .map(|t| t.iqn.clone())
            .unwrap_or_default();
        let s = self.shared.metrics.lun(&target, id);
        self.lun_stats.insert(id, s.clone());
        s
    }

    fn exec_ctx(&self) -> ExecCtx {
        ExecCtx {
            nexus: self.nexus,
            initiator_port: self.initiator_port.clone(),
            pool: self.pool.clone(),
            istats: self.istats.clone(),
            pstats: self.pstats.clone(),
            traced: self.shared.metrics.traced(&self.initiator),
        }
    }

    /// Hands the collected commands to I/O threads, a few per thread so a
    /// deep queue still runs in parallel; their completions reach the writer
    /// as one batch per thread.
    pub(crate) fn flush_ready(&mut self) {
        if self.ready.is_empty() {
            return;
        }
        let mut ready = std::mem::take(&mut self.ready);
        while !ready.is_empty() {
            let chunk: Vec<Exec> = ready
                .drain(..ready.len().min(COMMANDS_PER_THREAD))
                .collect();
            let ctx = self.exec_ctx();
            let tx = self.tx.clone();
            let running = self.running.clone();
            tokio::task::spawn_blocking(move || {
                let n = chunk.len();
                let done: Vec<Completion> = chunk.into_iter().map(|e| e.run(&ctx)).collect();
                let _ = tx.send(Out::Batch(done));
                running.finish(n);
            });
        }
    }
}

/// The sense key of fixed (70h/71h) or descriptor (72h/73h) sense data.
fn sense_key(sense: &[u8]) -> Option<u8> {
    match sense.first().map(|b| b & 0x7f) {
        Some(0x70 | 0x71) => sense.get(2).map(|k| k & 0x0f),
        Some(0x72 | 0x73) => sense.get(1).map(|k| k & 0x0f),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How many commands one I/O thread runs from a batch.
const COMMANDS_PER_THREAD: usize = 4;

/// What an I/O thread needs to know about the session.
struct ExecCtx {
    nexus: scsi::Nexus,
    initiator_port: Arc<str>,
    pool: Arc<crate::writer::BufPool>,
    istats: Arc<Stats>,
    pstats: Arc<Stats>,
    /// Log every command of this session (the per-initiator trace).
    traced: bool,
}

/// A command ready to execute.
pub(crate) struct Exec {
    itt: u32,
    read: bool,
    lu: Option<Arc<LogicalUnit>>,
    lun_stats: Option<Arc<Stats>>,
    luns: Option<Vec<u64>>,
    cdb: Cdb,
    pub data_out: Vec<u8>,
    edtl: u32,
    r2t_count: u32,
    reservation: Reservation,
    arrived: Instant,
}

impl Exec {
    /// The counters this command updates.
    fn stats<'a>(
        &'a self,
        istats: &'a Arc<Stats>,
        pstats: &'a Arc<Stats>,
    ) -> impl Iterator<Item = &'a Arc<Stats>> {
        [Some(istats), Some(pstats), self.lun_stats.as_ref()]
            .into_iter()
            .flatten()
    }

    fn run(self, ctx: &ExecCtx) -> Completion {
        let mut data_in = ctx.pool.get();
        let req = ScsiRequest {
            cdb: self.cdb.as_slice(),
            data_out: &self.data_out,
            expected_len: self.edtl,
            nexus: ctx.nexus,
            initiator_port: &ctx.initiator_port,
        };
        let outcome = match (&self.luns, &self.lu) {
            (Some(luns), _) => scsi::report_luns(luns, &req, &mut data_in),
            (None, Some(lu)) => lu.execute(&req, &mut data_in),
            (None, None) => scsi::execute_no_lun(&req, &mut data_in),
        };
        if !self.read {
            data_in.clear();
        }
        let kind = Kind::of(self.cdb.as_slice().first().copied().unwrap_or(0));
        let bytes = match kind {
            Kind::Read => data_in.len() as u64,
            Kind::Write => self.data_out.len() as u64,
            _ => 0,
        };
        let sense_key = (outcome.status == ScsiStatus::CHECK_CONDITION)
            .then(|| sense_key(outcome.sense.as_bytes()))
            .flatten();
        let latency = self.arrived.elapsed();
        for s in self.stats(&ctx.istats, &ctx.pstats) {
            s.command(kind, bytes, sense_key, latency);
            s.inflight.fetch_sub(1, Relaxed);
        }
        if ctx.traced {
            info!(
                target: "trace",
                initiator_port = %ctx.initiator_port,
                itt = self.itt,
                cdb = %hex(self.cdb.as_slice()),
                status = outcome.status.0,
                sense = %hex(outcome.sense.as_bytes()),
                bytes,
                latency_us = latency.as_micros() as u64,
                "command"
            );
        }
        ctx.pool.put(self.data_out);
        Completion {
            itt: self.itt,
            status: outcome.status,
            sense: outcome.sense,
            data: data_in,
            residual: Residual::compute(self.edtl, outcome.transfer_len),
            r2t_count: self.r2t_count,
            reservation: Some(self.reservation),
        }
    }
}
