//! Mode parameters (SPC-4 7.5, SBC-3 6.4): caching (08h), control (0Ah) and
//! informational exceptions control (1Ch) pages; MODE SENSE(6/10) and
//! MODE SELECT(6/10).

use std::sync::atomic::{AtomicU8, Ordering};

use crate::cdb::ModeSense;
use crate::sense::{Asc, Sense, SenseKey};

/// Caching page WCE bit.
pub(crate) const BIT_WCE: u8 = 0x01;
/// Control page D_SENSE bit.
pub(crate) const BIT_D_SENSE: u8 = 0x02;
/// Control page SWP bit.
pub(crate) const BIT_SWP: u8 = 0x04;

pub(crate) const PAGE_CACHING: u8 = 0x08;
pub(crate) const PAGE_CONTROL: u8 = 0x0A;
pub(crate) const PAGE_IEC: u8 = 0x1C;
pub(crate) const PAGE_ALL: u8 = 0x3F;

/// Pages in the order MODE SENSE returns them for "all pages".
const PAGES: [u8; 3] = [PAGE_CACHING, PAGE_CONTROL, PAGE_IEC];

/// Largest page we build (caching page: 20 bytes).
const MAX_PAGE: usize = 20;

/// Current mode parameters, kept in one atomic byte so the I/O path can read
/// them without a lock.
pub(crate) struct ModeState {
    bits: AtomicU8,
    default_bits: u8,
}

/// Page control field of MODE SENSE.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pc {
    Current,
    Changeable,
    Default,
}

impl ModeState {
    pub(crate) fn new(write_cache: bool) -> Self {
        let default_bits = if write_cache { BIT_WCE } else { 0 };
        ModeState {
            bits: AtomicU8::new(default_bits),
            default_bits,
        }
    }

    pub(crate) fn bits(&self) -> u8 {
        self.bits.load(Ordering::Acquire)
    }

    pub(crate) fn wce(&self) -> bool {
        self.bits() & BIT_WCE != 0
    }

    pub(crate) fn d_sense(&self) -> bool {
        self.bits() & BIT_D_SENSE != 0
    }

    pub(crate) fn swp(&self) -> bool {
        self.bits() & BIT_SWP != 0
    }

    /// Restore defaults (after a reset).
    pub(crate) fn reset(&self) {
        self.bits.store(self.default_bits, Ordering::Release);
    }

    /// Atomically set / clear bits; returns true if anything changed.
    fn update(&self, set: u8, clear: u8) -> bool {
        let old = self
            .bits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((b | set) & !clear)
            })
            .unwrap_or_else(|b| b);
        (old | set) & !clear != old
    }
}

/// Build one mode page into `out` (returns its length).
fn build_page(code: u8, pc: Pc, bits: u8, out: &mut [u8; MAX_PAGE]) -> usize {
    out.fill(0);
    let changeable = pc == Pc::Changeable;
    let flag = |bit: u8, val: u8| -> u8 {
        if changeable || bits & bit != 0 {
            val
        } else {
            0
        }
    };
    match code {
        PAGE_CACHING => {
            out[0] = PAGE_CACHING;
            out[1] = 0x12;
            out[2] = flag(BIT_WCE, 0x04);
            20
        }
        PAGE_CONTROL => {
            out[0] = PAGE_CONTROL;
            out[1] = 0x0A;
            out[2] = flag(BIT_D_SENSE, 0x04);
            out[4] = flag(BIT_SWP, 0x08);
            if !changeable {
                // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering allowed.
                out[3] = 0x10;
                // BUSY TIMEOUT PERIOD: unlimited.
                out[8] = 0xFF;
                out[9] = 0xFF;
            }
            12
        }
        PAGE_IEC => {
            out[0] = PAGE_IEC;
            out[1] = 0x0A;
            if !changeable {
                // DEXCPT: informational exception operations disabled.
                out[2] = 0x08;
            }
            12
        }
        _ => 0,
    }
}

/// Parameters of the logical unit MODE SENSE needs besides the mode state.
pub(crate) struct MediumInfo {
    pub block_size: u32,
    pub num_blocks: u64,
    pub write_protected: bool,
}

