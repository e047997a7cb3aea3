//! Drives the sans-IO login state machine over a connection and applies the
//! target's configuration: which targets exist, who may log in, how.

use std::sync::Arc;
use std::time::Duration;

use iscsi_proto::chap::Secret;
use iscsi_proto::login::{
    AuthPolicy, ChapAccount, LoginAuthority, LoginOutcome, LoginResult, LoginStatus, SessionType,
    TargetLogin,
};
use iscsi_proto::negotiation::{Digest, TargetLimits};
use iscsi_proto::pdu::{encode_login_response, Request};
use tokio::io::AsyncRead;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use crate::config::{AuthMode, DigestMode};
use crate::frame::PduReader;
use crate::server::{SessionHandle, SessionKey, Shared, TargetNode};
use crate::writer::{CmdWindow, Out, OutTx};

/// Largest data segment accepted before login completes (issue: flooding clients).
pub(crate) const LOGIN_MAX_DATA: u32 = 8192;
/// How long a reinstated session may take to go away.
const REINSTATE_WAIT: Duration = Duration::from_secs(5);

/// A completed login.
pub(crate) struct LoggedIn {
    pub result: LoginResult,
    pub target: Option<Arc<TargetNode>>,
    pub tsih: u16,
    pub key: Option<SessionKey>,
    /// Notified when a newer login reinstates this session.
    pub kill: Arc<Notify>,
    /// Set when the session has ended.
    pub done: watch::Sender<bool>,
}

struct Authority<'a> {
    shared: &'a Shared,
}

impl LoginAuthority for Authority<'_> {
    fn authorize(
        &self,
        session_type: SessionType,
        target_name: Option<&str>,
        initiator_name: &str,
    ) -> Result<AuthPolicy, LoginStatus> {
        match session_type {
            SessionType::Discovery => match (
                &self.shared.discovery.chap_user,
                &self.shared.discovery.chap_secret,
            ) {
                (Some(user), Some(secret)) if self.shared.discovery.auth == AuthMode::Chap => {
                    Ok(AuthPolicy::Chap(vec![ChapAccount {
                        user: user.clone(),
                        secret: Secret::new(secret.as_bytes().to_vec()),
                        mutual: None,
                    }]))
                }
                _ => Ok(AuthPolicy::None),
            },
            SessionType::Normal => {
                let name = target_name.ok_or(LoginStatus::MISSING_PARAMETER)?;
                let target = self.shared.target(name).ok_or(LoginStatus::NOT_FOUND)?;
                let acl = target
                    .acl_for(initiator_name)
                    .ok_or(LoginStatus::AUTHORIZATION_FAILURE)?;
                match (target.auth, &acl.chap_user, &acl.chap_secret) {
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
}

fn limits(shared: &Shared) -> TargetLimits {
    let s = &shared.settings;
    TargetLimits {
        max_recv_data_segment_length: s.max_recv_data_segment_length,
        max_burst_length: s.max_burst_length,
        first_burst_length: s.first_burst_length,
        immediate_data: s.immediate_data,
        initial_r2t: s.initial_r2t,
        max_outstanding_r2t: s.max_outstanding_r2t,
        ..TargetLimits::default()
    }
}

/// Runs the login phase. `Err` means the connection must close (the failure
/// response, if any, is already queued).
pub(crate) async fn run<R: AsyncRead + Unpin>(
    shared: &Shared,
    reader: &mut PduReader<R>,
    tx: &OutTx,
    window: &CmdWindow,
    peer: std::net::SocketAddr,
) -> Result<LoggedIn, ()> {
    let mut machine = TargetLogin::new(limits(shared), Default::default());
    let mut first = true;
    loop {
        let frame = reader
            .next()
            .await
            .map_err(|e| warn!(%peer, error = %e, "login aborted"))?;
        let hdr = match Request::parse(&frame.bhs) {
            Request::Login(h) => h,
            other => {
                warn!(%peer, pdu = ?other, "non-login PDU during login; closing");
                return Err(());
            }
        };
        if first {
            window.reset(hdr.cmd_sn);
            first = false;
        }
        let authority = Authority { shared };
        let mut step = machine.handle(&hdr, frame.data, &authority);
        let mut outcome = std::mem::replace(&mut step.outcome, LoginOutcome::Continue);
        let mut done = None;
        if let LoginOutcome::Complete(result) = outcome {
            match admit(shared, *result).await {
                Ok(logged_in) => {
                    step.header.tsih = logged_in.tsih;
                    done = Some(logged_in);
                    outcome = LoginOutcome::Continue;
                }
                Err((status, result)) => {
                    warn!(%peer, initiator = %result.initiator_name, ?status, "login refused");
                    step.header.status = status;
                    step.header.transit = false;
                    step.data.clear();
                    outcome = LoginOutcome::Failed;
                }
            }
        }
        let bhs = encode_login_response(&step.header, step.data.len() as u32);
        let _ = tx.send(Out::Pdu {
            bhs,
            data: step.data,
            status: true,
        });
        if let Some(logged_in) = done {
            info!(
                %peer,
                initiator = %logged_in.result.initiator_name,
                target = logged_in.target.as_ref().map(|t| t.iqn.as_str()).unwrap_or("(discovery)"),
                tsih = logged_in.tsih,
                chap_user = logged_in.result.chap_user.as_deref().unwrap_or("-"),
                "login succeeded"
            );
            return Ok(logged_in);
        }
        if matches!(outcome, LoginOutcome::Failed) {
            warn!(%peer, status = ?step.header.status, "login failed");
            return Err(());
        }
    }
}

/// Final checks once negotiation succeeded: digest policy, session identity,
/// reinstatement. Returns the status to fail with otherwise.
async fn admit(
    shared: &Shared,
    result: LoginResult,
) -> Result<LoggedIn, (LoginStatus, LoginResult)> {
    if result.session_type == SessionType::Discovery {
        let tsih = shared.alloc_tsih();
        let (done, _) = watch::channel(false);
        return Ok(LoggedIn {
            result,
            target: None,
            tsih,
            key: None,
            kill: Arc::new(Notify::new()),
            done,
        });
    }
    let Some(target) = result.target_name.as_deref().and_then(|n| shared.target(n)) else {
        return Err((LoginStatus::NOT_FOUND, result));
    };
    let p = &result.params;
    if target.digests == DigestMode::Required
        && (p.header_digest != Digest::Crc32c || p.data_digest != Digest::Crc32c)
    {
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
        old.kill.notify_one();
        let mut done = old.done;
        let _ = tokio::time::timeout(REINSTATE_WAIT, done.wait_for(|d| *d)).await;
    }
    let tsih = shared.alloc_tsih();
    let kill = Arc::new(Notify::new());
    let (done, done_rx) = watch::channel(false);
    if let Ok(mut sessions) = shared.sessions.lock() {
        sessions.insert(
            key.clone(),
            SessionHandle {
                tsih,
                kill: kill.clone(),
                done: done_rx,
            },
        );
    }
    Ok(LoggedIn {
        result,
        target: Some(target),
        tsih,
        key: Some(key),
        kill,
        done,
    })
}
