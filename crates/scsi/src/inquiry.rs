//! INQUIRY (SPC-4 6.6): standard data and the VPD pages 00h, 80h, 83h,
//! B0h (Block Limits), B1h (Block Device Characteristics) and B2h (Logical
//! Block Provisioning).

use crate::alua::AluaState;
use crate::lu::{LuIdentity, Nexus};
use crate::sense::Sense;

pub(crate) const VPD_SUPPORTED_PAGES: u8 = 0x00;
pub(crate) const VPD_UNIT_SERIAL_NUMBER: u8 = 0x80;
pub(crate) const VPD_DEVICE_IDENTIFICATION: u8 = 0x83;
pub(crate) const VPD_THIRD_PARTY_COPY: u8 = 0x8F;
pub(crate) const VPD_BLOCK_LIMITS: u8 = 0xB0;
pub(crate) const VPD_BLOCK_DEVICE_CHARACTERISTICS: u8 = 0xB1;
pub(crate) const VPD_LOGICAL_BLOCK_PROVISIONING: u8 = 0xB2;

const SUPPORTED_VPD: [u8; 7] = [
    VPD_SUPPORTED_PAGES,
    VPD_UNIT_SERIAL_NUMBER,
    VPD_DEVICE_IDENTIFICATION,
    VPD_THIRD_PARTY_COPY,
    VPD_BLOCK_LIMITS,
    VPD_BLOCK_DEVICE_CHARACTERISTICS,
    VPD_LOGICAL_BLOCK_PROVISIONING,
];

/// Version descriptors (SPC-4 table 144): SAM-5, SPC-4, SBC-3, iSCSI.
const VERSION_DESCRIPTORS: [u16; 4] = [0x00A0, 0x0460, 0x04C0, 0x0960];

/// Length of the standard INQUIRY data we return.
pub(crate) const STANDARD_LEN: usize = 96;

/// Maximum transfer size in bytes advertised in the Block Limits page
/// (and enforced for READ / WRITE).
pub const MAX_TRANSFER_BYTES: u32 = 32 * 1024 * 1024;
/// Optimal transfer size in bytes advertised in the Block Limits page.
const OPTIMAL_TRANSFER_BYTES: u32 = 1024 * 1024;

/// Append `s` as a space-padded, ASCII-sanitized field of exactly `n` bytes.
fn ascii_field(out: &mut Vec<u8>, s: &str, n: usize) {
    let mut written = 0;
    for b in s.bytes().take(n) {
        out.push(if (0x20..=0x7E).contains(&b) { b } else { b'_' });
        written += 1;
    }
    out.resize(out.len() + (n - written), b' ');
}

/// Parameters beyond the identity the pages need.
pub(crate) struct InquiryCtx<'a> {
    pub ident: &'a LuIdentity,
    pub removable: bool,
    pub block_size: u32,
    pub nexus: Nexus,
    /// Thin provisioned (LBPME): UNMAP / WRITE SAME unmapping offered.
    pub thin: bool,
    /// Target port group (id, state) of the port the command arrived on.
    pub port_group: (u16, AluaState),
}

