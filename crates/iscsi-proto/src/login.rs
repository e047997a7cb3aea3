//! The target side login state machine (RFC 7143 sections 6, 11.12, 11.13, 12).
//!
//! [`TargetLogin::handle`] consumes one Login Request (header fields and data
//! segment) and returns the Login Response to send plus what happens next.
//! The runtime converts headers to and from bytes (see `pdu`), fills in
//! StatSN/ExpCmdSN/MaxCmdSN, and sets the TSIH of the final response when it
//! creates a new session.

use std::mem;

use tracing::debug;

use crate::chap::{select_algorithm, ChapError, ChapResponseKeys, ChapTarget};
use crate::negotiation::{NegotiationError, Negotiator, SessionParams, TargetLimits};
use crate::text::{parse_text, split_list, TextWriter};

pub use crate::chap::{ChapAccount, ChapConfig, Secret};
pub use crate::negotiation::SessionType;

/// Largest request text accumulated across continued (C bit) PDUs.
pub const MAX_LOGIN_TEXT: usize = 64 * 1024;
/// Largest number of Login Requests in one login.
pub const MAX_LOGIN_PDUS: u32 = 32;
/// Largest response data segment (the initiator's default MaxRecvDataSegmentLength).
pub const MAX_LOGIN_RESPONSE_DATA: usize = 8192;

/// A login stage (CSG / NSG field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stage(pub u8);

impl Stage {
    /// SecurityNegotiation.
    pub const SECURITY: Stage = Stage(0);
    /// LoginOperationalNegotiation.
    pub const OPERATIONAL: Stage = Stage(1);
    /// FullFeaturePhase.
    pub const FULL_FEATURE: Stage = Stage(3);
}

/// Header fields of a Login Request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginRequestHeader {
    /// T bit: the initiator wants to move to `nsg`.
    pub transit: bool,
    /// C bit: the text continues in the next PDU.
    pub cont: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage (meaningful when `transit`).
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-min.
    pub version_min: u8,
    /// Initiator part of the session id.
    pub isid: [u8; 6],
    /// Target session identifying handle (0 for a new session).
    pub tsih: u16,
    /// Initiator task tag.
    pub itt: u32,
    /// Connection id.
    pub cid: u16,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

/// Header fields of a Login Response (sequence numbers excepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginResponseHeader {
    /// T bit: the target agrees to move to `nsg`.
    pub transit: bool,
    /// C bit: the text continues in the next PDU.
    pub cont: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage (meaningful when `transit`).
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-active.
    pub version_active: u8,
    /// Initiator part of the session id.
    pub isid: [u8; 6],
    /// Target session identifying handle.
    pub tsih: u16,
    /// Initiator task tag (echoed).
    pub itt: u32,
    /// Status-Class and Status-Detail.
    pub status: LoginStatus,
}

/// Login status: `class << 8 | detail` (RFC 7143 section 11.13.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoginStatus(pub u16);

impl LoginStatus {
    /// Success.
    pub const SUCCESS: Self = Self(0x0000);
    /// Target moved temporarily.
    pub const TARGET_MOVED_TEMP: Self = Self(0x0101);
    /// Target moved permanently.
    pub const TARGET_MOVED_PERM: Self = Self(0x0102);
    /// Miscellaneous initiator error.
    pub const INITIATOR_ERROR: Self = Self(0x0200);
    /// Authentication failure.
    pub const AUTH_FAILURE: Self = Self(0x0201);
    /// Authorization failure.
    pub const AUTHORIZATION_FAILURE: Self = Self(0x0202);
    /// Target not found.
    pub const NOT_FOUND: Self = Self(0x0203);
    /// Target removed.
    pub const TARGET_REMOVED: Self = Self(0x0204);
    /// Unsupported version.
    pub const UNSUPPORTED_VERSION: Self = Self(0x0205);
    /// Too many connections.
    pub const TOO_MANY_CONNECTIONS: Self = Self(0x0206);
    /// Missing parameter.
    pub const MISSING_PARAMETER: Self = Self(0x0207);
    /// Can't include in session.
    pub const CANT_INCLUDE_IN_SESSION: Self = Self(0x0208);
    /// Session type not supported.
    pub const SESSION_TYPE_NOT_SUPPORTED: Self = Self(0x0209);
    /// Session does not exist.
    pub const SESSION_DOES_NOT_EXIST: Self = Self(0x020a);
    /// Invalid request during login.
    pub const INVALID_DURING_LOGIN: Self = Self(0x020b);
    /// Target error.
    pub const TARGET_ERROR: Self = Self(0x0300);
    /// Service unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(0x0301);
    /// Out of resources.
    pub const OUT_OF_RESOURCES: Self = Self(0x0302);