/// MODE SENSE(6) / MODE SENSE(10): build the full parameter data into `out`.
pub(crate) fn mode_sense(
    state: &ModeState,
    cmd: &ModeSense,
    medium: &MediumInfo,
    out: &mut Vec<u8>,
) -> Result<(), Sense> {
    let pc = match cmd.pc {
        0 => Pc::Current,
        1 => Pc::Changeable,
        2 => Pc::Default,
        _ => {
            return Err(Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::SAVING_PARAMETERS_NOT_SUPPORTED,
            ))
        }
    };
    let pages: &[u8] = match (cmd.page_code, cmd.subpage_code) {
        (PAGE_ALL, 0x00 | 0xFF) => &PAGES,
        (p, 0x00 | 0xFF) if PAGES.contains(&p) => {
            let i = PAGES.iter().position(|&x| x == p).unwrap_or(0);
            &PAGES[i..=i]
        }
        (p, _) if p == PAGE_ALL || PAGES.contains(&p) => {
            return Err(Sense::invalid_field_in_cdb(3, None))
        }
        _ => return Err(Sense::invalid_field_in_cdb(2, Some(5))),
    };
    let bits = match pc {
        Pc::Default => state.default_bits,
        _ => state.bits(),
    };
    let hdr_len = if cmd.ten { 8 } else { 4 };
    let long_lba = cmd.ten && cmd.llbaa;
    let bd_len = match (cmd.dbd, long_lba) {
        (true, _) => 0,
        (false, true) => 16,
        (false, false) => 8,
    };
    let mut dsp = 0x10; // DPOFUA: DPO and FUA supported.
    if medium.write_protected {
        dsp |= 0x80; // WP
    }
    out.resize(hdr_len, 0);
    if cmd.ten {
        out[3] = dsp;
        out[4] = u8::from(long_lba);
        out[7] = bd_len as u8;
    } else {
        out[2] = dsp;
        out[3] = bd_len as u8;
    }
    if bd_len > 0 {
        let changeable = pc == Pc::Changeable;
        let blocks = if changeable { 0 } else { medium.num_blocks };
        let bl = if changeable { 0 } else { medium.block_size };
        if long_lba {
            out.extend_from_slice(&blocks.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&bl.to_be_bytes());
        } else {
            let short = u32::try_from(blocks).unwrap_or(u32::MAX);
            out.extend_from_slice(&short.to_be_bytes());
            out.push(0);
            out.extend_from_slice(&bl.to_be_bytes()[1..]);
        }
    }
    let mut page = [0u8; MAX_PAGE];
    for &p in pages {
        let n = build_page(p, pc, bits, &mut page);
        out.extend_from_slice(&page[..n]);
    }
    let total = out.len();
    if cmd.ten {
        out[..2].copy_from_slice(&((total - 2) as u16).to_be_bytes());
    } else {
        out[0] = (total - 1) as u8;
    }
    Ok(())
}

