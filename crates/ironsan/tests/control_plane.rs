//! The control plane end to end: the real daemon, driven by the CLI over
//! its API socket, with the project's initiator logged in.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use iscsi_proto::pdu::Opcode;

const T1: &str = "iqn.2026-11.org.ironsan.test:t1";
const T2: &str = "iqn.2026-11.org.ironsan.test:t2";

async fn bounded<F: std::future::Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, body)
        .await
        .expect("test exceeded its time bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_and_safe_decommissioning_through_the_cli() {
    bounded(async {
        let d = Daemon::start("live", "");
        let secret = d.secret_file(HOST_SECRET);
        let lun0 = d.dir.join("t1-lun0.img").display().to_string();
        assert_eq!(d.ok(&["target", "create", T1]), format!("+ target {T1}\n"));
        assert_eq!(
            d.ok(&["lun", "map", T1, "0", "--file", &lun0, "--size", "16M"]),
            format!("+ lun {T1} 0\n")
        );
        assert_eq!(
            d.ok(&[
                "acl",
                "add",
                T1,
                HOST,
                "--chap-user",
                HOST_USER,
                "--chap-secret-file",
                &secret
            ]),
            format!("+ acl {T1} {HOST}\n")
        );
        let acls = d.ok(&["acl", "list", T1]);
        assert!(acls.contains(HOST) && !acls.contains(HOST_SECRET), "{acls}");
        let addr = d.portal();

        // A libiscsi initiator (qemu-io) logs in with CHAP, writes and reads back.
        match missing_tools() {
            Some(why) => eprintln!("skipping the libiscsi login: {why}"),
            None => qemu_io(
                &addr.to_string(),
                T1,
                HOST,
                (HOST_USER, HOST_SECRET),
                &[
                    "write -P 0x3c 1M 64k".to_string(),
                    "read -P 0x3c 1M 64k".to_string(),
                ],
            ),
        }

        // Log in with CHAP through the project's initiator and do I/O.
        let mut c1 = login(addr, T1, 1, &[0]).await;
        write_verify(&mut c1, 0, 0, &pattern(1, 8192)).await;

        // A long verified I/O loop on T1 while T2 is built next to it.
        let stop = Arc::new(AtomicBool::new(false));
        let io = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut rounds = 0u32;
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
                    let data = pattern(rounds, 4096);
                    let lba = (rounds % 64) * 8;
                    let w = c1
                        .write(0, lba, &data, 512)
                        .await
                        .expect("write in the loop");
                    assert!(w.is_good(), "write in the loop: {w:?}");
                    let r = c1.read(0, lba, 8, 512).await.expect("read in the loop");
                    assert!(r.is_good() && r.data == data, "read in the loop: {r:?}");
                    rounds += 1;
                }
                (c1, rounds)
            }
        });
        let lun20 = d.dir.join("t2-lun0.img").display().to_string();
        let extra_portal = format!("127.0.0.1:{}", free_port());
        d.ok_async(&["target", "create", T2, "--digests", "optional"])
            .await;
        d.ok_async(&["lun", "map", T2, "0", "--file", &lun20, "--size", "8M"])
            .await;
        d.ok_async(&["volume", "create", "vol1", "--size", "8M"])
            .await;
        d.ok_async(&["lun", "map", T2, "1", "--volume", "vol1"])
            .await;
        d.ok_async(&[
            "acl",
            "add",
            T2,
            HOST,
            "--chap-user",
            HOST_USER,
            "--chap-secret",
            HOST_SECRET,
        ])
        .await;
        d.ok_async(&["portal", "add", &extra_portal]).await;
        d.ok_async(&["portal", "remove", &extra_portal]).await;
        // Let the loop run on a while after the last change.
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut c1, rounds) = io.await.expect("the I/O loop saw no error");
        assert!(rounds > 10, "the loop ran only {rounds} rounds");

        // Unmapping a LUN in use is refused, naming the session.
        let sessions = d.json(&["session", "list"]);
        let peer = sessions[0]["peer"].as_str().expect("peer").to_string();
        assert_eq!(sessions[0]["initiator"], HOST);
        let err = d.fails(&["lun", "unmap", T1, "0"]);
        assert!(err.contains(HOST) && err.contains(&peer), "{err}");
        assert!(d.ok(&["target", "show", T1]).contains("t1-lun0.img"));

        // --drain: the initiator is asked to log out; the unmap completes once it has.
        let drain = tokio::spawn({
            let sock = d.socket();
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ironsan"));
                    cmd.arg("--api").arg(sock).args([
                        "lun",
                        "unmap",
                        T1,
                        "0",
                        "--drain",
                        "--timeout",
                        "30s",
                    ]);
                    run_bounded(cmd)
                })
                .await
                .expect("cli thread")
            }
        });
        let msg = tokio::time::timeout(Duration::from_secs(10), c1.recv_response())
            .await
            .expect("an Async Message within 10 s")
            .expect("Async Message");
        assert_eq!(msg.bhs.opcode(), Opcode::ASYNC_MESSAGE);
        assert_eq!(msg.byte(36), 1, "AsyncEvent 1: logout requested");
        assert!(!drain.is_finished(), "the unmap waits for the logout");
        assert_eq!(c1.logout().await.expect("logout"), 0);
        let out = drain.await.expect("drain");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("- lun {T1} 0\n")
        );

        // --force: UNIT ATTENTION once, then LOGICAL UNIT NOT SUPPORTED; the daemon keeps answering.
        let mut c2 = login(addr, T2, 2, &[0, 1]).await;
        write_verify(&mut c2, 0, 0, &pattern(7, 4096)).await;
        write_verify(&mut c2, 1, 0, &pattern(8, 4096)).await;
        d.ok_async(&["lun", "unmap", T2, "0", "--force"]).await;
        let r = c2.read(0, 0, 8, 512).await.expect("read after force");
        assert_eq!(r.sense_code(), Some((0x06, 0x3f, 0x0e)), "{r:?}");
        let r = c2.read(0, 0, 8, 512).await.expect("read again");
        assert_eq!(r.sense_code(), Some((0x05, 0x25, 0x00)), "{r:?}");
        settle(&mut c2, 1).await;
        let r = c2.read(sam(1), 0, 8, 512).await.expect("read LUN 1");
        assert!(r.is_good() && r.data == pattern(8, 4096), "{r:?}");
        assert!(d.ok(&["check"]).starts_with("IRONSAN OK"));

        // A volume exported as a LUN with a session on it: refused, naming both.
        let err = d.fails(&["volume", "delete", "vol1"]);
        assert!(
            err.contains(&format!("{T2} LUN 1")) && err.contains(HOST),
            "{err}"
        );
        let out = d.ok_async(&["volume", "delete", "vol1", "--force"]).await;
        assert!(out.contains(&format!("- lun {T2} 1")), "{out}");
        assert!(d
            .json(&["volume", "list"])
            .as_array()
            .is_some_and(Vec::is_empty));
        // Dropping a session asks its initiator to log out.
        let tsih = d.json(&["session", "list"])[0]["tsih"]
            .as_u64()
            .expect("tsih")
            .to_string();
        assert_eq!(
            d.ok_async(&["session", "drop", &tsih]).await,
            format!("session {tsih}: logout requested\n")
        );
        let msg = tokio::time::timeout(Duration::from_secs(10), c2.recv_response())
            .await
            .expect("an Async Message within 10 s")
            .expect("Async Message");
        assert_eq!((msg.bhs.opcode(), msg.byte(36)), (Opcode::ASYNC_MESSAGE, 1));
        assert_eq!(c2.logout().await.expect("logout"), 0);
        assert!(d.fails(&["session", "drop", "9999"]).contains("no session"));
        let want = "IRONSAN OK - 2 targets, 0 sessions | sessions=0";
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let check = d.ok_async(&["check"]).await;
            if check.starts_with(want) {
                break;
            }
            assert!(Instant::now() < deadline, "{check}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[test]
fn apply_prints_the_diff_is_idempotent_and_config_show_round_trips() {
    let base = format!(
        "[[target]]\niqn = \"{T1}\"\n[[target.lun]]\nid = 0\nfile = '{{dir}}/a.img'\nsize = \"4M\"\n\
         [[target.acl]]\ninitiator = \"{HOST}\"\nchap_user = \"{HOST_USER}\"\nchap_secret = \"{HOST_SECRET}\"\n"
    );
    let d = Daemon::start("apply", &base);
    let shown = d.ok(&["config", "show"]);
    let more = format!(
        "{}\n[[target]]\niqn = \"{T2}\"\nauth = \"none\"\n[[target.lun]]\nid = 3\nfile = '{}/b.img'\nsize = \"4M\"\n\
         [[target.acl]]\ninitiator = \"*\"\n",
        std::fs::read_to_string(&d.config).expect("config"),
        d.dir.display()
    );
    let file = d.dir.join("more.toml");
    write_private(&file, &more);
    let f = file.display().to_string();
    let diff = format!("+ target {T2}\n+ lun {T2} 3\n+ acl {T2} *\n");
    assert_eq!(d.ok(&["apply", "-f", &f, "--dry-run"]), diff);
    assert_eq!(
        d.ok(&["config", "show"]),
        shown,
        "a dry run changes nothing"
    );
    assert_eq!(d.ok(&["apply", "-f", &f]), diff);
    assert_eq!(d.ok(&["apply", "-f", &f]), "no changes\n");
    let live = d.ok(&["config", "show"]);
    assert!(live.contains(T2) && live.contains(HOST_SECRET));
    let round = d.dir.join("shown.toml");
    write_private(&round, &live);
    assert_eq!(
        d.ok(&["apply", "-f", &round.display().to_string()]),
        "no changes\n"
    );
    assert_eq!(d.ok(&["config", "show"]), live);
    // Back to the base file: removals are listed and applied too.
    let base_file = d.config.display().to_string();
    assert_eq!(
        d.ok(&["apply", "-f", &base_file]),
        format!("- target {T2}\n")
    );
    assert_eq!(d.ok(&["config", "show"]), shown);
    let moved = shown
        .replace("/data'", "/elsewhere'")
        .replace("/data\"", "/elsewhere\"");
    assert_ne!(moved, shown);
    write_private(&round, &moved);
    let err = d.fails(&["apply", "-f", &round.display().to_string()]);
    assert!(err.contains("data_dir"), "{err}");
    assert!(d.ok(&["audit", "--config", &base_file]).contains(HOST));
}

#[test]
fn bad_input_fails_naming_the_field_and_changes_nothing() {
    let d = Daemon::start(
        "bad",
        &format!("[[target]]\niqn = \"{T1}\"\n[[target.lun]]\nid = 0\nfile = '{{dir}}/a.img'\nsize = \"4M\"\n"),
    );
    let before = d.ok(&["config", "show"]);
    let img = d.dir.join("x.img").display().to_string();
    for (args, field) in [
        (vec!["target", "create", "not-an-iqn"], "iqn"),
        (vec!["target", "create", T2, "--auth", "kerberos"], "auth"),
        (
            vec![
                "acl",
                "add",
                T1,
                HOST,
                "--chap-user",
                "u",
                "--chap-secret",
                "short",
            ],
            "chap_secret",
        ),
        (
            vec![
                "acl",
                "add",
                T1,
                "bad name",
                "--chap-user",
                "u",
                "--chap-secret",
                HOST_SECRET,
            ],
            "initiator",
        ),
        (
            vec!["lun", "map", T1, "1", "--file", &img, "--size", "10X"],
            "size",
        ),
        (vec!["volume", "create", "v1", "--size", "10X"], "size"),
        (vec!["volume", "create", "bad/name", "--size", "1M"], "name"),
        (vec!["portal", "add", "localhost"], "address"),
    ] {
        let err = d.fails(&args);
        assert!(err.contains(field), "{args:?}: {err}");
    }
    for (text, key) in [
        ("[[target.lun]]\nid = 0\nfile = '/tmp/y'\n", "lun[1].id"),
        ("sise = 1\n", "sise"),
    ] {
        let f = d.dir.join("bad.toml");
        write_private(&f, &format!("{before}{text}"));
        let err = d.fails(&["apply", "-f", &f.display().to_string()]);
        assert!(err.contains(key), "{err}");
    }
    // Raw requests: malformed JSON and unknown fields.
    for (body, field) in [
        ("{\"iqn\": ", "body"),
        (
            "{\"iqn\": \"iqn.2026-11.org.x:y\", \"colour\": 1}",
            "colour",
        ),
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(d.socket()).expect("socket");
        let (status, resp) = http(&mut s, "POST", "/v1/targets", &[], body);
        assert_eq!(status, 400, "{resp}");
        let v: serde_json::Value = serde_json::from_str(&resp).expect("JSON error");
        assert_eq!(v["field"], field, "{resp}");
    }
    assert_eq!(d.ok(&["config", "show"]), before, "nothing changed");
    assert!(d.ok(&["check"]).starts_with("IRONSAN OK"));

    // Exit codes: usage errors 2, an unreachable API 3 for check and 1 otherwise.
    assert_eq!(d.cli(&["lun", "map"]).status.code(), Some(2));
    let gone = d.dir.join("nothing.sock").display().to_string();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ironsan"));
    cmd.args(["--api", &gone, "check"]);
    let out = run_bounded(cmd);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("IRONSAN UNKNOWN - "));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ironsan"));
    cmd.args(["--api", &gone, "target", "list"]);
    assert_eq!(run_bounded(cmd).status.code(), Some(1));
}

