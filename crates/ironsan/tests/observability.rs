//! Metrics against a real libiscsi initiator: qemu-io (qemu's iSCSI block
//! driver, i.e. libiscsi) writes and reads a known number of bytes through
//! two portals as two initiators; `/metrics`, scraped over the TCP API with
//! the token, must count exactly those bytes and READ/WRITE commands per
//! initiator, per portal and per LUN. The commands libiscsi sends on its own
//! at connect (INQUIRY, READ CAPACITY, ...) are counted as `other`/`sync`
//! and not asserted. Skips, saying so, when qemu-io with the iSCSI driver
//! is not installed (scripts/deps.sh installs it).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

const TARGET: &str = "iqn.2026-11.org.ironsan.test:obs";
const USER: &str = "tester";
const SECRET: &str = "tester-secret-01";
const INIT_A: &str = "iqn.2026-11.org.ironsan.test:obs-a";
const INIT_B: &str = "iqn.2026-11.org.ironsan.test:obs-b";

/// Why the libiscsi tools cannot run here, if they cannot.
/// The workload of one initiator: (writes, reads) as (offset, length).
struct Workload {
    writes: Vec<(u64, u64)>,
    reads: Vec<(u64, u64)>,
}

impl Workload {
    fn ops(&self, pattern: u8) -> Vec<String> {
        let mut ops: Vec<String> = self
            .writes
            .iter()
            .map(|(o, l)| format!("write -P {pattern:#x} {o} {l}"))
            .collect();
        // Reads fall inside what was written, so the pattern is checked too.
        ops.extend(
            self.reads
                .iter()
                .map(|(o, l)| format!("read -P {pattern:#x} {o} {l}")),
        );
        ops
    }
    fn write_bytes(&self) -> u64 {
        self.writes.iter().map(|w| w.1).sum()
    }
    fn read_bytes(&self) -> u64 {
        self.reads.iter().map(|r| r.1).sum()
    }
}

/// Parses OpenMetrics samples: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn scrape(port: u16, token: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let bearer = format!("Bearer {token}");
    let (status, body) = http(&mut s, "GET", "/metrics", &[("Authorization", &bearer)], "");
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    body
}

