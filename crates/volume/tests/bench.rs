#![allow(clippy::unwrap_used)]
//! In-process 4K random I/O: volume vs a plain file (pwrite/pread).
//! `cargo test -p volume --release --test bench -- --ignored --nocapture`

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use scsi::{BlockDevice, FileDevice};
use volume::{Pool, PoolOptions};

const K4: usize = 4096;
const REGION: u64 = 1 << 30;
const OPS: u64 = 200_000;

fn run(dev: &Arc<dyn BlockDevice>, threads: u64, write: bool) -> f64 {
    let blocks = REGION / K4 as u64;
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|th| {
            let dev = dev.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37 + th);
                let mut buf = pattern(th, K4);
                for i in 0..OPS / threads {
                    let lba = rng.below(blocks);
                    if write {
                        buf[0] = i as u8;
                        dev.write_blocks(lba, &buf, false).unwrap();
                    } else {
                        dev.read_blocks(lba, &mut buf).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    OPS as f64 / t0.elapsed().as_secs_f64()
}

fn fill(dev: &Arc<dyn BlockDevice>) {
    let chunk = pattern(1, 4 << 20);
    for i in 0..REGION / (4 << 20) {
        dev.write_blocks(i * 1024, &chunk, false).unwrap();
    }
    dev.flush().unwrap();
}

#[test]
#[ignore]
fn bench_4k_random_vs_file() {
    let t = TempDir::new("bench");
    let raw: Arc<dyn BlockDevice> =
        Arc::new(FileDevice::open(t.path().join("raw"), Some(REGION), 4096, true).unwrap());
    let pool = Pool::create_with(&t.pool(), PoolOptions::default()).unwrap();
    pool.create_volume("v", REGION, 4096).unwrap();
    let vol = pool.device("v").unwrap();
    fill(&raw);
    fill(&vol);
    for threads in [1, 2] {
        for write in [false, true] {
            let r = run(&raw, threads, write);
            let v = run(&vol, threads, write);
            println!(
                "4K random {} {} thread(s): file {:>9.0} IOPS  volume {:>9.0} IOPS  ratio {:.2}",
                if write { "write" } else { "read " },
                threads,
                r,
                v,
                v / r
            );
        }
    }
    let t0 = Instant::now();
    vol.flush().unwrap();
    println!("flush after {OPS} writes: {:?}", t0.elapsed());
    let s = pool.stats();
    println!("stats: {s:?}");
    drop(vol);
    drop(pool);
    let t0 = Instant::now();
    let p = Pool::open(&t.pool()).unwrap();
    println!("reopen (log replay): {:?}", t0.elapsed());
    drop(p);
}

#[test]
#[ignore]
fn bench_4k_random_read_profile() {
    let t = TempDir::new("benchr");
    let pool = Pool::create_with(&t.pool(), PoolOptions::default()).unwrap();
    pool.create_volume("v", REGION, 4096).unwrap();
    let vol = pool.device("v").unwrap();
    fill(&vol);
    let raw: Arc<dyn BlockDevice> =
        Arc::new(FileDevice::open(t.path().join("raw"), Some(REGION), 4096, true).unwrap());
    fill(&raw);
    // The pool's data file read directly (same layout, no metadata/CRC).
    let direct: Arc<dyn BlockDevice> =
        Arc::new(FileDevice::open_read_only(pool.data_path(), 4096).unwrap());
    let reps = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for _ in 0..reps {
        println!(
            "volume read {:.0} IOPS, file read {:.0} IOPS, pool data file direct {:.0} IOPS",
            run(&vol, 1, false),
            run(&raw, 1, false),
            run(&direct, 1, false)
        );
    }
}
