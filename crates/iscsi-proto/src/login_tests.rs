//! Login tests: an in-memory initiator against the target state machine, and
//! hand-built requests for the error paths.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::chap::ChapAlgorithm;
use crate::initiator::{
    InitiatorChap, InitiatorConfig, InitiatorError, InitiatorLogin, InitiatorStep,
};
use crate::negotiation::{Digest, DigestPolicy};
use crate::text::{decode_binary, encode_hex, parse_text};

const IQN_I: &str = "iqn.2024-01.test:initiator";
const IQN_T: &str = "iqn.2024-01.test:disk1";

struct Authority {
    policy: AuthPolicy,
}

impl LoginAuthority for Authority {
    fn authorize(
        &self,
        st: SessionType,
        target: Option<&str>,
        initiator: &str,
    ) -> Result<AuthPolicy, LoginStatus> {
        if initiator == "iqn.denied" {
            return Err(LoginStatus::AUTHORIZATION_FAILURE);
        }
        if st == SessionType::Normal && target != Some(IQN_T) {
            return Err(LoginStatus::NOT_FOUND);
        }
        Ok(self.policy.clone())
    }
}

fn open() -> Authority {
    Authority {
        policy: AuthPolicy::None,
    }
}

fn chap_authority(mutual: Option<(&str, &str)>) -> Authority {
    Authority {
        policy: AuthPolicy::Chap(vec![ChapAccount {
            user: "alice".into(),
            secret: "alice-secret-123".into(),
            mutual: mutual.map(|(u, s)| (u.to_owned(), Secret::from(s))),
        }]),
    }
}

fn chap_cfg(
    secret: &str,
    algorithms: &[ChapAlgorithm],
    mutual: Option<(&str, &str)>,
) -> InitiatorConfig {
    let mut c = InitiatorConfig::new(IQN_I, Some(IQN_T));
    c.chap = Some(InitiatorChap {
        user: "alice".into(),
        secret: secret.into(),
        mutual: mutual.map(|(u, s)| (u.to_owned(), Secret::from(s))),
        algorithms: algorithms.to_vec(),
    });
    c
}

#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Target(LoginStatus),
    Initiator(InitiatorError),
}

struct Run {
    result: LoginResult,
    params: SessionParams,
    transcript: Vec<(LoginRequestHeader, Vec<u8>, LoginStep)>,
}

fn run_with(
    cfg: InitiatorConfig,
    limits: TargetLimits,
    authority: &Authority,
) -> Result<Run, Failure> {
    let mut ini = InitiatorLogin::new(cfg);
    let mut tgt = TargetLogin::new(limits, ChapConfig::default());
    let (mut h, mut d) = ini.start();
    let mut transcript = Vec::new();
    for _ in 0..40 {
        let step = tgt.handle(&h, &d, authority);
        transcript.push((h, d.clone(), step.clone()));
        if step.outcome == LoginOutcome::Failed {
            assert!(!step.header.status.is_success());
            return Err(Failure::Target(step.header.status));
        }
        assert_eq!(step.header.status, LoginStatus::SUCCESS);
        match ini.handle(&step.header, &step.data) {
            Ok(InitiatorStep::Send(h2, d2)) => {
                assert_eq!(step.outcome, LoginOutcome::Continue);
                (h, d) = (h2, d2);
            }
            Ok(InitiatorStep::Done(params, _tsih)) => {
                let LoginOutcome::Complete(result) = step.outcome else {
                    panic!("target not complete")
                };
                return Ok(Run {
                    result: *result,
                    params,
                    transcript,
                });
            }
            Err(e) => return Err(Failure::Initiator(e)),
        }
    }
    panic!("login did not converge")
}

fn run(cfg: InitiatorConfig, authority: &Authority) -> Result<Run, Failure> {
    run_with(cfg, TargetLimits::default(), authority)
}

