//! Persistent reservations, SPC-2 RESERVE / RELEASE and APTPL persistence,
//! mirroring libiscsi's Prin*, Prout* and Reserve6 suites.

use std::sync::Arc;

use crate::tests::{cdb10, lu, run, Out, N1, N2};
use crate::*;

const N3: Nexus = Nexus {
    id: 3,
    relative_port: 2,
};
/// Observer nexus for PRIN queries: never registered.
const OBS: Nexus = Nexus {
    id: 99,
    relative_port: 1,
};
const CONFLICT: ScsiStatus = ScsiStatus::RESERVATION_CONFLICT;

fn port_of(n: Nexus) -> String {
    format!("iqn.2024-01.org.test:host,i,0x{:012x}", n.id)
}

fn prout(lu: &LogicalUnit, n: Nexus, sa: u8, ty: u8, rk: u64, sark: u64, flags: u8) -> Out {
    let mut p = [0u8; 24];
    p[0..8].copy_from_slice(&rk.to_be_bytes());
    p[8..16].copy_from_slice(&sark.to_be_bytes());
    p[20] = flags;
    let c = [0x5F, sa, ty, 0, 0, 0, 0, 0, 24, 0];
    run(lu, n, &c, &p, 24)
}

fn prin(lu: &LogicalUnit, n: Nexus, sa: u8, alloc: u16) -> Out {
    let a = alloc.to_be_bytes();
    run(
        lu,
        n,
        &[0x5E, sa, 0, 0, 0, 0, 0, a[0], a[1], 0],
        &[],
        u32::from(alloc),
    )
}

fn keys(lu: &LogicalUnit) -> (u32, Vec<u64>) {
    let r = prin(lu, OBS, 0, 4096);
    assert!(r.good());
    let gen = u32::from_be_bytes(r.data[0..4].try_into().unwrap());
    let ks = r.data[8..]
        .chunks(8)
        .map(|k| u64::from_be_bytes(k.try_into().unwrap()))
        .collect();
    (gen, ks)
}

/// (key, type) of the reservation, if any.
fn reservation(lu: &LogicalUnit) -> Option<(u64, u8)> {
    let r = prin(lu, OBS, 1, 4096);
    assert!(r.good());
    (u32::from_be_bytes(r.data[4..8].try_into().unwrap()) == 16).then(|| {
        (
            u64::from_be_bytes(r.data[8..16].try_into().unwrap()),
            r.data[21] & 0x0F,
        )
    })
}

fn read_ok(lu: &LogicalUnit, n: Nexus) -> bool {
    let r = run(lu, n, &cdb10(0x28, 0, 1, 1), &[], 512);
    assert!(r.good() || r.o.status == CONFLICT);
    r.good()
}

fn write_ok(lu: &LogicalUnit, n: Nexus) -> bool {
    let r = run(lu, n, &cdb10(0x2A, 0, 1, 1), &[0u8; 512], 512);
    assert!(r.good() || r.o.status == CONFLICT);
    r.good()
}

