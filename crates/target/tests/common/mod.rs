#![allow(dead_code, unused_imports)]
//! Shared fixtures for the loopback tests: a real [`Server`] on 127.0.0.1
//! with file-backed LUNs in a private temporary directory. The initiator is
//! the `ironsan-initiator` crate (the same one `ironsan-load` uses).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use iscsi_proto::chap::{ChapAlgorithm, Secret};
use iscsi_proto::initiator::{InitiatorChap, InitiatorConfig};
use iscsi_proto::negotiation::Digest;
use target::config::Config;
use target::server::ShutdownHandle;
use target::Server;
use tokio::task::JoinHandle;

pub use initiator::{Client, ClientError, CommandOutcome};

/// Upper bound for any single test.
pub const TEST_BOUND: Duration = Duration::from_secs(60);
/// How quickly the target must close a connection it gave up on.
pub const CLOSE_BOUND: Duration = Duration::from_secs(3);

/// The exported target.
pub const TARGET_IQN: &str = "iqn.2026-11.org.ironsan.test:disk0";
/// The initiator the ACL admits.
pub const INITIATOR_IQN: &str = "iqn.2026-11.org.ironsan.test:client";
/// CHAP account of the initiator.
pub const CHAP_USER: &str = "client";
/// CHAP secret of the initiator.
pub const CHAP_SECRET: &str = "client-secret-0123";
/// Name the target answers mutual CHAP with.
pub const MUTUAL_USER: &str = "target";
/// Secret the target answers mutual CHAP with.
pub const MUTUAL_SECRET: &str = "target-secret-4567";
/// Block size of LUN 0.
pub const BLOCK: u32 = 512;
/// Size of LUN 0 in bytes.
pub const LUN_BYTES: u32 = 4 << 20;

/// Runs a test body with a hard time limit.
pub async fn bounded<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, body)
        .await
        .expect("test exceeded its time bound")
}

/// Deterministic test data: `len` bytes derived from `seed`.
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

/// How the target is configured.
#[derive(Clone, Debug)]
pub struct TargetOptions {
    /// `auth` of the target: `"chap"` (the default) or `"none"`.
    pub auth: &'static str,
    /// Extra lines for the `[iscsi]` section.
    pub iscsi: &'static str,
    /// `digests` of the target: `"optional"` (the default), `"header"` or `"required"`.
    pub digests: &'static str,
    /// Extra configuration appended at the end (more ACL entries, `[security]`...).
    pub extra: &'static str,
}

impl Default for TargetOptions {
    fn default() -> Self {
        Self {
            auth: "chap",
            iscsi: "",
            digests: "optional",
            extra: "",
        }
    }
}

/// A running target on an ephemeral 127.0.0.1 port.
pub struct TestTarget {
    /// The bound portal.
    pub addr: SocketAddr,
    dir: PathBuf,
    stop: ShutdownHandle,
    run: Option<JoinHandle<()>>,
    /// Live control and counters of the server.
    pub control: target::control::Control,
}

fn unique_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "ironsan-loopback-{}-{name}-{n}",
        std::process::id()
    ))
}

fn config_text(dir: &Path, opts: &TargetOptions) -> String {
    let dir = dir.display();
    format!(
        r#"
data_dir = '{dir}'
portals = ["127.0.0.1:0"]

[iscsi]
{iscsi}

[[target]]
iqn = "{TARGET_IQN}"
auth = "{auth}"
digests = "{digests}"

[[target.lun]]
id = 0
file = '{dir}/lun0.img'
size = "{LUN_BYTES}"

[[target.acl]]
initiator = "{INITIATOR_IQN}"
chap_user = "{CHAP_USER}"
chap_secret = "{CHAP_SECRET}"
mutual_user = "{MUTUAL_USER}"
mutual_secret = "{MUTUAL_SECRET}"
{extra}
"#,
        iscsi = opts.iscsi,
        auth = opts.auth,
        digests = opts.digests,
        extra = opts.extra,
    )
}

impl TestTarget {
    /// Writes a configuration into a fresh temporary directory, binds and runs the server.
    pub async fn start(name: &str, opts: TargetOptions) -> Self {
        let dir = unique_dir(name);
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let text = config_text(&dir, &opts);
        let cfg = Config::parse(&text, &dir.join("ironsan.toml")).expect("valid test config");
        let server = Server::bind(&cfg).await.expect("bind the test target");
        let addr = *server
            .local_addrs()
            .first()
            .expect("the server has a portal");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        let stop = server.shutdown_handle();
        let control = server.control();
        let run = Some(tokio::spawn(server.run()));
        Self {
            addr,
            dir,
            stop,
            run,
            control,
        }
    }

    /// Begins a graceful stop.
    pub fn shutdown(&self) {
        self.stop.shutdown();
    }

    /// Waits up to `bound` for `run()` to return; true if it did.
    pub async fn stopped_within(&mut self, bound: Duration) -> bool {
        let Some(run) = self.run.as_mut() else {
            return true;
        };
        match tokio::time::timeout(bound, run).await {
            Ok(joined) => {
                joined.expect("server task panicked");
                self.run = None;
                true
            }
            Err(_) => false,
        }
    }

    /// An initiator configuration for this target with a session-unique ISID.
    pub fn initiator(&self, chap: Option<InitiatorChap>) -> InitiatorConfig {
        static NEXT_ISID: AtomicU32 = AtomicU32::new(1);
        let n = NEXT_ISID.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let mut cfg = InitiatorConfig::new(INITIATOR_IQN, Some(TARGET_IQN));
        cfg.isid = [0x80, 0x12, n[0], n[1], n[2], n[3]];
        cfg.chap = chap;
        cfg
    }

    /// Like [`initiator`](Self::initiator) with one-way CHAP and CRC32C digests.
    pub fn initiator_with_digests(&self) -> InitiatorConfig {
        let mut cfg = self.initiator(Some(chap(CHAP_SECRET, None)));
        cfg.offer.header_digest = vec![Digest::Crc32c];
        cfg.offer.data_digest = vec![Digest::Crc32c];
        cfg
    }

    /// Like [`initiator`](Self::initiator) for another initiator name and CHAP account.
    pub fn other_initiator(&self, name: &str, user: &str, secret: &str) -> InitiatorConfig {
        let mut cfg = self.initiator(None);
        cfg.initiator_name = name.to_owned();
        cfg.chap = Some(InitiatorChap {
            user: user.into(),
            secret: Secret::new(secret.as_bytes().to_vec()),
            mutual: None,
            algorithms: ChapAlgorithm::ALL.to_vec(),
        });
        cfg
    }

    /// Connects a new client.
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr)
            .await
            .expect("connect to the test target")
    }

    /// Connects and logs in with `cfg`; panics on failure.
    pub async fn login(&self, cfg: InitiatorConfig) -> Client {
        let mut client = self.connect().await;
        client.login(cfg).await.expect("login");
        client
    }
}

impl Drop for TestTarget {
    fn drop(&mut self) {
        self.stop.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// CHAP credentials with `secret`; `mutual` is the secret the target must answer with.
pub fn chap(secret: &str, mutual: Option<&str>) -> InitiatorChap {
    InitiatorChap {
        user: CHAP_USER.into(),
        secret: Secret::new(secret.as_bytes().to_vec()),
        mutual: mutual.map(|m| (MUTUAL_USER.to_owned(), Secret::new(m.as_bytes().to_vec()))),
        algorithms: ChapAlgorithm::ALL.to_vec(),
    }
}
