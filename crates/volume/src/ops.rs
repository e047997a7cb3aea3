//! Binary encoding of log records ([`Op`]) and block pointers.

use crate::catalog::Op;
use crate::codec::{Dec, Enc};
use crate::error::{Result, VolumeError};
use crate::layer::Ptr;

pub(crate) fn encode_ptr(e: &mut Enc, p: Option<Ptr>) {
    match p {
        None => e.u8(0),
        Some(Ptr::Zero) => e.u8(1),
        Some(Ptr::Data { phys, crc }) => {
            e.u8(2);
            e.u64(phys);
            e.u32(crc);
        }
    }
}

pub(crate) fn decode_ptr(d: &mut Dec<'_>) -> Result<Option<Ptr>> {
    Ok(match d.u8()? {
        0 => None,
        1 => Some(Ptr::Zero),
        2 => Some(Ptr::Data {
            phys: d.u64()?,
            crc: d.u32()?,
        }),
        t => return Err(d.bad_tag(t)),
    })
}

pub(crate) fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let n: usize = ops
        .iter()
        .map(|o| match o {
            Op::Data { recs, .. } => 16 + recs.len() * 21,
            _ => 96,
        })
        .sum();
    let mut e = Enc::with_capacity(n);
    for op in ops {
        match op {
            Op::Data { layer, recs } => {
                e.u8(1);
                e.u64(*layer);
                e.u64(recs.len() as u64);
                for &(c, p) in recs {
                    e.u64(c);
                    encode_ptr(&mut e, p);
                }
            }
            Op::CreateVolume {
                name,
                size,
                block_size,
                head,
                parent,
                origin,
                created,
            } => {
                e.u8(2);
                e.str(name);
                e.u64(*size);
                e.u32(*block_size);
                e.u64(*head);
                e.opt_u64(*parent);
                e.opt_str(origin.as_deref());
                e.u64(*created);
            }
            Op::Resize { name, size } => {
                e.u8(3);
                e.str(name);
                e.u64(*size);
            }
            Op::DeleteVolume { name } => {
                e.u8(4);
                e.str(name);
            }
            Op::Snapshot {
                vol,
                snap,
                new_head,
                created,
            } => {
                e.u8(5);
                e.str(vol);
                e.str(snap);
                e.u64(*new_head);
                e.u64(*created);
            }
            Op::DeleteSnapshot { vol, snap } => {
                e.u8(6);
                e.str(vol);
                e.str(snap);
            }
            Op::Rollback {
                vol,
                snap,
                new_head,
            } => {
                e.u8(7);
                e.str(vol);
                e.str(snap);
                e.u64(*new_head);
            }
        }
    }
    e.buf
}

pub(crate) fn decode_ops(buf: &[u8]) -> Result<Vec<Op>> {
    let mut d = Dec::new(buf, "log record");
    let mut ops = Vec::new();
    while !d.is_empty() {
        let op = match d.u8()? {
            1 => {
                let layer = d.u64()?;
                let n = d.u64()?;
                // Each record is at least 9 bytes: bound the allocation.
                if n > (d.remaining() / 9) as u64 {
                    return Err(VolumeError::corrupt("log record: bad record count"));
                }
                let mut recs = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let c = d.u64()?;
                    recs.push((c, decode_ptr(&mut d)?));
                }
                Op::Data { layer, recs }
            }
            2 => Op::CreateVolume {
                name: d.str()?,
                size: d.u64()?,
                block_size: d.u32()?,
                head: d.u64()?,
                parent: d.opt_u64()?,
                origin: d.opt_str()?,
                created: d.u64()?,
            },
            3 => Op::Resize {
                name: d.str()?,
                size: d.u64()?,
            },
            4 => Op::DeleteVolume { name: d.str()? },
            5 => Op::Snapshot {
                vol: d.str()?,
                snap: d.str()?,
                new_head: d.u64()?,
                created: d.u64()?,
            },
            6 => Op::DeleteSnapshot {
                vol: d.str()?,
                snap: d.str()?,
            },
            7 => Op::Rollback {
                vol: d.str()?,
                snap: d.str()?,
                new_head: d.u64()?,
            },
            t => return Err(d.bad_tag(t)),
        };
        ops.push(op);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn op_encoding_roundtrip() {
        let ops = vec![
            Op::Data {
                layer: 3,
                recs: vec![
                    (1, Some(Ptr::Data { phys: 9, crc: 7 })),
                    (2, Some(Ptr::Zero)),
                    (u64::MAX, None),
                ],
            },
            Op::CreateVolume {
                name: "a".into(),
                size: 1 << 40,
                block_size: 512,
                head: 4,
                parent: Some(2),
                origin: Some("b@s".into()),
                created: 17,
            },
            Op::Resize {
                name: "a".into(),
                size: 5,
            },
            Op::DeleteVolume { name: "a".into() },
            Op::Snapshot {
                vol: "v".into(),
                snap: "s".into(),
                new_head: 8,
                created: 1,
            },
            Op::DeleteSnapshot {
                vol: "v".into(),
                snap: "s".into(),
            },
            Op::Rollback {
                vol: "v".into(),
                snap: "s".into(),
                new_head: 9,
            },
        ];
        let buf = encode_ops(&ops);
        assert_eq!(decode_ops(&buf).unwrap(), ops);
        for cut in 1..buf.len() {
            // Never panics; usually an error (a cut at an op boundary is a
            // valid shorter list, which the frame CRC rules out in practice).
            let _ = decode_ops(&buf[..cut]);
        }
        let mut bad = buf.clone();
        bad[0] = 99;
        assert_eq!(decode_ops(&bad).unwrap_err().kind, ErrorKind::Corrupt);
    }
}
