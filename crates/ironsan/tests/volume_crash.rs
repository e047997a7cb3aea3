//! Crash consistency of a volume-backed LUN through the real daemon: four
//! initiator sessions write verification patterns (sector content derived
//! from (LBA, generation)) while the daemon is SIGKILLed after a random
//! delay, many times over; after every restart each sector must read back
//! a valid pattern (never garbage), never older than what a completed
//! SYNCHRONIZE CACHE (or a FUA write) made durable, and only generations
//! that were really written. At the end `ironsan pool check` must find the
//! pool clean, both right after a crash and after a clean stop.
//!
//! Seeded from the clock; rerun a failure with `IRONSAN_TEST_SEED=N`.

mod vol;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vol::*;

/// Sectors (512 bytes) exercised: 1 MiB of an 8 MiB volume.
const SECTORS: u64 = 2048;
const WRITERS: u64 = 4;
const PER_WRITER: u64 = SECTORS / WRITERS;
const ROUNDS: u32 = 16;
/// Upper bound of the whole test.
const BOUND: Duration = Duration::from_secs(150);

/// What the initiators know about one sector.
#[derive(Clone, Copy, Default, Debug)]
struct Sector {
    /// The generation read back after the last restart.
    base: u64,
    /// First generation written since then.
    round_first: u64,
    /// Highest generation ever written (sent).
    issued: u64,
    /// Highest generation acknowledged with GOOD.
    acked: u64,
    /// Highest generation known durable (acknowledged before a completed
    /// SYNCHRONIZE CACHE, or by a FUA write).
    durable: u64,
}

#[derive(Default)]
struct Model {
    s: Vec<Sector>,
    writes: u64,
    fua_writes: u64,
    syncs: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Plain writes; SYNCHRONIZE CACHE(10) every few writes.
    Sync,
    /// No SYNCHRONIZE CACHE; every other write has FUA set.
    Fua,
}