#[test]
fn tcp_api_needs_the_token_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let port = free_port();
    let mut d = Daemon::start("tcp", &format!("[api]\nlisten = \"127.0.0.1:{port}\"\n"));
    for f in ["api.sock", "api.token"] {
        let mode = std::fs::metadata(d.data.join(f))
            .expect(f)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let token = d.token();
    assert_eq!(token.len(), 64);
    let get = |port: u16, auth: Option<&str>| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let bearer = auth.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .as_deref()
            .map(|b| vec![("Authorization", b)])
            .unwrap_or_default();
        http(&mut s, "GET", "/v1/state", &headers, "").0
    };
    assert_eq!(get(port, None), 401);
    assert_eq!(get(port, Some("0000")), 401);
    assert_eq!(get(port, Some(&token)), 200);

    // The CLI over TCP, with and without the token.
    let api = format!("http://127.0.0.1:{port}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ironsan"));
    cmd.args(["--api", &api, "--token", &token, "target", "list", "--json"]);
    let out = run_bounded(cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ironsan"));
    cmd.args(["--api", &api, "--token", "wrong", "check"]);
    let out = run_bounded(cmd);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a refused token is UNKNOWN to check"
    );

    // Moving the listener live: the new address answers, the old one is closed.
    let port2 = free_port();
    let cfg = d
        .ok(&["config", "show"])
        .replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{port2}"));
    let f = d.dir.join("moved.toml");
    write_private(&f, &cfg);
    assert_eq!(
        d.ok(&["apply", "-f", &f.display().to_string()]),
        "~ [api]\n"
    );
    assert_eq!(get(port2, Some(&token)), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "the old listener is still open");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.stop();
    assert!(
        !d.data.join("api.sock").exists(),
        "the socket is removed at stop"
    );
}