    /// Status-Class.
    pub fn class(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Status-Detail.
    pub fn detail(self) -> u8 {
        self.0 as u8
    }

    /// True for class 0.
    pub fn is_success(self) -> bool {
        self.class() == 0
    }
}

/// How the initiator must authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthPolicy {
    /// No authentication.
    None,
    /// CHAP with one of these accounts (selected by `CHAP_N`).
    Chap(Vec<ChapAccount>),
}

/// The target's configuration, consulted once per login.
pub trait LoginAuthority {
    /// Called once the first PDU has given InitiatorName, SessionType and (Normal) TargetName.
    /// `Err(status)` fails the login with that status (NOT_FOUND for an unknown target,
    /// AUTHORIZATION_FAILURE when the initiator may not log in).
    fn authorize(
        &self,
        session_type: SessionType,
        target_name: Option<&str>,
        initiator_name: &str,
    ) -> Result<AuthPolicy, LoginStatus>;

    /// Adjusts the negotiation limits for the target being logged into (for
    /// example digests it requires). Called after a successful `authorize`.
    fn target_limits(&self, _target_name: Option<&str>, _limits: &mut TargetLimits) {}
}

/// A completed login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginResult {
    /// Negotiated parameters.
    pub params: SessionParams,
    /// Session type.
    pub session_type: SessionType,
    /// InitiatorName.
    pub initiator_name: String,
    /// TargetName (Normal sessions).
    pub target_name: Option<String>,
    /// ISID.
    pub isid: [u8; 6],
    /// TSIH as requested: 0 asks for a new session.
    pub tsih: u16,
    /// The authenticated CHAP user, if any.
    pub chap_user: Option<String>,
    /// Whether the target also proved its identity (mutual CHAP).
    pub mutual: bool,
}

/// What happens after a response is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Wait for the next Login Request.
    Continue,
    /// The login succeeded; the connection enters full feature phase.
    Complete(Box<LoginResult>),
    /// The login failed; send the response and close the connection.
    Failed,
}

/// One Login Response to send and the resulting outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginStep {
    /// Response header.
    pub header: LoginResponseHeader,
    /// Response data segment.
    pub data: Vec<u8>,
    /// What happens next.
    pub outcome: LoginOutcome,
}

/// Authentication progress.
#[derive(Clone, Debug, Default)]
enum Auth {
    /// `authorize` not called yet.
    #[default]
    Unknown,
    /// No authentication required.
    Open,
    /// CHAP required, AuthMethod not negotiated yet.
    Required(Vec<ChapAccount>),
    /// AuthMethod=CHAP agreed, waiting for CHAP_A.
    AwaitAlgorithm(Vec<ChapAccount>),
    /// Challenge sent, waiting for CHAP_N / CHAP_R.
    AwaitResponse(Vec<ChapAccount>, ChapTarget),
    /// CHAP succeeded.
    Done(String, bool),
}

impl Auth {
    fn satisfied(&self) -> bool {
        matches!(self, Auth::Open | Auth::Done(..))
    }
}

/// Identity fields that must not change during a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ids {
    isid: [u8; 6],
    tsih: u16,
    itt: u32,
    cid: u16,
}

