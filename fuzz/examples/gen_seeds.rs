//! Writes the hand-made seed inputs of every fuzz target into
//! `fuzz/corpus/<target>/seed-*` (existing seeds are overwritten, other
//! corpus files are left alone):
//!
//! ```sh
//! cd fuzz && cargo run --example gen_seeds
//! ```
//!
//! The layouts are the ones documented at the top of each fuzz target.

use std::fs;
use std::path::Path;

use iscsi_proto::initiator::{InitiatorChap, InitiatorConfig, InitiatorLogin, InitiatorStep};
use iscsi_proto::login::{
    AuthPolicy, ChapAccount, ChapConfig, LoginAuthority, LoginOutcome, LoginStatus, SessionType,
    TargetLogin,
};
use iscsi_proto::negotiation::{DigestPolicy, TargetLimits};
use iscsi_proto::pdu::{
    encode_login_request, encode_logout_request, encode_nop_out, encode_text_request,
    encode_tmf_request, lun_to_sam, Bhs, DataOut, LogoutReason, ScsiCommand, TmfFunction,
    RESERVED_TAG,
};
use iscsi_proto::text::TextWriter;
use target::frame::encode_pdu;

const CHAP_TARGET: &str = "iqn.2024-01.org.ironsan:chap";
const OPEN_TARGET: &str = "iqn.2024-01.org.ironsan:open";
const INITIATOR: &str = "iqn.2024-01.org.ironsan:fuzz-initiator";

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut w = TextWriter::new();
    for (k, v) in pairs {
        w.push(k, v);
    }
    w.into_bytes()
}

fn pdu(bhs: &Bhs, data: &[u8], digests: bool) -> Vec<u8> {
    let mut b = bhs.clone();
    b.set_data_segment_len(data.len() as u32);
    let mut out = Vec::new();
    encode_pdu(&mut out, &b, data, digests, digests);
    out
}

fn scsi_cmd(cdb: &[u8], read: bool, write: bool, edtl: u32) -> ScsiCommand {
    let mut c = [0u8; 16];
    c[..cdb.len().min(16)].copy_from_slice(&cdb[..cdb.len().min(16)]);
    ScsiCommand {
        immediate: false,
        final_bit: true,
        read,
        write,
        attr: 1,
        lun: lun_to_sam(0),
        itt: 0x10,
        edtl,
        cmd_sn: 2,
        exp_stat_sn: 1,
        cdb: c,
    }
}

fn pdu_seeds() {
    let t = "pdu_decode";
    let login_text = text(&[
        ("InitiatorName", INITIATOR),
        ("TargetName", OPEN_TARGET),
        ("SessionType", "Normal"),
        ("AuthMethod", "None"),
    ]);
    let mut cfg = InitiatorConfig::new(INITIATOR, Some(OPEN_TARGET));
    cfg.itt = 0;
    let (hdr, _) = InitiatorLogin::new(cfg).start();
    let login = pdu(&encode_login_request(&hdr, 0), &login_text, false);
    write(t, "login-request", &login);

    let read10 = [0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0];
    let read = pdu(&scsi_cmd(&read10, true, false, 4096).encode(), &[], false);
    write(t, "scsi-read10", &read);

    let write10 = [0x2a, 0, 0, 0, 0, 0, 0, 0, 2, 0];
    let wr = pdu(
        &scsi_cmd(&write10, false, true, 1024).encode(),
        &[0x5a; 512],
        false,
    );
    write(t, "scsi-write10-immediate", &wr);

    let data_out = DataOut {
        final_bit: true,
        lun: lun_to_sam(0),
        itt: 0x10,
        ttt: 0x22,
        exp_stat_sn: 1,
        data_sn: 0,
        buffer_offset: 512,
        data_len: 512,
    };
    let dout = pdu(&data_out.encode(), &[0xa5; 512], false);
    write(t, "data-out", &dout);

    let send_targets = text(&[("SendTargets", "All")]);
    let txt = pdu(
        &encode_text_request(0x20, RESERVED_TAG, 3, 2, 0),
        &send_targets,
        false,
    );
    write(t, "text-sendtargets", &txt);

    let nop = pdu(
        &encode_nop_out(true, 0x30, RESERVED_TAG, 4, 3, 0),
        b"ping",
        false,
    );
    write(t, "nop-out", &nop);
    let tmf = pdu(
        &encode_tmf_request(TmfFunction::ABORT_TASK, 0, 0x40, 0x10, 5, 4, 2),
        &[],
        false,
    );
    write(t, "tmf-abort-task", &tmf);
    let logout = pdu(
        &encode_logout_request(LogoutReason::CLOSE_SESSION, 0x50, 0, 6, 5),
        &[],
        false,
    );
    write(t, "logout", &logout);

    // READ(32)-sized extended CDB: 16 bytes in the BHS, 16 in a type 1 AHS.
    let mut ext = scsi_cmd(&[0x7f, 0, 0, 0, 0, 0, 0, 0x18, 0, 0x09], true, false, 512).encode();
    ext.0[4] = 5; // TotalAHSLength: 20 bytes
    let mut ext_pdu = ext.0.to_vec();
    ext_pdu.extend_from_slice(&[0, 17, 1, 0]);
    ext_pdu.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]);
    write(t, "scsi-extended-cdb-ahs", &ext_pdu);

    // A whole exchange on one connection, without and with digests.
    let mut stream = Vec::new();
    for p in [&login, &wr, &dout, &read, &txt, &logout] {
        stream.extend_from_slice(p);
    }
    write(t, "stream", &stream);
    let mut stream = Vec::new();
    stream.extend(pdu(
        &scsi_cmd(&write10, false, true, 1024).encode(),
        &[0x5a; 509],
        true,
    ));
    stream.extend(pdu(&data_out.encode(), &[0xa5; 512], true));
    stream.extend(pdu(
        &encode_nop_out(true, 0x30, RESERVED_TAG, 4, 3, 0),
        &[],
        true,
    ));
    write(t, "stream-digests", &stream);
}

