//! Persistent reservations registered with APTPL survive the daemon stopping
//! (SIGTERM) and crashing (SIGKILL): after each restart READ KEYS and READ
//! RESERVATION show them again.

mod vol;

use initiator::Client;
use vol::{login, run, Node};

/// The daemon with one 16 MiB LUN.
fn node() -> Node {
    Node::new("pr", "volume = \"pr\"\nsize = \"16M\"")
}

/// A session of the test initiator, unit attentions cleared.
async fn session(n: &mut Node) -> Client {
    let addr = n.start();
    login(addr, 7).await.expect("login")
}

async fn read_keys(c: &mut Client) -> Vec<u64> {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x5e;
    cdb[8] = 255;
    let r = run(c, cdb, 255, &[]).await.expect("READ KEYS");
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
    let r = run(c, cdb, 255, &[]).await.expect("READ RESERVATION");
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
    let mut d = node();
    let mut c = session(&mut d).await;
    let (cdb, p) = prout(0x00, 0, 0, 0x1234_5678, true);
    let r = run(&mut c, cdb, 0, &p).await.expect("REGISTER");
    assert!(r.is_good(), "{r:?}");
    // RESERVE, Write Exclusive - Registrants Only (type 5).
    let (cdb, p) = prout(0x01, 5, 0x1234_5678, 0, false);
    let r = run(&mut c, cdb, 0, &p).await.expect("RESERVE");
    assert!(r.is_good(), "{r:?}");
    drop(c);

    for signal in [libc::SIGTERM, libc::SIGKILL] {
        match signal {
            libc::SIGKILL => d.kill(),
            _ => d.stop(),
        }
        let mut c = session(&mut d).await;
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
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_without_aptpl_survive_a_clean_restart_not_a_crash() {
    let mut d = node();
    let mut c = session(&mut d).await;
    let (cdb, p) = prout(0x00, 0, 0, 0xabcd, false);
    let r = run(&mut c, cdb, 0, &p).await.expect("REGISTER");
    assert!(r.is_good(), "{r:?}");
    let (cdb, p) = prout(0x01, 1, 0xabcd, 0, false);
    let r = run(&mut c, cdb, 0, &p).await.expect("RESERVE");
    assert!(r.is_good(), "{r:?}");
    drop(c);

    // A clean stop hands the reservation to the next process.
    d.stop();
    let mut c = session(&mut d).await;
    assert_eq!(read_keys(&mut c).await, vec![0xabcd]);
    assert_eq!(reservation_type(&mut c).await, Some(1));
    drop(c);

    // A crash is a power loss for reservations made without APTPL.
    d.kill();
    let mut c = session(&mut d).await;
    assert!(read_keys(&mut c).await.is_empty());
    assert_eq!(reservation_type(&mut c).await, None);
    drop(c);
    d.stop();
}
