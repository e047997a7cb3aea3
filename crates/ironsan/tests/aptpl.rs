//! Persistent reservations registered with APTPL survive the daemon stopping
//! (SIGTERM) and crashing (SIGKILL): after each restart READ KEYS and READ
//! RESERVATION show them again.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use initiator::Client;
use iscsi_proto::initiator::InitiatorConfig;

const IQN: &str = "iqn.2026-11.org.ironsan.test:aptpl";
const INITIATOR: &str = "iqn.2026-11.org.ironsan.test:host";

struct Daemon {
    dir: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Daemon {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ironsan-aptpl-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        // A free port, released just before the daemon binds it.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let cfg = format!(
            "data_dir = '{d}/data'\nportals = [\"{addr}\"]\n[[target]]\niqn = \"{IQN}\"\nauth = \"none\"\n\
             [[target.lun]]\nid = 0\nfile = '{d}/lun0.img'\nsize = \"16M\"\n[[target.acl]]\ninitiator = \"{INITIATOR}\"\n",
            d = dir.display()
        );
        std::fs::write(dir.join("ironsan.toml"), cfg).expect("config");
        Self {
            dir,
            addr,
            child: None,
        }
    }

    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_ironsan"))
            .args(["serve", "--config"])
            .arg(self.dir.join("ironsan.toml"))
            .env("IRONSAN_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start ironsan");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "ironsan did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self, signal: i32) {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill with a valid pid and signal number has no memory effects.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().expect("wait");
        if signal == libc::SIGTERM {
            assert!(status.success(), "clean exit on SIGTERM: {status:?}");
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

async fn session(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).await.expect("connect");
    let mut cfg = InitiatorConfig::new(INITIATOR, Some(IQN));
    cfg.isid = [0x80, 0, 0, 0, 0, 7];
    c.login(cfg).await.expect("login");
    // Consume unit attentions (power on, reservations) before asserting.
    for _ in 0..4 {
        let tur = c
            .command(0, [0u8; 16], 0, &[])
            .await
            .expect("TEST UNIT READY");
        if tur.is_good() {
            break;
        }
    }
    c
}

async fn read_keys(c: &mut Client) -> Vec<u64> {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x5e;
    cdb[8] = 255;
    let r = c.command(0, cdb, 255, &[]).await.expect("READ KEYS");
    assert!(r.is_good(), "{r:?}");
    r.data[8..]
        .chunks_exact(8)
        .map(|k| u64::from_be_bytes(k.try_into().expect("8 bytes")))
        .collect()
}

async fn reservation_type(c: &mut Client) -> Option<u8> {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x5e;
    cdb[1] = 0x01;
    cdb[8] = 255;
    let r = c.command(0, cdb, 255, &[]).await.expect("READ RESERVATION");
    assert!(r.is_good(), "{r:?}");
    (r.data.len() >= 24).then(|| r.data[21] & 0x0f)
}

fn prout(sa: u8, pr_type: u8, key: u64, sa_key: u64, aptpl: bool) -> ([u8; 16], Vec<u8>) {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x5f;
    cdb[1] = sa;
    cdb[2] = pr_type;
    cdb[8] = 24;
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    (cdb, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aptpl_registration_survives_sigterm_and_sigkill() {
    let mut d = Daemon::new();
    d.start();
    let mut c = session(d.addr).await;
    let (cdb, p) = prout(0x00, 0, 0, 0x1234_5678, true);
    let r = c.command(0, cdb, 0, &p).await.expect("REGISTER");
    assert!(r.is_good(), "{r:?}");
    // RESERVE, Write Exclusive - Registrants Only (type 5).
    let (cdb, p) = prout(0x01, 5, 0x1234_5678, 0, false);
    let r = c.command(0, cdb, 0, &p).await.expect("RESERVE");
    assert!(r.is_good(), "{r:?}");
    drop(c);

    for signal in [libc::SIGTERM, libc::SIGKILL] {
        d.stop(signal);
        d.start();
        let mut c = session(d.addr).await;
        assert_eq!(
            read_keys(&mut c).await,
            vec![0x1234_5678],
            "after signal {signal}"
        );
        assert_eq!(
            reservation_type(&mut c).await,
            Some(5),
            "after signal {signal}"
        );
    }
    d.stop(libc::SIGTERM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_without_aptpl_survive_a_clean_restart_not_a_crash() {
    let mut d = Daemon::new();
    d.start();
    let mut c = session(d.addr).await;
    let (cdb, p) = prout(0x00, 0, 0, 0xabcd, false);
    let r = c.command(0, cdb, 0, &p).await.expect("REGISTER");
    assert!(r.is_good(), "{r:?}");
    let (cdb, p) = prout(0x01, 1, 0xabcd, 0, false);
    let r = c.command(0, cdb, 0, &p).await.expect("RESERVE");
    assert!(r.is_good(), "{r:?}");
    drop(c);

    // A clean stop hands the reservation to the next process.
    d.stop(libc::SIGTERM);
    d.start();
    let mut c = session(d.addr).await;
    assert_eq!(read_keys(&mut c).await, vec![0xabcd]);
    assert_eq!(reservation_type(&mut c).await, Some(1));
    drop(c);

    // A crash is a power loss for reservations made without APTPL.
    d.stop(libc::SIGKILL);
    d.start();
    let mut c = session(d.addr).await;
    assert!(read_keys(&mut c).await.is_empty());
    assert_eq!(reservation_type(&mut c).await, None);
    drop(c);
    d.stop(libc::SIGTERM);
}
