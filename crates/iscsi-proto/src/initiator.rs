//! The initiator side of login, for in-memory tests, integration tests and
//! load tools.
//!
//! [`InitiatorLogin`] produces Login Requests and consumes Login Responses:
//! security stage (none or CHAP, optionally mutual), operational negotiation,
//! and text continuation (C bit) in both directions.

use std::collections::{HashSet, VecDeque};

use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::chap::{random_challenge, ChapAlgorithm, Secret};
use crate::login::{LoginRequestHeader, LoginResponseHeader, LoginStatus, Stage};
use crate::negotiation::{Digest, SessionParams, SessionType};
use crate::text::{
    bool_str, decode_binary, parse_bool, parse_number_in, parse_text, split_list, TextError,
    TextWriter, IRRELEVANT, NOT_UNDERSTOOD, REJECT,
};

/// CHAP credentials of the initiator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiatorChap {
    /// `CHAP_N` sent to the target.
    pub user: String,
    /// Secret shared with the target.
    pub secret: Secret,
    /// Mutual CHAP: the name and secret the target must answer with.
    pub mutual: Option<(String, Secret)>,
    /// `CHAP_A` list, in preference order.
    pub algorithms: Vec<ChapAlgorithm>,
}

/// Operational keys the initiator offers (values follow open-iscsi defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationalOffer {
    /// HeaderDigest list.
    pub header_digest: Vec<Digest>,
    /// DataDigest list.
    pub data_digest: Vec<Digest>,
    /// MaxRecvDataSegmentLength declared.
    pub max_recv_data_segment_length: u32,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength.
    pub first_burst_length: u32,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// ImmediateData.
    pub immediate_data: bool,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u16,
    /// MaxConnections.
    pub max_connections: u16,
    /// DefaultTime2Wait.
    pub default_time2wait: u16,
    /// DefaultTime2Retain.
    pub default_time2retain: u16,
    /// ErrorRecoveryLevel.
    pub error_recovery_level: u8,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// Send the obsolete `IFMarker=No` / `OFMarker=No` like open-iscsi.
    pub send_markers: bool,
    /// Further raw pairs to send (vendor keys, tests).
    pub extra: Vec<(String, String)>,
}

impl Default for OperationalOffer {
    fn default() -> Self {
        Self {
            header_digest: vec![Digest::None],
            data_digest: vec![Digest::None],
            max_recv_data_segment_length: 262_144,
            max_burst_length: 16_776_192,
            first_burst_length: 262_144,
            initial_r2t: false,
            immediate_data: true,
            max_outstanding_r2t: 1,
            max_connections: 1,
            default_time2wait: 2,
            default_time2retain: 0,
            error_recovery_level: 0,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            send_markers: true,
            extra: Vec::new(),
        }
    }
}

/// Initiator login configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiatorConfig {
    /// InitiatorName.
    pub initiator_name: String,
    /// InitiatorAlias.
    pub initiator_alias: Option<String>,
    /// TargetName; `None` logs in to a discovery session.
    pub target_name: Option<String>,
    /// ISID.
    pub isid: [u8; 6],
    /// TSIH (0: new session).
    pub tsih: u16,
    /// CID.
    pub cid: u16,
    /// ITT used for every PDU of the login.
    pub itt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// CHAP credentials; `None` offers `AuthMethod=None`.
    pub chap: Option<InitiatorChap>,
    /// Without CHAP, start directly in the operational stage (as libiscsi does).
    pub skip_security: bool,
    /// Operational keys.
    pub offer: OperationalOffer,
    /// Largest data segment per request; longer text is continued (C bit).
    pub max_data_per_pdu: usize,
}

impl InitiatorConfig {
    /// A configuration with defaults for the given names.
    pub fn new(initiator_name: &str, target_name: Option<&str>) -> Self {
        Self {
            initiator_name: initiator_name.to_owned(),
            initiator_alias: None,
            target_name: target_name.map(str::to_owned),
            isid: [0x80, 0, 0, 0, 0, 1],
            tsih: 0,
            cid: 0,
            itt: 1,
            cmd_sn: 1,
            chap: None,
            skip_security: false,
            offer: OperationalOffer::default(),
            max_data_per_pdu: 8192,
        }
    }
}

/// The next action of the initiator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitiatorStep {
    /// Send this request and wait for the response.
    Send(LoginRequestHeader, Vec<u8>),
    /// Login complete: negotiated parameters and the TSIH the target assigned.
    Done(SessionParams, u16),
}

