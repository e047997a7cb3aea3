//! Property test: random CDBs and data through `LogicalUnit::execute`,
//! `report_luns` and `execute_no_lun` never panic and never return more
//! data-in than the initiator expects.

use crate::tests::lu_with;
use crate::*;

use proptest::prelude::*;

fn interesting_cdb() -> impl Strategy<Value = Vec<u8>> {
    let ops = prop::sample::select(crate::cdb::OPCODES.to_vec());
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        (
            ops,
            prop::collection::vec(any::<u8>(), 16),
            any::<bool>(),
            0usize..4
        )
            .prop_map(|(info, mut body, masked, small_lba)| {
                let len = info.cdb_len();
                body.truncate(len);
                if masked {
                    // Only bits the usage map allows: passes validation.
                    for (b, m) in body.iter_mut().zip(info.usage) {
                        *b &= *m;
                    }
                    if let Some(sa) = info.service_action {
                        body[1] = (body[1] & 0xE0) | sa as u8;
                    }
                    // Keep LBA / length small sometimes so I/O happens.
                    if small_lba > 0 && len >= 10 {
                        for b in &mut body[2..len - 4] {
                            *b = 0;
                        }
                    }
                }
                body[0] = info.opcode;
                body
            },),
    ]
}

/// Data-Out buffers: random bytes, or a well-formed PERSISTENT RESERVE
/// OUT parameter list with small keys (so reservation state builds up).
fn data_out() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4096),
        (0u64..3, 0u64..3, 0u8..16).prop_map(|(rk, sark, flags)| {
            let mut p = vec![0u8; 24];
            p[0..8].copy_from_slice(&rk.to_be_bytes());
            p[8..16].copy_from_slice(&sark.to_be_bytes());
            p[20] = flags;
            p
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn execute_never_panics(
        cmds in prop::collection::vec(
            (
                interesting_cdb(),
                data_out(),
                prop_oneof![0u32..8192, any::<u32>().prop_map(|x| x % (1 << 20))],
                0u64..3,
                1u16..3,
            ),
            1..5,
        ),
        reset in 0u8..8,
        removable in any::<bool>(),
    ) {
        let (lu, _) = lu_with(512, 4096);
        let lu = lu.with_removable(removable);
        // A SANITIZE OVERWRITE a case starts must not slow the run down.
        lu.set_sanitize_rate(0);
        lu.set_alua(std::sync::Arc::from(vec![
            AluaGroup { id: 1, state: AluaState::ActiveOptimized, relative_ports: vec![1] },
            AluaGroup { id: 2, state: AluaState::Standby, relative_ports: vec![2] },
        ]));
        if reset == 0 {
            lu.reset(None, ResetKind::TargetCold);
        }
        for (cdb, data_out, expected_len, nexus, rel) in &cmds {
            let n = Nexus { id: *nexus, relative_port: *rel };
            let port = format!("iqn.x,i,0x{nexus}");
            let mut data_in = Vec::new();
            let req = ScsiRequest {
                cdb,
                data_out,
                expected_len: *expected_len,
                nexus: n,
                initiator_port: &port,
            };
            let o = lu.execute(&req, &mut data_in);
            prop_assert!(data_in.len() as u64 <= u64::from(*expected_len));
            prop_assert!(data_in.len() as u64 <= o.transfer_len);
            if o.status == ScsiStatus::CHECK_CONDITION {
                prop_assert!(!o.sense.is_empty());
            }
            if o.status != ScsiStatus::GOOD {
                prop_assert!(data_in.is_empty());
            }
            let _ = crate::cdb::Command::parse(cdb);
            let _ = report_luns(&[0, 1, 70000], &req, &mut data_in);
            prop_assert!(data_in.len() as u64 <= u64::from(*expected_len));
            let _ = execute_no_lun(&req, &mut data_in);
            prop_assert!(data_in.len() as u64 <= u64::from(*expected_len));
        }
    }
}
