//! Unit tests for the negotiation engine.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::text::parse_text;

fn answers(
    n: &mut Negotiator,
    pairs: &[(&str, &str)],
) -> Result<Vec<(String, String)>, NegotiationError> {
    let mut w = TextWriter::new();
    n.respond(pairs, &mut w)?;
    Ok(parse_text(w.as_bytes())
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn one(limits: TargetLimits, key: &str, value: &str) -> (String, SessionParams) {
    let mut n = Negotiator::for_login(limits, SessionType::Normal);
    let a = answers(&mut n, &[(key, value)]).unwrap();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].0, key);
    (a[0].1.clone(), n.params().clone())
}

fn normal() -> Negotiator {
    Negotiator::for_login(TargetLimits::default(), SessionType::Normal)
}

#[test]
fn defaults_follow_rfc() {
    let p = SessionParams::default();
    assert_eq!(p.header_digest, Digest::None);
    assert_eq!(p.max_recv_data_segment_length, 8192);
    assert_eq!(p.target_max_recv_data_segment_length, 8192);
    assert_eq!(
        (p.max_burst_length, p.first_burst_length),
        (262_144, 65_536)
    );
    assert!(p.initial_r2t && p.immediate_data && p.data_pdu_in_order && p.data_sequence_in_order);
    assert_eq!(
        (
            p.max_outstanding_r2t,
            p.max_connections,
            p.error_recovery_level
        ),
        (1, 1, 0)
    );
    assert_eq!((p.default_time2wait, p.default_time2retain), (2, 20));
    assert_eq!(p.session_type, SessionType::Normal);
}

#[test]
fn minimum_keys() {
    let l = TargetLimits::default();
    assert_eq!(one(l.clone(), "MaxBurstLength", "16776192").0, "1048576");
    assert_eq!(one(l.clone(), "MaxBurstLength", "4096").0, "4096");
    assert_eq!(one(l.clone(), "FirstBurstLength", "1048576").0, "262144");
    assert_eq!(one(l.clone(), "MaxOutstandingR2T", "8").0, "1");
    assert_eq!(one(l.clone(), "MaxConnections", "4").0, "1");
    assert_eq!(one(l.clone(), "DefaultTime2Retain", "0").0, "0");
    assert_eq!(one(l.clone(), "DefaultTime2Retain", "3600").0, "20");
    assert_eq!(one(l.clone(), "ErrorRecoveryLevel", "2").0, "0");
    let (a, p) = one(
        TargetLimits {
            error_recovery_level: 2,
            ..l.clone()
        },
        "ErrorRecoveryLevel",
        "1",
    );
    assert_eq!((a.as_str(), p.error_recovery_level), ("1", 1));
    let (a, p) = one(
        TargetLimits {
            max_outstanding_r2t: 16,
            ..l
        },
        "MaxOutstandingR2T",
        "8",
    );
    assert_eq!((a.as_str(), p.max_outstanding_r2t), ("8", 8));
}

#[test]
fn maximum_key() {
    let l = TargetLimits::default();
    assert_eq!(one(l.clone(), "DefaultTime2Wait", "0").0, "2");
    let (a, p) = one(l, "DefaultTime2Wait", "10");
    assert_eq!((a.as_str(), p.default_time2wait), ("10", 10));
}

#[test]
fn boolean_keys() {
    let l = TargetLimits::default();
    // OR: the target's InitialR2T=Yes wins.
    assert_eq!(one(l.clone(), "InitialR2T", "No").0, "Yes");
    let l_no_r2t = TargetLimits {
        initial_r2t: false,
        ..l.clone()
    };
    assert_eq!(one(l_no_r2t.clone(), "InitialR2T", "No").0, "No");
    assert_eq!(one(l_no_r2t, "InitialR2T", "Yes").0, "Yes");
    // AND.
    assert_eq!(one(l.clone(), "ImmediateData", "Yes").0, "Yes");
    assert_eq!(one(l.clone(), "ImmediateData", "No").0, "No");
    let (a, p) = one(
        TargetLimits {
            immediate_data: false,
            ..l.clone()
        },
        "ImmediateData",
        "Yes",
    );
    assert_eq!((a.as_str(), p.immediate_data), ("No", false));
    assert_eq!(one(l.clone(), "DataPDUInOrder", "No").0, "Yes");
    let relaxed = TargetLimits {
        data_sequence_in_order: false,
        ..l.clone()
    };
    assert_eq!(one(relaxed, "DataSequenceInOrder", "No").0, "No");
    assert_eq!(one(l, "ImmediateData", "maybe").0, "Reject");
}

