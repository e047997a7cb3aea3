//! SPC-4 commands that do not depend on logical unit state: REPORT
//! SUPPORTED OPERATION CODES, REPORT LUNS, READ DEFECT DATA and the
//! responses for unmapped LUNs.

use crate::cdb::{self, op, OpcodeInfo, OPCODES};
use crate::inquiry;
use crate::lu::{finish, ScsiOutcome, ScsiRequest};
use crate::sense::{Asc, Sense, SenseKey};

/// SUPPORT field: not supported / supported in conformance with a standard.
const SUPPORT_NOT_SUPPORTED: u8 = 0b001;
const SUPPORT_STANDARD: u8 = 0b011;

fn timeouts_descriptor(out: &mut Vec<u8>, o: &OpcodeInfo) {
    out.extend_from_slice(&[0x00, 0x0A, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes()); // nominal: not specified
    out.extend_from_slice(&o.timeout_secs.to_be_bytes());
}

fn one_command(out: &mut Vec<u8>, rctd: bool, found: Option<&OpcodeInfo>) {
    match found {
        Some(o) => {
            out.push(0);
            out.push(if rctd { 0x80 } else { 0 } | SUPPORT_STANDARD);
            out.extend_from_slice(&(o.cdb_len() as u16).to_be_bytes());
            out.extend_from_slice(o.usage);
            if rctd {
                timeouts_descriptor(out, o);
            }
        }
        None => out.extend_from_slice(&[0, SUPPORT_NOT_SUPPORTED, 0, 0]),
    }
}

/// REPORT SUPPORTED OPERATION CODES (SPC-4 6.35), reporting options 0..=3.
pub(crate) fn report_supported_opcodes(
    rctd: bool,
    options: u8,
    opcode: u8,
    sa: u16,
    out: &mut Vec<u8>,
) -> Result<(), Sense> {
    let has_sa = cdb::has_service_actions(opcode);
    match options {
        0 => {
            out.extend_from_slice(&[0; 4]);
            for o in OPCODES {
                out.push(o.opcode);
                out.push(0);
                out.extend_from_slice(&o.service_action.unwrap_or(0).to_be_bytes());
                out.push(0);
                let flags = if rctd { 0x02 } else { 0 } | u8::from(o.service_action.is_some());
                out.push(flags);
                out.extend_from_slice(&(o.cdb_len() as u16).to_be_bytes());
                if rctd {
                    timeouts_descriptor(out, o);
                }
            }
            let len = (out.len() - 4) as u32;
            out[..4].copy_from_slice(&len.to_be_bytes());
        }
        1 => {
            if has_sa {
                return Err(Sense::invalid_field_in_cdb(3, None));
            }
            one_command(out, rctd, cdb::lookup(opcode, None));
        }
        2 => {
            if !has_sa {
                if cdb::lookup(opcode, None).is_some() {
                    return Err(Sense::invalid_field_in_cdb(3, None));
                }
                one_command(out, rctd, None);
            } else {
                one_command(out, rctd, cdb::lookup(opcode, Some(sa)));
            }
        }
        3 => {
            let found = if has_sa {
                cdb::lookup(opcode, Some(sa))
            } else if sa == 0 {
                cdb::lookup(opcode, None)
            } else {
                None
            };
            one_command(out, rctd, found);
        }
        _ => return Err(Sense::invalid_field_in_cdb(2, Some(2))),
    }
    Ok(())
}

/// READ DEFECT DATA(10/12): we have no defects; return an empty list in the
/// requested format.
pub(crate) fn read_defect_data(
    twelve: bool,
    plist: bool,
    glist: bool,
    format: u8,
    out: &mut Vec<u8>,
) {
    let flags = (u8::from(plist) << 4) | (u8::from(glist) << 3) | (format & 0x07);
    out.push(0);
    out.push(flags);
    if twelve {
        out.extend_from_slice(&[0; 6]); // generation code + list length
    } else {
        out.extend_from_slice(&[0; 2]);
    }
}

/// Encode one LUN (SAM-5 4.7): peripheral device addressing below 256,
/// flat space addressing below 16384; bigger values are taken to be an
/// already encoded 8-byte LUN.
pub fn encode_lun(id: u64) -> [u8; 8] {
    let mut l = [0u8; 8];
    if id < 256 {
        l[1] = id as u8;
    } else if id < 0x4000 {
        l[0] = 0x40 | (id >> 8) as u8;
        l[1] = id as u8;
    } else {
        l = id.to_be_bytes();
    }
    l
}

/// REPORT LUNS (0xA0), answered by the transport which knows the LUN map.
pub fn report_luns(luns: &[u64], req: &ScsiRequest<'_>, data_in: &mut Vec<u8>) -> ScsiOutcome {
    data_in.clear();
    let parsed = match cdb::Command::parse(req.cdb) {
        Ok(cdb::Command::ReportLuns {
            select_report,
            alloc_len,
        }) => Ok((select_report, alloc_len)),
        Ok(_) => Err(Sense::invalid_opcode()),
        Err(s) => Err(s),
    };
    let (select, alloc_len) = match parsed {
        Ok(v) => v,
        Err(s) => return ScsiOutcome::check_condition(&s, false),
    };
    let list: &[u64] = match select {
        // All logical units (administrative / addressable ones included).
        0x00 | 0x02 | 0x11 => luns,
        // Well-known logical units only, or LUN 0 conglomerate variants: none.
        0x01 | 0x10 | 0x12 => &[],
        _ => return ScsiOutcome::check_condition(&Sense::invalid_field_in_cdb(2, None), false),
    };
    let len = (list.len() as u64 * 8).min(u64::from(u32::MAX - 8)) as u32;
    data_in.extend_from_slice(&len.to_be_bytes());
    data_in.extend_from_slice(&[0; 4]);
    for &id in list.iter().take(len as usize / 8) {
        data_in.extend_from_slice(&encode_lun(id));
    }
    let transfer = finish(data_in, alloc_len, req.expected_len);
    ScsiOutcome::good(transfer)
}

/// A command addressed to a LUN that is not mapped.
pub fn execute_no_lun(req: &ScsiRequest<'_>, data_in: &mut Vec<u8>) -> ScsiOutcome {
    data_in.clear();
    let not_supported = Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LOGICAL_UNIT_NOT_SUPPORTED);
    let opcode = req.cdb.first().copied().unwrap_or(0xFF);
    let result = match opcode {
        op::INQUIRY | op::REQUEST_SENSE => cdb::Command::parse(req.cdb),
        _ => Err(not_supported),
    };
    match result {
        Ok(cdb::Command::Inquiry {
            evpd,
            page_code,
            alloc_len,
        }) => {
            // Peripheral qualifier 011b, device type 1Fh: no LU here.
            if !evpd {
                inquiry::standard(data_in, 0x7F, false, None);
            } else if page_code == inquiry::VPD_SUPPORTED_PAGES {
                data_in.extend_from_slice(&[0x7F, 0, 0, 1, 0]);
            } else {
                return ScsiOutcome::check_condition(&Sense::invalid_field_in_cdb(2, None), false);
            }
            ScsiOutcome::good(finish(data_in, alloc_len, req.expected_len))
        }
        Ok(cdb::Command::RequestSense { desc, alloc_len }) => {
            data_in.extend_from_slice(not_supported.encode(desc).as_bytes());
            ScsiOutcome::good(finish(data_in, alloc_len, req.expected_len))
        }
        Ok(_) => ScsiOutcome::check_condition(&not_supported, false),
        Err(s) => ScsiOutcome::check_condition(&s, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lu::{Nexus, ScsiStatus};

    fn req<'a>(cdb: &'a [u8], expected_len: u32) -> ScsiRequest<'a> {
        ScsiRequest {
            cdb,
            data_out: &[],
            expected_len,
            nexus: Nexus {
                id: 1,
                relative_port: 1,
            },
            initiator_port: "iqn.2024-01.org.test:host,i,0x000000000001",
        }
    }

    #[test]
    fn rsoc_all_with_and_without_timeouts() {
        let mut out = Vec::new();
        report_supported_opcodes(false, 0, 0, 0, &mut out).unwrap();
        assert_eq!(out.len(), 4 + 8 * OPCODES.len());
        assert_eq!(
            u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize,
            out.len() - 4
        );
        // READ CAPACITY(16) descriptor has SERVACTV and its SA.
        let d = out[4..].chunks(8).find(|d| d[0] == 0x9E).unwrap();
        assert_eq!(&d[2..8], &[0, 0x10, 0, 0x01, 0, 16]);
        out.clear();
        report_supported_opcodes(true, 0, 0, 0, &mut out).unwrap();
        assert_eq!(out.len(), 4 + 20 * OPCODES.len());
        for d in out[4..].chunks(20) {
            assert_eq!(d[5] & 0x02, 0x02);
            assert_eq!(&d[8..10], &[0, 0x0A]);
        }
    }

    #[test]
    fn rsoc_one_command() {
        let mut out = Vec::new();
        report_supported_opcodes(false, 1, 0x28, 0, &mut out).unwrap();
        assert_eq!(&out[..4], &[0, 3, 0, 10]);
        assert_eq!(out[4], 0x28);
        assert_eq!(out[5] & 0x18, 0x18); // DPO + FUA usable
        out.clear();
        report_supported_opcodes(true, 1, 0x2F, 0, &mut out).unwrap();
        assert_eq!(out[1], 0x83);
        assert_eq!(out.len(), 4 + 10 + 12);
        out.clear();
        // Unsupported opcode: SUPPORT = 001b.
        report_supported_opcodes(false, 1, 0x04, 0, &mut out).unwrap();
        assert_eq!(&out, &[0, 1, 0, 0]);
        // Service action opcodes with option 1 / plain opcodes with option 2.
        assert!(report_supported_opcodes(false, 1, 0x9E, 0x10, &mut Vec::new()).is_err());
        assert!(report_supported_opcodes(false, 2, 0x28, 0, &mut Vec::new()).is_err());
        out.clear();
        report_supported_opcodes(false, 2, 0x9E, 0x10, &mut out).unwrap();
        assert_eq!(&out[..6], &[0, 3, 0, 16, 0x9E, 0x10]);
        out.clear();
        report_supported_opcodes(false, 2, 0x9E, 0x13, &mut out).unwrap();
        assert_eq!(&out, &[0, 1, 0, 0]);
        out.clear();
        report_supported_opcodes(false, 3, 0x12, 0, &mut out).unwrap();
        assert_eq!(out[1], 3);
    }

    #[test]
    fn report_luns_encoding() {
        let cdb = [0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        let mut d = Vec::new();
        let o = report_luns(&[0, 5, 300], &req(&cdb, 256), &mut d);
        assert_eq!(o.status, ScsiStatus::GOOD);
        assert_eq!(o.transfer_len, 32);
        assert_eq!(&d[..8], &[0, 0, 0, 24, 0, 0, 0, 0]);
        assert_eq!(&d[8..16], &[0; 8]);
        assert_eq!(&d[16..18], &[0, 5]);
        assert_eq!(&d[24..26], &[0x41, 0x2C]);
        // Truncated by the expected length; transfer_len stays the CDB amount.
        let o = report_luns(&[0, 5, 300], &req(&cdb, 10), &mut d);
        assert_eq!((o.transfer_len, d.len()), (32, 10));
        let bad = [0xA0, 0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        let o = report_luns(&[0], &req(&bad, 256), &mut d);
        assert_eq!(o.status, ScsiStatus::CHECK_CONDITION);
        assert!(d.is_empty());
    }

    #[test]
    fn no_lun_responses() {
        let mut d = Vec::new();
        let o = execute_no_lun(&req(&[0x12, 0, 0, 0, 96, 0], 96), &mut d);
        assert_eq!(o.status, ScsiStatus::GOOD);
        assert_eq!(d[0], 0x7F);
        let o = execute_no_lun(&req(&[0x03, 0, 0, 0, 18, 0], 18), &mut d);
        assert_eq!(o.status, ScsiStatus::GOOD);
        assert_eq!((d[2], d[12]), (0x05, 0x25));
        let o = execute_no_lun(&req(&[0x00; 6], 0), &mut d);
        assert_eq!(o.status, ScsiStatus::CHECK_CONDITION);
        assert_eq!(o.sense.as_bytes()[12], 0x25);
    }
}