fn response_keys(step: &LoginStep) -> Vec<(String, String)> {
    parse_text(&step.data)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn no_auth_login_agrees_on_parameters() {
    let r = run(InitiatorConfig::new(IQN_I, Some(IQN_T)), &open()).unwrap();
    assert_eq!(r.result.params, r.params, "both sides must agree");
    assert_eq!(r.result.session_type, SessionType::Normal);
    assert_eq!(r.result.initiator_name, IQN_I);
    assert_eq!(r.result.target_name.as_deref(), Some(IQN_T));
    assert_eq!(r.result.chap_user, None);
    let p = &r.params;
    assert_eq!(p.max_recv_data_segment_length, 262_144);
    assert_eq!(p.target_max_recv_data_segment_length, 262_144);
    assert_eq!(
        (p.max_burst_length, p.first_burst_length),
        (1 << 20, 262_144)
    );
    assert!(p.initial_r2t && p.immediate_data);
    assert_eq!(p.default_time2retain, 0);
    // Security stage then operational stage; TPGT in the first response only.
    assert_eq!(r.transcript.len(), 2);
    let first = response_keys(&r.transcript[0].2);
    assert!(first.contains(&("TargetPortalGroupTag".into(), "1".into())));
    assert!(first.contains(&("AuthMethod".into(), "None".into())));
    let last = &r.transcript[1].2;
    assert!(!response_keys(last)
        .iter()
        .any(|(k, _)| k == "TargetPortalGroupTag"));
    assert!(last.header.transit);
    assert_eq!(last.header.nsg, Stage::FULL_FEATURE);
    assert!(response_keys(last).contains(&("IFMarker".into(), "No".into())));
}

#[test]
fn libiscsi_style_login_starting_in_operational_stage() {
    let mut cfg = InitiatorConfig::new(IQN_I, Some(IQN_T));
    cfg.skip_security = true;
    let r = run(cfg, &open()).unwrap();
    assert_eq!(r.transcript.len(), 1);
    assert_eq!(r.result.params, r.params);
}

#[test]
fn libiscsi_resends_names_after_auth_method_none() {
    let auth = open();
    let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
    let names = format!("InitiatorName={IQN_I}\0TargetName={IQN_T}\0SessionType=Normal\0");
    let s = t.handle(
        &req(0, 1, true),
        format!("{names}AuthMethod=CHAP,None\0").as_bytes(),
        &auth,
    );
    assert!(s.header.transit);
    let s = t.handle(
        &req(1, 3, true),
        format!("{names}MaxBurstLength=262144\0").as_bytes(),
        &auth,
    );
    assert!(matches!(s.outcome, LoginOutcome::Complete(_)), "{s:?}");
}

#[test]
fn one_way_chap_each_algorithm() {
    for alg in ChapAlgorithm::ALL {
        let r = run(
            chap_cfg("alice-secret-123", &[alg], None),
            &chap_authority(None),
        )
        .unwrap();
        assert_eq!(r.result.chap_user.as_deref(), Some("alice"));
        let challenge = response_keys(&r.transcript[1].2);
        assert_eq!(challenge[0], ("CHAP_A".into(), alg.0.to_string()));
        let c = &challenge.iter().find(|(k, _)| k == "CHAP_C").unwrap().1;
        assert_eq!(decode_binary(c).unwrap().len(), alg.digest_len().unwrap());
    }
}

#[test]
fn open_iscsi_algorithm_list_picks_strongest() {
    let algs = [
        ChapAlgorithm::SHA256,
        ChapAlgorithm::SHA1,
        ChapAlgorithm::MD5,
    ];
    let r = run(
        chap_cfg("alice-secret-123", &algs, None),
        &chap_authority(None),
    )
    .unwrap();
    assert_eq!(response_keys(&r.transcript[1].2)[0].1, "7");
}

#[test]
fn mutual_chap() {
    let auth = chap_authority(Some(("target-user", "target-secret-456")));
    let cfg = chap_cfg(
        "alice-secret-123",
        &[ChapAlgorithm::MD5],
        Some(("target-user", "target-secret-456")),
    );
    let r = run(cfg, &auth).unwrap();
    assert_eq!(r.result.chap_user.as_deref(), Some("alice"));
    let verdict = response_keys(&r.transcript[2].2);
    assert!(verdict
        .iter()
        .any(|(k, v)| k == "CHAP_N" && v == "target-user"));

    // The initiator detects a target that knows the wrong mutual secret.
    let cfg = chap_cfg(
        "alice-secret-123",
        &[ChapAlgorithm::SHA256],
        Some(("target-user", "other-secret-789")),
    );
    assert_eq!(
        run(cfg, &auth).err(),
        Some(Failure::Initiator(InitiatorError::MutualAuthFailed))
    );
    // Mutual requested but the account has none.
    let cfg = chap_cfg(
        "alice-secret-123",
        &[ChapAlgorithm::MD5],
        Some(("target-user", "target-secret-456")),
    );
    assert_eq!(
        run(cfg, &chap_authority(None)).err(),
        Some(Failure::Target(LoginStatus::AUTH_FAILURE))
    );
}

#[test]
fn wrong_secret_fails_authentication() {
    let cfg = chap_cfg("wrong-secret", &[ChapAlgorithm::MD5], None);
    assert_eq!(
        run(cfg, &chap_authority(None)).err(),
        Some(Failure::Target(LoginStatus::AUTH_FAILURE))
    );
}

fn req(csg: u8, nsg: u8, transit: bool) -> LoginRequestHeader {
    LoginRequestHeader {
        transit,
        cont: false,
        csg: Stage(csg),
        nsg: Stage(nsg),
        version_max: 0,
        version_min: 0,
        isid: [0x80, 0, 0, 0, 0, 1],
        tsih: 0,
        itt: 7,
        cid: 0,
        cmd_sn: 1,
        exp_stat_sn: 0,
    }
}

fn first_text() -> String {
    format!("InitiatorName={IQN_I}\0TargetName={IQN_T}\0SessionType=Normal\0")
}

#[test]
fn reflected_challenge_fails() {
    let auth = chap_authority(Some(("target-user", "target-secret-456")));
    let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
    let s = t.handle(
        &req(0, 1, true),
        format!("{}AuthMethod=CHAP\0", first_text()).as_bytes(),
        &auth,
    );
    assert!(!s.header.transit);
    let s = t.handle(&req(0, 1, false), b"CHAP_A=5\0", &auth);
    let keys = response_keys(&s);
    let id: u8 = keys[1].1.parse().unwrap();
    let challenge = decode_binary(&keys[2].1).unwrap();
    let r = ChapAlgorithm::MD5
        .hash(id, b"alice-secret-123", &challenge)
        .unwrap();
    let text = format!(
        "CHAP_N=alice\0CHAP_R={}\0CHAP_I=1\0CHAP_C={}\0",
        encode_hex(&r),
        keys[2].1
    );
    let s = t.handle(&req(0, 1, true), text.as_bytes(), &auth);
    assert_eq!(s.outcome, LoginOutcome::Failed);
    assert_eq!(s.header.status, LoginStatus::AUTH_FAILURE);
    // Nothing more is accepted on this connection.
    assert_eq!(
        t.handle(&req(0, 1, true), b"", &auth).outcome,
        LoginOutcome::Failed
    );
}

#[test]
fn unknown_target_and_unauthorized_initiator() {
    let cfg = InitiatorConfig::new(IQN_I, Some("iqn.2024-01.test:nope"));
    assert_eq!(
        run(cfg, &open()).err(),
        Some(Failure::Target(LoginStatus::NOT_FOUND))
    );
    let cfg = InitiatorConfig::new("iqn.denied", Some(IQN_T));
    assert_eq!(
        run(cfg, &open()).err(),
        Some(Failure::Target(LoginStatus::AUTHORIZATION_FAILURE))
    );
}

fn single(hdr: LoginRequestHeader, text: &str, auth: &Authority) -> LoginStep {
    TargetLogin::new(TargetLimits::default(), ChapConfig::default()).handle(
        &hdr,
        text.as_bytes(),
        auth,
    )
}

#[test]
fn missing_names() {
    let s = single(req(1, 3, true), &format!("TargetName={IQN_T}\0"), &open());
    assert_eq!(
        (s.header.status, s.outcome),
        (LoginStatus::MISSING_PARAMETER, LoginOutcome::Failed)
    );
    let s = single(
        req(1, 3, true),
        &format!("InitiatorName={IQN_I}\0"),
        &open(),
    );
    assert_eq!(s.header.status, LoginStatus::MISSING_PARAMETER);
    let s = single(
        req(1, 3, true),
        &format!("InitiatorName={IQN_I}\0SessionType=Bogus\0"),
        &open(),
    );
    assert_eq!(s.header.status, LoginStatus::SESSION_TYPE_NOT_SUPPORTED);
}

#[test]
fn discovery_session() {
    let r = run(InitiatorConfig::new(IQN_I, None), &open()).unwrap();
    assert_eq!(r.result.session_type, SessionType::Discovery);
    assert_eq!(r.result.target_name, None);
    assert_eq!(r.result.params, r.params);
    for (_, _, step) in &r.transcript {
        assert!(!response_keys(step)
            .iter()
            .any(|(k, _)| k == "TargetPortalGroupTag"));
    }
    let text = format!("InitiatorName={IQN_I}\0SessionType=Discovery\0MaxBurstLength=512\0");
    let s = single(req(1, 3, true), &text, &open());
    assert!(response_keys(&s).contains(&("MaxBurstLength".into(), "Irrelevant".into())));
}

#[test]
fn required_digests() {
    let limits = TargetLimits {
        header_digest: DigestPolicy::Required,
        data_digest: DigestPolicy::Required,
        ..TargetLimits::default()
    };
    let cfg = InitiatorConfig::new(IQN_I, Some(IQN_T));
    assert_eq!(
        run_with(cfg, limits.clone(), &open()).err(),
        Some(Failure::Target(LoginStatus::INITIATOR_ERROR))
    );
    let mut cfg = InitiatorConfig::new(IQN_I, Some(IQN_T));
    cfg.offer.header_digest = vec![Digest::None, Digest::Crc32c];
    cfg.offer.data_digest = vec![Digest::None, Digest::Crc32c];
    let r = run_with(cfg, limits.clone(), &open()).unwrap();
    assert_eq!(
        (r.params.header_digest, r.params.data_digest),
        (Digest::Crc32c, Digest::Crc32c)
    );
    assert_eq!(r.result.params, r.params);

    // An initiator that does not mention digests is offered CRC32C, and the
    // target holds the transition until it answers.
    let mut t = TargetLogin::new(limits, ChapConfig::default());
    let s = t.handle(&req(1, 3, true), first_text().as_bytes(), &open());
    assert!(!s.header.transit);
    let keys = response_keys(&s);
    assert!(keys.contains(&("HeaderDigest".into(), "CRC32C".into())));
    let s = t.handle(
        &req(1, 3, true),
        b"HeaderDigest=CRC32C\0DataDigest=CRC32C\0",
        &open(),
    );
    let LoginOutcome::Complete(r) = s.outcome else {
        panic!("{s:?}")
    };
    assert_eq!(r.params.data_digest, Digest::Crc32c);
}

#[test]
fn continuation_in_both_directions_of_the_request() {
    let mut cfg = chap_cfg(
        "alice-secret-123",
        &[ChapAlgorithm::SHA256],
        Some(("target-user", "target-secret-456")),
    );
    cfg.max_data_per_pdu = 40;
    cfg.offer.extra = vec![("X-com.example.Long".into(), "v".repeat(200))];
    let r = run(
        cfg,
        &chap_authority(Some(("target-user", "target-secret-456"))),
    )
    .unwrap();
    let continued: Vec<_> = r.transcript.iter().filter(|(h, _, _)| h.cont).collect();
    assert!(continued.len() > 10);
    for (h, d, step) in continued {
        assert!(!h.transit && d.len() <= 40);
        assert!(step.data.is_empty() && !step.header.transit);
    }
    assert_eq!(r.result.params, r.params);
}

#[test]
fn continuation_text_is_capped() {
    let auth = open();
    let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
    let mut h = req(1, 3, false);
    h.cont = true;
    let chunk = vec![b'a'; 8192];
    let mut last = None;
    for _ in 0..10 {
        last = Some(t.handle(&h, &chunk, &auth));
    }
    assert_eq!(last.unwrap().header.status, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn protocol_errors() {
    let auth = open();
    let ft = first_text();
    // Key sent twice in one login.
    let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
    t.handle(
        &req(1, 3, false),
        format!("{ft}MaxBurstLength=8192\0").as_bytes(),
        &auth,
    );
    let s = t.handle(&req(1, 3, true), b"MaxBurstLength=8192\0", &auth);
    assert_eq!(s.header.status, LoginStatus::INITIATOR_ERROR);
    // ISID changes mid-login.
    let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
    t.handle(
        &req(0, 1, false),
        format!("{ft}AuthMethod=None\0").as_bytes(),
        &auth,
    );
    let mut h = req(0, 1, true);
    h.isid[5] = 9;
    assert_eq!(
        t.handle(&h, b"", &auth).header.status,
        LoginStatus::INITIATOR_ERROR
    );
    // Reserved stage, backwards transition, C with T, CSG skipping ahead.
    for (csg, nsg, transit) in [
        (2, 3, true),
        (1, 0, true),
        (3, 3, false),
        (0, 2, true),
        (1, 1, true),
    ] {
        let s = single(req(csg, nsg, transit), &ft, &auth);
        assert_eq!(
            s.header.status,
            LoginStatus::INITIATOR_ERROR,
            "{csg}->{nsg}"
        );
    }
    let mut h = req(1, 3, true);
    h.cont = true;
    assert_eq!(
        single(h, &ft, &auth).header.status,
        LoginStatus::INITIATOR_ERROR
    );
    let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
    t.handle(
        &req(0, 1, false),
        format!("{ft}AuthMethod=None\0").as_bytes(),
        &auth,
    );
    assert_eq!(
        t.handle(&req(1, 3, true), b"", &auth).header.status,
        LoginStatus::INITIATOR_ERROR
    );
    // Unsupported version.
    let mut h = req(1, 3, true);
    h.version_min = 1;
    h.version_max = 2;
    assert_eq!(
        single(h, &ft, &auth).header.status,
        LoginStatus::UNSUPPORTED_VERSION
    );
    // Malformed text.
    assert_eq!(
        single(req(1, 3, true), "InitiatorName", &auth)
            .header
            .status,
        LoginStatus::INITIATOR_ERROR
    );
    // Security keys in the operational stage.
    let s = single(req(1, 3, true), &format!("{ft}AuthMethod=None\0"), &auth);
    assert_eq!(s.header.status, LoginStatus::INITIATOR_ERROR);
}

#[test]
fn chap_policy_enforced() {
    let auth = chap_authority(None);
    let ft = first_text();
    // Skipping the security stage.
    assert_eq!(
        single(req(1, 3, true), &ft, &auth).header.status,
        LoginStatus::AUTH_FAILURE
    );
    // Offering only None.
    let s = single(req(0, 1, true), &format!("{ft}AuthMethod=None\0"), &auth);
    assert_eq!(s.header.status, LoginStatus::AUTH_FAILURE);
    // Trying to leave the security stage without AuthMethod.
    assert_eq!(
        single(req(0, 1, true), &ft, &auth).header.status,
        LoginStatus::AUTH_FAILURE
    );
    // No acceptable algorithm.
    let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
    t.handle(
        &req(0, 1, true),
        format!("{ft}AuthMethod=CHAP\0").as_bytes(),
        &auth,
    );
    assert_eq!(
        t.handle(&req(0, 1, false), b"CHAP_A=1,2\0", &auth)
            .header
            .status,
        LoginStatus::AUTH_FAILURE
    );
    // CHAP response before the challenge.
    let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
    t.handle(
        &req(0, 1, true),
        format!("{ft}AuthMethod=CHAP\0").as_bytes(),
        &auth,
    );
    let s = t.handle(&req(0, 1, true), b"CHAP_N=alice\0CHAP_R=0x00\0", &auth);
    assert_eq!(s.header.status, LoginStatus::AUTH_FAILURE);
    // Unknown user.
    let cfg = chap_cfg("alice-secret-123", &[ChapAlgorithm::MD5], None);
    let mut cfg2 = cfg.clone();
    if let Some(c) = cfg2.chap.as_mut() {
        c.user = "mallory".into();
    }
    assert_eq!(
        run(cfg2, &auth).err(),
        Some(Failure::Target(LoginStatus::AUTH_FAILURE))
    );
}

#[test]
fn security_straight_to_full_feature() {
    let auth = open();
    let text = format!("{}AuthMethod=None\0", first_text());
    let s = single(req(0, 3, true), &text, &auth);
    let LoginOutcome::Complete(r) = s.outcome else {
        panic!("{s:?}")
    };
    assert_eq!(s.header.nsg, Stage::FULL_FEATURE);
    assert_eq!(r.params.target_max_recv_data_segment_length, 8192);
    // A target that must declare or offer something routes through the operational stage.
    let limits = TargetLimits {
        max_recv_data_segment_length: 4096,
        ..TargetLimits::default()
    };
    let s = TargetLogin::new(limits, ChapConfig::default()).handle(
        &req(0, 3, true),
        text.as_bytes(),
        &auth,
    );
    assert_eq!(
        (s.header.transit, s.header.nsg, s.outcome),
        (true, Stage::OPERATIONAL, LoginOutcome::Continue)
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let auth = chap_authority(Some(("target-user", "target-secret-456")));
    let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
    t.handle(
        &req(0, 1, true),
        format!("{}AuthMethod=CHAP\0", first_text()).as_bytes(),
        &auth,
    );
    let dbg = format!("{t:?} {:?}", auth.policy);
    assert!(!dbg.contains("alice-secret-123") && !dbg.contains("target-secret-456"));
}

fn arb_header() -> impl Strategy<Value = LoginRequestHeader> {
    (
        any::<(bool, bool, u8, u8, u8, u8)>(),
        any::<([u8; 6], u16, u32, u16)>(),
    )
        .prop_map(
            |((transit, cont, csg, nsg, vmax, vmin), (isid, tsih, itt, cid))| LoginRequestHeader {
                transit,
                cont,
                csg: Stage(csg % 4),
                nsg: Stage(nsg % 4),
                version_max: vmax % 2,
                version_min: vmin % 2,
                isid,
                tsih: tsih % 2,
                itt: itt % 2,
                cid: cid % 2,
                cmd_sn: 0,
                exp_stat_sn: 0,
            },
        )
}

fn arb_text() -> impl Strategy<Value = Vec<u8>> {
    let pair = prop_oneof![
        Just(format!("InitiatorName={IQN_I}")),
        Just(format!("TargetName={IQN_T}")),
        Just("SessionType=Discovery".to_owned()),
        Just("AuthMethod=CHAP,None".to_owned()),
        Just("CHAP_A=5,7".to_owned()),
        Just("CHAP_N=alice".to_owned()),
        Just("CHAP_R=0x00112233445566778899aabbccddeeff".to_owned()),
        Just("CHAP_I=3".to_owned()),
        Just("CHAP_C=0x00112233445566778899aabbccddeeff".to_owned()),
        Just("HeaderDigest=CRC32C,None".to_owned()),
        "[A-Za-z]{1,12}=[A-Za-z0-9,]{0,12}",
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(pair, 0..8).prop_map(|v| v.join("\0").into_bytes()),
    ]
}

proptest! {
    #[test]
    fn target_login_never_panics(
        pdus in proptest::collection::vec((arb_header(), arb_text()), 1..8),
        chap in any::<bool>(),
    ) {
        let auth = if chap { chap_authority(Some(("t", "target-secret-456"))) } else { open() };
        let mut t = TargetLogin::new(TargetLimits::default(), ChapConfig::default());
        for (h, d) in &pdus {
            let s = t.handle(h, d, &auth);
            prop_assert!(s.data.len() <= MAX_LOGIN_RESPONSE_DATA);
            prop_assert_eq!(s.outcome == LoginOutcome::Failed, !s.header.status.is_success());
        }
    }
}
