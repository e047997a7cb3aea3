//! A real `ironsan serve` with a volume-backed LUN that can be killed and
//! restarted on the same data directory, plus the iSCSI helpers the volume
//! tests share.

#![allow(dead_code)]

#[path = "../shared/bounded.rs"]
mod shared;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use initiator::{Client, CommandOutcome};
use iscsi_proto::initiator::InitiatorConfig;

pub const IQN: &str = "iqn.2026-11.org.ironsan.test:vol";
pub const INITIATOR: &str = "iqn.2026-11.org.ironsan.test:volhost";
/// Bound of one iSCSI command (a killed daemon closes the connection at
/// once; this only guards against a hang).
pub const CMD_BOUND: Duration = Duration::from_secs(20);

/// A daemon on a private data directory, restartable after a crash.
pub struct Node {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Node {
    /// A configuration with one target whose LUN 0 is `lun` (TOML keys of
    /// `[[target.lun]]` after `id = 0`); nothing runs yet.
    pub fn new(tag: &str, lun: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ironsan-vol-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let data = dir.join("data");
        let config = dir.join("ironsan.toml");
        let text = format!(
            "data_dir = '{}'\nportals = [\"127.0.0.1:0\"]\n[[target]]\niqn = \"{IQN}\"\nauth = \"none\"\n\
             [[target.lun]]\nid = 0\n{lun}\n[[target.acl]]\ninitiator = \"{INITIATOR}\"\n",
            data.display()
        );
        std::fs::write(&config, text).expect("config");
        Self {
            dir,
            data,
            config,
            child: None,
            starts: 0,
        }
    }

    pub fn pool_dir(&self) -> PathBuf {
        self.data.join("pool")
    }

    /// The daemon's stderr of start number `n` (from 1).
    pub fn log(&self, n: u32) -> PathBuf {
        self.dir.join(format!("daemon-{n}.log"))
    }

    /// Spawns the daemon; does not wait for it.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.starts += 1;
        let log = File::create(self.log(self.starts)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ironsan"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("IRONSAN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start ironsan");
        self.child = Some(child);
    }

    /// Starts the daemon and waits until it serves; returns its portal.
    pub fn start(&mut self) -> SocketAddr {
        self.spawn();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.exited() {
                panic!(
                    "the daemon exited ({st:?}): {}",
                    std::fs::read_to_string(self.log(self.starts)).unwrap_or_default()
                );
            }
            let out = self.cli(&["status", "--json"]);
            if out.status.success() {
                let v: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("status JSON");
                if let Some(a) = v["listening"][0].as_str().and_then(|a| a.parse().ok()) {
                    return a;
                }
            }
            assert!(Instant::now() < deadline, "the daemon did not come up");
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The exit status if the daemon has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let st = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(st)
    }

    /// Waits up to `bound` for the daemon to exit on its own.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// SIGKILL: a crash at whatever point the daemon is.
    pub fn kill(&mut self) {
        let mut c = self.child.take().expect("running");
        // SAFETY: kill with a valid pid and signal number has no memory effects.
        unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        let _ = c.wait();
    }

    /// SIGTERM and a clean exit.
    pub fn stop(&mut self) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let st = self
            .wait_exit(Duration::from_secs(30))
            .expect("the daemon did not stop within 30 s");
        assert!(st.success(), "clean exit on SIGTERM: {st:?}");
    }

    /// `ironsan --api data_dir/api.sock ARGS...`
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironsan"));
        cmd.arg("--api")
            .arg(self.data.join("api.sock"))
            .args(args)
            .env_remove("IRONSAN_API")
            .env_remove("IRONSAN_API_TOKEN");
        bounded(cmd)
    }

    /// `ironsan pool check --config FILE ARGS...`: (exit code, stdout, stderr).
    pub fn check(&self, args: &[&str]) -> (i32, String, String) {
        let cfg = self.config.display().to_string();
        let mut all = vec!["pool", "check", "--config", &cfg];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept {} for inspection", self.dir.display());
        }
    }
}