#[test]
fn register_read_keys_and_truncation() {
    let lu = lu();
    let r = prin(&lu, N1, 0, 8);
    assert_eq!(r.data, [0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(prout(&lu, N1, 6, 0, 0, 0xAB, 0).good());
    assert_eq!(keys(&lu), (1, vec![0xAB]));
    // Additional length is not truncated by the allocation length.
    let r = prin(&lu, N1, 0, 8);
    assert_eq!(&r.data[4..8], &[0, 0, 0, 8]);
    assert_eq!(r.o.transfer_len, 8);
    // REGISTER with the wrong reservation key: conflict.
    assert_eq!(prout(&lu, N1, 0, 0, 0, 0xAC, 0).o.status, CONFLICT);
    // Change the key, then unregister.
    assert!(prout(&lu, N1, 0, 0, 0xAB, 0xAC, 0).good());
    assert_eq!(keys(&lu).1, vec![0xAC]);
    assert!(prout(&lu, N1, 0, 0, 0xAC, 0, 0).good());
    assert_eq!(keys(&lu), (3, vec![]));
    // Unregistered nexus registering with a non-zero RK: conflict.
    assert_eq!(prout(&lu, N2, 0, 0, 5, 6, 0).o.status, CONFLICT);
    // Unsupported SPEC_I_PT, wrong parameter list length.
    assert_eq!(prout(&lu, N1, 0, 0, 0, 1, 0x08).sense(), (5, 0x2600));
    let c = [0x5F, 0, 0, 0, 0, 0, 0, 0, 23, 0];
    assert_eq!(run(&lu, N1, &c, &[0; 24], 23).sense(), (5, 0x1A00));
}

#[test]
fn prin_service_action_range_and_capabilities() {
    let lu = lu();
    for sa in 0..4 {
        assert!(prin(&lu, N1, sa, 1024).good(), "{sa}");
    }
    for sa in 4..0x20 {
        assert_eq!(prin(&lu, N1, sa, 1024).sense(), (5, 0x2400), "{sa}");
    }
    let r = prin(&lu, N1, 2, 1024);
    assert_eq!(&r.data[..2], &[0, 8]);
    assert_eq!(r.data[2], 0x15); // CRH ATP_C PTPL_C
    assert_eq!((r.data[3] >> 4) & 7, 1);
    assert_eq!(&r.data[4..6], &[0xEA, 0x01]);
}

#[test]
fn reserve_release_every_type_and_generation() {
    let lu = lu();
    assert!(prout(&lu, N1, 6, 0, 0, 7, 0).good());
    let (gen, _) = keys(&lu);
    for ty in [1u8, 3, 5, 6, 7, 8] {
        assert!(prout(&lu, N1, 1, ty, 7, 0, 0).good(), "{ty}");
        let key = if ty >= 7 { 0 } else { 7 };
        assert_eq!(reservation(&lu), Some((key, ty)));
        // Same type again: no-op; another type: conflict.
        assert!(prout(&lu, N1, 1, ty, 7, 0, 0).good());
        let other = if ty == 1 { 3 } else { 1 };
        assert_eq!(prout(&lu, N1, 1, other, 7, 0, 0).o.status, CONFLICT);
        // Release with the wrong type.
        assert_eq!(prout(&lu, N1, 2, other, 7, 0, 0).sense(), (5, 0x2604));
        assert!(prout(&lu, N1, 2, ty, 7, 0, 0).good());
        assert_eq!(reservation(&lu), None);
    }
    // RESERVE / RELEASE do not bump the generation.
    assert_eq!(keys(&lu).0, gen);
    // Bad type and scope.
    assert_eq!(prout(&lu, N1, 1, 2, 7, 0, 0).sense(), (5, 0x2400));
    assert_eq!(prout(&lu, N1, 1, 0x11, 7, 0, 0).sense(), (5, 0x2400));
    // Unregistered nexus cannot reserve.
    assert_eq!(prout(&lu, N2, 1, 1, 0, 0, 0).o.status, CONFLICT);
}

#[test]
fn access_matrix_per_type() {
    // (type, registered read, registered write, unregistered read, write)
    let matrix = [
        (3u8, false, false, false, false),
        (1, true, false, true, false),
        (6, true, true, false, false),
        (5, true, true, true, false),
        (8, true, true, false, false),
        (7, true, true, true, false),
    ];
    for (ty, rr, rw, ur, uw) in matrix {
        let lu = lu();
        assert!(prout(&lu, N1, 6, 0, 0, 1, 0).good());
        assert!(prout(&lu, N2, 6, 0, 0, 2, 0).good());
        assert!(prout(&lu, N1, 1, ty, 1, 0, 0).good());
        assert!(read_ok(&lu, N1) && write_ok(&lu, N1));
        assert_eq!((read_ok(&lu, N2), write_ok(&lu, N2)), (rr, rw), "{ty}");
        assert!(prout(&lu, N2, 0, 0, 2, 0, 0).good());
        assert_eq!((read_ok(&lu, N2), write_ok(&lu, N2)), (ur, uw), "{ty}");
        // Commands that never conflict.
        for c in [
            &[0x12u8, 0, 0, 0, 36, 0][..],
            &[0x00, 0, 0, 0, 0, 0],
            &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x03, 0, 0, 0, 18, 0],
        ] {
            assert!(run(&lu, N2, c, &[], 36).good(), "{ty} {:02x}", c[0]);
        }
        assert!(prin(&lu, N2, 1, 64).good());
    }
}

#[test]
fn unregistering_the_holder() {
    for ty in [1u8, 3, 5, 6, 7, 8] {
        let lu = lu();
        assert!(prout(&lu, N1, 6, 0, 0, 1, 0).good());
        assert!(prout(&lu, N2, 6, 0, 0, 2, 0).good());
        assert!(prout(&lu, N1, 1, ty, 1, 0, 0).good());
        assert!(prout(&lu, N1, 0, 0, 1, 0, 0).good());
        if ty >= 7 {
            // All registrants: the reservation stays with the others.
            assert_eq!(reservation(&lu), Some((0, ty)));
            assert!(prout(&lu, N2, 2, ty, 2, 0, 0).good());
        } else {
            assert_eq!(reservation(&lu), None);
        }
        // Registrants-only holders leaving tell the others.
        let ua = run(&lu, N2, &[0; 6], &[], 0);
        if ty == 5 || ty == 6 {
            assert_eq!(ua.sense(), (6, 0x2A04), "{ty}");
        } else {
            assert!(ua.good(), "{ty}");
        }
    }
}

#[test]
fn clear_and_preempt() {
    let lu = lu();
    assert!(prout(&lu, N1, 6, 0, 0, 1, 0).good());
    assert!(prout(&lu, N2, 6, 0, 0, 2, 0).good());
    assert!(prout(&lu, N1, 1, 3, 1, 0, 0).good());
    let (gen, _) = keys(&lu);
    assert_eq!(prout(&lu, N2, 3, 0, 9, 0, 0).o.status, CONFLICT);
    assert!(prout(&lu, N2, 3, 0, 2, 0, 0).good());
    assert_eq!(reservation(&lu), None);
    assert_eq!(keys(&lu), (gen + 1, vec![]));
    assert_eq!(run(&lu, N1, &[0; 6], &[], 0).sense(), (6, 0x2A03));
    assert!(run(&lu, N2, &[0; 6], &[], 0).good());

    // PREEMPT without a reservation removes the registration (libiscsi
    // ProutPreempt.RemoveRegistration).
    assert!(prout(&lu, N1, 6, 0, 0, 1, 0).good());
    assert!(prout(&lu, N2, 6, 0, 0, 2, 0).good());
    let (gen, _) = keys(&lu);
    assert!(prout(&lu, N2, 4, 3, 2, 1, 0).good());
    assert_eq!(keys(&lu), (gen + 1, vec![2]));
    assert_eq!(run(&lu, N1, &[0; 6], &[], 0).sense(), (6, 0x2A05));
    // Unknown key: conflict; zero key without reservation: invalid.
    assert_eq!(prout(&lu, N2, 4, 3, 2, 77, 0).o.status, CONFLICT);
    assert_eq!(prout(&lu, N2, 4, 3, 2, 0, 0).sense(), (5, 0x2600));

    // PREEMPT of the holder moves the reservation (type change: UAs).
    assert!(prout(&lu, N1, 6, 0, 0, 1, 0).good());
    assert!(prout(&lu, N3, 6, 0, 0, 3, 0).good());
    assert!(prout(&lu, N1, 1, 1, 1, 0, 0).good());
    assert!(prout(&lu, N2, 5, 3, 2, 1, 0).good());
    assert_eq!(reservation(&lu), Some((2, 3)));
    assert_eq!(run(&lu, N1, &[0; 6], &[], 0).sense(), (6, 0x2A05));
    let r = Nexus {
        id: 3,
        relative_port: 2,
    };
    assert_eq!(run(&lu, r, &[0; 6], &[], 0).sense(), (6, 0x2A04));
    assert!(!write_ok(&lu, N1));
    assert!(write_ok(&lu, N2));
}

#[test]
fn all_tg_pt_and_full_status() {
    let lu = lu();
    // N1 registers for all target ports; the same initiator port through
    // relative port 2 is registered too.
    assert!(prout(&lu, N1, 6, 0, 0, 0x11, 0x04).good());
    let other_port = Nexus {
        id: 1,
        relative_port: 2,
    };
    assert!(prout(&lu, other_port, 1, 1, 0x11, 0, 0).good());
    assert!(write_ok(&lu, N1));
    assert!(!write_ok(&lu, N2));
    let r = prin(&lu, N1, 3, 4096);
    assert!(r.good());
    let d = &r.data[8..];
    assert_eq!(&d[..8], &0x11u64.to_be_bytes());
    assert_eq!(d[12], 0x03); // ALL_TG_PT, R_HOLDER
    assert_eq!(d[13], 1);
    let tid_len = u32::from_be_bytes(d[20..24].try_into().unwrap()) as usize;
    let tid = &d[24..24 + tid_len];
    assert_eq!(tid[0], 0x45);
    assert_eq!(
        crate::pr_in::parse_transport_id(tid).as_deref(),
        Some(port_of(N1).as_str())
    );
    assert_eq!(tid.len() % 4, 0);
}

#[test]
fn register_and_move() {
    let lu = lu();
    assert!(prout(&lu, N1, 6, 0, 0, 1, 0).good());
    assert!(prout(&lu, N1, 1, 1, 1, 0, 0).good());
    let tid = crate::pr_in::transport_id(&port_of(N2));
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&1u64.to_be_bytes());
    p[8..16].copy_from_slice(&5u64.to_be_bytes());
    p[17] = 0x02; // UNREG
    p[18..20].copy_from_slice(&1u16.to_be_bytes());
    p[20..24].copy_from_slice(&(tid.len() as u32).to_be_bytes());
    p.extend_from_slice(&tid);
    let len = p.len() as u8;
    let c = [0x5F, 7, 1, 0, 0, 0, 0, 0, len, 0];
    assert!(run(&lu, N1, &c, &p, u32::from(len)).good());
    assert_eq!(reservation(&lu), Some((5, 1)));
    assert_eq!(keys(&lu).1, vec![5]);
    assert!(write_ok(&lu, N2));
    assert!(!write_ok(&lu, N1));
    // Only the holder may move.
    assert_eq!(run(&lu, N1, &c, &p, u32::from(len)).o.status, CONFLICT);
}

