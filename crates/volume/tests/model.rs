#![allow(clippy::unwrap_used)]
//! Model-based test: random sequences of write / read / unmap / snapshot /
//! clone / rollback / delete / flush / crash against an in-memory model.
//! Reads must always match the model; after a crash every block must hold
//! its last durable value or a value written after it.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use volume::{ErrorKind, Pool};

#[derive(Debug, Clone)]
enum Act {
    Write {
        v: u8,
        lba: u16,
        n: u8,
        seed: u16,
        zero: bool,
        fua: bool,
    },
    Read {
        v: u8,
        lba: u16,
        n: u8,
    },
    Unmap {
        v: u8,
        lba: u16,
        n: u8,
    },
    Snap {
        v: u8,
    },
    Clone {
        v: u8,
        s: u8,
    },
    Rollback {
        v: u8,
    },
    DelSnap {
        v: u8,
        s: u8,
    },
    DelVol {
        v: u8,
    },
    Flush,
    Crash,
    Reopen,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        8 => (any::<u8>(), any::<u16>(), 1..6u8, any::<u16>(), prop::bool::weighted(0.1), prop::bool::weighted(0.1))
            .prop_map(|(v, lba, n, seed, zero, fua)| Act::Write { v, lba, n, seed, zero, fua }),
        3 => (any::<u8>(), any::<u16>(), 1..8u8).prop_map(|(v, lba, n)| Act::Read { v, lba, n }),
        1 => (any::<u8>(), any::<u16>(), 1..8u8).prop_map(|(v, lba, n)| Act::Unmap { v, lba, n }),
        2 => any::<u8>().prop_map(|v| Act::Snap { v }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(v, s)| Act::Clone { v, s }),
        1 => any::<u8>().prop_map(|v| Act::Rollback { v }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(v, s)| Act::DelSnap { v, s }),
        1 => any::<u8>().prop_map(|v| Act::DelVol { v }),
        1 => Just(Act::Flush),
        1 => Just(Act::Crash),
        1 => Just(Act::Reopen),
    ]
}

type Blocks = HashMap<u64, Vec<u8>>;

struct MVol {
    bs: u32,
    blocks: u64,
    cur: Blocks,
    durable: Blocks,
    maybe: HashMap<u64, Vec<Vec<u8>>>,
    snaps: Vec<(String, Blocks)>,
    origin: Option<String>,
}

struct Harness {
    t: TempDir,
    pool: Option<Pool>,
    vols: BTreeMap<String, MVol>,
    names: u32,
}

impl Harness {
    fn new() -> Self {
        let t = TempDir::new("model");
        let pool = create(&t.pool());
        let mut h = Harness {
            t,
            pool: Some(pool),
            vols: BTreeMap::new(),
            names: 0,
        };
        h.create("a", 4096, 32);
        h.create("b", 512, 128);
        h
    }

    fn pool(&self) -> &Pool {
        self.pool.as_ref().unwrap()
    }

    fn create(&mut self, name: &str, bs: u32, blocks: u64) {
        self.pool()
            .create_volume(name, u64::from(bs) * blocks, bs)
            .unwrap();
        self.all_durable();
        self.vols.insert(
            name.into(),
            MVol {
                bs,
                blocks,
                cur: HashMap::new(),
                durable: HashMap::new(),
                maybe: HashMap::new(),
                snaps: Vec::new(),
                origin: None,
            },
        );
    }

    fn all_durable(&mut self) {
        for v in self.vols.values_mut() {
            v.durable = v.cur.clone();
            v.maybe.clear();
        }
    }

    fn pick(&self, i: u8) -> Option<String> {
        let n = self.vols.len();
        (n > 0)
            .then(|| self.vols.keys().nth(i as usize % n).cloned())
            .flatten()
    }

    fn read_all(&self, name: &str) -> Vec<Vec<u8>> {
        let v = &self.vols[name];
        let dev = self.pool().device(name).unwrap();
        let mut b = vec![0u8; (v.bs as u64 * v.blocks) as usize];
        dev.read_blocks(0, &mut b).unwrap();
        b.chunks(v.bs as usize).map(|c| c.to_vec()).collect()
    }

    fn verify(&self) {
        for (name, v) in &self.vols {
            let got = self.read_all(name);
            for (lba, blk) in got.iter().enumerate() {
                let want = v
                    .cur
                    .get(&(lba as u64))
                    .cloned()
                    .unwrap_or_else(|| vec![0u8; v.bs as usize]);
                assert!(*blk == want, "volume {name} lba {lba} differs from model");
            }
        }
    }

