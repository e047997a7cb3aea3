//! Parsing of the clustered-hypervisor commands: reservations, COMPARE AND
//! WRITE, ORWRITE, WRITE ATOMIC, thin provisioning, third-party copy and
//! SANITIZE. Called by [`Command::parse`] after the usage-map validation.

use crate::cdb::{be, op, Command, Rw, WriteSame};
use crate::sense::Sense;

/// Parse a validated CDB `c` (exactly the command's length) whose opcode the
/// base parser does not handle.
pub(crate) fn parse_ext(opcode: u8, c: &[u8]) -> Result<Command, Sense> {
    let rw16 = |c: &[u8], blocks: u32| Rw {
        lba: be(&c[2..10]),
        blocks,
        dpo: c[1] & 0x10 != 0,
        fua: c[1] & 0x08 != 0,
        cdb_len: 16,
    };
    let cmd = match opcode {
        op::RESERVE_6 | op::RESERVE_10 => Command::Reserve,
        op::RELEASE_6 | op::RELEASE_10 => Command::Release,
        op::PERSISTENT_RESERVE_IN => Command::PersistentReserveIn {
            service_action: c[1] & 0x1F,
            alloc_len: be(&c[7..9]) as u32,
        },
        op::PERSISTENT_RESERVE_OUT => Command::PersistentReserveOut {
            service_action: c[1] & 0x1F,
            scope: c[2] >> 4,
            pr_type: c[2] & 0x0F,
            param_len: be(&c[5..9]) as u32,
        },
        op::COMPARE_AND_WRITE => Command::CompareAndWrite {
            lba: be(&c[2..10]),
            blocks: c[13],
            dpo: c[1] & 0x10 != 0,
            fua: c[1] & 0x08 != 0,
        },
        op::ORWRITE_16 => Command::OrWrite(rw16(c, be(&c[10..14]) as u32)),
        op::WRITE_ATOMIC_16 => Command::WriteAtomic(rw16(c, be(&c[12..14]) as u32)),
        op::WRITE_SAME_10 => Command::WriteSame(WriteSame {
            lba: be(&c[2..6]),
            blocks: be(&c[7..9]) as u32,
            unmap: c[1] & 0x08 != 0,
            ndob: false,
            sixteen: false,
        }),
        op::WRITE_SAME_16 => Command::WriteSame(WriteSame {
            lba: be(&c[2..10]),
            blocks: be(&c[10..14]) as u32,
            unmap: c[1] & 0x08 != 0,
            ndob: c[1] & 0x01 != 0,
            sixteen: true,
        }),
        op::UNMAP => Command::Unmap {
            param_len: be(&c[7..9]) as u32,
        },
        op::EXTENDED_COPY => Command::ExtendedCopy {
            param_len: be(&c[10..14]) as u32,
        },
        op::RECEIVE_COPY_RESULTS => Command::ReceiveCopyResults {
            service_action: c[1] & 0x1F,
            list_id: c[2],
            alloc_len: be(&c[10..14]) as u32,
        },
        op::SANITIZE => Command::Sanitize {
            service_action: c[1] & 0x1F,
            immed: c[1] & 0x80 != 0,
            ause: c[1] & 0x20 != 0,
            param_len: be(&c[7..9]) as u16,
        },
        _ => return Err(Sense::invalid_opcode()),
    };
    Ok(cmd)
}