#[test]
fn spc2_reserve_release() {
    let lu = lu();
    let reserve6 = [0x16u8, 0, 0, 0, 0, 0];
    let release6 = [0x17u8, 0, 0, 0, 0, 0];
    assert!(run(&lu, N1, &reserve6, &[], 0).good());
    assert!(run(&lu, N1, &reserve6, &[], 0).good());
    assert_eq!(run(&lu, N2, &reserve6, &[], 0).o.status, CONFLICT);
    assert!(run(&lu, N2, &release6, &[], 0).good());
    assert!(run(&lu, N1, &[0x1A, 0, 0x3F, 0, 255, 0], &[], 255).good());
    assert_eq!(
        run(&lu, N2, &[0x1A, 0, 0x3F, 0, 255, 0], &[], 255).o.status,
        CONFLICT
    );
    assert!(run(&lu, N2, &[0x12, 0, 0, 0, 36, 0], &[], 36).good());
    assert_eq!(prout(&lu, N2, 6, 0, 0, 1, 0).o.status, CONFLICT);
    assert!(run(&lu, N1, &release6, &[], 0).good());
    assert!(run(&lu, N2, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 0).good());
    // Nexus loss and resets release it.
    lu.nexus_lost(N2);
    assert!(run(&lu, N1, &reserve6, &[], 0).good());
    lu.reset(Some(N1), ResetKind::LogicalUnit);
    assert_eq!(run(&lu, N1, &[0; 6], &[], 0).sense(), (6, 0x2903));
    // N2's nexus was lost: no state, no unit attention.
    assert!(write_ok(&lu, N2));
    // With registrations, RESERVE / RELEASE conflict unless exempt (SPC-3).
    assert!(prout(&lu, N1, 6, 0, 0, 1, 0).good());
    assert_eq!(run(&lu, N1, &reserve6, &[], 0).o.status, CONFLICT);
    assert!(prout(&lu, N1, 1, 5, 1, 0, 0).good());
    assert!(run(&lu, N1, &reserve6, &[], 0).good());
    assert!(run(&lu, N1, &release6, &[], 0).good());
    assert_eq!(reservation(&lu), Some((1, 5)));
}

