//! Operational parameter negotiation, target side (RFC 7143 sections 6.2 and 13).
//!
//! A [`Negotiator`] answers the initiator's keys according to each key's
//! result function, remembers which keys were already negotiated (a key sent
//! twice is a protocol error), offers keys the target needs with a non-default
//! value, and yields the resulting [`SessionParams`]. The same engine serves
//! the login operational stage and full-feature Text requests.

use std::collections::HashSet;

use thiserror::Error;
use tracing::debug;

use crate::text::{
    bool_str, parse_bool, parse_number_in, split_list, TextWriter, IRRELEVANT, NOT_UNDERSTOOD,
    REJECT,
};

/// Smallest legal MaxRecvDataSegmentLength / MaxBurstLength / FirstBurstLength.
pub const MIN_DATA_LEN: u32 = 512;
/// Largest legal MaxRecvDataSegmentLength / MaxBurstLength / FirstBurstLength.
pub const MAX_DATA_LEN: u32 = (1 << 24) - 1;
/// Data segment limit that applies before MaxRecvDataSegmentLength is declared.
pub const DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH: u32 = 8192;

/// A header or data digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Digest {
    /// No digest.
    #[default]
    None,
    /// CRC32C (RFC 7143 section 11.1).
    Crc32c,
}

impl Digest {
    /// The key value: `None` or `CRC32C`.
    pub fn as_str(self) -> &'static str {
        match self {
            Digest::None => "None",
            Digest::Crc32c => "CRC32C",
        }
    }

    /// Parses `None` / `CRC32C`.
    pub fn parse(value: &str) -> Option<Digest> {
        match value {
            "None" => Some(Digest::None),
            "CRC32C" => Some(Digest::Crc32c),
            _ => None,
        }
    }
}

/// Which digests the target accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DigestPolicy {
    /// Accept the first of the initiator's values that is supported.
    #[default]
    Optional,
    /// Only CRC32C is acceptable; the login fails otherwise.
    Required,
}

/// The kind of session being logged in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionType {
    /// A session with a target, carrying SCSI commands.
    #[default]
    Normal,
    /// A discovery session (SendTargets only).
    Discovery,
}

impl SessionType {
    /// The key value: `Normal` or `Discovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Normal => "Normal",
            SessionType::Discovery => "Discovery",
        }
    }
}

/// Negotiated session and connection parameters, with RFC 7143 defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionParams {
    /// HeaderDigest.
    pub header_digest: Digest,
    /// DataDigest.
    pub data_digest: Digest,
    /// MaxRecvDataSegmentLength declared by the initiator: the largest data
    /// segment the target may send.
    pub max_recv_data_segment_length: u32,
    /// MaxRecvDataSegmentLength declared by the target: the largest data
    /// segment the target accepts.
    pub target_max_recv_data_segment_length: u32,
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
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// DefaultTime2Wait, seconds.
    pub default_time2wait: u16,
    /// DefaultTime2Retain, seconds.
    pub default_time2retain: u16,
    /// ErrorRecoveryLevel.
    pub error_recovery_level: u8,
    /// MaxConnections.
    pub max_connections: u16,
    /// InitiatorName (empty until declared).
    pub initiator_name: String,
    /// InitiatorAlias.
    pub initiator_alias: Option<String>,
    /// TargetName.
    pub target_name: Option<String>,
    /// SessionType.
    pub session_type: SessionType,
}

impl Default for SessionParams {
    fn default() -> Self {
        Self {
            header_digest: Digest::None,
            data_digest: Digest::None,
            max_recv_data_segment_length: DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH,
            target_max_recv_data_segment_length: DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            initial_r2t: true,
            immediate_data: true,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            default_time2wait: 2,
            default_time2retain: 20,
            error_recovery_level: 0,
            max_connections: 1,
            initiator_name: String::new(),
            initiator_alias: None,
            target_name: None,
            session_type: SessionType::Normal,
        }
    }
}