/// One command record of the `cdb_parse` layout.
fn record(out: &mut Vec<u8>, cdb: &[u8], nexus: u8, expected_len: u32, data_out: &[u8]) {
    out.push(cdb.len() as u8);
    out.push(nexus);
    out.extend_from_slice(&expected_len.to_be_bytes());
    out.extend_from_slice(&(data_out.len() as u16).to_be_bytes());
    out.extend_from_slice(cdb);
    out.extend_from_slice(data_out);
}

fn cdb_seeds() {
    let t = "cdb_parse";
    let one = |name: &str, cdb: &[u8], expected: u32, data_out: &[u8]| {
        let mut v = vec![0u8];
        record(&mut v, cdb, 0, expected, data_out);
        write(t, name, &v);
    };
    one("test-unit-ready", &[0; 6], 0, &[]);
    one("inquiry", &[0x12, 0, 0, 0, 96, 0], 96, &[]);
    one("inquiry-vpd83", &[0x12, 1, 0x83, 0, 255, 0], 255, &[]);
    one("inquiry-vpd-b0", &[0x12, 1, 0xb0, 0, 64, 0], 64, &[]);
    one(
        "read-capacity10",
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        8,
        &[],
    );
    one(
        "read-capacity16",
        &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        32,
        &[],
    );
    one("read6", &[0x08, 0, 0, 1, 2, 0], 1024, &[]);
    one("read10", &[0x28, 0, 0, 0, 0, 8, 0, 0, 4, 0], 2048, &[]);
    one(
        "read16",
        &[0x88, 0, 0, 0, 0, 0, 0, 0, 0, 63, 0, 0, 0, 1, 0, 0],
        512,
        &[],
    );
    one(
        "read10-out-of-range",
        &[0x28, 0, 0, 0, 0, 64, 0, 0, 1, 0],
        512,
        &[],
    );
    one(
        "write10",
        &[0x2a, 0x08, 0, 0, 0, 1, 0, 0, 1, 0],
        512,
        &[0x77; 512],
    );
    one(
        "write-verify10",
        &[0x2e, 0x02, 0, 0, 0, 1, 0, 0, 1, 0],
        512,
        &[0x77; 512],
    );
    one("verify10", &[0x2f, 0, 0, 0, 0, 0, 0, 0, 4, 0], 0, &[]);
    one("mode-sense6-all", &[0x1a, 0, 0x3f, 0, 255, 0], 255, &[]);
    one(
        "mode-sense10-caching",
        &[0x5a, 0, 0x08, 0, 0, 0, 0, 0, 64, 0],
        64,
        &[],
    );
    // MODE SELECT(6) of the caching page with WCE off.
    let mut caching = vec![0u8, 0, 0, 0, 0x08, 0x12];
    caching.extend_from_slice(&[0; 18]);
    one(
        "mode-select6-caching",
        &[0x15, 0x10, 0, 0, 24, 0],
        24,
        &caching,
    );
    one("request-sense", &[0x03, 0, 0, 0, 252, 0], 252, &[]);
    one(
        "report-luns",
        &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        256,
        &[],
    );
    one(
        "report-supported-opcodes",
        &[0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0],
        4096,
        &[],
    );
    one("sync-cache10", &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0, &[]);
    one("start-stop-unit", &[0x1b, 0, 0, 0, 0x01, 0], 0, &[]);
    one("prevent-allow", &[0x1e, 0, 0, 0, 0x01, 0], 0, &[]);

    // Every supported opcode with all-zero fields.
    for info in scsi::cdb::OPCODES {
        let mut cdb = vec![0u8; info.cdb_len()];
        cdb[0] = info.opcode;
        if let Some(sa) = info.service_action {
            cdb[1] = sa as u8;
        }
        let mut v = vec![0u8];
        record(&mut v, &cdb, 0, 512, &[]);
        write(t, &format!("zero-{:02x}", info.opcode), &v);
    }

    // A stateful sequence on a removable LU: write, read back, a unit
    // attention after a reset seen from another nexus, eject with PREVENT.
    let mut v = vec![1u8];
    record(
        &mut v,
        &[0x2a, 0, 0, 0, 0, 2, 0, 0, 1, 0],
        0,
        512,
        &[0x42; 512],
    );
    record(&mut v, &[0x28, 0, 0, 0, 0, 2, 0, 0, 1, 0], 0, 512, &[]);
    record(&mut v, &[0; 6], 1 | 0x10, 0, &[]);
    record(&mut v, &[0; 6], 0, 0, &[]);
    record(&mut v, &[0x03, 0, 0, 0, 18, 0], 0, 18, &[]);
    record(&mut v, &[0x1e, 0, 0, 0, 0x01, 0], 1, 0, &[]);
    record(&mut v, &[0x1b, 0, 0, 0, 0x02, 0], 0, 0, &[]);
    record(&mut v, &[0x1e, 0, 0, 0, 0x00, 0], 1, 0, &[]);
    record(&mut v, &[0x1b, 0, 0, 0, 0x02, 0], 0, 0, &[]);
    record(&mut v, &[0x28, 0, 0, 0, 0, 2, 0, 0, 1, 0], 0, 512, &[]);
    write(t, "sequence-removable", &v);
}