/// Why the initiator gave up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InitiatorError {
    /// The target failed the login with this status.
    #[error("login rejected with status {:#06x}", .0 .0)]
    Rejected(LoginStatus),
    /// The target's response text is malformed.
    #[error("bad response text: {0}")]
    Text(#[from] TextError),
    /// The target broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The target failed mutual CHAP authentication.
    #[error("target failed mutual authentication")]
    MutualAuthFailed,
}

fn proto(msg: impl Into<String>) -> InitiatorError {
    InitiatorError::Protocol(msg.into())
}

/// Security stage progress.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Sec {
    /// AuthMethod sent.
    AwaitMethod,
    /// AuthMethod=CHAP agreed; CHAP_A to send.
    SendAlgorithm,
    /// CHAP_A sent.
    AwaitChallenge,
    /// CHAP_R sent; the mutual answer we expect, if any.
    AwaitVerdict(Option<Vec<u8>>),
    /// Authentication finished on our side.
    Done,
}

/// Initiator side login driver.
#[derive(Debug)]
pub struct InitiatorLogin {
    cfg: InitiatorConfig,
    stage: Stage,
    sec: Sec,
    params: SessionParams,
    offered: HashSet<String>,
    op_sent: bool,
    replies: Vec<(String, String)>,
    outgoing: VecDeque<Vec<u8>>,
    final_flags: (bool, Stage),
    rx: Vec<u8>,
}

impl InitiatorLogin {
    /// Creates the driver.
    pub fn new(cfg: InitiatorConfig) -> Self {
        let params = SessionParams {
            session_type: if cfg.target_name.is_some() {
                SessionType::Normal
            } else {
                SessionType::Discovery
            },
            initiator_name: cfg.initiator_name.clone(),
            initiator_alias: cfg.initiator_alias.clone(),
            target_name: cfg.target_name.clone(),
            ..SessionParams::default()
        };
        Self {
            cfg,
            stage: Stage::SECURITY,
            sec: Sec::AwaitMethod,
            params,
            offered: HashSet::new(),
            op_sent: false,
            replies: Vec::new(),
            outgoing: VecDeque::new(),
            final_flags: (false, Stage::SECURITY),
            rx: Vec::new(),
        }
    }

    /// Produces the first Login Request.
    pub fn start(&mut self) -> (LoginRequestHeader, Vec<u8>) {
        let mut w = TextWriter::new();
        w.push("InitiatorName", &self.cfg.initiator_name);
        if let Some(alias) = &self.cfg.initiator_alias {
            w.push("InitiatorAlias", alias);
        }
        if let Some(target) = &self.cfg.target_name {
            w.push("TargetName", target);
        }
        w.push("SessionType", self.params.session_type.as_str());
        let nsg = if self.cfg.skip_security && self.cfg.chap.is_none() {
            self.stage = Stage::OPERATIONAL;
            self.sec = Sec::Done;
            self.write_offer(&mut w);
            Stage::FULL_FEATURE
        } else {
            w.push(
                "AuthMethod",
                if self.cfg.chap.is_some() {
                    "CHAP"
                } else {
                    "None"
                },
            );
            Stage::OPERATIONAL
        };
        self.send(w.into_bytes(), true, nsg)
    }

    fn header(&self, transit: bool, cont: bool, nsg: Stage) -> LoginRequestHeader {
        LoginRequestHeader {
            transit,
            cont,
            csg: self.stage,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: self.cfg.isid,
            tsih: self.cfg.tsih,
            itt: self.cfg.itt,
            cid: self.cfg.cid,
            cmd_sn: self.cfg.cmd_sn,
            exp_stat_sn: 0,
        }
    }

    /// Queues `text` (split with the C bit when needed) and returns the first PDU.
    fn send(&mut self, text: Vec<u8>, transit: bool, nsg: Stage) -> (LoginRequestHeader, Vec<u8>) {
        let max = self.cfg.max_data_per_pdu.max(1);
        self.outgoing = text.chunks(max).map(<[u8]>::to_vec).collect();
        self.final_flags = (transit, nsg);
        self.next_chunk()
    }

    fn next_chunk(&mut self) -> (LoginRequestHeader, Vec<u8>) {
        let data = self.outgoing.pop_front().unwrap_or_default();
        let last = self.outgoing.is_empty();
        let (transit, nsg) = self.final_flags;
        (self.header(transit && last, !last, nsg), data)
    }