/// The target's own preferences and caps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetLimits {
    /// MaxRecvDataSegmentLength the target declares (default 262144).
    pub max_recv_data_segment_length: u32,
    /// Cap on MaxBurstLength (default 1 MiB).
    pub max_burst_length: u32,
    /// Cap on FirstBurstLength (default 262144).
    pub first_burst_length: u32,
    /// Whether ImmediateData=Yes is acceptable (default true).
    pub immediate_data: bool,
    /// The target's InitialR2T value; `true` forbids unsolicited Data-Out (default true).
    pub initial_r2t: bool,
    /// Cap on MaxOutstandingR2T (default 1).
    pub max_outstanding_r2t: u16,
    /// HeaderDigest policy.
    pub header_digest: DigestPolicy,
    /// DataDigest policy.
    pub data_digest: DigestPolicy,
    /// Cap on ErrorRecoveryLevel (default 0).
    pub error_recovery_level: u8,
    /// Cap on MaxConnections (default 1).
    pub max_connections: u16,
    /// The target's DefaultTime2Wait (default 2).
    pub default_time2wait: u16,
    /// The target's DefaultTime2Retain (default 20).
    pub default_time2retain: u16,
    /// The target's DataPDUInOrder (default true).
    pub data_pdu_in_order: bool,
    /// The target's DataSequenceInOrder (default true).
    pub data_sequence_in_order: bool,
    /// TargetPortalGroupTag returned in the first login response (default 1).
    pub target_portal_group_tag: u16,
}

impl Default for TargetLimits {
    fn default() -> Self {
        Self {
            max_recv_data_segment_length: 262_144,
            max_burst_length: 1 << 20,
            first_burst_length: 262_144,
            immediate_data: true,
            initial_r2t: true,
            max_outstanding_r2t: 1,
            header_digest: DigestPolicy::Optional,
            data_digest: DigestPolicy::Optional,
            error_recovery_level: 0,
            max_connections: 1,
            default_time2wait: 2,
            default_time2retain: 20,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            target_portal_group_tag: 1,
        }
    }
}