#[test]
fn out_of_range_values_are_rejected() {
    let l = TargetLimits::default();
    for (k, v) in [
        ("MaxBurstLength", "511"),
        ("MaxBurstLength", "16777216"),
        ("FirstBurstLength", "abc"),
        ("MaxOutstandingR2T", "0"),
        ("MaxConnections", "65536"),
        ("DefaultTime2Wait", "3601"),
        ("ErrorRecoveryLevel", "3"),
        ("iSCSIProtocolLevel", "32"),
    ] {
        let (a, p) = one(l.clone(), k, v);
        assert_eq!(a, "Reject", "{k}={v}");
        assert_eq!(p, SessionParams::default());
    }
}

#[test]
fn declarative_mrdsl() {
    let mut n = normal();
    assert!(answers(&mut n, &[("MaxRecvDataSegmentLength", "0x10000")])
        .unwrap()
        .is_empty());
    assert_eq!(n.params().max_recv_data_segment_length, 65536);
    for bad in ["511", "16777216", "x", ""] {
        let mut n = normal();
        let e = answers(&mut n, &[("MaxRecvDataSegmentLength", bad)]).unwrap_err();
        assert_eq!(
            e,
            NegotiationError::InvalidDeclaration("MaxRecvDataSegmentLength".into())
        );
    }
}

#[test]
fn digest_list_selection() {
    let l = TargetLimits::default();
    assert_eq!(one(l.clone(), "HeaderDigest", "CRC32C,None").0, "CRC32C");
    assert_eq!(one(l.clone(), "HeaderDigest", "None,CRC32C").0, "None");
    assert_eq!(one(l.clone(), "DataDigest", "Foo,CRC32C").0, "CRC32C");
    assert_eq!(one(l.clone(), "DataDigest", "Foo").0, "Reject");
    let req = TargetLimits {
        header_digest: DigestPolicy::Required,
        data_digest: DigestPolicy::Required,
        ..l
    };
    let (a, p) = one(req.clone(), "HeaderDigest", "None,CRC32C");
    assert_eq!((a.as_str(), p.header_digest), ("CRC32C", Digest::Crc32c));
    let mut n = Negotiator::for_login(req, SessionType::Normal);
    assert_eq!(
        answers(&mut n, &[("DataDigest", "None")]),
        Err(NegotiationError::DigestRequired("DataDigest"))
    );
}

#[test]
fn unknown_vendor_and_obsolete_keys() {
    let mut n = normal();
    let a = answers(
        &mut n,
        &[
            ("X-com.example.Foo", "1"),
            ("X#Bar", "1"),
            ("Whatever", "1"),
            ("IFMarker", "No"),
            ("OFMarker", "Yes"),
            ("OFMarkInt", "2048"),
            ("TaskReporting", "FastAbort,RFC3720"),
            ("iSCSIProtocolLevel", "2"),
            ("TargetAlias", "t"),
        ],
    )
    .unwrap();
    let expect = [
        ("X-com.example.Foo", "NotUnderstood"),
        ("X#Bar", "NotUnderstood"),
        ("Whatever", "NotUnderstood"),
        ("IFMarker", "No"),
        ("OFMarker", "No"),
        ("OFMarkInt", "Reject"),
        ("TaskReporting", "RFC3720"),
        ("iSCSIProtocolLevel", "1"),
        ("TargetAlias", "Reject"),
    ];
    let got: Vec<(&str, &str)> = a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, expect);
}

#[test]
fn discovery_irrelevant_keys() {
    let mut n = Negotiator::for_login(TargetLimits::default(), SessionType::Discovery);
    let a = answers(
        &mut n,
        &[
            ("MaxBurstLength", "512"),
            ("InitialR2T", "No"),
            ("HeaderDigest", "None"),
            ("MaxRecvDataSegmentLength", "8192"),
        ],
    )
    .unwrap();
    assert_eq!(a[0].1, "Irrelevant");
    assert_eq!(a[1].1, "Irrelevant");
    assert_eq!(a[2].1, "None");
    assert_eq!(a.len(), 3);
    assert_eq!(n.params().max_burst_length, 262_144);
}

#[test]
fn duplicate_keys_fail() {
    let mut n = normal();
    answers(&mut n, &[("MaxBurstLength", "8192")]).unwrap();
    assert_eq!(
        answers(&mut n, &[("MaxBurstLength", "8192")]),
        Err(NegotiationError::DuplicateKey("MaxBurstLength".into()))
    );
    let mut n = normal();
    assert!(answers(
        &mut n,
        &[("HeaderDigest", "None"), ("HeaderDigest", "None")]
    )
    .is_err());
}