    fn write_offer(&mut self, w: &mut TextWriter) {
        let o = &self.cfg.offer;
        let list = |ds: &[Digest]| ds.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(",");
        let mut pairs = vec![
            ("HeaderDigest", list(&o.header_digest)),
            ("DataDigest", list(&o.data_digest)),
            (
                "MaxRecvDataSegmentLength",
                o.max_recv_data_segment_length.to_string(),
            ),
        ];
        if self.params.session_type == SessionType::Normal {
            pairs.extend([
                ("InitialR2T", bool_str(o.initial_r2t).to_owned()),
                ("ImmediateData", bool_str(o.immediate_data).to_owned()),
                ("MaxBurstLength", o.max_burst_length.to_string()),
                ("FirstBurstLength", o.first_burst_length.to_string()),
                ("MaxOutstandingR2T", o.max_outstanding_r2t.to_string()),
                ("MaxConnections", o.max_connections.to_string()),
                ("DataPDUInOrder", bool_str(o.data_pdu_in_order).to_owned()),
                (
                    "DataSequenceInOrder",
                    bool_str(o.data_sequence_in_order).to_owned(),
                ),
            ]);
        }
        pairs.extend([
            ("DefaultTime2Wait", o.default_time2wait.to_string()),
            ("DefaultTime2Retain", o.default_time2retain.to_string()),
            ("ErrorRecoveryLevel", o.error_recovery_level.to_string()),
        ]);
        if o.send_markers {
            pairs.extend([("IFMarker", "No".to_owned()), ("OFMarker", "No".to_owned())]);
        }
        for (k, v) in &pairs {
            w.push(k, v);
            self.offered.insert((*k).to_owned());
        }
        for (k, v) in &o.extra {
            w.push(k, v);
            self.offered.insert(k.clone());
        }
        self.params.max_recv_data_segment_length = o.max_recv_data_segment_length;
        self.op_sent = true;
    }

    /// Consumes one Login Response.
    pub fn handle(
        &mut self,
        hdr: &LoginResponseHeader,
        data: &[u8],
    ) -> Result<InitiatorStep, InitiatorError> {
        if !hdr.status.is_success() {
            return Err(InitiatorError::Rejected(hdr.status));
        }
        if hdr.itt != self.cfg.itt || hdr.isid != self.cfg.isid || hdr.csg != self.stage {
            return Err(proto("response does not match the request"));
        }
        if !self.outgoing.is_empty() {
            if !data.is_empty() || hdr.transit || hdr.cont {
                return Err(proto("non-empty response to a continued request"));
            }
            let (h, d) = self.next_chunk();
            return Ok(InitiatorStep::Send(h, d));
        }
        self.rx.extend_from_slice(data);
        if hdr.cont {
            if hdr.transit {
                return Err(proto("C and T both set"));
            }
            let (h, d) = self.send(Vec::new(), false, Stage(0));
            return Ok(InitiatorStep::Send(h, d));
        }
        let text = std::mem::take(&mut self.rx);
        let pairs = parse_text(&text)?;
        let (chap, other): (Vec<_>, Vec<_>) =
            pairs.into_iter().partition(|(k, _)| k.starts_with("CHAP_"));
        for (key, value) in other {
            self.take_key(key, value)?;
        }
        let mut w = TextWriter::new();
        if self.stage == Stage::SECURITY {
            self.chap(&chap, hdr.transit, &mut w)?;
        } else if !chap.is_empty() {
            return Err(proto("CHAP key outside the security stage"));
        }
        if hdr.transit {
            if hdr.nsg <= self.stage || hdr.nsg == Stage(2) {
                return Err(proto("bad NSG"));
            }
            if self.stage == Stage::SECURITY && self.sec != Sec::Done {
                return Err(proto(
                    "target left the security stage before authentication finished",
                ));
            }
            self.stage = hdr.nsg;
            if hdr.nsg == Stage::FULL_FEATURE {
                if !self.replies.is_empty() {
                    return Err(proto("target finished with its offers unanswered"));
                }
                return Ok(InitiatorStep::Done(self.params.clone(), hdr.tsih));
            }
        }
        let (h, d) = if self.stage == Stage::SECURITY {
            let transit = matches!(self.sec, Sec::Done | Sec::AwaitVerdict(_));
            self.send(w.into_bytes(), transit, Stage::OPERATIONAL)
        } else {
            if !self.op_sent {
                self.write_offer(&mut w);
            }
            for (k, v) in std::mem::take(&mut self.replies) {
                w.push(&k, &v);
            }
            self.send(w.into_bytes(), true, Stage::FULL_FEATURE)
        };
        Ok(InitiatorStep::Send(h, d))
    }