fn text_seeds() {
    let t = "text_keys";
    let seed = |name: &str, config: u8, rounds: &[&[(&str, &str)]]| {
        let mut v = vec![config];
        for (i, r) in rounds.iter().enumerate() {
            if i > 0 {
                v.push(0xff);
            }
            v.extend(text(r));
        }
        write(t, name, &v);
    };
    let operational: &[(&str, &str)] = &[
        ("HeaderDigest", "CRC32C,None"),
        ("DataDigest", "None"),
        ("MaxConnections", "1"),
        ("InitialR2T", "No"),
        ("ImmediateData", "Yes"),
        ("MaxRecvDataSegmentLength", "262144"),
        ("MaxBurstLength", "16776192"),
        ("FirstBurstLength", "262144"),
        ("DefaultTime2Wait", "2"),
        ("DefaultTime2Retain", "0"),
        ("MaxOutstandingR2T", "1"),
        ("DataPDUInOrder", "Yes"),
        ("DataSequenceInOrder", "Yes"),
        ("ErrorRecoveryLevel", "0"),
        ("IFMarker", "No"),
        ("OFMarker", "No"),
        ("X-com.example.vendor", "1"),
    ];
    let names: &[(&str, &str)] = &[
        ("InitiatorName", INITIATOR),
        ("InitiatorAlias", "fuzz"),
        ("TargetName", OPEN_TARGET),
        ("SessionType", "Normal"),
    ];
    seed("login-operational", 0, &[names, operational]);
    seed(
        "login-offers",
        1 << 2,
        &[
            names,
            &[("MaxRecvDataSegmentLength", "8192")],
            &[
                ("HeaderDigest", "CRC32C"),
                ("DataDigest", "CRC32C"),
                ("MaxBurstLength", "4096"),
                ("FirstBurstLength", "0x400"),
                ("ImmediateData", "No"),
                ("DefaultTime2Wait", "10"),
                ("DefaultTime2Retain", "0"),
            ],
        ],
    );
    seed("login-clamped", 2 << 2, &[operational]);
    seed(
        "discovery",
        1,
        &[
            &[("InitiatorName", INITIATOR), ("SessionType", "Discovery")],
            &[
                ("MaxBurstLength", "512"),
                ("TaskReporting", "RFC3720,ResponseFence"),
            ],
        ],
    );
    seed("full-feature-sendtargets", 2, &[&[("SendTargets", "All")]]);
    seed(
        "full-feature-mrdsl",
        2,
        &[&[
            ("MaxRecvDataSegmentLength", "0x10000"),
            ("InitialR2T", "Yes"),
        ]],
    );
    seed(
        "chap-values",
        0,
        &[&[
            ("AuthMethod", "CHAP,None"),
            ("CHAP_A", "8,7,6,5"),
            ("CHAP_I", "17"),
            ("CHAP_C", "0x0123456789abcdef0123456789ABCDEF"),
            ("CHAP_R", "0bASNFZ4mrze8BI0VniavN7w=="),
            ("CHAP_N", "alice"),
        ]],
    );
}