#[test]
fn metrics_count_exactly_what_a_libiscsi_workload_sent() {
    if let Some(why) = missing_tools() {
        eprintln!("skipping the libiscsi metrics test: {why}");
        return;
    }
    let api_port = free_port();
    let d = Daemon::start(
        "obs",
        &format!(
            "[[target]]\niqn = \"{TARGET}\"\n[[target.lun]]\nid = 0\n\
             file = '{{dir}}/lun0.img'\nsize = \"64M\"\n\
             [[target.acl]]\ninitiator = \"*\"\nchap_user = \"{USER}\"\nchap_secret = \"{SECRET}\"\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n"
        ),
    );
    let p1 = d.portal().to_string();
    let p2 = format!("127.0.0.1:{}", free_port());
    d.ok(&["portal", "add", &p2]);
    let token = d.token();
    // Nothing counted before the workload.
    let before = samples(&scrape(api_port, &token));
    assert_eq!(
        before.get(&format!(
            "ironsan_portal_write_bytes_total{{portal=\"{p1}\"}}"
        )),
        None,
        "no portal traffic yet"
    );

    let a = Workload {
        writes: vec![
            (0, 65_536),
            (65_536, 65_536),
            (131_072, 65_536),
            (1 << 20, 1 << 20),
        ],
        reads: vec![(0, 65_536), (65_536, 4096), (1 << 20, 1 << 20)],
    };
    let b = Workload {
        writes: (0..5).map(|i| ((8 << 20) + i * 131_072, 131_072)).collect(),
        reads: (0..7).map(|i| ((8 << 20) + i * 32_768, 32_768)).collect(),
    };
    d.ok(&["trace", "set", INIT_A]);
    qemu_io(&p1, TARGET, INIT_A, (USER, SECRET), &a.ops(0x5a));
    qemu_io(&p2, TARGET, INIT_B, (USER, SECRET), &b.ops(0xa5));
    assert_eq!(d.ok(&["trace", "show"]), format!("tracing {INIT_A}\n"));
    d.ok(&["trace", "clear"]);
    assert_eq!(d.ok(&["trace", "show"]), "trace off\n");

    let m = samples(&scrape(api_port, &token));
    let get = |k: String| -> u64 {
        match m.get(&k) {
            Some(v) => *v as u64,
            None => panic!("{k} missing from /metrics"),
        }
    };
    for (family, label, w) in [
        ("initiator", format!("initiator=\"{INIT_A}\""), &a),
        ("initiator", format!("initiator=\"{INIT_B}\""), &b),
        ("portal", format!("portal=\"{p1}\""), &a),
        ("portal", format!("portal=\"{p2}\""), &b),
    ] {
        let at = format!("{family} {label}");
        assert_eq!(
            get(format!("ironsan_{family}_write_bytes_total{{{label}}}")),
            w.write_bytes(),
            "{at}: bytes written"
        );
        assert_eq!(
            get(format!("ironsan_{family}_read_bytes_total{{{label}}}")),
            w.read_bytes(),
            "{at}: bytes read"
        );
        assert_eq!(
            get(format!(
                "ironsan_{family}_commands_total{{{label},kind=\"write\"}}"
            )),
            w.writes.len() as u64,
            "{at}: WRITE commands"
        );
        assert_eq!(
            get(format!(
                "ironsan_{family}_commands_total{{{label},kind=\"read\"}}"
            )),
            w.reads.len() as u64,
            "{at}: READ commands"
        );
        assert_eq!(
            get(format!(
                "ironsan_{family}_logins_succeeded_total{{{label}}}"
            )),
            1,
            "{at}: logins"
        );
        assert_eq!(
            get(format!("ironsan_{family}_sessions{{{label}}}")),
            0,
            "{at}: logged out"
        );
        let latency = get(format!(
            "ironsan_{family}_write_latency_seconds_count{{{label}}}"
        ));
        assert_eq!(
            latency,
            w.writes.len() as u64,
            "{at}: write latency samples"
        );
    }
    let lun = format!("target=\"{TARGET}\",lun=\"0\"");
    assert_eq!(
        get(format!("ironsan_lun_write_bytes_total{{{lun}}}")),
        a.write_bytes() + b.write_bytes()
    );
    assert_eq!(
        get(format!("ironsan_lun_read_bytes_total{{{lun}}}")),
        a.read_bytes() + b.read_bytes()
    );
    assert_eq!(
        get(format!(
            "ironsan_lun_commands_total{{{lun},kind=\"write\"}}"
        )),
        (a.writes.len() + b.writes.len()) as u64
    );
    assert_eq!(
        get(format!("ironsan_lun_commands_total{{{lun},kind=\"read\"}}")),
        (a.reads.len() + b.reads.len()) as u64
    );
    assert_eq!(
        get("ironsan_logins_total{outcome=\"success\",reason=\"ok\"}".into()),
        2
    );
    let errors: Vec<&String> = m.keys().filter(|k| k.contains("sense_key=")).collect();
    assert!(errors.is_empty(), "no command failed: {errors:?}");

    // The same numbers as JSON, and as `ironsan stats`.
    let st = d.json(&["stats"]);
    let ia = st["initiators"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["initiator"] == INIT_A))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ia["write_bytes"], a.write_bytes(), "{st}");
    assert_eq!(ia["commands"]["read"], a.reads.len());
    assert!(
        ia["write_latency"]["p99_us"].as_u64().unwrap_or(0) > 0,
        "{ia}"
    );
    let table = d.ok(&["stats"]);
    for name in [INIT_A, INIT_B, p1.as_str(), p2.as_str()] {
        assert!(table.contains(name), "{table}");
    }
    // One frame of `top`, as JSON: both initiators listed, idle now.
    let frame = d.json(&["top", "--once", "--interval", "200ms"]);
    let names: Vec<&str> = frame["initiators"]
        .as_array()
        .map(|l| l.iter().filter_map(|i| i["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&INIT_A) && names.contains(&INIT_B),
        "{frame}"
    );
    assert!(
        frame["interval_secs"].as_f64().unwrap_or(0.0) > 0.1,
        "{frame}"
    );
    let text = d.ok(&["top", "--once", "--interval", "200ms"]);
    assert!(text.starts_with("ironsan top - "), "{text}");
    assert!(!text.contains('\x1b'), "--once prints no escapes");
}
