//! Drives the sans-IO login state machine over a connection and applies the
//! target's configuration: which targets exist, who may log in, how.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iscsi_proto::chap::Secret;
use iscsi_proto::login::{
    AuthPolicy, ChapAccount, LoginAuthority, LoginOutcome, LoginRequestHeader, LoginResponseHeader,
    LoginResult, LoginStatus, SessionType, TargetLogin,
};
use iscsi_proto::negotiation::{Digest, DigestPolicy, TargetLimits};
use iscsi_proto::pdu::{encode_login_response, Request};
use tokio::io::AsyncRead;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::{AuthMode, DigestMode, DiscoveryAuth};
use crate::frame::PduReader;
use crate::guard::GuardKey;
use crate::server::{SessionCtl, SessionHandle, SessionInfo, SessionKey, Shared};
use crate::targets::TargetNode;
use crate::writer::{CmdWindow, Out, OutTx};

/// Largest data segment accepted before login completes (issue: flooding clients).
pub(crate) const LOGIN_MAX_DATA: u32 = 8192;
/// How long a reinstated session may take to go away.
const REINSTATE_WAIT: Duration = Duration::from_secs(5);

/// A login that did not complete: who tried (when known) and the status
/// sent (none when the connection ended without a final response).
#[derive(Debug, Default)]
pub(crate) struct Refused {
    pub initiator: String,
    pub status: Option<LoginStatus>,
}

/// A completed login.
pub(crate) struct LoggedIn {
    pub result: LoginResult,
    /// Whether the target authenticated itself too (mutual CHAP).
    pub mutual: bool,
    pub target: Option<Arc<TargetNode>>,
    pub tsih: u16,
    pub key: Option<SessionKey>,
    /// Requests from the control plane and from reinstating logins.
    pub ctl: mpsc::UnboundedReceiver<SessionCtl>,
    /// Set when the session has ended.
    pub done: watch::Sender<bool>,
}

struct Authority<'a> {
    shared: &'a Shared,
    peer: IpAddr,
    /// The initiator name the login presented.
    initiator: Mutex<Option<String>>,
    /// Set when the initiator or its address is locked out.
    locked_out: AtomicBool,
}

impl LoginAuthority for Authority<'_> {
    fn authorize(
        &self,
        session_type: SessionType,
        target_name: Option<&str>,
        initiator_name: &str,
    ) -> Result<AuthPolicy, LoginStatus> {
        if let Ok(mut i) = self.initiator.lock() {
            *i = Some(initiator_name.to_string());
        }
        let now = Instant::now();
        let guard = &self.shared.guard;
        if guard.locked(
            &GuardKey::Initiator(initiator_name.to_ascii_lowercase()),
            now,
        ) || guard.locked(&GuardKey::Address(self.peer), now)
        {
            // Refused without looking at credentials: a locked key cannot keep guessing.
            self.locked_out.store(true, Ordering::Relaxed);
            return Err(LoginStatus::AUTH_FAILURE);
        }
        match session_type {
            SessionType::Discovery => self.discovery_policy(initiator_name),
            SessionType::Normal => {
                let name = target_name.ok_or(LoginStatus::MISSING_PARAMETER)?;
                let target = self.shared.target(name).ok_or(LoginStatus::NOT_FOUND)?;
                if target.draining.load(std::sync::atomic::Ordering::Acquire) {
                    // Storage is being removed: come back later.
                    return Err(LoginStatus::SERVICE_UNAVAILABLE);
                }
                let view = target.view();
                let acl = view
                    .acl_for(initiator_name)
                    .ok_or(LoginStatus::AUTHORIZATION_FAILURE)?;
                match (view.spec.auth, &acl.chap_user, &acl.chap_secret) {
                    (AuthMode::None, _, _) => Ok(AuthPolicy::None),
                    (AuthMode::Chap, Some(user), Some(secret)) => {
                        let mutual = match (&acl.mutual_user, &acl.mutual_secret) {
                            (Some(u), Some(s)) => {
                                Some((u.clone(), Secret::new(s.as_bytes().to_vec())))
                            }
                            _ => None,
                        };
                        Ok(AuthPolicy::Chap(vec![ChapAccount {
                            user: user.clone(),
                            secret: Secret::new(secret.as_bytes().to_vec()),
                            mutual,
                        }]))
                    }
                    // Config validation refuses this; never fall back to name-only access.
                    (AuthMode::Chap, _, _) => Err(LoginStatus::AUTHORIZATION_FAILURE),
                }
            }
        }
    }

    fn target_limits(&self, target_name: Option<&str>, limits: &mut TargetLimits) {
        if let Some(t) = target_name.and_then(|n| self.shared.target(n)) {
            (limits.header_digest, limits.data_digest) =
                Self::digest_policies(t.view().spec.digests);
        }
    }
}

