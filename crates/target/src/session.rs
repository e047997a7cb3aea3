//! One connection from accept to close: login, then the full feature phase.
//!
//! Sessions have exactly one connection (MaxConnections=1), so the session
//! state lives in the connection's reading task and needs no locks. Commands
//! run on blocking threads; their completions go straight to the writer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iscsi_proto::login::SessionType;
use iscsi_proto::negotiation::{Digest, SessionParams};
use iscsi_proto::pdu::{
    encode_async, encode_logout_response, encode_nop_in, encode_reject, encode_tmf_response,
    lun_from_sam, sn_le, sn_lt, AsyncEvent, Bhs, LogoutReason, LogoutRequest, LogoutResponseCode,
    NopOut, RejectReason, Request, TaskMgmtRequest, TmfFunction, TmfResponse, RESERVED_TAG,
};
use scsi::{LogicalUnit, Nexus};
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn, Instrument};

use crate::config::{IscsiSettings, PortalPlace};
use crate::frame::{FrameError, PduReader};
use crate::login::{self, LoggedIn, LOGIN_MAX_DATA};
use crate::metrics::Stats;
use crate::scsi_task::{Exec, PendingWrite};
use crate::server::{logout_grace, SessionCtl, Shared};
use crate::targets::{LunRef, TargetNode};
use crate::text::TextState;
use crate::writer::{self, BufPool, CmdWindow, Out, OutTx, SendParams};

/// How long a closing session waits for commands still executing.
const DRAIN_BOUND: Duration = Duration::from_secs(30);

/// Commands of a session executing on I/O threads.
#[derive(Default)]
pub(crate) struct Running {
    count: AtomicUsize,
    idle: Notify,
}