/// Runs a command, killing it after 60 s.
pub fn bounded(cmd: Command) -> Output {
    shared::run_bounded_for(cmd, Duration::from_secs(60))
}

/// Logs in (no authentication) and clears the unit attentions of LUN 0.
pub async fn login(addr: SocketAddr, isid: u8) -> Result<Client, String> {
    let mut c = Client::connect(addr).await.map_err(|e| e.to_string())?;
    let mut cfg = InitiatorConfig::new(INITIATOR, Some(IQN));
    cfg.isid = [0x80, 0x42, 0, 0, 0, isid];
    c.login(cfg).await.map_err(|e| e.to_string())?;
    for _ in 0..8 {
        let r = run(&mut c, [0u8; 16], 0, &[]).await?;
        if r.is_good() {
            return Ok(c);
        }
        if !r.is_unit_attention() {
            return Err(format!("TEST UNIT READY: {r:?}"));
        }
    }
    Err("LUN 0 keeps reporting unit attentions".into())
}

/// One command on LUN 0, bounded.
pub async fn run(
    c: &mut Client,
    cdb: [u8; 16],
    read_len: u32,
    data: &[u8],
) -> Result<CommandOutcome, String> {
    match tokio::time::timeout(CMD_BOUND, c.command(0, cdb, read_len, data)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("command timed out".into()),
    }
}

/// WRITE(10) of 512-byte blocks, with FUA when asked.
pub async fn write(
    c: &mut Client,
    lba: u32,
    data: &[u8],
    fua: bool,
) -> Result<CommandOutcome, String> {
    let blocks = u16::try_from(data.len() / 512).map_err(|_| "write too large".to_string())?;
    let mut cdb = initiator::client::write10(lba, blocks);
    if fua {
        cdb[1] |= 0x08;
    }
    run(c, cdb, 0, data).await
}

/// READ(10) of 512-byte blocks.
pub async fn read(c: &mut Client, lba: u32, blocks: u16) -> Result<CommandOutcome, String> {
    run(
        c,
        initiator::client::read10(lba, blocks),
        u32::from(blocks) * 512,
        &[],
    )
    .await
}

/// SYNCHRONIZE CACHE(10) of the whole LUN.
pub async fn sync_cache(c: &mut Client) -> Result<CommandOutcome, String> {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x35;
    run(c, cdb, 0, &[]).await
}

/// Flips one byte of `path` at `off`.
pub fn flip(path: &Path, off: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open for damage");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off).expect("read byte");
    b[0] ^= 0x5a;
    f.write_all_at(&b, off).expect("write byte");
    f.sync_all().expect("sync");
}

/// xorshift64*: deterministic test randomness.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A seed from the environment (`IRONSAN_TEST_SEED`) or the clock.
pub fn seed() -> u64 {
    std::env::var("IRONSAN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}

/// The content of 512-byte sector `lba` at generation `gen` (0: zeros, the
/// content of a never-written block): a header naming both, then bytes
/// derived from them.
pub fn sector(lba: u64, gen: u64) -> [u8; 512] {
    let mut s = [0u8; 512];
    if gen == 0 {
        return s;
    }
    s[..8].copy_from_slice(b"IRONSAN!");
    s[8..16].copy_from_slice(&lba.to_le_bytes());
    s[16..24].copy_from_slice(&gen.to_le_bytes());
    let mut r = Rng((lba << 24) ^ gen ^ 0x9e37_79b9_7f4a_7c15);
    for chunk in s[24..].chunks_mut(8) {
        let v = r.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    s
}

/// The generation a sector read back holds, if it is exactly a valid
/// pattern of `lba` (or zeros: 0).
pub fn generation(lba: u64, got: &[u8]) -> Option<u64> {
    if got.iter().all(|&b| b == 0) {
        return Some(0);
    }
    let gen = u64::from_le_bytes(got.get(16..24)?.try_into().ok()?);
    (gen != 0 && got == sector(lba, gen).as_slice()).then_some(gen)
}