impl Authority<'_> {
    /// The digest policies a target imposes on the negotiation.
    fn digest_policies(mode: DigestMode) -> (DigestPolicy, DigestPolicy) {
        match mode {
            DigestMode::Optional => (DigestPolicy::Optional, DigestPolicy::Optional),
            DigestMode::Header => (DigestPolicy::Required, DigestPolicy::Optional),
            DigestMode::Required => (DigestPolicy::Required, DigestPolicy::Required),
        }
    }

    fn discovery_policy(&self, initiator: &str) -> Result<AuthPolicy, LoginStatus> {
        let d = self.shared.discovery();
        match (d.auth, &d.chap_user, &d.chap_secret) {
            (DiscoveryAuth::None, _, _) => Ok(AuthPolicy::None),
            (DiscoveryAuth::Chap, Some(user), Some(secret)) => {
                Ok(AuthPolicy::Chap(vec![ChapAccount {
                    user: user.clone(),
                    secret: Secret::new(secret.as_bytes().to_vec()),
                    mutual: None,
                }]))
            }
            (DiscoveryAuth::Chap, _, _) => Err(LoginStatus::AUTHORIZATION_FAILURE),
            (DiscoveryAuth::Acl, _, _) => {
                // Any credential that would log this initiator into some target.
                let mut accounts = Vec::new();
                let mut open = false;
                for t in self.shared.targets() {
                    let view = t.view();
                    let Some(acl) = view.acl_for(initiator) else {
                        continue;
                    };
                    match (view.spec.auth, &acl.chap_user, &acl.chap_secret) {
                        (AuthMode::None, _, _) => open = true,
                        (AuthMode::Chap, Some(user), Some(secret)) => accounts.push(ChapAccount {
                            user: user.clone(),
                            secret: Secret::new(secret.as_bytes().to_vec()),
                            mutual: None,
                        }),
                        (AuthMode::Chap, _, _) => {}
                    }
                }
                if !accounts.is_empty() {
                    Ok(AuthPolicy::Chap(accounts))
                } else if open {
                    Ok(AuthPolicy::None)
                } else {
                    Err(LoginStatus::AUTHORIZATION_FAILURE)
                }
            }
        }
    }
}

fn limits(shared: &Shared, portal_group: u16) -> TargetLimits {
    let s = shared.settings();
    TargetLimits {
        target_portal_group_tag: portal_group,
        max_recv_data_segment_length: s.max_recv_data_segment_length,
        max_burst_length: s.max_burst_length,
        first_burst_length: s.first_burst_length,
        immediate_data: s.immediate_data,
        initial_r2t: s.initial_r2t,
        max_outstanding_r2t: s.max_outstanding_r2t,
        ..TargetLimits::default()
    }
}