    fn run(&mut self, a: &Act) {
        match a.clone() {
            Act::Write {
                v,
                lba,
                n,
                seed,
                zero,
                fua,
            } => {
                let Some(name) = self.pick(v) else { return };
                let mv = self.vols.get_mut(&name).unwrap();
                let lba = u64::from(lba) % mv.blocks;
                let n = u64::from(n).min(mv.blocks - lba);
                let bs = mv.bs as usize;
                let data = if zero {
                    vec![0u8; n as usize * bs]
                } else {
                    pattern(u64::from(seed) << 8 | lba, n as usize * bs)
                };
                let dev = self.pool().device(&name).unwrap();
                dev.write_blocks(lba, &data, fua).unwrap();
                let mv = self.vols.get_mut(&name).unwrap();
                for i in 0..n {
                    let blk = data[i as usize * bs..][..bs].to_vec();
                    mv.maybe.entry(lba + i).or_default().push(blk.clone());
                    mv.cur.insert(lba + i, blk);
                }
                if fua {
                    self.all_durable();
                }
            }
            Act::Read { v, lba, n } => {
                let Some(name) = self.pick(v) else { return };
                let mv = &self.vols[&name];
                let lba = u64::from(lba) % mv.blocks;
                let n = u64::from(n).min(mv.blocks - lba);
                let mut b = vec![0u8; (n * u64::from(mv.bs)) as usize];
                self.pool()
                    .device(&name)
                    .unwrap()
                    .read_blocks(lba, &mut b)
                    .unwrap();
                for i in 0..n {
                    let want = mv
                        .cur
                        .get(&(lba + i))
                        .cloned()
                        .unwrap_or_else(|| vec![0u8; mv.bs as usize]);
                    assert!(
                        b[(i * u64::from(mv.bs)) as usize..][..mv.bs as usize] == want[..],
                        "{name} lba {}",
                        lba + i
                    );
                }
            }
            Act::Unmap { v, lba, n } => {
                let Some(name) = self.pick(v) else { return };
                let mv = &self.vols[&name];
                let lba = u64::from(lba) % mv.blocks;
                let n = u64::from(n).min(mv.blocks - lba);
                self.pool().device(&name).unwrap().unmap(lba, n).unwrap();
                let mv = self.vols.get_mut(&name).unwrap();
                for i in lba..lba + n {
                    mv.maybe
                        .entry(i)
                        .or_default()
                        .push(vec![0u8; mv.bs as usize]);
                    mv.cur.remove(&i);
                }
            }
            Act::Snap { v } => {
                let Some(name) = self.pick(v) else { return };
                self.names += 1;
                let s = format!("s{}", self.names);
                self.pool().create_snapshot(&name, &s).unwrap();
                self.all_durable();
                let mv = self.vols.get_mut(&name).unwrap();
                let content = mv.cur.clone();
                mv.snaps.push((s, content));
            }
            Act::Clone { v, s } => {
                let Some(name) = self.pick(v) else { return };
                let mv = &self.vols[&name];
                if mv.snaps.is_empty() || self.vols.len() >= 6 {
                    return;
                }
                let (sn, content) = mv.snaps[s as usize % mv.snaps.len()].clone();
                let (bs, blocks) = (mv.bs, mv.blocks);
                self.names += 1;
                let c = format!("c{}", self.names);
                self.pool().clone_snapshot(&name, &sn, &c).unwrap();
                self.all_durable();
                self.vols.insert(
                    c,
                    MVol {
                        bs,
                        blocks,
                        cur: content.clone(),
                        durable: content,
                        maybe: HashMap::new(),
                        snaps: Vec::new(),
                        origin: Some(format!("{name}@{sn}")),
                    },
                );
            }
            Act::Rollback { v } => {
                let Some(name) = self.pick(v) else { return };
                let Some((sn, content)) = self.vols[&name].snaps.last().cloned() else {
                    return;
                };
                self.pool().rollback(&name, &sn).unwrap();
                self.all_durable();
                let mv = self.vols.get_mut(&name).unwrap();
                mv.cur = content.clone();
                mv.durable = content;
                if mv.snaps.len() > 1 {
                    let older = mv.snaps[0].0.clone();
                    assert_eq!(
                        self.pool().rollback(&name, &older).unwrap_err().kind,
                        ErrorKind::HasSnapshots
                    );
                }
            }
            Act::DelSnap { v, s } => {
                let Some(name) = self.pick(v) else { return };
                let mv = &self.vols[&name];
                if mv.snaps.is_empty() {
                    return;
                }
                let i = s as usize % mv.snaps.len();
                let full = format!("{name}@{}", mv.snaps[i].0);
                let has_clone = self
                    .vols
                    .values()
                    .any(|o| o.origin.as_deref() == Some(full.as_str()));
                let r = self.pool().delete_snapshot(&name, &mv.snaps[i].0.clone());
                if has_clone {
                    assert_eq!(r.unwrap_err().kind, ErrorKind::HasClones);
                } else {
                    r.unwrap();
                    self.all_durable();
                    self.vols.get_mut(&name).unwrap().snaps.remove(i);
                }
            }
            Act::DelVol { v } => {
                let Some(name) = self.pick(v) else { return };
                let prefix = format!("{name}@");
                let has_clone = self
                    .vols
                    .values()
                    .any(|o| o.origin.as_deref().is_some_and(|x| x.starts_with(&prefix)));
                let r = self.pool().delete_volume(&name);
                if has_clone {
                    assert_eq!(r.unwrap_err().kind, ErrorKind::HasClones);
                } else {
                    r.unwrap();
                    self.all_durable();
                    self.vols.remove(&name);
                }
            }
            Act::Flush => {
                self.pool().flush().unwrap();
                self.all_durable();
            }
            Act::Reopen => {
                self.pool.take().unwrap().close().unwrap();
                self.pool = Some(open(&self.t.pool()));
                self.all_durable();
            }
            Act::Crash => {
                drop(self.pool.take());
                self.pool = Some(open(&self.t.pool()));
                let names: Vec<String> = self.vols.keys().cloned().collect();
                for name in names {
                    let got = self.read_all(&name);
                    let mv = self.vols.get_mut(&name).unwrap();
                    for (lba, blk) in got.into_iter().enumerate() {
                        let lba = lba as u64;
                        let old = mv
                            .durable
                            .get(&lba)
                            .cloned()
                            .unwrap_or_else(|| vec![0u8; mv.bs as usize]);
                        let ok = blk == old || mv.maybe.get(&lba).is_some_and(|m| m.contains(&blk));
                        assert!(ok, "after crash {name} lba {lba} holds neither the durable nor a later value");
                        if blk.iter().all(|&b| b == 0) {
                            mv.cur.remove(&lba);
                        } else {
                            mv.cur.insert(lba, blk);
                        }
                    }
                }
                self.all_durable();
            }
        }
    }

