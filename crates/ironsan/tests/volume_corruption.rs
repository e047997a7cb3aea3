//! Corruption of a volume pool under the real daemon: bytes flipped in a
//! data block (found by its unique content) read as MEDIUM ERROR /
//! UNRECOVERED READ ERROR while the rest of the volume reads fine, `pool
//! scrub` names the damaged blocks and the damaged checkpoint copy, and
//! the daemon keeps serving. A damaged log frame makes the daemon refuse
//! to start with the reason (no panic, no hang); `pool check` reports it
//! and `pool check --repair` makes the pool usable again.

mod vol;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use vol::*;

const BOUND: Duration = Duration::from_secs(120);
const SECTORS: u32 = 2048;

/// Writes generation 1 of sectors `0..SECTORS`, with a SYNCHRONIZE CACHE
/// after every 512 sectors (so the log holds several frames).
async fn fill(addr: SocketAddr) {
    let mut c = login(addr, 1).await.expect("login");
    for lba in (0..SECTORS).step_by(64) {
        let data: Vec<u8> = (lba..lba + 64)
            .flat_map(|l| sector(u64::from(l), 1))
            .collect();
        let r = write(&mut c, lba, &data, false).await.expect("write");
        assert!(r.is_good(), "write {lba}: {r:?}");
        if (lba + 64) % 512 == 0 {
            assert!(sync_cache(&mut c).await.expect("sync").is_good());
        }
    }
    let _ = c.logout().await;
}

fn expected(lba: u32, blocks: u32, gen: u64) -> Vec<u8> {
    (lba..lba + blocks)
        .flat_map(|l| sector(u64::from(l), gen))
        .collect()
}

