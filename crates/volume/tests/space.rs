#![allow(clippy::unwrap_used)]
//! O(1) snapshots/clones (by counted work, not timing) and thin space use
//! measured on the actual files.

mod common;

use common::*;
use volume::Pool;

const K4: usize = 4096;
const MIB: u64 = 1 << 20;

/// Work done by creating a snapshot: log bytes appended and map entries
/// touched.
fn snapshot_cost(pool: &Pool, vol: &str, snap: &str) -> (u64, u64) {
    pool.flush().unwrap();
    let s0 = pool.stats();
    pool.create_snapshot(vol, snap).unwrap();
    let s1 = pool.stats();
    (
        s1.log_bytes - s0.log_bytes,
        s1.metadata_entries_touched - s0.metadata_entries_touched,
    )
}

#[test]
fn snapshot_and_clone_cost_is_independent_of_volume_size() {
    let t = TempDir::new("o1");
    let pool = create(&t.pool());
    let mut rng = Rng(5);
    let mut costs = Vec::new();
    for (name, size, writes) in [
        ("small", MIB << 10, 500u64),
        ("big", 64 * (MIB << 10), 20_000),
    ] {
        pool.create_volume(name, size, 4096).unwrap();
        let dev = pool.device(name).unwrap();
        let blocks = size / K4 as u64;
        for i in 0..writes {
            dev.write_blocks(rng.below(blocks - 4), &pattern(i, 4 * K4), false)
                .unwrap();
        }
        let (log, touched) = snapshot_cost(&pool, name, "s");
        pool.flush().unwrap();
        let before = pool.stats();
        pool.clone_snapshot(name, "s", &format!("{name}-clone"))
            .unwrap();
        let after = pool.stats();
        costs.push((
            log,
            touched,
            after.log_bytes - before.log_bytes,
            after.metadata_entries_touched - before.metadata_entries_touched,
        ));
    }
    // Same (tiny) log record and no map entry touched for 1 GiB with 2000
    // blocks and 64 GiB with 80000 blocks mapped.
    let (small, big) = (costs[0], costs[1]);
    assert_eq!(small.1, 0);
    assert_eq!(big.1, 0);
    assert_eq!(small.3, 0);
    assert_eq!(big.3, 0);
    assert!(small.0 < 200 && big.0 < 200, "{costs:?}");
    assert!(
        big.0.abs_diff(small.0) <= 8,
        "log bytes differ only by name length: {costs:?}"
    );
    assert!(big.2.abs_diff(small.2) <= 16, "{costs:?}");
}

#[test]
fn clone_of_1gib_image_costs_under_1mib_until_written() {
    let t = TempDir::new("clone1g");
    let pool = create(&t.pool());
    let gib = 1u64 << 30;
    pool.create_volume("image", gib, 4096).unwrap();
    let dev = pool.device("image").unwrap();
    let chunk = pattern(42, 4 << 20);
    for i in 0..256u64 {
        let mut c = chunk.clone();
        c[..8].copy_from_slice(&i.to_le_bytes());
        dev.write_blocks(i * 1024, &c, false).unwrap();
    }
    pool.create_snapshot("image", "gold").unwrap();
    pool.flush().unwrap();
    let before = disk_usage(&t.pool());
    assert!(before >= gib, "image occupies {before}");
    pool.clone_snapshot("image", "gold", "vm1").unwrap();
    pool.clone_snapshot("image", "gold", "vm2").unwrap();
    pool.flush().unwrap();
    let after = disk_usage(&t.pool());
    assert!(
        after.saturating_sub(before) < MIB,
        "two clones cost {} bytes",
        after - before
    );
    let c = pool.info("vm1").unwrap();
    assert_eq!(c.used_bytes, 0);
    assert_eq!(c.referenced_bytes, gib);
    assert_eq!(c.logical_bytes, gib);
    // Writing 1 MiB to the clone costs 1 MiB.
    let vm1 = pool.device("vm1").unwrap();
    vm1.write_blocks(0, &pattern(7, MIB as usize), false)
        .unwrap();
    vm1.flush().unwrap();
    assert_eq!(pool.info("vm1").unwrap().used_bytes, MIB);
    assert_eq!(pool.info("vm2").unwrap().used_bytes, 0);
    let grown = disk_usage(&t.pool()) - after;
    assert!((MIB..2 * MIB).contains(&grown), "grew {grown}");
    assert_eq!(pool.info("image@gold").unwrap().used_bytes, 0);
    assert_eq!(pool.stats().allocated_bytes, gib + MIB);
}