#[test]
fn names_may_be_repeated_identically() {
    let mut n = normal();
    answers(
        &mut n,
        &[
            ("InitiatorName", "iqn.a"),
            ("TargetName", "iqn.t"),
            ("SessionType", "Normal"),
        ],
    )
    .unwrap();
    answers(
        &mut n,
        &[
            ("InitiatorName", "iqn.a"),
            ("TargetName", "iqn.t"),
            ("SessionType", "Normal"),
        ],
    )
    .unwrap();
    assert!(answers(&mut n, &[("InitiatorName", "iqn.b")]).is_err());
    let mut n = normal();
    assert!(answers(&mut n, &[("SessionType", "Discovery")]).is_err());
}

#[test]
fn first_burst_never_exceeds_max_burst() {
    for pairs in [
        [("MaxBurstLength", "16384"), ("FirstBurstLength", "65536")],
        [("FirstBurstLength", "65536"), ("MaxBurstLength", "16384")],
    ] {
        let mut n = normal();
        let a = answers(&mut n, &pairs).unwrap();
        let fbl = a.iter().find(|(k, _)| k == "FirstBurstLength").unwrap();
        assert_eq!(fbl.1, "16384");
        let p = n.finish().unwrap();
        assert_eq!((p.max_burst_length, p.first_burst_length), (16384, 16384));
    }
}

#[test]
fn target_declares_and_offers_what_it_needs() {
    let limits = TargetLimits {
        max_recv_data_segment_length: 4096,
        max_burst_length: 32768,
        first_burst_length: 16384,
        immediate_data: false,
        header_digest: DigestPolicy::Required,
        default_time2wait: 5,
        default_time2retain: 10,
        ..TargetLimits::default()
    };
    let mut n = Negotiator::for_login(limits, SessionType::Normal);
    assert!(n.needs_operational_stage());
    answers(&mut n, &[("DataDigest", "None")]).unwrap();
    let mut w = TextWriter::new();
    assert!(n.write_target_keys(&mut w));
    let offers = parse_text(w.as_bytes()).unwrap();
    assert_eq!(
        offers,
        vec![
            ("MaxRecvDataSegmentLength", "4096"),
            ("HeaderDigest", "CRC32C"),
            ("MaxBurstLength", "32768"),
            ("FirstBurstLength", "16384"),
            ("ImmediateData", "No"),
            ("DefaultTime2Wait", "5"),
            ("DefaultTime2Retain", "10"),
        ]
    );
    // Written once only.
    let mut w2 = TextWriter::new();
    assert!(n.write_target_keys(&mut w2));
    assert!(w2.is_empty());
    assert_eq!(
        n.clone().finish(),
        Err(NegotiationError::Unanswered("HeaderDigest"))
    );
    let a = answers(
        &mut n,
        &[
            ("HeaderDigest", "CRC32C"),
            ("MaxBurstLength", "16384"),
            ("FirstBurstLength", "8192"),
            ("ImmediateData", "No"),
            ("DefaultTime2Wait", "5"),
            ("DefaultTime2Retain", "0"),
        ],
    )
    .unwrap();
    assert!(a.is_empty(), "answers to offers need no response: {a:?}");
    assert!(!n.awaiting_answers());
    let p = n.finish().unwrap();
    assert_eq!(p.header_digest, Digest::Crc32c);
    assert_eq!((p.max_burst_length, p.first_burst_length), (16384, 8192));
    assert_eq!(p.target_max_recv_data_segment_length, 4096);
    assert!(!p.immediate_data);
    assert_eq!((p.default_time2wait, p.default_time2retain), (5, 0));
}

#[test]
fn inadmissible_answers_to_offers_fail() {
    let limits = TargetLimits {
        max_burst_length: 32768,
        header_digest: DigestPolicy::Required,
        ..TargetLimits::default()
    };
    for (k, v, e) in [
        (
            "MaxBurstLength",
            "65536",
            NegotiationError::BadAnswer("MaxBurstLength"),
        ),
        (
            "MaxBurstLength",
            "Reject",
            NegotiationError::BadAnswer("MaxBurstLength"),
        ),
        (
            "HeaderDigest",
            "None",
            NegotiationError::DigestRequired("HeaderDigest"),
        ),
    ] {
        let mut n = Negotiator::for_login(limits.clone(), SessionType::Normal);
        n.write_target_keys(&mut TextWriter::new());
        assert_eq!(answers(&mut n, &[(k, v)]), Err(e));
    }
}