/// Target side login state machine for one connection.
#[derive(Debug)]
pub struct TargetLogin {
    limits: TargetLimits,
    chap_cfg: ChapConfig,
    ids: Option<Ids>,
    stage: Option<Stage>,
    pdus: u32,
    text: Vec<u8>,
    negotiator: Option<Negotiator>,
    auth: Auth,
    security_seen: Vec<String>,
    tpgt_sent: bool,
    finished: bool,
}

impl TargetLogin {
    /// Creates the state machine for a new connection.
    pub fn new(limits: TargetLimits, chap_cfg: ChapConfig) -> Self {
        Self {
            limits,
            chap_cfg,
            ids: None,
            stage: None,
            pdus: 0,
            text: Vec::new(),
            negotiator: None,
            auth: Auth::Unknown,
            security_seen: Vec::new(),
            tpgt_sent: false,
            finished: false,
        }
    }

    /// True once the login completed or failed; further requests are errors.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Handles one Login Request. Never panics, whatever the input.
    pub fn handle(
        &mut self,
        hdr: &LoginRequestHeader,
        data: &[u8],
        authority: &dyn LoginAuthority,
    ) -> LoginStep {
        match self.step(hdr, data, authority) {
            Ok(step) => step,
            Err(status) => {
                debug!(status = format_args!("{:#06x}", status.0), "login failed");
                self.finished = true;
                LoginStep {
                    header: response(hdr, false, hdr.nsg, status),
                    data: Vec::new(),
                    outcome: LoginOutcome::Failed,
                }
            }
        }
    }