    fn finish(mut self) {
        self.verify();
        // Snapshot contents, through temporary clones.
        let snaps: Vec<(String, String, Blocks, u32, u64)> = self
            .vols
            .iter()
            .flat_map(|(n, v)| {
                v.snaps
                    .iter()
                    .map(move |(s, c)| (n.clone(), s.clone(), c.clone(), v.bs, v.blocks))
            })
            .collect();
        for (v, s, content, bs, blocks) in snaps {
            self.pool().clone_snapshot(&v, &s, "verify").unwrap();
            self.vols.insert(
                "verify".into(),
                MVol {
                    bs,
                    blocks,
                    cur: content,
                    durable: HashMap::new(),
                    maybe: HashMap::new(),
                    snaps: vec![],
                    origin: None,
                },
            );
            self.verify();
            self.vols.remove("verify");
            self.pool().delete_volume("verify").unwrap();
        }
        let dir = self.t.pool();
        self.pool.take().unwrap().close().unwrap();
        let r = Pool::check(&dir, false).unwrap();
        assert!(r.is_clean(), "{r:?}");
        // Freed-but-unpunched and crash-leaked blocks are reclaimed by repair.
        let fixed = Pool::check(&dir, true).unwrap();
        assert!(fixed.is_clean(), "{fixed:?}");
        let r = Pool::check(&dir, false).unwrap();
        assert!(r.is_clean() && r.unreferenced_blocks == 0, "{r:?}");
        self.pool = Some(open(&dir));
        self.verify();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]
    #[test]
    fn model_matches(acts in prop::collection::vec(act(), 1..60)) {
        let mut h = Harness::new();
        for a in &acts {
            h.run(a);
        }
        h.finish();
    }
}

#[test]
fn long_random_run() {
    let mut rng = Rng(0x1234_5678);
    let mut h = Harness::new();
    let runner = proptest::test_runner::TestRunner::deterministic();
    let strat = act();
    let mut runner = runner;
    for i in 0..1500 {
        let a = strat.new_tree(&mut runner).unwrap().current();
        h.run(&a);
        if rng.below(50) == 0 {
            h.verify();
        }
        let _ = i;
    }
    h.finish();
}