#[allow(clippy::too_many_arguments)]
/// Runs the login phase. `Err` means the connection must close (the failure
/// response, if any, is already queued).
pub(crate) async fn run<R: AsyncRead + Unpin>(
    shared: &Shared,
    reader: &mut PduReader<R>,
    tx: &OutTx,
    window: &CmdWindow,
    peer: SocketAddr,
    local: SocketAddr,
    portal_group: u16,
    pending: &crate::guard::PendingLogin,
) -> Result<LoggedIn, Refused> {
    let mut machine = TargetLogin::new(limits(shared, portal_group), Default::default());
    let authority = Authority {
        shared,
        peer: peer.ip(),
        initiator: Mutex::new(None),
        locked_out: AtomicBool::new(false),
    };
    let mut slot = None;
    loop {
        let frame = reader.next().await.map_err(|e| {
            debug!(%peer, error = %e, "login aborted");
            Refused::default()
        })?;
        let hdr = match Request::parse(&frame.bhs) {
            Request::Login(h) => h,
            other => {
                warn!(%peer, pdu = ?other, "non-login PDU during login; closing");
                return Err(Refused::default());
            }
        };
        if slot.is_none() {
            pending.spoke();
            window.reset(hdr.cmd_sn);
            slot = shared.guard.admit();
            if slot.is_none() {
                // Admission ceiling reached: the initiator retries later.
                let mut h = refusal(&hdr, LoginStatus::SERVICE_UNAVAILABLE);
                h.tsih = hdr.tsih;
                send_response(tx, &h, Vec::new());
                shared
                    .audit
                    .record("login_deferred", &[("address", &peer.to_string())]);
                return Err(Refused {
                    initiator: String::new(),
                    status: Some(LoginStatus::SERVICE_UNAVAILABLE),
                });
            }
        }
        let mut step = machine.handle(&hdr, frame.data, &authority);
        let mut outcome = std::mem::replace(&mut step.outcome, LoginOutcome::Continue);
        let mut done = None;
        if let LoginOutcome::Complete(result) = outcome {
            match admit(shared, *result, peer, local).await {
                Ok(logged_in) => {
                    step.header.tsih = logged_in.tsih;
                    done = Some(logged_in);
                    outcome = LoginOutcome::Continue;
                }
                Err((status, _)) => {
                    step.header = refusal(&hdr, status);
                    step.data.clear();
                    outcome = LoginOutcome::Failed;
                }
            }
        }
        let initiator = authority
            .initiator
            .lock()
            .ok()
            .and_then(|i| i.clone())
            .unwrap_or_default();
        if matches!(outcome, LoginOutcome::Failed) {
            let status = step.header.status;
            failed(shared, &authority, &initiator, peer, status).await;
            send_response(tx, &step.header, step.data);
            return Err(Refused {
                initiator,
                status: Some(status),
            });
        }
        send_response(tx, &step.header, step.data);
        if let Some(logged_in) = done {
            let target = logged_in
                .target
                .as_ref()
                .map(|t| t.iqn.as_str())
                .unwrap_or("(discovery)");
            let auth = match (&logged_in.result.chap_user, logged_in.mutual) {
                (None, _) => "none",
                (Some(_), false) => "chap",
                (Some(_), true) => "mutual-chap",
            };
            shared
                .guard
                .success(&GuardKey::Initiator(initiator.to_ascii_lowercase()));
            shared.audit.record(
                "login",
                &[
                    ("outcome", "success"),
                    ("initiator", &initiator),
                    ("target", target),
                    ("address", &peer.to_string()),
                    ("auth", auth),
                    (
                        "chap_user",
                        logged_in.result.chap_user.as_deref().unwrap_or(""),
                    ),
                    ("tsih", &logged_in.tsih.to_string()),
                ],
            );
            info!(%peer, %initiator, target, tsih = logged_in.tsih, auth, "login succeeded");
            return Ok(logged_in);
        }
    }
}

fn send_response(tx: &OutTx, header: &LoginResponseHeader, data: Vec<u8>) {
    let bhs = encode_login_response(header, data.len() as u32);
    let _ = tx.send(Out::Pdu {
        bhs,
        data,
        status: true,
    });
}

/// A final login response refusing `req` with `status`.
fn refusal(req: &LoginRequestHeader, status: LoginStatus) -> LoginResponseHeader {
    LoginResponseHeader {
        transit: false,
        cont: false,
        csg: req.csg,
        nsg: req.nsg,
        version_max: 0,
        version_active: 0,
        isid: req.isid,
        tsih: 0,
        itt: req.itt,
        status,
    }
}

/// Accounts for a failed login: counts it, maybe locks out, audits, and
/// delays the answer of a locked-out attempt.
async fn failed(
    shared: &Shared,
    authority: &Authority<'_>,
    initiator: &str,
    peer: SocketAddr,
    status: LoginStatus,
) {
    let address = peer.to_string();
    let status_text = format!("{:#06x}", status.0);
    if authority.locked_out.load(Ordering::Relaxed) {
        shared.audit.record(
            "login",
            &[
                ("outcome", "locked_out"),
                ("initiator", initiator),
                ("address", &address),
                ("status", &status_text),
            ],
        );
        warn!(%peer, %initiator, "login refused: locked out after repeated failures");
        tokio::time::sleep(shared.guard.refusal_delay()).await;
        return;
    }
    shared.audit.record(
        "login",
        &[
            ("outcome", "failure"),
            ("initiator", initiator),
            ("address", &address),
            ("status", &status_text),
        ],
    );
    warn!(%peer, %initiator, status = %status_text, "login failed");
    if status == LoginStatus::AUTH_FAILURE || status == LoginStatus::AUTHORIZATION_FAILURE {
        let now = Instant::now();
        let mut keys = vec![GuardKey::Address(peer.ip())];
        if !initiator.is_empty() {
            keys.push(GuardKey::Initiator(initiator.to_ascii_lowercase()));
        }
        for key in keys {
            if shared.guard.failure(key.clone(), now) {
                let what = match &key {
                    GuardKey::Initiator(n) => ("initiator", n.clone()),
                    GuardKey::Address(a) => ("address", a.to_string()),
                };
                shared.audit.record("lockout", &[(what.0, &what.1)]);
                warn!(key = ?key, "too many failed logins; locked out for the cool-down");
            }
        }
    }
}