    /// Runs the CHAP keys of one security stage response.
    fn chap(
        &mut self,
        keys: &[(&str, &str)],
        transit: bool,
        w: &mut TextWriter,
    ) -> Result<(), InitiatorError> {
        let get = |name: &str| keys.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        match std::mem::replace(&mut self.sec, Sec::Done) {
            Sec::SendAlgorithm => {
                let chap = self
                    .cfg
                    .chap
                    .as_ref()
                    .ok_or_else(|| proto("CHAP not configured"))?;
                let list: Vec<String> = chap.algorithms.iter().map(|a| a.0.to_string()).collect();
                w.push("CHAP_A", &list.join(","));
                self.sec = Sec::AwaitChallenge;
            }
            Sec::AwaitChallenge => {
                let chap = self
                    .cfg
                    .chap
                    .as_ref()
                    .ok_or_else(|| proto("CHAP not configured"))?;
                let (a, i, c) = match (get("CHAP_A"), get("CHAP_I"), get("CHAP_C")) {
                    (Some(a), Some(i), Some(c)) => (a, i, c),
                    _ => return Err(proto("incomplete CHAP challenge")),
                };
                let alg = ChapAlgorithm(parse_number_in(a, 0, 255)? as u8);
                if !chap.algorithms.contains(&alg) {
                    return Err(proto("target chose an algorithm we did not offer"));
                }
                let id = parse_number_in(i, 0, 255)? as u8;
                let challenge = decode_binary(c)?;
                let response = alg
                    .hash(id, chap.secret.expose(), &challenge)
                    .ok_or_else(|| proto("bad CHAP_A"))?;
                w.push("CHAP_N", &chap.user).push_hex("CHAP_R", &response);
                let mut expected = None;
                if let Some((_, secret)) = &chap.mutual {
                    let my_id = id.wrapping_add(1);
                    let my_challenge =
                        random_challenge(32).map_err(|_| proto("random generator failure"))?;
                    expected = alg.hash(my_id, secret.expose(), &my_challenge);
                    w.push_num("CHAP_I", my_id.into())
                        .push_hex("CHAP_C", &my_challenge);
                }
                self.sec = Sec::AwaitVerdict(expected);
            }
            Sec::AwaitVerdict(expected) => {
                if let Some(expected) = expected {
                    let (user, _) = self
                        .cfg
                        .chap
                        .as_ref()
                        .and_then(|c| c.mutual.as_ref())
                        .ok_or(InitiatorError::MutualAuthFailed)?;
                    let ok = get("CHAP_N") == Some(user.as_str())
                        && get("CHAP_R")
                            .and_then(|r| decode_binary(r).ok())
                            .is_some_and(|r| {
                                r.len() == expected.len() && bool::from(r.ct_eq(&expected))
                            });
                    if !ok {
                        return Err(InitiatorError::MutualAuthFailed);
                    }
                } else if !keys.is_empty() {
                    return Err(proto("unexpected CHAP keys"));
                }
                if !transit {
                    return Err(proto("target did not accept the CHAP response"));
                }
            }
            other => {
                if !keys.is_empty() {
                    return Err(proto("unexpected CHAP keys"));
                }
                self.sec = other;
            }
        }
        Ok(())
    }

    fn take_key(&mut self, key: &str, value: &str) -> Result<(), InitiatorError> {
        match key {
            "AuthMethod" => {
                self.sec = match (value, self.cfg.chap.is_some(), &self.sec) {
                    ("CHAP", true, Sec::AwaitMethod) => Sec::SendAlgorithm,
                    ("None", false, Sec::AwaitMethod) => Sec::Done,
                    _ => return Err(proto(format!("unexpected AuthMethod={value}"))),
                };
                Ok(())
            }
            "TargetPortalGroupTag" | "TargetAlias" | "TargetAddress" => Ok(()),
            "MaxRecvDataSegmentLength" => {
                self.params.target_max_recv_data_segment_length =
                    parse_number_in(value, 512, (1 << 24) - 1)? as u32;
                Ok(())
            }
            _ if self.offered.remove(key) => {
                apply_answer(&mut self.params, &self.cfg.offer, key, value)
            }
            _ => {
                let reply = reply_to_offer(&mut self.params, &self.cfg.offer, key, value)?;
                self.replies.push((key.to_owned(), reply));
                Ok(())
            }
        }
    }
}

/// How a key's result is computed, with the initiator's own value.
enum Kind<'a> {
    Digest(&'a [Digest]),
    Min(u64),
    Max(u64),
    And(bool),
    Or(bool),
}