/// One session writing random ranges of its own sectors until the daemon
/// dies. A SCSI error, or losing the connection before the kill, fails.
async fn writer(
    addr: SocketAddr,
    id: u64,
    mode: Mode,
    seed: u64,
    model: Arc<Mutex<Model>>,
    killed: Arc<AtomicBool>,
) -> Result<(), String> {
    let lost = |e: String| {
        if killed.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(format!("writer {id}: {e} before the kill"))
        }
    };
    let mut c = match login(addr, 10 + id as u8).await {
        Ok(c) => c,
        Err(e) => return lost(e),
    };
    let mut rng = Rng(seed ^ (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let first = id * PER_WRITER;
    let mut until_sync = 1 + rng.below(12);
    loop {
        let lba = first + rng.below(PER_WRITER);
        let len = 1 + rng.below(16.min(first + PER_WRITER - lba));
        let fua = mode == Mode::Fua && rng.below(2) == 0;
        let mut data = Vec::with_capacity(len as usize * 512);
        let gens: Vec<u64> = {
            let mut m = model.lock().unwrap_or_else(|p| p.into_inner());
            (lba..lba + len)
                .map(|l| {
                    let s = &mut m.s[l as usize];
                    s.issued += 1;
                    s.issued
                })
                .collect()
        };
        for (k, g) in gens.iter().enumerate() {
            data.extend_from_slice(&sector(lba + k as u64, *g));
        }
        let r = match write(&mut c, lba as u32, &data, fua).await {
            Ok(r) => r,
            Err(e) => return lost(e),
        };
        if !r.is_good() {
            return Err(format!("writer {id}: WRITE at {lba}+{len}: {r:?}"));
        }
        {
            let mut m = model.lock().unwrap_or_else(|p| p.into_inner());
            m.writes += 1;
            m.fua_writes += u64::from(fua);
            for (k, g) in gens.iter().enumerate() {
                let s = &mut m.s[(lba + k as u64) as usize];
                s.acked = s.acked.max(*g);
                if fua {
                    s.durable = s.durable.max(*g);
                }
            }
        }
        if mode == Mode::Sync {
            until_sync -= 1;
            if until_sync == 0 {
                until_sync = 1 + rng.below(12);
                // Every write acknowledged (on any session) before the
                // SYNCHRONIZE CACHE is sent is durable once it completes.
                let acked: Vec<u64> = model
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .s
                    .iter()
                    .map(|s| s.acked)
                    .collect();
                let r = match sync_cache(&mut c).await {
                    Ok(r) => r,
                    Err(e) => return lost(e),
                };
                if !r.is_good() {
                    return Err(format!("writer {id}: SYNCHRONIZE CACHE: {r:?}"));
                }
                let mut m = model.lock().unwrap_or_else(|p| p.into_inner());
                m.syncs += 1;
                for (s, a) in m.s.iter_mut().zip(acked) {
                    s.durable = s.durable.max(a);
                }
            }
        }
    }
}

/// Reads every exercised sector back and checks it against the model;
/// then what was read becomes the new baseline (it is on disk now).
async fn verify(addr: SocketAddr, model: &Mutex<Model>, round: u32) {
    let mut c = login(addr, 1).await.expect("login for verification");
    let mut got = Vec::with_capacity(SECTORS as usize * 512);
    for lba in (0..SECTORS).step_by(128) {
        let r = read(&mut c, lba as u32, 128).await.expect("READ");
        assert!(r.is_good(), "round {round}: READ at {lba}: {r:?}");
        got.extend_from_slice(&r.data);
    }
    let _ = c.logout().await;
    let mut m = model.lock().unwrap_or_else(|p| p.into_inner());
    let mut problems = Vec::new();
    for (l, s) in m.s.iter_mut().enumerate() {
        let bytes = &got[l * 512..(l + 1) * 512];
        match generation(l as u64, bytes) {
            None => problems.push(format!("sector {l}: garbage {:02x?}", &bytes[..32])),
            Some(g) if g < s.durable => problems.push(format!(
                "sector {l}: generation {g} is older than the durable {} ({s:?})",
                s.durable
            )),
            Some(g) if g != s.base && !(s.round_first..=s.issued).contains(&g) => problems.push(
                format!("sector {l}: generation {g} was not written ({s:?})"),
            ),
            Some(g) => {
                s.base = g;
                s.durable = g;
                s.acked = g;
                s.round_first = s.issued + 1;
            }
        }
    }
    assert!(
        problems.is_empty(),
        "round {round}: {} bad sectors, first: {:#?}",
        problems.len(),
        &problems[..problems.len().min(8)]
    );
}

fn check_clean(node: &Node, when: &str) {
    let (code, out, err) = node.check(&["--json"]);
    assert_eq!(code, 0, "pool check {when}: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("check JSON");
    assert_eq!(v["clean"], true, "{v}");
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["damaged"].as_array().map(Vec::len), Some(0), "{v}");
}

async fn crash_rounds(mode: Mode) {
    let seed = seed();
    eprintln!("crash test {mode:?}: IRONSAN_TEST_SEED={seed}");
    let mut rng = Rng(seed);
    let mut node = Node::new(
        &format!("crash-{mode:?}").to_lowercase(),
        "volume = \"crash\"\nsize = \"8M\"",
    );
    let model = Arc::new(Mutex::new(Model {
        s: vec![
            Sector {
                round_first: 1,
                ..Sector::default()
            };
            SECTORS as usize
        ],
        ..Model::default()
    }));
    let t0 = Instant::now();
    for round in 0..ROUNDS {
        if rng.below(4) == 0 {
            // Also crash during start-up and recovery.
            node.spawn();
            tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
            node.kill();
        }
        let addr = tokio::task::block_in_place(|| node.start());
        verify(addr, &model, round).await;
        let killed = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|id| {
                tokio::spawn(writer(
                    addr,
                    id,
                    mode,
                    rng.next(),
                    model.clone(),
                    killed.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100 + rng.below(1100))).await;
        killed.store(true, Ordering::SeqCst);
        node.kill();
        for t in tasks {
            let r = tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("writer ends after the kill")
                .expect("writer task");
            if let Err(e) = r {
                panic!("round {round}: {e}");
            }
        }
    }
    let (writes, fua, syncs) = {
        let m = model.lock().unwrap_or_else(|p| p.into_inner());
        (m.writes, m.fua_writes, m.syncs)
    };
    eprintln!(
        "crash test {mode:?}: {ROUNDS} rounds, {writes} writes ({fua} FUA), {syncs} syncs in {:?}",
        t0.elapsed()
    );
    assert!(writes >= u64::from(ROUNDS) * 4, "too few writes: {writes}");
    match mode {
        Mode::Sync => assert!(syncs > 0, "no SYNCHRONIZE CACHE completed"),
        Mode::Fua => assert!(fua > 0, "no FUA write completed"),
    }
    // Offline check right after a crash: a torn log tail and leaked blocks
    // are notes, not damage.
    tokio::task::block_in_place(|| check_clean(&node, "after a crash"));
    let addr = tokio::task::block_in_place(|| node.start());
    verify(addr, &model, ROUNDS).await;
    // While the daemon runs the check refuses, naming the reason.
    let (code, _, err) = node.check(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("daemon is running"), "{err}");
    tokio::task::block_in_place(|| node.stop());
    tokio::task::block_in_place(|| check_clean(&node, "after a clean stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_cache_survives_sigkill() {
    tokio::time::timeout(BOUND, crash_rounds(Mode::Sync))
        .await
        .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fua_writes_survive_sigkill() {
    tokio::time::timeout(BOUND, crash_rounds(Mode::Fua))
        .await
        .expect("bounded");
}
