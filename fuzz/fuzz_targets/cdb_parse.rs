//! SCSI CDBs through `Command::parse` and `LogicalUnit::execute`.
//!
//! Input layout: byte 0 configures the logical unit (bit 0: removable
//! medium, bit 1: read-only), then up to 16 commands, each
//!
//! ```text
//! [cdb_len % 33] [nexus: bits 0-1, reset before: bits 4-5 (1 LU, 2 warm, 3 cold)]
//! [expected_len: u32 BE] [data_out_len: u16 BE] [cdb] [data_out]
//! ```
//!
//! truncated wherever the input ends. Commands run in order on one LU so
//! state (mode pages, PREVENT, unit attentions, written blocks) carries over.
//! Every command's result must respect the transport's invariants: never
//! more data-in than expected or than the command transfers, no data with
//! a failed status, and sense data with every CHECK CONDITION.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use scsi::cdb::Command;
use scsi::{
    execute_no_lun, report_luns, LogicalUnit, LuIdentity, MemDevice, Nexus, ResetKind, ScsiOutcome,
    ScsiRequest, ScsiStatus,
};

const BLOCK_SIZE: u32 = 512;
const BLOCKS: u64 = 64;
const MAX_COMMANDS: usize = 16;
/// Initiator port names of the four nexuses (persistent reservations key on them).
const PORTS: [&str; 4] = [
    "iqn.2024-01.org.ironsan:fuzz-a,i,0x000000000001",
    "iqn.2024-01.org.ironsan:fuzz-a,i,0x000000000002",
    "iqn.2024-01.org.ironsan:fuzz-b,i,0x000000000001",
    "iqn.2024-01.org.ironsan:fuzz-c,i,0x400000000001",
];

fn identity(read_only: bool) -> LuIdentity {
    LuIdentity {
        vendor: "IRONSAN".into(),
        product: "FUZZ".into(),
        revision: "0001".into(),
        serial: "fuzz0001".into(),
        naa: [0x60, 0x01, 0x40, 0x5f, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        target_name: "iqn.2024-01.org.ironsan:fuzz".into(),
        write_cache: true,
        read_only,
    }
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = data.split_at(n.min(data.len()));
    *data = tail;
    head
}

fn check(o: &ScsiOutcome, data_in: &[u8], expected_len: u32) {
    assert!(data_in.len() as u64 <= u64::from(expected_len));
    if o.status == ScsiStatus::GOOD || o.status == ScsiStatus::CONDITION_MET {
        assert!(data_in.len() as u64 <= o.transfer_len);
    } else {
        assert!(data_in.is_empty(), "data-in with status {:?}", o.status);
    }
    // RESERVATION CONFLICT, BUSY and TASK SET FULL carry no sense data.
    if o.status == ScsiStatus::CHECK_CONDITION {
        assert!(!o.sense.is_empty(), "CHECK CONDITION without sense");
    }
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let config = take(&mut data, 1).first().copied().unwrap_or(0);
    let dev = Arc::new(MemDevice::new(BLOCK_SIZE, BLOCKS));
    let lu = LogicalUnit::new(dev, identity(config & 2 != 0)).with_removable(config & 1 != 0);
    let mut data_in = Vec::new();
    for _ in 0..MAX_COMMANDS {
        if data.is_empty() {
            break;
        }
        let hdr = take(&mut data, 8);
        let byte = |i: usize| hdr.get(i).copied().unwrap_or(0);
        let cdb_len = usize::from(byte(0) % 33);
        let nexus = Nexus {
            id: u64::from(byte(1) & 3),
            relative_port: 1,
        };
        let expected_len = u32::from_be_bytes([byte(2), byte(3), byte(4), byte(5)]);
        let data_out_len = usize::from(u16::from_be_bytes([byte(6), byte(7)]));
        let cdb = take(&mut data, cdb_len);
        let data_out = take(&mut data, data_out_len);

        match (byte(1) >> 4) & 3 {
            1 => lu.reset(Some(nexus), ResetKind::LogicalUnit),
            2 => lu.reset(None, ResetKind::TargetWarm),
            3 => lu.reset(None, ResetKind::TargetCold),
            _ => {}
        }

        if let Ok(cmd) = Command::parse(cdb) {
            let _ = cmd.needs_medium();
            let _ = format!("{cmd:?}");
        }
        let req = ScsiRequest {
            cdb,
            data_out,
            expected_len,
            nexus,
            initiator_port: PORTS[usize::from(byte(1) & 3)],
        };
        let o = lu.execute(&req, &mut data_in);
        check(&o, &data_in, expected_len);

        let o = report_luns(&[0, 1, 255, 256, 16383], &req, &mut data_in);
        check(&o, &data_in, expected_len);
        let o = execute_no_lun(&req, &mut data_in);
        check(&o, &data_in, expected_len);
    }
});