#[test]
fn no_offers_for_keys_already_negotiated() {
    let limits = TargetLimits {
        max_burst_length: 32768,
        ..TargetLimits::default()
    };
    let mut n = Negotiator::for_login(limits.clone(), SessionType::Normal);
    answers(&mut n, &[("MaxBurstLength", "262144")]).unwrap();
    let mut w = TextWriter::new();
    // FirstBurstLength's default (65536) now exceeds MaxBurstLength: offered.
    assert!(n.write_target_keys(&mut w));
    assert_eq!(
        parse_text(w.as_bytes()).unwrap(),
        vec![
            ("MaxRecvDataSegmentLength", "262144"),
            ("FirstBurstLength", "32768")
        ]
    );
    answers(&mut n, &[("FirstBurstLength", "32768")]).unwrap();
    assert_eq!(
        answers(&mut n, &[("FirstBurstLength", "512")]),
        Err(NegotiationError::DuplicateKey("FirstBurstLength".into()))
    );

    let mut n = Negotiator::for_login(limits, SessionType::Normal);
    answers(
        &mut n,
        &[("MaxBurstLength", "262144"), ("FirstBurstLength", "8192")],
    )
    .unwrap();
    let mut w = TextWriter::new();
    assert!(!n.write_target_keys(&mut w));
    assert_eq!(
        parse_text(w.as_bytes()).unwrap(),
        vec![("MaxRecvDataSegmentLength", "262144")]
    );
    assert_eq!(n.finish().unwrap().max_burst_length, 32768);
}

#[test]
fn full_feature_text_negotiation() {
    let params = SessionParams {
        initiator_name: "iqn.x".into(),
        ..SessionParams::default()
    };
    let mut n = Negotiator::for_full_feature(TargetLimits::default(), params);
    let a = answers(
        &mut n,
        &[
            ("MaxRecvDataSegmentLength", "65536"),
            ("SendTargets", "All"),
            ("MaxBurstLength", "512"),
            ("X-foo", "1"),
        ],
    )
    .unwrap();
    assert_eq!(
        a,
        vec![
            ("MaxBurstLength".to_owned(), "Reject".to_owned()),
            ("X-foo".to_owned(), "NotUnderstood".to_owned())
        ]
    );
    assert_eq!(n.params().max_recv_data_segment_length, 65536);
    assert_eq!(n.params().max_burst_length, 262_144);
    let mut w = TextWriter::new();
    assert!(!n.write_target_keys(&mut w));
    assert!(w.is_empty());
}

/// Found by the `text_keys` fuzz target: a value the target rejects leaves
/// the key at its default, and the target may not offer the key again, so
/// a default outside the target's limits must fail the login instead of
/// silently exceeding them.
#[test]
fn rejected_value_cannot_leave_default_beyond_limits() {
    let limits = TargetLimits {
        max_burst_length: 4096,
        first_burst_length: 1024,
        immediate_data: false,
        ..TargetLimits::default()
    };
    for (key, bad) in [
        ("MaxBurstLength", "167V6192"),
        ("FirstBurstLength", "1"),
        ("ImmediateData", "Maybe"),
    ] {
        let mut n = Negotiator::for_login(limits.clone(), SessionType::Normal);
        let a = answers(&mut n, &[(key, bad)]).unwrap();
        assert_eq!(a, vec![(key.to_owned(), "Reject".to_owned())]);
        n.write_target_keys(&mut TextWriter::new());
        // The other keys were offered; answer them so only `key` is left.
        let others: Vec<(&str, &str)> = [
            ("MaxBurstLength", "4096"),
            ("FirstBurstLength", "1024"),
            ("ImmediateData", "No"),
        ]
        .into_iter()
        .filter(|(k, _)| *k != key)
        .collect();
        answers(&mut n, &others).unwrap();
        assert!(!n.awaiting_answers());
        assert_eq!(n.finish(), Err(NegotiationError::LimitNotMet(key)));
    }
    // Accepted values within the limits still finish.
    let mut n = Negotiator::for_login(limits, SessionType::Normal);
    answers(
        &mut n,
        &[
            ("MaxBurstLength", "65536"),
            ("FirstBurstLength", "65536"),
            ("ImmediateData", "Yes"),
        ],
    )
    .unwrap();
    assert!(!n.write_target_keys(&mut TextWriter::new()));
    let p = n.finish().unwrap();
    assert_eq!((p.max_burst_length, p.first_burst_length), (4096, 1024));
    assert!(!p.immediate_data);
}
