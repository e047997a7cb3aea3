//! A real `ironsan serve` in a private temporary directory, driven through
//! the CLI (`--api data_dir/api.sock`) and the project's initiator.

#![allow(dead_code)]

#[path = "../shared/bounded.rs"]
mod shared;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use initiator::Client;
use iscsi_proto::chap::{ChapAlgorithm, Secret};
use iscsi_proto::initiator::{InitiatorChap, InitiatorConfig};

/// Upper bound of one test.
pub const TEST_BOUND: Duration = Duration::from_secs(120);

/// The initiator the tests log in as.
pub const HOST: &str = "iqn.2026-11.org.ironsan.test:host1";
pub const HOST_USER: &str = "host1";
pub const HOST_SECRET: &str = "host1-secret-0123";

/// A running daemon.
pub struct Daemon {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Daemon {
    /// Writes `data_dir` and `portals = ["127.0.0.1:0"]` followed by
    /// `extra` (which may use `{dir}`) and starts the daemon.
    pub fn start(name: &str, extra: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ironsan-cp-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let data = dir.join("data");
        let config = dir.join("ironsan.toml");
        let text = format!(
            "data_dir = '{}'\nportals = [\"127.0.0.1:0\"]\n{}",
            data.display(),
            extra.replace("{dir}", &dir.display().to_string())
        );
        write_private(&config, &text);
        let child = Command::new(env!("CARGO_BIN_EXE_ironsan"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("IRONSAN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ironsan");
        let d = Self {
            dir,
            data,
            config,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if d.cli(&["check"]).status.code() == Some(0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon's API did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.data.join("api.sock")
    }

    /// Runs `ironsan --api SOCKET ARGS...`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironsan"));
        cmd.arg("--api")
            .arg(self.socket())
            .args(args)
            .env_remove("IRONSAN_API")
            .env_remove("IRONSAN_API_TOKEN");
        run_bounded(cmd)
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "ironsan {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs a CLI command that must fail with exit code 1; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "ironsan {args:?} should fail: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// Like [`ok`](Self::ok) on a blocking thread (for async tests).
    pub async fn ok_async(&self, args: &[&str]) -> String {
        let (sock, args) = (self.socket(), owned(args));
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironsan"));
            cmd.arg("--api").arg(sock).args(&args);
            let out = run_bounded(cmd);
            assert_eq!(
                out.status.code(),
                Some(0),
                "ironsan {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        })
        .await
        .expect("cli thread")
    }

    /// The JSON output of a read command.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).expect("JSON output")
    }

    /// The first bound iSCSI portal.
    pub fn portal(&self) -> SocketAddr {
        let st = self.json(&["status"]);
        st["listening"][0]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("a listening portal")
    }

    /// Creates a secret file for `acl add --chap-secret-file`.
    pub fn secret_file(&self, secret: &str) -> String {
        let p = self.dir.join(format!("secret-{}", secret.len()));
        write_private(&p, &format!("{secret}\n"));
        p.display().to_string()
    }

    /// The API token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("api.token"))
            .expect("token")
            .trim()
            .to_string()
    }

    /// Stops the daemon with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill with a valid pid and a signal number has no memory effects.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(status)) = c.try_wait() {
                    assert!(status.success(), "clean exit: {status:?}");
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("the daemon did not stop within 20 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Runs a command, killing it after 90 s.
pub fn run_bounded(cmd: Command) -> Output {
    shared::run_bounded_for(cmd, Duration::from_secs(90))
}

pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("write file");
    f.write_all(text.as_bytes()).expect("write file");
}

/// One raw HTTP/1.1 request; returns (status, body).
pub fn http(
    stream: &mut (impl Read + Write),
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("receive");
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// CHAP login configuration for [`HOST`] to `target`.
pub fn login_config(target: &str, isid: u8) -> InitiatorConfig {
    let mut cfg = InitiatorConfig::new(HOST, Some(target));
    cfg.isid = [0x80, 0x23, 0, 0, 0, isid];
    cfg.chap = Some(InitiatorChap {
        user: HOST_USER.into(),
        secret: Secret::new(HOST_SECRET.as_bytes().to_vec()),
        mutual: None,
        algorithms: ChapAlgorithm::ALL.to_vec(),
    });
    cfg
}

/// Logs in and clears the unit attentions a new nexus gets on `luns`.
pub async fn login(addr: SocketAddr, target: &str, isid: u8, luns: &[u64]) -> Client {
    let mut c = Client::connect(addr).await.expect("connect");
    c.login(login_config(target, isid)).await.expect("login");
    for &lun in luns {
        settle(&mut c, lun).await;
    }
    c
}

/// TEST UNIT READY until GOOD (unit attentions are reported once each).
pub async fn settle(c: &mut Client, lun: u64) {
    for _ in 0..8 {
        let r = c
            .command(sam(lun), [0u8; 16], 0, &[])
            .await
            .expect("TEST UNIT READY");
        if r.is_good() {
            return;
        }
        assert!(r.is_unit_attention(), "LUN {lun}: {r:?}");
    }
    panic!("LUN {lun} keeps reporting unit attentions");
}

/// The LUN field (SAM single-level addressing) of LUN number `lun`.
pub fn sam(lun: u64) -> u64 {
    iscsi_proto::pdu::lun_to_sam(lun)
}

/// Deterministic data.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Writes `data` at `lba` and reads it back; panics on any difference.
pub async fn write_verify(c: &mut Client, lun: u64, lba: u32, data: &[u8]) {
    let w = c.write(sam(lun), lba, data, 512).await.expect("write");
    assert!(w.is_good(), "write: {w:?}");
    let blocks = u16::try_from(data.len() / 512).expect("small");
    let r = c.read(sam(lun), lba, blocks, 512).await.expect("read");
    assert!(r.is_good(), "read: {r:?}");
    assert!(r.data == data, "read back differs");
}

/// Why qemu-io with libiscsi cannot run here, if it cannot.
pub fn missing_tools() -> Option<String> {
    let help = Command::new("qemu-img").arg("--help").output();
    match help {
        Err(e) => Some(format!("qemu-img: {e}")),
        Ok(o) if !String::from_utf8_lossy(&o.stdout).contains("iscsi") => {
            Some("qemu-img has no iSCSI driver (install qemu-block-extra)".into())
        }
        Ok(_) => match Command::new("qemu-io").arg("--version").output() {
            Err(e) => Some(format!("qemu-io: {e}")),
            Ok(_) => None,
        },
    }
}

/// One qemu-io run (libiscsi) as `initiator` with CHAP `user`/`secret`
/// through `portal` on LUN 0 of `target`; `ops` are qemu-io commands.
/// Panics unless every operation succeeded.
pub fn qemu_io(
    portal: &str,
    target: &str,
    initiator: &str,
    (user, secret): (&str, &str),
    ops: &[String],
) {
    let opts = format!(
        "driver=iscsi,transport=tcp,portal={portal},target={target},lun=0,\
         initiator-name={initiator},user={user},password-secret=sec0"
    );
    let mut cmd = Command::new("qemu-io");
    cmd.args([
        "--object",
        &format!("secret,id=sec0,data={secret}"),
        "--image-opts",
        &opts,
    ]);
    for op in ops {
        cmd.args(["-c", op]);
    }
    let out = run_bounded(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "qemu-io {ops:?}: {text}");
    // qemu-io reports a failed operation on stdout and still exits 0.
    let done = text.matches("wrote ").count() + text.matches("read ").count();
    assert_eq!(done, ops.len(), "qemu-io {ops:?}: {text}");
    assert!(!text.contains("Pattern verification failed"), "{text}");
}