impl Running {
    pub(crate) fn start(&self, n: usize) {
        self.count.fetch_add(n, Ordering::AcqRel);
    }
    pub(crate) fn finish(&self, n: usize) {
        if self.count.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
        }
    }
    /// Waits until no command executes (bounded).
    pub(crate) async fn wait_idle(&self) {
        let _ = tokio::time::timeout(DRAIN_BOUND, async {
            loop {
                let idle = self.idle.notified();
                if self.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
    }
}

/// What the reading loop does after a PDU.
pub(crate) enum Flow {
    Continue,
    Close,
}

/// The full feature phase state of a session.
pub(crate) struct Session {
    pub shared: Arc<Shared>,
    /// The protocol settings in force when the session started.
    pub settings: Arc<IscsiSettings>,
    pub target: Option<Arc<TargetNode>>,
    pub initiator: String,
    /// Initiator port name (`InitiatorName,i,0x<ISID>`): the TransportID
    /// persistent reservations are keyed by.
    pub initiator_port: Arc<str>,
    /// The CHAP user the session authenticated as.
    pub chap_user: Option<String>,
    /// LUN masking from the initiator's ACL entry (`None`: all LUNs).
    pub lun_mask: Option<Vec<u64>>,
    pub nexus: Nexus,
    pub params: SessionParams,
    pub tx: OutTx,
    pub window: Arc<CmdWindow>,
    pub pool: Arc<BufPool>,
    pub running: Arc<Running>,
    pub pending: HashMap<u32, PendingWrite>,
    /// Commands ready to execute, handed to I/O threads when the reader has
    /// no further PDU buffered.
    pub ready: Vec<Exec>,
    /// This initiator's counters.
    pub istats: Arc<Stats>,
    /// The portal's counters.
    pub pstats: Arc<Stats>,
    /// Per-LUN counters, looked up once per session.
    pub lun_stats: HashMap<u64, Arc<Stats>>,
    pub next_ttt: u32,
    pub text: TextState,
    pub local: SocketAddr,
    ping: Option<(u32, Instant)>,
    last_rx: Instant,
}

/// Serves one TCP connection until it closes.
pub(crate) async fn run_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    place: PortalPlace,
) {
    let (rd, wr) = stream.into_split();
    let settings = shared.settings();
    let window = Arc::new(CmdWindow::new(0, settings.queue_depth));
    let pool = Arc::new(BufPool::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(writer::run(wr, rx, window.clone(), pool.clone(), 1));
    let mut reader = PduReader::new(rd, LOGIN_MAX_DATA);
    let login_time = Duration::from_secs(u64::from(settings.login_timeout));
    let pending = shared.guard.connection(peer.ip());
    let portal_name = local.to_string();
    let logged_in = tokio::select! {
        r = tokio::time::timeout(login_time, login::run(&shared, &mut reader, &tx, &window, peer, local, place.group, &pending)) => match r {
            Ok(Ok(l)) => {
                shared.metrics.login(&l.result.initiator_name, &portal_name, "ok");
                Some(l)
            }
            Ok(Err(refused)) => {
                if let Some(status) = refused.status {
                    shared.metrics.login(&refused.initiator, &portal_name, crate::metrics::login_reason(status.0));
                }
                None
            }
            Err(_) => {
                warn!(%peer, "login did not complete in time; closing");
                shared.audit.record("login_timeout", &[("address", &peer.to_string())]);
                None
            }
        },
        _ = pending.evicted.notified() => {
            warn!(%peer, "too many connections logging in from this address; closing the oldest");
            shared.audit.record("login_evicted", &[("address", &peer.to_string())]);
            None
        }
    };
    drop(pending);
    if let Some(logged_in) = logged_in {
        full_feature_phase(
            shared,
            logged_in,
            &mut reader,
            tx.clone(),
            window,
            pool,
            peer,
            local,
            place,
        )
        .await;
    }
    let _ = tx.send(Out::Close);
    drop(tx);
    if let Ok(Err(e)) = writer.await {
        debug!(%peer, error = %e, "write side closed");
    }
}

#[allow(clippy::too_many_arguments)]
async fn full_feature_phase<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    logged_in: LoggedIn,
    reader: &mut PduReader<R>,
    tx: OutTx,
    window: Arc<CmdWindow>,
    pool: Arc<BufPool>,
    peer: SocketAddr,
    local: SocketAddr,
    place: PortalPlace,
) {
    let LoggedIn {
        result,
        target,
        tsih,
        key,
        mut ctl,
        done,
        ..
    } = logged_in;
    let p = &result.params;
    let header_digest = p.header_digest == Digest::Crc32c;
    let data_digest = p.data_digest == Digest::Crc32c;
    let _ = tx.send(Out::Configure(SendParams {
        header_digest,
        data_digest,
        max_data: p.max_recv_data_segment_length,
        max_burst: p.max_burst_length,
    }));
    reader.set_digests(header_digest, data_digest);
    reader.set_max_data(p.target_max_recv_data_segment_length);
    let nexus = Nexus {
        id: key.as_ref().map(|k| shared.nexus_id(k)).unwrap_or(0),
        relative_port: place.relative_port,
    };
    let mut session = Session {
        shared: shared.clone(),
        settings: shared.settings(),
        lun_mask: lun_mask(target.as_ref(), &result.initiator_name),
        target,
        initiator: result.initiator_name.clone(),
        initiator_port: format!(
            "{},i,0x{}",
            result.initiator_name,
            result
                .isid
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
        .into(),
        chap_user: result.chap_user.clone(),
        nexus,
        params: result.params.clone(),
        tx,
        window,
        pool,
        running: Arc::new(Running::default()),
        pending: HashMap::new(),
        ready: Vec::new(),
        istats: shared.metrics.initiator(&result.initiator_name),
        pstats: shared.metrics.portal(&local.to_string()),
        lun_stats: HashMap::new(),
        next_ttt: 1,
        text: TextState::default(),
        local,
        ping: None,
        last_rx: Instant::now(),
    };
    let discovery = result.session_type == SessionType::Discovery;
    let span = tracing::info_span!("session", initiator = %session.initiator, tsih, %peer);
    session
        .serve(reader, &mut ctl, discovery)
        .instrument(span)
        .await;
    session.abort_pending(None);
    session.abort_waiting(Some(session.nexus));
    session.quiesce().await;
    if let Some(target) = &session.target {
        for lu in target.view().luns.values() {
            lu.nexus_lost(session.nexus);
        }
    }
    if let Some(key) = key {
        if let Ok(mut sessions) = shared.sessions.lock() {
            if sessions.get(&key).is_some_and(|h| h.tsih == tsih) {
                sessions.remove(&key);
            }
        }
    }
    let _ = done.send(true);
    session.istats.session_ended();
    session.pstats.sessions.fetch_sub(1, Ordering::Relaxed);
    info!(%peer, initiator = %session.initiator, tsih, "session closed");
}

fn lun_mask(target: Option<&Arc<TargetNode>>, initiator: &str) -> Option<Vec<u64>> {
    let view = target?.view();
    let luns = view.acl_for(initiator)?.luns.as_ref()?;
    Some(luns.iter().map(|&x| u64::from(x)).collect())
}

impl Session {
    async fn serve<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut PduReader<R>,
        ctl: &mut mpsc::UnboundedReceiver<SessionCtl>,
        discovery: bool,
    ) {
        let mut shutdown = self.shared.shutdown.clone();
        let mut logout_deadline: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                frame = reader.next() => {
                    let frame = match frame {
                        Ok(f) => f,
                        Err(FrameError::Closed) => return,
                        Err(e) => {
                            if matches!(e, FrameError::HeaderDigest) {
                                self.count_digest_error();
                            }
                            warn!(initiator = %self.initiator, error = %e, "dropping connection");
                            return;
                        }
                    };
                    self.last_rx = Instant::now();
                    self.ping = None;
                    let flow = self.dispatch(&frame.bhs, frame.ahs, frame.data, frame.data_digest_ok, discovery).await;
                    if !reader.has_frame() {
                        self.flush_ready();
                    }
                    if matches!(flow, Flow::Close) {
                        return;
                    }
                }
                Some(request) = ctl.recv() => match request {
                    SessionCtl::Reinstated => {
                        info!(initiator = %self.initiator, "session reinstated by a new login; closing the old one");
                        return;
                    }
                    SessionCtl::Logout { within, enforce } => {
                        let grace = self.request_logout(within);
                        if enforce && logout_deadline.is_none() {
                            logout_deadline = Some(Instant::now() + grace);
                        }
                    }
                    SessionCtl::Drop => {
                        info!(initiator = %self.initiator, "closing the session on request");
                        let t2w = self.params.default_time2wait.min(3600);
                        let bhs = encode_async(0, AsyncEvent::CONNECTION_DROP, [0, t2w, 0], 0);
                        self.send(bhs, Vec::new(), true);
                        return;
                    }
                },
                changed = shutdown.changed(), if logout_deadline.is_none() => {
                    let stopping = changed.is_err() || *shutdown.borrow_and_update();
                    if !stopping {
                        continue;
                    }
                    logout_deadline = Some(Instant::now() + self.request_logout(logout_grace()));
                }
                _ = tick.tick() => {
                    if logout_deadline.is_some_and(|d| Instant::now() >= d) {
                        info!(initiator = %self.initiator, "no logout before the deadline; closing");
                        return;
                    }
                    if !self.keepalive() {
                        return;
                    }
                }
            }
        }
    }

    fn count_digest_error(&self) {
        self.istats.digest_errors.fetch_add(1, Ordering::Relaxed);
        self.pstats.digest_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Commands of `by` (all nexuses when `None`) that only wait for a
    /// background operation of their LU end now with TASK ABORTED.
    fn abort_waiting(&self, by: Option<Nexus>) {
        if let Some(target) = &self.target {
            for lu in target.view().luns.values() {
                lu.abort_waiting(by);
            }
        }
    }

    /// Starts every collected command and waits (bounded) until none runs.
    pub(crate) async fn quiesce(&mut self) {
        self.flush_ready();
        self.running.wait_idle().await;
    }

    /// Sends the Async Message asking for logout; returns the grace period.
    fn request_logout(&self, grace: Duration) -> Duration {
        let grace = grace.clamp(Duration::from_secs(1), Duration::from_secs(3600));
        let bhs = encode_async(
            0,
            AsyncEvent::LOGOUT_REQUESTED,
            [0, 0, grace.as_secs() as u16],
            0,
        );
        self.send(bhs, Vec::new(), true);
        grace
    }

    /// Pings an idle initiator; false when it stopped answering.
    fn keepalive(&mut self) -> bool {
        let s = &self.settings;
        if s.nop_in_interval == 0 {
            return true;
        }
        match self.ping {
            Some((_, sent))
                if sent.elapsed() >= Duration::from_secs(u64::from(s.nop_in_timeout)) =>
            {
                warn!(initiator = %self.initiator, "initiator did not answer NOP-In; dropping connection");
                self.istats.nop_timeouts.fetch_add(1, Ordering::Relaxed);
                false
            }
            Some(_) => true,
            None => {
                if self.last_rx.elapsed() >= Duration::from_secs(u64::from(s.nop_in_interval)) {
                    let ttt = self.alloc_ttt();
                    self.send(encode_nop_in(0, RESERVED_TAG, ttt, 0), Vec::new(), false);
                    self.ping = Some((ttt, Instant::now()));
                }
                true
            }
        }
    }

    async fn dispatch(
        &mut self,
        bhs: &Bhs,
        ahs: &[u8],
        data: &[u8],
        digest_ok: bool,
        discovery: bool,
    ) -> Flow {
        let request = Request::parse(bhs);
        if !digest_ok {
            self.count_digest_error();
            // RFC 7143 section 7.8.1: reject the PDU; the command it belonged to fails.
            self.reject(bhs, RejectReason::DATA_DIGEST_ERROR);
            if let Request::DataOut(d) = &request {
                // ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR (RFC 7143 section 7.8.1).
                self.fail_pending(d.itt, crate::scsi_task::DIGEST_ERROR);
            } else if let Request::ScsiCommand(c) = &request {
                if self.accept_cmd_sn(c.immediate, c.cmd_sn) {
                    self.window.begin();
                    self.complete_transport_error(c.itt, crate::scsi_task::DIGEST_ERROR);
                }
            }
            return Flow::Continue;
        }
        match request {
            Request::NopOut(n) => self.nop_out(n, data),
            Request::ScsiCommand(c) if !discovery => self.scsi_command(c, ahs, data),
            Request::DataOut(d) if !discovery => self.data_out(d, data),
            Request::TaskMgmt(t) if !discovery => return self.task_mgmt(t).await,
            Request::Text(t) => self.text_request(t, data),
            Request::Logout(l) => return self.logout(l).await,
            Request::Snack => self.reject(bhs, RejectReason::COMMAND_NOT_SUPPORTED),
            Request::Login(_) => self.reject(bhs, RejectReason::PROTOCOL_ERROR),
            Request::Unknown(op) => {
                warn!(initiator = %self.initiator, opcode = ?op, "unknown opcode rejected");
                self.reject(bhs, RejectReason::COMMAND_NOT_SUPPORTED);
            }
            // SCSI traffic in a discovery session.
            _ => self.reject(bhs, RejectReason::PROTOCOL_ERROR),
        }
        Flow::Continue
    }

    /// Queues a PDU.
    pub(crate) fn send(&self, bhs: Bhs, data: Vec<u8>, status: bool) {
        let _ = self.tx.send(Out::Pdu { bhs, data, status });
    }

    pub(crate) fn reject(&self, bhs: &Bhs, reason: RejectReason) {
        let mut data = self.pool.get();
        data.extend_from_slice(&bhs.0);
        self.send(encode_reject(reason, 0), data, true);
    }

    pub(crate) fn alloc_ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        t
    }

    /// Applies CmdSN rules (RFC 7143 section 4.2.2.1). False: ignore the PDU silently.
    pub(crate) fn accept_cmd_sn(&self, immediate: bool, cmd_sn: u32) -> bool {
        if immediate {
            return true;
        }
        let exp = self.window.exp_cmd_sn();
        if cmd_sn == exp {
            self.window.advance();
            return true;
        }
        if sn_lt(exp, cmd_sn) && sn_le(cmd_sn, self.window.max_cmd_sn()) {
            // A gap cannot happen on a single connection; accept and move on.
            self.window.set_exp(cmd_sn.wrapping_add(1));
            return true;
        }
        debug!(initiator = %self.initiator, cmd_sn, exp, "CmdSN outside the window; ignored");
        false
    }

    /// What a LUN field addresses for this session.
    pub(crate) fn resolve(&self, lun_field: u64) -> LunRef {
        match (&self.target, lun_from_sam(lun_field)) {
            (Some(target), Some(id)) if self.sees(id) => target.resolve(id, self.nexus.id),
            _ => LunRef::None,
        }
    }

    /// The logical unit addressed by a LUN field, if mapped.
    pub(crate) fn lu(&self, lun_field: u64) -> Option<Arc<LogicalUnit>> {
        match self.resolve(lun_field) {
            LunRef::Mapped(lu) => Some(lu),
            _ => None,
        }
    }

    /// Whether LUN masking lets this session see LUN `id`.
    pub(crate) fn sees(&self, id: u64) -> bool {
        self.lun_mask.as_ref().is_none_or(|m| m.contains(&id))
    }

    /// The LUN ids this session sees (REPORT LUNS).
    pub(crate) fn visible_luns(&self) -> Vec<u64> {
        let Some(target) = &self.target else {
            return Vec::new();
        };
        target
            .view()
            .luns
            .keys()
            .copied()
            .filter(|&id| self.sees(id))
            .collect()
    }

    fn nop_out(&mut self, n: NopOut, data: &[u8]) {
        if !self.accept_cmd_sn(n.immediate, n.cmd_sn) {
            return;
        }
        if n.itt == RESERVED_TAG {
            // The answer to our ping; nothing to send.
            return;
        }
        let mut echo = self.pool.get();
        echo.extend_from_slice(data);
        self.send(
            encode_nop_in(n.lun, n.itt, RESERVED_TAG, echo.len() as u32),
            echo,
            true,
        );
    }

    /// Drops commands still waiting for data (all, or those of one LUN field).
    pub(crate) fn abort_pending(&mut self, lun_field: Option<u64>) {
        let itts: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| lun_field.is_none_or(|l| p.lun_field == l))
            .map(|(&itt, _)| itt)
            .collect();
        for itt in itts {
            if let Some(p) = self.pending.remove(&itt) {
                self.pool.put(p.exec.data_out);
                self.window.end();
            }
        }
    }

    async fn task_mgmt(&mut self, t: TaskMgmtRequest) -> Flow {
        if !self.accept_cmd_sn(t.immediate, t.cmd_sn) {
            return Flow::Continue;
        }
        info!(initiator = %self.initiator, function = ?t.function, lun = t.lun, "task management request");
        let mut close = false;
        let response = match t.function {
            TmfFunction::ABORT_TASK => {
                if let Some(p) = self.pending.remove(&t.rtt) {
                    self.pool.put(p.exec.data_out);
                    self.window.end();
                    TmfResponse::FUNCTION_COMPLETE
                } else {
                    // A task already executing runs to completion and answers
                    // for itself; one that never arrived (RefCmdSN still ahead
                    // of ExpCmdSN, RFC 7143 section 11.5.1) counts as aborted.
                    // A command only waiting for a background operation
                    // (SANITIZE) stops waiting; the operation goes on.
                    if let Some(lu) = self.lu(t.lun) {
                        lu.abort_waiting(Some(self.nexus));
                    }
                    self.quiesce().await;
                    let exp = self.window.exp_cmd_sn();
                    if sn_le(exp, t.ref_cmd_sn) && sn_lt(t.ref_cmd_sn, t.cmd_sn) {
                        TmfResponse::FUNCTION_COMPLETE
                    } else {
                        TmfResponse::TASK_DOES_NOT_EXIST
                    }
                }
            }
            TmfFunction::ABORT_TASK_SET | TmfFunction::CLEAR_TASK_SET => {
                self.abort_pending(Some(t.lun));
                if let Some(lu) = self.lu(t.lun) {
                    lu.abort_waiting(Some(self.nexus));
                }
                self.quiesce().await;
                TmfResponse::FUNCTION_COMPLETE
            }
            TmfFunction::LOGICAL_UNIT_RESET => match self.lu(t.lun) {
                Some(lu) => {
                    self.abort_pending(Some(t.lun));
                    lu.abort_waiting(None);
                    self.quiesce().await;
                    lu.reset(Some(self.nexus), scsi::ResetKind::LogicalUnit);
                    TmfResponse::FUNCTION_COMPLETE
                }
                None => TmfResponse::LUN_DOES_NOT_EXIST,
            },
            TmfFunction::TARGET_WARM_RESET | TmfFunction::TARGET_COLD_RESET => {
                let cold = t.function == TmfFunction::TARGET_COLD_RESET;
                self.abort_pending(None);
                self.abort_waiting(None);
                self.quiesce().await;
                let kind = if cold {
                    scsi::ResetKind::TargetCold
                } else {
                    scsi::ResetKind::TargetWarm
                };
                if let Some(target) = &self.target {
                    for lu in target.view().luns.values() {
                        lu.reset(Some(self.nexus), kind);
                    }
                }
                // A cold reset also ends every connection of the target (SAM-5 / RFC 7143 11.5.1).
                close = cold;
                TmfResponse::FUNCTION_COMPLETE
            }
            TmfFunction::TASK_REASSIGN => TmfResponse::REASSIGNMENT_NOT_SUPPORTED,
            TmfFunction::CLEAR_ACA => TmfResponse::FUNCTION_NOT_SUPPORTED,
            _ => TmfResponse::FUNCTION_REJECTED,
        };
        self.send(encode_tmf_response(t.itt, response), Vec::new(), true);
        if close {
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    async fn logout(&mut self, l: LogoutRequest) -> Flow {
        self.accept_cmd_sn(l.immediate, l.cmd_sn);
        self.abort_pending(None);
        self.abort_waiting(Some(self.nexus));
        self.quiesce().await;
        let response = if l.reason == LogoutReason::REMOVE_CONNECTION_FOR_RECOVERY {
            LogoutResponseCode::RECOVERY_NOT_SUPPORTED
        } else {
            LogoutResponseCode::SUCCESS
        };
        info!(initiator = %self.initiator, reason = ?l.reason, "logout");
        self.shared.audit.record(
            "logout",
            &[
                ("initiator", &self.initiator),
                (
                    "target",
                    self.target
                        .as_ref()
                        .map(|t| t.iqn.as_str())
                        .unwrap_or("(discovery)"),
                ),
                ("reason", &format!("{:?}", l.reason)),
            ],
        );
        let t2w = self.params.default_time2wait.min(3600);
        let t2r = self.params.default_time2retain.min(3600);
        self.send(
            encode_logout_response(l.itt, response, t2w, t2r),
            Vec::new(),
            true,
        );
        Flow::Close
    }
}