/// The same authority as the `login` target.
struct Authority;

impl LoginAuthority for Authority {
    fn authorize(
        &self,
        session_type: SessionType,
        target_name: Option<&str>,
        _initiator_name: &str,
    ) -> Result<AuthPolicy, LoginStatus> {
        match (session_type, target_name) {
            (SessionType::Discovery, _) => Ok(AuthPolicy::None),
            (SessionType::Normal, Some(OPEN_TARGET)) => Ok(AuthPolicy::None),
            (SessionType::Normal, Some(CHAP_TARGET)) => Ok(AuthPolicy::Chap(vec![ChapAccount {
                user: "alice".into(),
                secret: "alice-secret-123".into(),
                mutual: Some(("target".into(), "target-secret-456".into())),
            }])),
            _ => Err(LoginStatus::NOT_FOUND),
        }
    }
}

/// Runs a real login and records the requests in the `login` layout.
fn login_transcript(config: u8, cfg: InitiatorConfig) -> Vec<u8> {
    let limits = if config & 1 == 0 {
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
    };
    let mut out = vec![config];
    let mut ini = InitiatorLogin::new(cfg);
    let mut tgt = TargetLogin::new(limits, ChapConfig::default());
    let (mut h, mut d) = ini.start();
    for _ in 0..40 {
        out.extend(pdu(&encode_login_request(&h, 0), &d, false));
        let step = tgt.handle(&h, &d, &Authority);
        if step.outcome != LoginOutcome::Continue {
            break;
        }
        match ini.handle(&step.header, &step.data) {
            Ok(InitiatorStep::Send(h2, d2)) => (h, d) = (h2, d2),
            _ => break,
        }
    }
    out
}

fn login_seeds() {
    let t = "login";
    let open = InitiatorConfig::new(INITIATOR, Some(OPEN_TARGET));
    write(t, "open", &login_transcript(0, open.clone()));
    let mut skip = open.clone();
    skip.skip_security = true;
    write(t, "open-skip-security", &login_transcript(0, skip));
    let mut cont = open.clone();
    cont.max_data_per_pdu = 64;
    write(t, "open-continued", &login_transcript(0, cont));
    write(t, "open-offers", &login_transcript(1, open));
    write(
        t,
        "discovery",
        &login_transcript(0, InitiatorConfig::new(INITIATOR, None)),
    );
    let mut chap = InitiatorConfig::new(INITIATOR, Some(CHAP_TARGET));
    chap.chap = Some(InitiatorChap {
        user: "alice".into(),
        secret: "alice-secret-123".into(),
        mutual: None,
        algorithms: vec![iscsi_proto::chap::ChapAlgorithm::SHA256],
    });
    write(t, "chap", &login_transcript(0, chap.clone()));
    let mut mutual = chap;
    if let Some(c) = mutual.chap.as_mut() {
        c.mutual = Some(("target".into(), "target-secret-456".into()));
        c.algorithms = vec![iscsi_proto::chap::ChapAlgorithm::MD5];
    }
    write(t, "chap-mutual-offers", &login_transcript(1, mutual));
}

fn main() {
    pdu_seeds();
    cdb_seeds();
    text_seeds();
    login_seeds();
}