fn kind<'a>(o: &'a OperationalOffer, key: &str) -> Option<Kind<'a>> {
    Some(match key {
        "HeaderDigest" => Kind::Digest(&o.header_digest),
        "DataDigest" => Kind::Digest(&o.data_digest),
        "MaxBurstLength" => Kind::Min(o.max_burst_length.into()),
        "FirstBurstLength" => Kind::Min(o.first_burst_length.into()),
        "MaxOutstandingR2T" => Kind::Min(o.max_outstanding_r2t.into()),
        "MaxConnections" => Kind::Min(o.max_connections.into()),
        "DefaultTime2Retain" => Kind::Min(o.default_time2retain.into()),
        "ErrorRecoveryLevel" => Kind::Min(o.error_recovery_level.into()),
        "DefaultTime2Wait" => Kind::Max(o.default_time2wait.into()),
        "ImmediateData" => Kind::And(o.immediate_data),
        "InitialR2T" => Kind::Or(o.initial_r2t),
        "DataPDUInOrder" => Kind::Or(o.data_pdu_in_order),
        "DataSequenceInOrder" => Kind::Or(o.data_sequence_in_order),
        _ => return None,
    })
}

/// Records a final value in `p`.
fn store(p: &mut SessionParams, key: &str, value: &str) -> Result<(), InitiatorError> {
    let n = |max: u64| parse_number_in(value, 0, max);
    let digest = || Digest::parse(value).ok_or_else(|| proto(format!("bad {key}")));
    match key {
        "HeaderDigest" => p.header_digest = digest()?,
        "DataDigest" => p.data_digest = digest()?,
        "MaxBurstLength" => p.max_burst_length = n((1 << 24) - 1)? as u32,
        "FirstBurstLength" => p.first_burst_length = n((1 << 24) - 1)? as u32,
        "MaxOutstandingR2T" => p.max_outstanding_r2t = n(65535)? as u16,
        "MaxConnections" => p.max_connections = n(65535)? as u16,
        "DefaultTime2Retain" => p.default_time2retain = n(3600)? as u16,
        "DefaultTime2Wait" => p.default_time2wait = n(3600)? as u16,
        "ErrorRecoveryLevel" => p.error_recovery_level = n(2)? as u8,
        "ImmediateData" => p.immediate_data = parse_bool(value)?,
        "InitialR2T" => p.initial_r2t = parse_bool(value)?,
        "DataPDUInOrder" => p.data_pdu_in_order = parse_bool(value)?,
        "DataSequenceInOrder" => p.data_sequence_in_order = parse_bool(value)?,
        _ => {}
    }
    Ok(())
}

/// Applies the target's answer to a key we offered, checking it is admissible.
fn apply_answer(
    p: &mut SessionParams,
    o: &OperationalOffer,
    key: &str,
    value: &str,
) -> Result<(), InitiatorError> {
    if [REJECT, IRRELEVANT, NOT_UNDERSTOOD].contains(&value) {
        return Ok(());
    }
    let bad = || proto(format!("inadmissible answer {key}={value}"));
    let ok = match kind(o, key) {
        None => return Ok(()),
        Some(Kind::Digest(ours)) => Digest::parse(value).is_some_and(|d| ours.contains(&d)),
        Some(Kind::Min(ours)) => parse_number_in(value, 0, ours).is_ok(),
        Some(Kind::Max(ours)) => parse_number_in(value, ours, u64::MAX).is_ok(),
        Some(Kind::And(ours)) => parse_bool(value).is_ok_and(|v| ours || !v),
        Some(Kind::Or(ours)) => parse_bool(value).is_ok_and(|v| !ours || v),
    };
    if !ok {
        return Err(bad());
    }
    store(p, key, value)
}

/// Answers a key the target offered on its own.
fn reply_to_offer(
    p: &mut SessionParams,
    o: &OperationalOffer,
    key: &str,
    value: &str,
) -> Result<String, InitiatorError> {
    let reply = match kind(o, key) {
        None => return Ok(NOT_UNDERSTOOD.to_owned()),
        Some(Kind::Digest(ours)) => {
            match split_list(value)
                .filter_map(Digest::parse)
                .find(|d| ours.contains(d))
            {
                Some(d) => d.as_str().to_owned(),
                None => return Ok(REJECT.to_owned()),
            }
        }
        Some(Kind::Min(ours)) => parse_number_in(value, 0, u64::from(u32::MAX))?
            .min(ours)
            .to_string(),
        Some(Kind::Max(ours)) => parse_number_in(value, 0, u64::from(u32::MAX))?
            .max(ours)
            .to_string(),
        Some(Kind::And(ours)) => bool_str(parse_bool(value)? && ours).to_owned(),
        Some(Kind::Or(ours)) => bool_str(parse_bool(value)? || ours).to_owned(),
    };
    store(p, key, &reply)?;
    Ok(reply)
}