/// Final checks once negotiation succeeded: digest policy, session identity,
/// reinstatement. Returns the status to fail with otherwise.
async fn admit(
    shared: &Shared,
    result: LoginResult,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<LoggedIn, (LoginStatus, LoginResult)> {
    if result.session_type == SessionType::Discovery {
        let tsih = shared.alloc_tsih();
        let (done, _) = watch::channel(false);
        let (_, ctl) = mpsc::unbounded_channel();
        return Ok(LoggedIn {
            mutual: result.mutual,
            result,
            target: None,
            tsih,
            key: None,
            ctl,
            done,
        });
    }
    let Some(target) = result.target_name.as_deref().and_then(|n| shared.target(n)) else {
        return Err((LoginStatus::NOT_FOUND, result));
    };
    let p = &result.params;
    let (header, data) = Authority::digest_policies(target.view().spec.digests);
    let refused = |policy, got| policy == DigestPolicy::Required && got != Digest::Crc32c;
    if refused(header, p.header_digest) || refused(data, p.data_digest) {
        return Err((LoginStatus::INITIATOR_ERROR, result));
    }
    let key: SessionKey = (
        result.initiator_name.to_ascii_lowercase(),
        result.isid,
        target.iqn.to_ascii_lowercase(),
    );
    if result.tsih != 0 {
        // Adding a connection (MC/S) or continuing a session is not offered:
        // MaxConnections is 1 and ErrorRecoveryLevel 0.
        let exists = shared
            .sessions
            .lock()
            .map(|s| s.get(&key).is_some_and(|h| h.tsih == result.tsih))
            .unwrap_or(false);
        let status = if exists {
            LoginStatus::TOO_MANY_CONNECTIONS
        } else {
            LoginStatus::SESSION_DOES_NOT_EXIST
        };
        return Err((status, result));
    }
    // Session reinstatement: the same initiator port logging in again
    // replaces its old session, which must be gone before the new one runs.
    let old = shared.sessions.lock().ok().and_then(|mut s| s.remove(&key));
    if let Some(old) = old {
        info!(initiator = %result.initiator_name, tsih = old.tsih, "reinstating session");
        let _ = old.ctl.send(SessionCtl::Reinstated);
        let mut done = old.done;
        let _ = tokio::time::timeout(REINSTATE_WAIT, done.wait_for(|d| *d)).await;
    }
    let tsih = shared.alloc_tsih();
    let (ctl_tx, ctl) = mpsc::unbounded_channel();
    let (done, done_rx) = watch::channel(false);
    let info = session_info(&result, &target.iqn, tsih, peer, local);
    if let Ok(mut sessions) = shared.sessions.lock() {
        sessions.insert(
            key.clone(),
            SessionHandle {
                tsih,
                ctl: ctl_tx,
                done: done_rx,
                info,
            },
        );
    }
    Ok(LoggedIn {
        mutual: result.mutual,
        result,
        target: Some(target),
        tsih,
        key: Some(key),
        ctl,
        done,
    })
}

fn session_info(
    r: &LoginResult,
    target: &str,
    tsih: u16,
    peer: SocketAddr,
    local: SocketAddr,
) -> SessionInfo {
    let p = &r.params;
    let digest = |d: Digest| {
        if d == Digest::Crc32c {
            "CRC32C"
        } else {
            "None"
        }
        .to_string()
    };
    let yes_no = |b: bool| if b { "Yes" } else { "No" }.to_string();
    let params = BTreeMap::from([
        ("HeaderDigest", digest(p.header_digest)),
        ("DataDigest", digest(p.data_digest)),
        (
            "MaxRecvDataSegmentLength",
            p.max_recv_data_segment_length.to_string(),
        ),
        (
            "TargetMaxRecvDataSegmentLength",
            p.target_max_recv_data_segment_length.to_string(),
        ),
        ("MaxBurstLength", p.max_burst_length.to_string()),
        ("FirstBurstLength", p.first_burst_length.to_string()),
        ("InitialR2T", yes_no(p.initial_r2t)),
        ("ImmediateData", yes_no(p.immediate_data)),
        ("MaxOutstandingR2T", p.max_outstanding_r2t.to_string()),
        ("ErrorRecoveryLevel", p.error_recovery_level.to_string()),
    ]);
    SessionInfo {
        tsih,
        initiator: r.initiator_name.clone(),
        isid: r.isid.iter().map(|b| format!("{b:02x}")).collect(),
        target: target.to_string(),
        peer: peer.to_string(),
        portal: local.to_string(),
        since: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        auth: match (&r.chap_user, r.mutual) {
            (None, _) => "none",
            (Some(_), false) => "chap",
            (Some(_), true) => "mutual-chap",
        },
        params,
    }
}