/// A negotiation failure that ends the login (status 0x0200, initiator error).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NegotiationError {
    /// A key was negotiated or declared twice (RFC 7143 section 6.2).
    #[error("key {0} negotiated more than once")]
    DuplicateKey(String),
    /// A declarative key carries an invalid value.
    #[error("invalid value for declarative key {0}")]
    InvalidDeclaration(String),
    /// The target requires CRC32C for this digest and the initiator refused.
    #[error("{0} must be CRC32C")]
    DigestRequired(&'static str),
    /// The initiator answered a target offer with an inadmissible value.
    #[error("inadmissible answer to the target's offer of {0}")]
    BadAnswer(&'static str),
    /// The negotiation ended with a target offer unanswered.
    #[error("target offer of {0} left unanswered")]
    Unanswered(&'static str),
    /// The initiator sent a value the target had to reject, so the key kept
    /// its default, which the target's limits do not allow (and a key may not
    /// be negotiated twice, so the target cannot offer its own value).
    #[error("the default of {0} is outside the target's limits")]
    LimitNotMet(&'static str),
}

/// Where the negotiation takes place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Login,
    FullFeature,
}

/// Keys that may be repeated during login with an identical value (libiscsi
/// re-sends them after an `AuthMethod=None` security stage).
const NAME_KEYS: [&str; 4] = [
    "InitiatorName",
    "InitiatorAlias",
    "TargetName",
    "SessionType",
];

/// Keys irrelevant in a discovery session (RFC 7143 section 13).
const DISCOVERY_IRRELEVANT: [&str; 9] = [
    "MaxConnections",
    "InitialR2T",
    "ImmediateData",
    "MaxBurstLength",
    "FirstBurstLength",
    "MaxOutstandingR2T",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "TaskReporting",
];

/// A key the target offered and the numeric or literal value it offered.
#[derive(Clone, Copy, Debug)]
struct Offer {
    key: &'static str,
    value: u32,
}

/// Target-side negotiation engine.
#[derive(Clone, Debug)]
pub struct Negotiator {
    limits: TargetLimits,
    params: SessionParams,
    phase: Phase,
    seen: HashSet<String>,
    offers: Vec<Offer>,
    declared: bool,
}

impl Negotiator {
    /// A negotiator for a login of the given session type.
    pub fn for_login(limits: TargetLimits, session_type: SessionType) -> Self {
        let params = SessionParams {
            session_type,
            ..SessionParams::default()
        };
        Self {
            limits,
            params,
            phase: Phase::Login,
            seen: HashSet::new(),
            offers: Vec::new(),
            declared: false,
        }
    }

    /// A negotiator for a full-feature Text exchange on an existing session.
    ///
    /// Only MaxRecvDataSegmentLength may change; login-only keys are answered
    /// `Reject`. `SendTargets` is left to the caller (no answer is written).
    pub fn for_full_feature(limits: TargetLimits, params: SessionParams) -> Self {
        Self {
            limits,
            params,
            phase: Phase::FullFeature,
            seen: HashSet::new(),
            offers: Vec::new(),
            declared: true,
        }
    }

    /// Parameters negotiated so far.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// The target limits in force.
    pub fn limits(&self) -> &TargetLimits {
        &self.limits
    }

    /// True while a target offer awaits the initiator's answer.
    pub fn awaiting_answers(&self) -> bool {
        !self.offers.is_empty()
    }

    /// True when a key was already received from the initiator.
    pub fn has_seen(&self, key: &str) -> bool {
        self.seen.contains(key)
    }

    /// Answers the initiator's keys, appending responses to `out`.
    ///
    /// Keys answering an earlier target offer produce no response.
    pub fn respond(
        &mut self,
        pairs: &[(&str, &str)],
        out: &mut TextWriter,
    ) -> Result<(), NegotiationError> {
        let mut answers: Vec<(String, String)> = Vec::new();
        let mut fbl_answer: Option<usize> = None;
        for &(key, value) in pairs {
            if let Some(pos) = self.offers.iter().position(|o| o.key == key) {
                let offer = self.offers.remove(pos);
                self.seen.insert(key.to_owned());
                self.take_answer(offer, value)?;
                continue;
            }
            if self.phase == Phase::Login && !self.seen.insert(key.to_owned()) {
                if NAME_KEYS.contains(&key) && self.same_name(key, value) {
                    continue;
                }
                return Err(NegotiationError::DuplicateKey(truncate(key)));
            }
            if let Some(answer) = self.answer(key, value)? {
                if key == "FirstBurstLength" {
                    fbl_answer = Some(answers.len());
                }
                debug!(key, answer = %answer, "negotiated");
                answers.push((key.to_owned(), answer));
            }
        }
        // FirstBurstLength must not exceed MaxBurstLength, whichever came first.
        if let Some(i) = fbl_answer {
            if self.params.first_burst_length > self.params.max_burst_length {
                self.params.first_burst_length = self.params.max_burst_length;
                answers[i].1 = self.params.first_burst_length.to_string();
            }
        }
        for (k, v) in &answers {
            out.push(k, v);
        }
        Ok(())
    }

    fn same_name(&self, key: &str, value: &str) -> bool {
        match key {
            "InitiatorName" => self.params.initiator_name == value,
            "InitiatorAlias" => self.params.initiator_alias.as_deref() == Some(value),
            "TargetName" => self.params.target_name.as_deref() == Some(value),
            "SessionType" => self.params.session_type.as_str() == value,
            _ => false,
        }
    }

    /// Computes the answer to one initiator key (`None`: no answer needed).
    fn answer(&mut self, key: &str, value: &str) -> Result<Option<String>, NegotiationError> {
        let discovery = self.params.session_type == SessionType::Discovery;
        let lim = &self.limits;
        let p = &mut self.params;
        if self.phase == Phase::FullFeature {
            return Ok(match key {
                "MaxRecvDataSegmentLength" => {
                    p.max_recv_data_segment_length = declared_len(key, value)?;
                    None
                }
                "SendTargets" => None,
                _ if is_standard_key(key) => Some(REJECT.into()),
                _ => Some(NOT_UNDERSTOOD.into()),
            });
        }
        if discovery && DISCOVERY_IRRELEVANT.contains(&key) {
            return Ok(Some(IRRELEVANT.into()));
        }
        let num = |min: u64, max: u64| parse_number_in(value, min, max).ok();
        let answer = match key {
            "InitiatorName" => {
                if value.is_empty() {
                    return Err(NegotiationError::InvalidDeclaration(key.into()));
                }
                p.initiator_name = value.to_owned();
                return Ok(None);
            }
            "InitiatorAlias" => {
                p.initiator_alias = Some(value.to_owned());
                return Ok(None);
            }
            "TargetName" => {
                p.target_name = Some(value.to_owned());
                return Ok(None);
            }
            "SessionType" => {
                if value != p.session_type.as_str() {
                    return Err(NegotiationError::InvalidDeclaration(key.into()));
                }
                return Ok(None);
            }
            "MaxRecvDataSegmentLength" => {
                p.max_recv_data_segment_length = declared_len(key, value)?;
                return Ok(None);
            }
            "HeaderDigest" => {
                return digest_answer(
                    value,
                    lim.header_digest,
                    &mut p.header_digest,
                    "HeaderDigest",
                );
            }
            "DataDigest" => {
                return digest_answer(value, lim.data_digest, &mut p.data_digest, "DataDigest");
            }
            "MaxBurstLength" => num(MIN_DATA_LEN.into(), MAX_DATA_LEN.into()).map(|v| {
                p.max_burst_length = (v as u32).min(lim.max_burst_length.max(MIN_DATA_LEN));
                p.max_burst_length.to_string()
            }),
            "FirstBurstLength" => num(MIN_DATA_LEN.into(), MAX_DATA_LEN.into()).map(|v| {
                p.first_burst_length = (v as u32).min(lim.first_burst_length.max(MIN_DATA_LEN));
                p.first_burst_length.to_string()
            }),
            "MaxOutstandingR2T" => num(1, 65535).map(|v| {
                p.max_outstanding_r2t = (v as u16).min(lim.max_outstanding_r2t.max(1));
                p.max_outstanding_r2t.to_string()
            }),
            "MaxConnections" => num(1, 65535).map(|v| {
                p.max_connections = (v as u16).min(lim.max_connections.max(1));
                p.max_connections.to_string()
            }),
            "DefaultTime2Wait" => num(0, 3600).map(|v| {
                p.default_time2wait = (v as u16).max(lim.default_time2wait.min(3600));
                p.default_time2wait.to_string()
            }),
            "DefaultTime2Retain" => num(0, 3600).map(|v| {
                p.default_time2retain = (v as u16).min(lim.default_time2retain);
                p.default_time2retain.to_string()
            }),
            "ErrorRecoveryLevel" => num(0, 2).map(|v| {
                p.error_recovery_level = (v as u8).min(lim.error_recovery_level);
                p.error_recovery_level.to_string()
            }),
            "InitialR2T" => parse_bool(value).ok().map(|v| {
                p.initial_r2t = v || lim.initial_r2t;
                bool_str(p.initial_r2t).to_owned()
            }),
            "ImmediateData" => parse_bool(value).ok().map(|v| {
                p.immediate_data = v && lim.immediate_data;
                bool_str(p.immediate_data).to_owned()
            }),
            "DataPDUInOrder" => parse_bool(value).ok().map(|v| {
                p.data_pdu_in_order = v || lim.data_pdu_in_order;
                bool_str(p.data_pdu_in_order).to_owned()
            }),
            "DataSequenceInOrder" => parse_bool(value).ok().map(|v| {
                p.data_sequence_in_order = v || lim.data_sequence_in_order;
                bool_str(p.data_sequence_in_order).to_owned()
            }),
            // Obsolete RFC 3720 markers (RFC 7143 section 13.26): "No" is
            // allowed for IFMarker/OFMarker and is what open-iscsi expects.
            "IFMarker" | "OFMarker" => Some("No".into()),
            "IFMarkInt" | "OFMarkInt" => None,
            "TaskReporting" => split_list(value)
                .any(|v| v == "RFC3720")
                .then(|| "RFC3720".into()),
            "iSCSIProtocolLevel" => num(0, 31).map(|v| v.min(1).to_string()),
            _ if is_standard_key(key) => None,
            _ => Some(NOT_UNDERSTOOD.into()),
        };
        Ok(Some(answer.unwrap_or_else(|| REJECT.into())))
    }

    /// Applies the initiator's answer to one of our offers.
    fn take_answer(&mut self, offer: Offer, value: &str) -> Result<(), NegotiationError> {
        let bad = NegotiationError::BadAnswer(offer.key);
        let p = &mut self.params;
        let n = |min: u64, max: u64| -> Result<u32, NegotiationError> {
            if value == IRRELEVANT && offer.key == "FirstBurstLength" {
                return Ok(offer.value);
            }
            parse_number_in(value, min, max)
                .map(|v| v as u32)
                .map_err(|_| bad.clone())
        };
        match offer.key {
            "HeaderDigest" | "DataDigest" => {
                if value != "CRC32C" {
                    return Err(NegotiationError::DigestRequired(offer.key));
                }
                if offer.key == "HeaderDigest" {
                    p.header_digest = Digest::Crc32c;
                } else {
                    p.data_digest = Digest::Crc32c;
                }
            }
            "MaxBurstLength" => p.max_burst_length = n(MIN_DATA_LEN.into(), offer.value.into())?,
            "FirstBurstLength" => {
                p.first_burst_length = n(MIN_DATA_LEN.into(), offer.value.into())?
            }
            "DefaultTime2Retain" => p.default_time2retain = n(0, offer.value.into())? as u16,
            "DefaultTime2Wait" => p.default_time2wait = n(offer.value.into(), 3600)? as u16,
            "ImmediateData" => {
                if value != "No" {
                    return Err(bad);
                }
                p.immediate_data = false;
            }
            _ => return Err(bad),
        }
        Ok(())
    }

    /// True when the target must speak in an operational stage: it needs to
    /// declare a MaxRecvDataSegmentLength below the default, or to offer keys.
    pub fn needs_operational_stage(&self) -> bool {
        self.limits.max_recv_data_segment_length < DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH
            || !self.needed_offers().is_empty()
    }

    /// Offers the target must make: required values of keys the initiator
    /// has not sent.
    fn needed_offers(&self) -> Vec<(Offer, String)> {
        let mut v = self.unmet_limits();
        v.retain(|(o, _)| !self.seen.contains(o.key));
        v
    }

    /// Keys whose current value the target's limits do not allow.
    fn unmet_limits(&self) -> Vec<(Offer, String)> {
        let lim = &self.limits;
        let p = &self.params;
        let mut v = Vec::new();
        let mut want = |key: &'static str, value: u32, text: String| {
            v.push((Offer { key, value }, text));
        };
        for (key, policy, current) in [
            ("HeaderDigest", lim.header_digest, p.header_digest),
            ("DataDigest", lim.data_digest, p.data_digest),
        ] {
            if policy == DigestPolicy::Required && current != Digest::Crc32c {
                want(key, 0, "CRC32C".into());
            }
        }
        if p.session_type == SessionType::Discovery {
            return v;
        }
        let mbl = lim.max_burst_length.clamp(MIN_DATA_LEN, MAX_DATA_LEN);
        if mbl < p.max_burst_length {
            want("MaxBurstLength", mbl, mbl.to_string());
        }
        let fbl = lim
            .first_burst_length
            .clamp(MIN_DATA_LEN, MAX_DATA_LEN)
            .min(mbl.min(p.max_burst_length));
        if fbl < p.first_burst_length {
            want("FirstBurstLength", fbl, fbl.to_string());
        }
        if !lim.immediate_data && p.immediate_data {
            want("ImmediateData", 0, "No".into());
        }
        let t = lim.default_time2wait.min(3600);
        if t > p.default_time2wait {
            want("DefaultTime2Wait", t.into(), t.to_string());
        }
        if lim.default_time2retain < p.default_time2retain {
            want(
                "DefaultTime2Retain",
                lim.default_time2retain.into(),
                lim.default_time2retain.to_string(),
            );
        }
        v
    }

    /// Writes the target's own keys once: the MaxRecvDataSegmentLength
    /// declaration and offers for keys the initiator has not sent but whose
    /// default the target cannot accept. Returns true when offers await answers.
    pub fn write_target_keys(&mut self, out: &mut TextWriter) -> bool {
        if self.declared {
            return self.awaiting_answers();
        }
        self.declared = true;
        let mrdsl = self
            .limits
            .max_recv_data_segment_length
            .clamp(MIN_DATA_LEN, MAX_DATA_LEN);
        out.push_num("MaxRecvDataSegmentLength", mrdsl.into());
        self.params.target_max_recv_data_segment_length = mrdsl;
        for (offer, text) in self.needed_offers() {
            out.push(offer.key, &text);
            self.offers.push(offer);
        }
        self.awaiting_answers()
    }

    /// Ends the negotiation and returns the parameters.
    pub fn finish(mut self) -> Result<SessionParams, NegotiationError> {
        if let Some(o) = self.offers.first() {
            return Err(NegotiationError::Unanswered(o.key));
        }
        // A login that never reached the operational stage still needs the
        // target's required values (the caller routes such logins through it).
        if let Some((o, _)) = self.needed_offers().first() {
            return Err(NegotiationError::Unanswered(o.key));
        }
        let p = &mut self.params;
        p.first_burst_length = p.first_burst_length.min(p.max_burst_length);
        // A key the initiator sent with an inadmissible value was answered
        // Reject and keeps its default, which may exceed the target's limits.
        if let Some((o, _)) = self.unmet_limits().first() {
            return Err(NegotiationError::LimitNotMet(o.key));
        }
        Ok(self.params)
    }
}

/// Answers a digest list: the first supported value (Optional) or CRC32C
/// (Required, which fails the negotiation when CRC32C is not offered).
fn digest_answer(
    list: &str,
    policy: DigestPolicy,
    slot: &mut Digest,
    key: &'static str,
) -> Result<Option<String>, NegotiationError> {
    let mut known = split_list(list).filter_map(Digest::parse);
    let selected = match policy {
        DigestPolicy::Required => {
            if !known.any(|d| d == Digest::Crc32c) {
                return Err(NegotiationError::DigestRequired(key));
            }
            Some(Digest::Crc32c)
        }
        DigestPolicy::Optional => known.next(),
    };
    Ok(Some(match selected {
        Some(d) => {
            *slot = d;
            d.as_str().into()
        }
        None => REJECT.into(),
    }))
}

fn declared_len(key: &str, value: &str) -> Result<u32, NegotiationError> {
    parse_number_in(value, MIN_DATA_LEN.into(), MAX_DATA_LEN.into())
        .map(|v| v as u32)
        .map_err(|_| NegotiationError::InvalidDeclaration(key.into()))
}

/// True for keys defined by RFC 7143 / RFC 3720 / RFC 7144 (not vendor keys).
pub fn is_standard_key(key: &str) -> bool {
    matches!(
        key,
        "HeaderDigest"
            | "DataDigest"
            | "MaxConnections"
            | "SendTargets"
            | "TargetName"
            | "InitiatorName"
            | "TargetAlias"
            | "InitiatorAlias"
            | "TargetAddress"
            | "TargetPortalGroupTag"
            | "InitialR2T"
            | "ImmediateData"
            | "MaxRecvDataSegmentLength"
            | "MaxBurstLength"
            | "FirstBurstLength"
            | "DefaultTime2Wait"
            | "DefaultTime2Retain"
            | "MaxOutstandingR2T"
            | "DataPDUInOrder"
            | "DataSequenceInOrder"
            | "ErrorRecoveryLevel"
            | "SessionType"
            | "TaskReporting"
            | "iSCSIProtocolLevel"
            | "IFMarker"
            | "OFMarker"
            | "IFMarkInt"
            | "OFMarkInt"
            | "AuthMethod"
    ) || key.starts_with("CHAP_")
}

fn truncate(s: &str) -> String {
    s.chars().take(63).collect()
}

#[cfg(test)]
#[path = "negotiation_tests.rs"]
mod tests;