    fn step(
        &mut self,
        hdr: &LoginRequestHeader,
        data: &[u8],
        authority: &dyn LoginAuthority,
    ) -> Result<LoginStep, LoginStatus> {
        if self.finished {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        self.pdus += 1;
        if self.pdus > MAX_LOGIN_PDUS {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        if hdr.version_min != 0 {
            return Err(LoginStatus::UNSUPPORTED_VERSION);
        }
        let ids = Ids {
            isid: hdr.isid,
            tsih: hdr.tsih,
            itt: hdr.itt,
            cid: hdr.cid,
        };
        if *self.ids.get_or_insert(ids) != ids {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        self.check_stages(hdr)?;
        if self.text.len() + data.len() > MAX_LOGIN_TEXT {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        self.text.extend_from_slice(data);
        if hdr.cont {
            // Acknowledge a partial text with an empty response (RFC 7143 section 6.1).
            return Ok(LoginStep {
                header: response(hdr, false, hdr.nsg, LoginStatus::SUCCESS),
                data: Vec::new(),
                outcome: LoginOutcome::Continue,
            });
        }
        let text = mem::take(&mut self.text);
        let pairs = parse_text(&text).map_err(|e| {
            debug!(error = %e, "bad login text");
            LoginStatus::INITIATOR_ERROR
        })?;
        let mut negotiator = match self.negotiator.take() {
            Some(n) => n,
            None => self.first_request(&pairs, authority)?,
        };
        let (security, rest): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(k, _)| *k == "AuthMethod" || k.starts_with("CHAP_"));
        let mut out = TextWriter::new();
        let normal = negotiator.params().session_type == SessionType::Normal;
        if !self.tpgt_sent && normal {
            out.push_num(
                "TargetPortalGroupTag",
                self.limits.target_portal_group_tag.into(),
            );
        }
        self.tpgt_sent = true;

        let (transit, nsg) = if hdr.csg == Stage::SECURITY {
            let progressed = self.security(&security, &mut out)?;
            negotiator
                .respond(&rest, &mut out)
                .map_err(negotiation_failed)?;
            if !hdr.transit {
                (false, hdr.nsg)
            } else if self.auth.satisfied() {
                let needs_op = negotiator.needs_operational_stage();
                (
                    true,
                    if hdr.nsg == Stage::FULL_FEATURE && needs_op {
                        Stage::OPERATIONAL
                    } else {
                        hdr.nsg
                    },
                )
            } else if progressed {
                (false, hdr.nsg)
            } else {
                return Err(LoginStatus::AUTH_FAILURE);
            }
        } else {
            if !security.is_empty() {
                return Err(LoginStatus::INITIATOR_ERROR);
            }
            if !self.auth.satisfied() {
                return Err(LoginStatus::AUTH_FAILURE);
            }
            negotiator
                .respond(&rest, &mut out)
                .map_err(negotiation_failed)?;
            let pending = negotiator.write_target_keys(&mut out);
            (hdr.transit && !pending, hdr.nsg)
        };
        if out.len() > MAX_LOGIN_RESPONSE_DATA {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        let header = response(hdr, transit, nsg, LoginStatus::SUCCESS);
        if transit && nsg == Stage::FULL_FEATURE {
            let params = negotiator.finish().map_err(negotiation_failed)?;
            self.finished = true;
            let (chap_user, mutual) = match &self.auth {
                Auth::Done(user, mutual) => (Some(user.clone()), *mutual),
                _ => (None, false),
            };
            let result = LoginResult {
                session_type: params.session_type,
                initiator_name: params.initiator_name.clone(),
                target_name: params.target_name.clone(),
                params,
                isid: hdr.isid,
                tsih: hdr.tsih,
                chap_user,
                mutual,
            };
            return Ok(LoginStep {
                header,
                data: out.into_bytes(),
                outcome: LoginOutcome::Complete(Box::new(result)),
            });
        }
        if transit {
            self.stage = Some(nsg);
        }
        self.negotiator = Some(negotiator);
        Ok(LoginStep {
            header,
            data: out.into_bytes(),
            outcome: LoginOutcome::Continue,
        })
    }

    /// Checks CSG/NSG/T/C against the current stage.
    fn check_stages(&mut self, hdr: &LoginRequestHeader) -> Result<(), LoginStatus> {
        if hdr.csg != Stage::SECURITY && hdr.csg != Stage::OPERATIONAL {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        if *self.stage.get_or_insert(hdr.csg) != hdr.csg {
            return Err(LoginStatus::INITIATOR_ERROR);
        }
        if hdr.transit {
            let valid_next = hdr.nsg == Stage::OPERATIONAL || hdr.nsg == Stage::FULL_FEATURE;
            if hdr.cont || !valid_next || hdr.nsg <= hdr.csg {
                return Err(LoginStatus::INITIATOR_ERROR);
            }
        }
        Ok(())
    }

    /// Reads the names of the first request, consults the authority and
    /// prepares the negotiation.
    fn first_request(
        &mut self,
        pairs: &[(&str, &str)],
        authority: &dyn LoginAuthority,
    ) -> Result<Negotiator, LoginStatus> {
        let find = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let initiator_name = find("InitiatorName")
            .filter(|v| !v.is_empty())
            .ok_or(LoginStatus::MISSING_PARAMETER)?;
        let session_type = match find("SessionType") {
            None | Some("Normal") => SessionType::Normal,
            Some("Discovery") => SessionType::Discovery,
            Some(_) => return Err(LoginStatus::SESSION_TYPE_NOT_SUPPORTED),
        };
        let target_name = find("TargetName");
        if session_type == SessionType::Normal && target_name.unwrap_or_default().is_empty() {
            return Err(LoginStatus::MISSING_PARAMETER);
        }
        let target_name = if session_type == SessionType::Normal {
            target_name
        } else {
            None
        };
        let policy = authority.authorize(session_type, target_name, initiator_name)?;
        self.auth = match policy {
            AuthPolicy::None => Auth::Open,
            AuthPolicy::Chap(accounts) => Auth::Required(accounts),
        };
        let mut limits = self.limits.clone();
        authority.target_limits(target_name, &mut limits);
        let mut n = Negotiator::for_login(limits, session_type);
        // SessionType may be absent (default Normal); record the implied value.
        if find("SessionType").is_none() {
            n.respond(
                &[("SessionType", session_type.as_str())],
                &mut TextWriter::new(),
            )
            .map_err(negotiation_failed)?;
        }
        Ok(n)
    }

    /// Runs the security keys of one request. Returns true when
    /// authentication progressed (so the target answers with T=0).
    fn security(
        &mut self,
        keys: &[(&str, &str)],
        out: &mut TextWriter,
    ) -> Result<bool, LoginStatus> {
        let mut get = |name: &str| -> Result<Option<&str>, LoginStatus> {
            let mut it = keys.iter().filter(|(k, _)| *k == name);
            let first = it.next().map(|(_, v)| *v);
            if it.next().is_some()
                || (first.is_some() && self.security_seen.iter().any(|s| s == name))
            {
                return Err(LoginStatus::INITIATOR_ERROR);
            }
            if first.is_some() {
                self.security_seen.push(name.to_owned());
            }
            Ok(first)
        };
        let method = get("AuthMethod")?;
        let algorithm = get("CHAP_A")?;
        let chap = ChapResponseKeys {
            name: get("CHAP_N")?,
            response: get("CHAP_R")?,
            id: get("CHAP_I")?,
            challenge: get("CHAP_C")?,
        };
        let mut progressed = false;

        if let Some(list) = method {
            self.auth = match mem::take(&mut self.auth) {
                Auth::Required(accounts) if split_list(list).any(|m| m == "CHAP") => {
                    out.push("AuthMethod", "CHAP");
                    progressed = true;
                    Auth::AwaitAlgorithm(accounts)
                }
                Auth::Open => {
                    let none = split_list(list).any(|m| m == "None");
                    out.push("AuthMethod", if none { "None" } else { "Reject" });
                    Auth::Open
                }
                _ => return Err(LoginStatus::AUTH_FAILURE),
            };
        }
        if let Some(list) = algorithm {
            let Auth::AwaitAlgorithm(accounts) = mem::take(&mut self.auth) else {
                return Err(LoginStatus::AUTH_FAILURE);
            };
            let alg =
                select_algorithm(list, &self.chap_cfg.allowed).ok_or(LoginStatus::AUTH_FAILURE)?;
            let target = ChapTarget::new(alg).map_err(chap_failed)?;
            target.write_challenge(out);
            progressed = true;
            self.auth = Auth::AwaitResponse(accounts, target);
        }
        let any_response = chap.name.is_some()
            || chap.response.is_some()
            || chap.id.is_some()
            || chap.challenge.is_some();
        if any_response {
            let Auth::AwaitResponse(accounts, target) = mem::take(&mut self.auth) else {
                return Err(LoginStatus::AUTH_FAILURE);
            };
            let verified = target
                .verify(&accounts, chap, &self.chap_cfg)
                .map_err(chap_failed)?;
            if let Some((name, answer)) = &verified.mutual {
                out.push("CHAP_N", name).push_hex("CHAP_R", answer);
            }
            debug!(user = %verified.user, "CHAP authentication succeeded");
            progressed = true;
            self.auth = Auth::Done(verified.user, verified.mutual.is_some());
        }
        Ok(progressed)
    }
}

fn response(
    hdr: &LoginRequestHeader,
    transit: bool,
    nsg: Stage,
    status: LoginStatus,
) -> LoginResponseHeader {
    LoginResponseHeader {
        transit,
        cont: false,
        csg: hdr.csg,
        nsg,
        version_max: 0,
        version_active: 0,
        isid: hdr.isid,
        tsih: hdr.tsih,
        itt: hdr.itt,
        status,
    }
}

fn negotiation_failed(e: NegotiationError) -> LoginStatus {
    debug!(error = %e, "negotiation failed");
    LoginStatus::INITIATOR_ERROR
}

fn chap_failed(e: ChapError) -> LoginStatus {
    debug!(error = %e, "CHAP failed");
    match e {
        ChapError::Random => LoginStatus::TARGET_ERROR,
        _ => LoginStatus::AUTH_FAILURE,
    }
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