/// MODE SELECT(6) / MODE SELECT(10): validate the whole parameter list, then
/// apply it. Returns true if a mode parameter changed.
pub(crate) fn mode_select(
    state: &ModeState,
    ten: bool,
    sp: bool,
    param_len: u32,
    data_out: &[u8],
    block_size: u32,
) -> Result<bool, Sense> {
    if sp {
        // Saved pages are not implemented.
        return Err(Sense::invalid_field_in_cdb(1, Some(0)));
    }
    let want = param_len as usize;
    if want == 0 {
        return Ok(false);
    }
    let Some(data) = data_out.get(..want) else {
        return Err(Sense::parameter_list_length_error());
    };
    let hdr_len = if ten { 8 } else { 4 };
    if data.len() < hdr_len {
        return Err(Sense::parameter_list_length_error());
    }
    let (long_lba, bd_len, bdl_off) = if ten {
        (
            data[4] & 1 != 0,
            usize::from(u16::from_be_bytes([data[6], data[7]])),
            6u16,
        )
    } else {
        (false, usize::from(data[3]), 3u16)
    };
    // Block descriptor: only the current block length may be "set".
    let bd_ok = matches!((long_lba, bd_len), (_, 0) | (false, 8) | (true, 16));
    if !bd_ok {
        return Err(Sense::invalid_field_in_param_list(
            bdl_off + u16::from(ten),
            None,
        ));
    }
    let bd = data
        .get(hdr_len..hdr_len + bd_len)
        .ok_or(Sense::parameter_list_length_error())?;
    if bd_len > 0 {
        let (bl, off) = if long_lba {
            (u32::from_be_bytes([bd[12], bd[13], bd[14], bd[15]]), 12)
        } else {
            (u32::from_be_bytes([0, bd[5], bd[6], bd[7]]), 5)
        };
        if bl != block_size {
            return Err(Sense::invalid_field_in_param_list(
                (hdr_len + off) as u16,
                None,
            ));
        }
    }
    let (mut set, mut clear) = (0u8, 0u8);
    let mut pos = hdr_len + bd_len;
    let mut cur = [0u8; MAX_PAGE];
    let mut chg = [0u8; MAX_PAGE];
    while pos < data.len() {
        let code = data[pos] & 0x3F;
        let spf = data[pos] & 0x40 != 0;
        if spf {
            return Err(Sense::invalid_field_in_param_list(pos as u16, Some(6)));
        }
        let plen = usize::from(
            *data
                .get(pos + 1)
                .ok_or(Sense::parameter_list_length_error())?,
        );
        let n = build_page(code, Pc::Current, state.bits(), &mut cur);
        if n == 0 {
            return Err(Sense::invalid_field_in_param_list(pos as u16, Some(5)));
        }
        if plen + 2 != n {
            return Err(Sense::invalid_field_in_param_list((pos + 1) as u16, None));
        }
        let page = data
            .get(pos..pos + n)
            .ok_or(Sense::parameter_list_length_error())?;
        build_page(code, Pc::Changeable, 0, &mut chg);
        for i in 2..n {
            let bad = (page[i] ^ cur[i]) & !chg[i];
            if bad != 0 {
                let bit = 7 - bad.leading_zeros() as u8;
                return Err(Sense::invalid_field_in_param_list(
                    (pos + i) as u16,
                    Some(bit),
                ));
            }
        }
        let mut apply = |bit: u8, on: bool| {
            if on {
                set |= bit;
                clear &= !bit;
            } else {
                clear |= bit;
                set &= !bit;
            }
        };
        match code {
            PAGE_CACHING => apply(BIT_WCE, page[2] & 0x04 != 0),
            PAGE_CONTROL => {
                apply(BIT_D_SENSE, page[2] & 0x04 != 0);
                apply(BIT_SWP, page[4] & 0x08 != 0);
            }
            _ => {}
        }
        pos += n;
    }
    Ok(state.update(set, clear))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn medium() -> MediumInfo {
        MediumInfo {
            block_size: 512,
            num_blocks: 1 << 33,
            write_protected: false,
        }
    }

    fn sense6(page: u8, pc: u8, dbd: bool) -> ModeSense {
        ModeSense {
            ten: false,
            dbd,
            llbaa: false,
            pc,
            page_code: page,
            subpage_code: 0,
            alloc_len: 255,
        }
    }

    #[test]
    fn all_pages_layout() {
        let st = ModeState::new(true);
        let mut out = Vec::new();
        mode_sense(&st, &sense6(PAGE_ALL, 0, false), &medium(), &mut out).unwrap();
        assert_eq!(out.len(), 4 + 8 + 20 + 12 + 12);
        assert_eq!(usize::from(out[0]) + 1, out.len());
        assert_eq!(out[2], 0x10);
        assert_eq!(out[3], 8);
        assert_eq!(&out[4..8], &[0xFF; 4]); // > 32 bits of blocks
        assert_eq!(&out[9..12], &[0, 2, 0]);
        assert_eq!(&out[12..15], &[0x08, 0x12, 0x04]);
        assert_eq!(&out[32..34], &[0x0A, 0x0A]);
        assert_eq!(&out[44..47], &[0x1C, 0x0A, 0x08]);
    }

    #[test]
    fn sense10_long_lba_and_pc() {
        let st = ModeState::new(false);
        let mut out = Vec::new();
        let cmd = ModeSense {
            ten: true,
            dbd: false,
            llbaa: true,
            pc: 0,
            page_code: PAGE_CACHING,
            subpage_code: 0,
            alloc_len: 512,
        };
        mode_sense(&st, &cmd, &medium(), &mut out).unwrap();
        assert_eq!(out.len(), 8 + 16 + 20);
        assert_eq!(u16::from_be_bytes([out[0], out[1]]) as usize + 2, out.len());
        assert_eq!(out[4], 1);
        assert_eq!(out[7], 16);
        assert_eq!(&out[8..16], &(1u64 << 33).to_be_bytes());
        assert_eq!(&out[20..24], &512u32.to_be_bytes());
        assert_eq!(out[26], 0); // WCE clear
        out.clear();
        mode_sense(&st, &ModeSense { pc: 1, ..cmd }, &medium(), &mut out).unwrap();
        assert_eq!(out[26], 0x04); // WCE changeable
        let e = mode_sense(&st, &ModeSense { pc: 3, ..cmd }, &medium(), &mut out).unwrap_err();
        assert_eq!(e.asc, Asc::SAVING_PARAMETERS_NOT_SUPPORTED);
        let e = mode_sense(&st, &sense6(0x19, 0, true), &medium(), &mut out).unwrap_err();
        assert_eq!(e.asc, Asc::INVALID_FIELD_IN_CDB);
        let e = mode_sense(
            &st,
            &ModeSense {
                subpage_code: 1,
                ..sense6(PAGE_CONTROL, 0, true)
            },
            &medium(),
            &mut out,
        )
        .unwrap_err();
        assert_eq!(e.sks.unwrap()[2], 3);
    }

    /// MODE SENSE the control page, flip bits, MODE SELECT it back.
    #[test]
    fn select_roundtrip() {
        let st = ModeState::new(true);
        let mut out = Vec::new();
        mode_sense(&st, &sense6(PAGE_CONTROL, 0, true), &medium(), &mut out).unwrap();
        let mut param = out.clone();
        param[0] = 0; // mode data length is reserved in MODE SELECT
        param[2] = 0;
        param[4 + 2] |= 0x04; // D_SENSE
        param[4 + 4] |= 0x08; // SWP
        assert!(mode_select(&st, false, false, param.len() as u32, &param, 512).unwrap());
        assert!(st.d_sense() && st.swp() && st.wce());
        // Same again: no change.
        assert!(!mode_select(&st, false, false, param.len() as u32, &param, 512).unwrap());
        // Non-changeable bit (TST) rejected with a pointer into the list.
        let mut bad = param.clone();
        bad[4 + 2] |= 0x20;
        let e = mode_select(&st, false, false, bad.len() as u32, &bad, 512).unwrap_err();
        assert_eq!(e.asc, Asc::INVALID_FIELD_IN_PARAMETER_LIST);
        assert_eq!(e.sks.unwrap(), [0x80 | 0x08 | 5, 0, 6]);
        // Caching page through MODE SELECT(10) with a block descriptor.
        let mut p10 = vec![0u8; 8];
        p10[7] = 8;
        p10.extend_from_slice(&[0, 0, 0, 0, 0, 0, 2, 0]);
        let mut page = [0u8; MAX_PAGE];
        let n = build_page(PAGE_CACHING, Pc::Current, 0, &mut page);
        p10.extend_from_slice(&page[..n]);
        assert!(mode_select(&st, true, false, p10.len() as u32, &p10, 512).unwrap());
        assert!(!st.wce());
        // Wrong block length.
        assert!(mode_select(&st, true, false, p10.len() as u32, &p10, 4096).is_err());
        // Truncated list / short data-out.
        let e = mode_select(&st, true, false, p10.len() as u32 - 3, &p10, 512).unwrap_err();
        assert_eq!(e.asc, Asc::PARAMETER_LIST_LENGTH_ERROR);
        let e = mode_select(&st, true, false, 100, &p10, 512).unwrap_err();
        assert_eq!(e.asc, Asc::PARAMETER_LIST_LENGTH_ERROR);
        // Unknown page, wrong page length, SP.
        let e = mode_select(&st, false, false, 6, &[0, 0, 0, 0, 0x19, 0], 512).unwrap_err();
        assert_eq!(e.asc, Asc::INVALID_FIELD_IN_PARAMETER_LIST);
        let e = mode_select(&st, false, false, 6, &[0, 0, 0, 0, 0x08, 0], 512).unwrap_err();
        assert_eq!(e.sks.unwrap()[2], 5);
        assert!(mode_select(&st, false, true, 4, &[0; 4], 512).is_err());
        assert!(!mode_select(&st, false, false, 0, &[], 512).unwrap());
        st.reset();
        assert!(st.wce() && !st.d_sense() && !st.swp());
    }
}