/// Standard INQUIRY data. `peripheral` is byte 0 (qualifier + device type).
pub(crate) fn standard(
    out: &mut Vec<u8>,
    peripheral: u8,
    removable: bool,
    ident: Option<&LuIdentity>,
) {
    out.push(peripheral);
    out.push(if removable { 0x80 } else { 0 });
    out.push(0x06); // SPC-4
    out.push(0x12); // HISUP, response data format 2
    out.push((STANDARD_LEN - 5) as u8);
    // TPGS 01b (implicit ALUA) and 3PC (EXTENDED COPY) for a logical unit.
    out.push(if ident.is_some() { 0x18 } else { 0 });
    out.push(0); // ENCSERV MULTIP ADDR16
    out.push(0x02); // CMDQUE
    let (v, p, r) = ident.map_or(("", "", ""), |i| {
        (i.vendor.as_str(), i.product.as_str(), i.revision.as_str())
    });
    ascii_field(out, v, 8);
    ascii_field(out, p, 16);
    ascii_field(out, r, 4);
    out.resize(58, 0);
    for d in VERSION_DESCRIPTORS {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.resize(STANDARD_LEN, 0);
}

/// Build INQUIRY data for `evpd` / `page_code` into `out`.
pub(crate) fn inquiry(
    ctx: &InquiryCtx<'_>,
    evpd: bool,
    page_code: u8,
    out: &mut Vec<u8>,
) -> Result<(), Sense> {
    if !evpd {
        standard(out, 0x00, ctx.removable, Some(ctx.ident));
        return Ok(());
    }
    out.extend_from_slice(&[0x00, page_code, 0, 0]);
    match page_code {
        VPD_SUPPORTED_PAGES => out.extend_from_slice(&SUPPORTED_VPD),
        VPD_UNIT_SERIAL_NUMBER => {
            let serial = ctx.ident.serial.as_str();
            let n = serial.len().min(250);
            ascii_field(out, serial, n);
        }
        VPD_DEVICE_IDENTIFICATION => device_identification(ctx, out),
        VPD_THIRD_PARTY_COPY => crate::xcopy::third_party_copy_vpd(out),
        VPD_BLOCK_LIMITS => block_limits(ctx.block_size, ctx.thin, out),
        VPD_BLOCK_DEVICE_CHARACTERISTICS => {
            out.extend_from_slice(&[0x00, 0x01]); // non-rotating medium
            out.push(0);
            out.push(0x40); // WABEREQ 01b: reads after BLOCK ERASE succeed
            out.resize(4 + 0x3C, 0);
        }
        VPD_LOGICAL_BLOCK_PROVISIONING => {
            if ctx.thin {
                // LBPU, LBPWS, LBPWS10, LBPRZ 001b; provisioning type thin.
                out.extend_from_slice(&[0, 0x80 | 0x40 | 0x20 | 0x04, 0x02, 0]);
            } else {
                // Fully provisioned: no UNMAP / WRITE SAME unmapping (LBPME=0).
                out.extend_from_slice(&[0, 0, 0, 0]);
            }
        }
        _ => {
            out.clear();
            return Err(Sense::invalid_field_in_cdb(2, None));
        }
    }
    let page_len = (out.len() - 4) as u16;
    out[2..4].copy_from_slice(&page_len.to_be_bytes());
    Ok(())
}

fn designator(out: &mut Vec<u8>, proto_codeset: u8, piv_assoc_type: u8, value: &[u8]) {
    out.push(proto_codeset);
    out.push(piv_assoc_type);
    out.push(0);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

fn device_identification(ctx: &InquiryCtx<'_>, out: &mut Vec<u8>) {
    let ident = ctx.ident;
    // NAA IEEE Registered Extended, binary, associated with the LU.
    designator(out, 0x01, 0x03, &ident.naa);
    // T10 vendor ID: vendor (8, padded) + unit serial number, ASCII.
    let mut t10 = Vec::with_capacity(8 + ident.serial.len());
    ascii_field(&mut t10, &ident.vendor, 8);
    let n = ident.serial.len().min(200);
    ascii_field(&mut t10, &ident.serial, n);
    designator(out, 0x02, 0x01, &t10);
    // Relative target port identifier (iSCSI, PIV=1, target port).
    let mut rtp = [0u8; 4];
    rtp[2..].copy_from_slice(&ctx.nexus.relative_port.to_be_bytes());
    designator(out, 0x51, 0x94, &rtp);
    // Target port group (iSCSI, PIV=1, target port).
    let mut tpg = [0u8; 4];
    tpg[2..].copy_from_slice(&ctx.port_group.0.to_be_bytes());
    designator(out, 0x51, 0x95, &tpg);
    // SCSI name string of the target device (iSCSI, PIV=1, UTF-8): the IQN,
    // NUL terminated and padded to a multiple of 4 bytes.
    let name = ident.target_name.as_bytes();
    if !name.is_empty() {
        let take = name.len().min(250);
        let mut v = name[..take].to_vec();
        v.push(0);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        designator(out, 0x53, 0xA8, &v);
    }
}

fn block_limits(block_size: u32, thin: bool, out: &mut Vec<u8>) {
    let bs = block_size.max(1);
    let granularity = (4096 / bs).max(1);
    out.push(0); // WSNZ
    out.push(crate::caw::MAX_CAW_BLOCKS);
    out.extend_from_slice(&(granularity as u16).to_be_bytes());
    out.extend_from_slice(&(MAX_TRANSFER_BYTES / bs).to_be_bytes());
    out.extend_from_slice(&(OPTIMAL_TRANSFER_BYTES / bs).max(1).to_be_bytes());
    out.extend_from_slice(&(MAX_TRANSFER_BYTES / bs).to_be_bytes()); // max prefetch length
    if thin {
        out.extend_from_slice(&crate::thin::MAX_UNMAP_LBA_COUNT.to_be_bytes());
        out.extend_from_slice(&crate::thin::MAX_UNMAP_DESCRIPTORS.to_be_bytes());
        out.extend_from_slice(&granularity.to_be_bytes()); // optimal unmap granularity
        out.extend_from_slice(&0x8000_0000u32.to_be_bytes()); // UGAVALID, alignment 0
    } else {
        out.extend_from_slice(&[0; 16]);
    }
    // MAXIMUM WRITE SAME LENGTH.
    out.extend_from_slice(&u64::from(MAX_TRANSFER_BYTES / bs).to_be_bytes());
    // MAXIMUM ATOMIC TRANSFER LENGTH, ATOMIC ALIGNMENT, GRANULARITY.
    out.extend_from_slice(&crate::caw::MAX_ATOMIC_BLOCKS.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out.resize(4 + 0x3C, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> LuIdentity {
        LuIdentity {
            vendor: "IRONSAN".into(),
            product: "disk\u{e9}".into(),
            revision: "0.1".into(),
            serial: "SER123".into(),
            naa: [0x60, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
            target_name: "iqn.2024-01.org.ironsan:t1".into(),
            write_cache: true,
            read_only: false,
        }
    }

    fn ctx(id: &LuIdentity) -> InquiryCtx<'_> {
        InquiryCtx {
            ident: id,
            removable: false,
            block_size: 512,
            nexus: Nexus {
                id: 1,
                relative_port: 3,
            },
            thin: false,
            port_group: (7, AluaState::ActiveOptimized),
        }
    }

    #[test]
    fn standard_data() {
        let id = ident();
        let mut out = Vec::new();
        inquiry(&ctx(&id), false, 0, &mut out).unwrap();
        assert_eq!(out.len(), STANDARD_LEN);
        assert_eq!(usize::from(out[4]) + 5, out.len());
        assert_eq!(&out[..4], &[0, 0, 6, 0x12]);
        assert_eq!(&out[8..16], b"IRONSAN ");
        assert_eq!(&out[16..32], b"disk__          ");
        assert_eq!(&out[32..36], b"0.1 ");
        assert_eq!(
            &out[58..66],
            &[0x00, 0xA0, 0x04, 0x60, 0x04, 0xC0, 0x09, 0x60]
        );
    }

    #[test]
    fn vpd_pages() {
        let id = ident();
        let c = ctx(&id);
        let mut out = Vec::new();
        inquiry(&c, true, 0, &mut out).unwrap();
        assert_eq!(
            &out,
            &[0, 0, 0, 7, 0x00, 0x80, 0x83, 0x8F, 0xB0, 0xB1, 0xB2]
        );
        for &p in &SUPPORTED_VPD {
            out.clear();
            inquiry(&c, true, p, &mut out).unwrap();
            assert_eq!(out[1], p);
            assert_eq!(
                usize::from(u16::from_be_bytes([out[2], out[3]])) + 4,
                out.len()
            );
        }
        out.clear();
        inquiry(&c, true, 0x80, &mut out).unwrap();
        assert_eq!(&out[4..], b"SER123");
        out.clear();
        inquiry(&c, true, 0xB0, &mut out).unwrap();
        assert_eq!(out[3], 0x3C);
        assert_eq!(
            u32::from_be_bytes([out[8], out[9], out[10], out[11]]),
            65536
        );
        assert_eq!(&out[20..28], &[0; 8]); // no UNMAP
        out.clear();
        inquiry(&c, true, 0xB1, &mut out).unwrap();
        assert_eq!(out.len(), 64);
        assert_eq!(&out[4..6], &[0, 1]);
        out.clear();
        assert!(inquiry(&c, true, 0x86, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn device_identification_designators() {
        let id = ident();
        let mut out = Vec::new();
        inquiry(&ctx(&id), true, 0x83, &mut out).unwrap();
        let mut pos = 4;
        let mut found = Vec::new();
        while pos < out.len() {
            let len = usize::from(out[pos + 3]);
            found.push((out[pos], out[pos + 1], out[pos + 4..pos + 4 + len].to_vec()));
            pos += 4 + len;
        }
        assert_eq!(pos, out.len());
        assert_eq!(found[0], (0x01, 0x03, id.naa.to_vec()));
        assert_eq!(found[1].2, b"IRONSAN SER123".to_vec());
        assert_eq!(found[2], (0x51, 0x94, vec![0, 0, 0, 3]));
        assert_eq!(found[3], (0x51, 0x95, vec![0, 0, 0, 7]));
        assert_eq!(found[4].2.len() % 4, 0);
        assert!(found[4].2.starts_with(b"iqn.2024-01.org.ironsan:t1\0"));
    }
}