#[test]
fn aptpl_state_survives_restart_and_corruption_is_detected() {
    let dir = std::env::temp_dir().join(format!("ironsan-pr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lun0.pr");
    let _ = std::fs::remove_file(&path);
    let store = || -> Arc<dyn PrStore> { Arc::new(FilePrStore::new(&path)) };
    let mk = || {
        let dev = Arc::new(MemDevice::new(512, 64));
        LogicalUnit::new(dev, crate::tests::ident()).with_pr_store(store())
    };
    let lu = mk().unwrap();
    // Without APTPL nothing is saved.
    assert!(prout(&lu, N1, 6, 0, 0, 1, 0).good());
    assert!(!path.exists());
    // APTPL: registrations and the reservation are saved.
    assert!(prout(&lu, N2, 6, 0, 0, 2, 0x01).good());
    assert!(prout(&lu, N2, 1, 6, 2, 0, 0).good());
    assert!(path.exists());
    drop(lu);
    let lu = mk().unwrap();
    assert_eq!(keys(&lu).1, vec![1, 2]);
    assert_eq!(reservation(&lu), Some((2, 6)));
    assert!(!write_ok(&lu, N3));
    assert_eq!(prin(&lu, N1, 2, 8).data[3] & 1, 1); // PTPL_A
                                                    // A flipped byte is detected and reported, never used.
    let mut bytes = std::fs::read(&path).unwrap();
    let good = bytes.clone();
    bytes[12] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let e = mk().err().unwrap();
    assert!(e.to_string().contains("corrupt"), "{e}");
    std::fs::write(&path, &good[..good.len() - 3]).unwrap();
    assert!(mk().is_err());
    std::fs::write(&path, &good).unwrap();
    // Clearing APTPL deletes the saved state.
    let lu = mk().unwrap();
    assert!(prout(&lu, N1, 0, 0, 1, 1, 0).good());
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pr_encoding_roundtrip() {
    use crate::pr::{PrState, PrType, Registration, Reservation};
    let st = PrState {
        generation: 42,
        regs: vec![
            Registration {
                key: 9,
                port: "iqn.a,i,0x1".into(),
                rel_port: 3,
                all_tg_pt: true,
            },
            Registration {
                key: 10,
                port: "iqn.b,i,0x2".into(),
                rel_port: 1,
                all_tg_pt: false,
            },
        ],
        res: Some(Reservation {
            holder: 1,
            pr_type: PrType::ExclusiveAccessAllRegistrants,
        }),
        aptpl: true,
    };
    let b = crate::pr_store::encode(&st);
    assert_eq!(crate::pr_store::decode(&b).unwrap(), st);
    for cut in 0..b.len() {
        assert!(crate::pr_store::decode(&b[..cut]).is_err());
    }
    let mut v = b.clone();
    v[4] = 9;
    assert!(crate::pr_store::decode(&v).is_err());
}
