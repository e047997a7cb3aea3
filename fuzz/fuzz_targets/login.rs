//! A sequence of Login Requests fed into one `TargetLogin`.
//!
//! Input layout: byte 0 picks the target limits (bit 0: digests required
//! and a small MaxRecvDataSegmentLength, which forces target offers), then
//! Login Request PDUs as on the wire without digests: a 48-byte BHS (the
//! opcode byte is ignored), `DataSegmentLength` bytes of text (cut short
//! where the input ends) and the padding to four bytes. At most 40 PDUs.
//!
//! The authority knows a CHAP-protected target, an open target and
//! discovery. Checked: `handle` never panics, a finished login stays
//! finished, responses stay within the initiator's default receive limit
//! and encode/parse cleanly, and a login to the CHAP target never completes
//! without an authenticated user (the target's challenge is random, so the
//! fuzzer cannot produce a valid response).
#![no_main]

use std::cell::Cell;

use iscsi_proto::login::{
    AuthPolicy, ChapAccount, ChapConfig, LoginAuthority, LoginOutcome, LoginStatus, SessionType,
    Stage, TargetLogin, MAX_LOGIN_RESPONSE_DATA,
};
use iscsi_proto::negotiation::{DigestPolicy, TargetLimits};
use iscsi_proto::pdu::{
    encode_login_response, padding, parse_login_response, Bhs, Request, BHS_LEN,
};
use iscsi_proto::text::parse_text;
use libfuzzer_sys::fuzz_target;

const CHAP_TARGET: &str = "iqn.2024-01.org.ironsan:chap";
const OPEN_TARGET: &str = "iqn.2024-01.org.ironsan:open";
const MAX_PDUS: usize = 40;

/// The target's configuration; remembers whether it demanded CHAP.
#[derive(Default)]
struct Authority {
    chap_required: Cell<bool>,
}

impl LoginAuthority for Authority {
    fn authorize(
        &self,
        session_type: SessionType,
        target_name: Option<&str>,
        initiator_name: &str,
    ) -> Result<AuthPolicy, LoginStatus> {
        if initiator_name == "iqn.denied" {
            return Err(LoginStatus::AUTHORIZATION_FAILURE);
        }
        match (session_type, target_name) {
            (SessionType::Discovery, _) => Ok(AuthPolicy::None),
            (SessionType::Normal, Some(OPEN_TARGET)) => Ok(AuthPolicy::None),
            (SessionType::Normal, Some(CHAP_TARGET)) => {
                self.chap_required.set(true);
                Ok(AuthPolicy::Chap(vec![ChapAccount {
                    user: "alice".into(),
                    secret: "alice-secret-123".into(),
                    mutual: Some(("target".into(), "target-secret-456".into())),
                }]))
            }
            _ => Err(LoginStatus::NOT_FOUND),
        }
    }
}

fn limits(config: u8) -> TargetLimits {
    if config & 1 == 0 {
        TargetLimits::default()
    } else {
        TargetLimits {
            max_recv_data_segment_length: 512,
            max_burst_length: 4096,
            first_burst_length: 1024,
            immediate_data: false,
            header_digest: DigestPolicy::Required,
            data_digest: DigestPolicy::Required,
            ..TargetLimits::default()
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&config, mut rest)) = input.split_first() else {
        return;
    };
    let mut login = TargetLogin::new(limits(config), ChapConfig::default());
    let authority = Authority::default();
    let mut finished = false;
    for _ in 0..MAX_PDUS {
        if rest.is_empty() {
            break;
        }
        let mut bhs = Bhs::default();
        let n = rest.len().min(BHS_LEN);
        bhs.0[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        bhs.0[0] = 0x43; // immediate Login Request
        let Request::Login(hdr) = Request::parse(&bhs) else {
            unreachable!("opcode forced to Login Request");
        };
        let dsl = (bhs.data_segment_len() as usize).min(rest.len());
        let data = &rest[..dsl];
        rest = &rest[(dsl + padding(dsl)).min(rest.len())..];

        let step = login.handle(&hdr, data, &authority);
        assert!(step.data.len() <= MAX_LOGIN_RESPONSE_DATA);
        assert_eq!(step.header.itt, hdr.itt);
        assert_eq!(step.header.isid, hdr.isid);
        let b = encode_login_response(&step.header, step.data.len() as u32);
        assert_eq!(parse_login_response(&b), step.header);
        if step.header.status.is_success() {
            assert!(parse_text(&step.data).is_ok(), "target sent invalid text");
        }
        if finished {
            assert_eq!(step.outcome, LoginOutcome::Failed);
            assert!(!step.header.status.is_success());
        }
        match &step.outcome {
            LoginOutcome::Continue => assert!(step.header.status.is_success()),
            LoginOutcome::Failed => {
                assert!(!step.header.status.is_success());
                finished = true;
            }
            LoginOutcome::Complete(result) => {
                assert!(step.header.status.is_success());
                assert!(step.header.transit);
                assert_eq!(step.header.nsg, Stage::FULL_FEATURE);
                assert!(!finished);
                finished = true;
                assert!(
                    !authority.chap_required.get() || result.chap_user.is_some(),
                    "CHAP target logged in without authentication"
                );
                if result.session_type == SessionType::Normal {
                    assert!(result.target_name.is_some());
                }
                let p = &result.params;
                assert!(p.first_burst_length <= p.max_burst_length);
            }
        }
        assert_eq!(login.is_finished(), finished);
    }
});