/// Offset in the data file of the 4 KiB block holding sectors
/// `first..first + 8` (generation 1): searched by content.
fn find_block(data: &[u8], first: u32) -> u64 {
    let want = expected(first, 8, 1);
    let hits: Vec<usize> = data
        .chunks_exact(4096)
        .enumerate()
        .filter(|(_, b)| *b == want.as_slice())
        .map(|(i, _)| i * 4096)
        .collect();
    assert_eq!(hits.len(), 1, "block of sectors {first}.. found {hits:?}");
    hits[0] as u64
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn is_medium_error(r: &initiator::CommandOutcome) -> bool {
    r.status == 0x02 && r.sense_code() == Some((0x03, 0x11, 0x00))
}

async fn damaged_data_block() {
    let mut node = Node::new("corrupt-data", "volume = \"cv\"\nsize = \"4M\"");
    let addr = tokio::task::block_in_place(|| node.start());
    fill(addr).await;
    tokio::task::block_in_place(|| node.stop());

    let pool = node.pool_dir();
    let data = std::fs::read(pool.join("data")).expect("data file");
    let a = find_block(&data, 1000);
    let b = find_block(&data, 1600);
    flip(&pool.join("data"), a + 3 * 512 + 100); // in sector 1003
    flip(&pool.join("data"), b + 7 * 512 + 500); // in sector 1607
    let ckpt = pool.join("ckpt.0");
    let len = std::fs::metadata(&ckpt).expect("ckpt.0").len();
    flip(&ckpt, len - 30);

    // The daemon opens the pool from the second checkpoint copy and serves.
    let addr = tokio::task::block_in_place(|| node.start());
    let mut c = login(addr, 2).await.expect("login");
    for (lba, n) in [(1003, 1), (1000, 8), (996, 16), (1607, 1), (1600, 8)] {
        let r = read(&mut c, lba, n).await.expect("read");
        assert!(is_medium_error(&r), "read {lba}+{n}: {r:?}");
    }
    // Every other block reads its data.
    for lba in (0..SECTORS).step_by(8) {
        if lba == 1000 || lba == 1600 {
            continue;
        }
        let r = read(&mut c, lba, 8).await.expect("read");
        assert!(r.is_good(), "read {lba}: {r:?}");
        assert!(r.data == expected(lba, 8, 1), "sector {lba} differs");
    }

    // The scrub names both blocks and the damaged checkpoint copy.
    let out = node.cli(&["pool", "scrub", "cv", "--json"]);
    assert_eq!(out.status.code(), Some(1), "scrub exit code");
    let r = json_of(&out);
    let damaged: Vec<(String, u64, u64, Value)> = r["damaged"]
        .as_array()
        .expect("damaged")
        .iter()
        .map(|d| {
            (
                d["object"].as_str().unwrap_or_default().to_string(),
                d["lba"].as_u64().unwrap_or(0),
                d["blocks"].as_u64().unwrap_or(0),
                d["visible_in"].clone(),
            )
        })
        .collect();
    let cv = serde_json::json!(["cv"]);
    assert_eq!(
        damaged,
        vec![
            ("cv".to_string(), 1000, 8, cv.clone()),
            ("cv".to_string(), 1600, 8, cv)
        ],
        "{r}"
    );
    let meta = r["metadata_errors"].to_string();
    assert!(meta.contains("ckpt.0"), "{r}");
    let out = node.cli(&["pool", "scrub"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("cv LBA 1000-1007"), "{text}");
    assert!(text.contains("cv LBA 1600-1607"), "{text}");
    assert!(text.contains("metadata: ckpt.0"), "{text}");

    // Still serving: the volume counts the errors, a rewrite heals a block.
    assert!(node.running(), "the daemon died");
    let vols = json_of(&node.cli(&["volume", "list", "--json"]));
    assert!(
        vols[0]["checksum_errors"].as_u64().unwrap_or(0) >= 5,
        "{vols}"
    );
    let fresh = expected(1000, 8, 2);
    assert!(write(&mut c, 1000, &fresh, true)
        .await
        .expect("write")
        .is_good());
    let r = read(&mut c, 996, 16).await.expect("read");
    assert!(r.is_good(), "{r:?}");
    assert!(
        r.data[4 * 512..12 * 512] == fresh[..],
        "healed block differs"
    );
    assert!(is_medium_error(&read(&mut c, 1600, 8).await.expect("read")));
    let _ = c.logout().await;

    // Offline check: refused while the daemon runs, then reports the rest.
    let (code, _, err) = node.check(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("daemon is running"), "{err}");
    tokio::task::block_in_place(|| node.stop());
    let (code, out, err) = node.check(&["--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("check JSON");
    assert_eq!(v["damaged"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["damaged"][0]["lba"], 1600, "{v}");
    assert!(v["errors"].to_string().contains("ckpt.0"), "{v}");
    // Repair rewrites the checkpoints; the data block stays damaged.
    let (code, out, err) = node.check(&["--repair", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("check JSON");
    assert!(v["repairs"].to_string().contains("checkpoint"), "{v}");
    assert_eq!(v["after_repair"]["errors"], serde_json::json!([]), "{v}");
    assert_eq!(v["after_repair"]["damaged"][0]["lba"], 1600, "{v}");
    let (code, out, _) = node.check(&[]);
    eprintln!("{out}");
    assert_eq!(code, 1);
    assert!(out.contains("cv LBA 1600-1607"), "{out}");
}

async fn damaged_log_frame() {
    let mut node = Node::new("corrupt-log", "volume = \"lv\"\nsize = \"4M\"");
    let addr = tokio::task::block_in_place(|| node.start());
    fill(addr).await;
    tokio::task::block_in_place(|| node.stop());

    // Damage the payload of the second frame (the first creates the volume).
    let wal = node.pool_dir().join("wal");
    let buf = std::fs::read(&wal).expect("log");
    let first = u64::from(u32::from_le_bytes(
        buf[4..8].try_into().expect("frame header"),
    ));
    assert!(buf.len() as u64 > 24 + first + 24 + 64, "too few frames");
    flip(&wal, 24 + first + 24 + 3);

    // The daemon refuses to start, naming the pool and the damage.
    node.spawn();
    let st = node
        .wait_exit(Duration::from_secs(30))
        .expect("the daemon neither started nor exited");
    assert_eq!(st.code(), Some(1), "{st:?}");
    let log = std::fs::read_to_string(node.log(2)).unwrap_or_default();
    eprintln!("{log}");
    assert!(log.contains("pool") && log.contains("corrupt"), "{log}");

    let (code, out, err) = node.check(&[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("log damaged"), "{out}");
    let (code, out, err) = node.check(&["--repair"]);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("repaired:"), "{out}");
    let (code, out, err) = node.check(&[]);
    assert_eq!(code, 0, "{out}{err}");

    // The volume is back (its creation came before the damage); what was
    // committed after the damaged frame is lost, and nothing is garbage.
    let addr = tokio::task::block_in_place(|| node.start());
    let mut c = login(addr, 3).await.expect("login");
    for lba in (0..SECTORS).step_by(128) {
        let r = read(&mut c, lba, 128).await.expect("read");
        assert!(r.is_good(), "{r:?}");
        for (k, s) in r.data.chunks(512).enumerate() {
            assert!(
                matches!(generation(u64::from(lba) + k as u64, s), Some(0 | 1)),
                "sector {} is garbage",
                lba as usize + k
            );
        }
    }
    let _ = c.logout().await;
    let out = node.cli(&["pool", "scrub"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    tokio::task::block_in_place(|| node.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_data_block_reads_as_medium_error_and_scrub_names_it() {
    tokio::time::timeout(BOUND, damaged_data_block())
        .await
        .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_log_frame_is_reported_and_repairable() {
    tokio::time::timeout(BOUND, damaged_log_frame())
        .await
        .expect("bounded");
}
