//! PERSISTENT RESERVE IN (SPC-4 6.15) and iSCSI TransportIDs (SPC-4
//! 7.6.4.6).

use crate::lu::{CmdResult, LogicalUnit};
use crate::pr::PrState;
use crate::sense::Sense;

/// iSCSI protocol identifier.
const PROTOCOL_ISCSI: u8 = 0x05;

/// Encode an initiator port name (`name,i,0x<isid>`) as an iSCSI
/// TransportID with FORMAT CODE 01b, NUL terminated and padded to a
/// multiple of four bytes (at least 20 bytes in total).
pub(crate) fn transport_id(port: &str) -> Vec<u8> {
    let name = port.as_bytes();
    let take = name.len().min(u16::MAX as usize - 8);
    let mut v = vec![0x40 | PROTOCOL_ISCSI, 0, 0, 0];
    v.extend_from_slice(&name[..take]);
    v.push(0);
    while v.len() % 4 != 0 || v.len() < 20 {
        v.push(0);
    }
    let add = (v.len() - 4) as u16;
    v[2..4].copy_from_slice(&add.to_be_bytes());
    v
}

/// Parse an iSCSI TransportID naming an initiator port (FORMAT CODE 01b)
/// into `name,i,0x<isid>` (ISID in lower case). None if malformed.
pub(crate) fn parse_transport_id(tid: &[u8]) -> Option<String> {
    let (&b0, rest) = tid.split_first()?;
    if b0 != 0x40 | PROTOCOL_ISCSI || rest.len() < 3 {
        return None;
    }
    let add = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
    let body = tid.get(4..4 + add)?;
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let s = std::str::from_utf8(&body[..end]).ok()?;
    let (name, isid) = s.rsplit_once(",i,0x").or_else(|| s.rsplit_once(",I,0X"))?;
    if name.is_empty() || isid.is_empty() || !isid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!("{name},i,0x{}", isid.to_ascii_lowercase()))
}

/// PERSISTENT RESERVE IN data for service action `sa` (0..=3).
pub(crate) fn encode(st: &PrState, sa: u8, out: &mut Vec<u8>) -> Result<(), Sense> {
    match sa {
        0 => {
            out.extend_from_slice(&st.generation.to_be_bytes());
            let len = (st.regs.len() * 8) as u32;
            out.extend_from_slice(&len.to_be_bytes());
            for r in &st.regs {
                out.extend_from_slice(&r.key.to_be_bytes());
            }
        }
        1 => {
            out.extend_from_slice(&st.generation.to_be_bytes());
            match &st.res {
                Some(res) => {
                    out.extend_from_slice(&16u32.to_be_bytes());
                    let key = if res.pr_type.all_registrants() {
                        0
                    } else {
                        st.regs.get(res.holder).map_or(0, |r| r.key)
                    };
                    out.extend_from_slice(&key.to_be_bytes());
                    out.extend_from_slice(&[0; 4]); // obsolete
                    out.push(0);
                    out.push(res.pr_type as u8); // scope 0 (LU)
                    out.extend_from_slice(&[0; 2]);
                }
                None => out.extend_from_slice(&0u32.to_be_bytes()),
            }
        }
        2 => {
            // REPORT CAPABILITIES: CRH, ATP_C, PTPL_C; TMV, ALLOW COMMANDS
            // 001b, PTPL_A; all six types.
            out.extend_from_slice(&8u16.to_be_bytes());
            out.push(0x10 | 0x04 | 0x01);
            out.push(0x80 | 0x10 | u8::from(st.aptpl));
            out.push(0x80 | 0x40 | 0x20 | 0x08 | 0x02);
            out.push(0x01);
            out.extend_from_slice(&[0, 0]);
        }
        3 => {
            out.extend_from_slice(&st.generation.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
            for (i, r) in st.regs.iter().enumerate() {
                out.extend_from_slice(&r.key.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
                let holder = st
                    .res
                    .as_ref()
                    .filter(|res| res.pr_type.all_registrants() || res.holder == i);
                out.push(u8::from(r.all_tg_pt) << 1 | u8::from(holder.is_some()));
                out.push(holder.map_or(0, |res| res.pr_type as u8));
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&r.rel_port.to_be_bytes());
                let tid = transport_id(&r.port);
                out.extend_from_slice(&(tid.len() as u32).to_be_bytes());
                out.extend_from_slice(&tid);
            }
            let len = (out.len() - 8) as u32;
            out[4..8].copy_from_slice(&len.to_be_bytes());
        }
        _ => return Err(Sense::invalid_field_in_cdb(1, Some(4))),
    }
    Ok(())
}

impl LogicalUnit {
    pub(crate) fn persistent_reserve_in(
        &self,
        sa: u8,
        alloc_len: u32,
        expected: u32,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        encode(&self.pr_snapshot(), sa, out)?;
        Ok(crate::lu::finish(out, alloc_len, expected))
    }
}
