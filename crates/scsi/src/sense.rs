//! Sense data (SPC-4 4.5): sense keys, additional sense codes and the fixed
//! (70h) / descriptor (72h) encodings.

use std::fmt;

/// Sense key (SPC-4 table 48) as an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SenseKey(pub u8);

impl SenseKey {
    pub const NO_SENSE: SenseKey = SenseKey(0x0);
    pub const RECOVERED_ERROR: SenseKey = SenseKey(0x1);
    pub const NOT_READY: SenseKey = SenseKey(0x2);
    pub const MEDIUM_ERROR: SenseKey = SenseKey(0x3);
    pub const HARDWARE_ERROR: SenseKey = SenseKey(0x4);
    pub const ILLEGAL_REQUEST: SenseKey = SenseKey(0x5);
    pub const UNIT_ATTENTION: SenseKey = SenseKey(0x6);
    pub const DATA_PROTECT: SenseKey = SenseKey(0x7);
    pub const BLANK_CHECK: SenseKey = SenseKey(0x8);
    pub const VENDOR_SPECIFIC: SenseKey = SenseKey(0x9);
    pub const COPY_ABORTED: SenseKey = SenseKey(0xA);
    pub const ABORTED_COMMAND: SenseKey = SenseKey(0xB);
    pub const VOLUME_OVERFLOW: SenseKey = SenseKey(0xD);
    pub const MISCOMPARE: SenseKey = SenseKey(0xE);
    pub const COMPLETED: SenseKey = SenseKey(0xF);
}

/// Additional sense code + qualifier (ASC in the high byte, ASCQ in the low
/// byte), as an open newtype with the codes this crate uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Asc(pub u16);

impl Asc {
    pub const NO_ADDITIONAL_SENSE: Asc = Asc(0x0000);
    pub const LOGICAL_UNIT_NOT_READY_INITIALIZING_COMMAND_REQUIRED: Asc = Asc(0x0402);
    pub const WRITE_ERROR: Asc = Asc(0x0C00);
    pub const UNRECOVERED_READ_ERROR: Asc = Asc(0x1100);
    pub const MISCOMPARE_DURING_VERIFY: Asc = Asc(0x1D00);
    pub const REPORTED_LUNS_DATA_HAS_CHANGED: Asc = Asc(0x3F0E);
    pub const PARAMETER_LIST_LENGTH_ERROR: Asc = Asc(0x1A00);
    pub const INVALID_COMMAND_OPERATION_CODE: Asc = Asc(0x2000);
    pub const LBA_OUT_OF_RANGE: Asc = Asc(0x2100);
    pub const INVALID_FIELD_IN_CDB: Asc = Asc(0x2400);
    pub const LOGICAL_UNIT_NOT_SUPPORTED: Asc = Asc(0x2500);
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Asc = Asc(0x2600);
    pub const WRITE_PROTECTED: Asc = Asc(0x2700);
    pub const HARDWARE_WRITE_PROTECTED: Asc = Asc(0x2701);
    pub const SOFTWARE_WRITE_PROTECTED: Asc = Asc(0x2702);
    pub const SPACE_ALLOCATION_FAILED_WRITE_PROTECT: Asc = Asc(0x2707);
    pub const POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED: Asc = Asc(0x2900);
    pub const POWER_ON_OCCURRED: Asc = Asc(0x2901);
    pub const SCSI_BUS_RESET_OCCURRED: Asc = Asc(0x2902);
    pub const BUS_DEVICE_RESET_FUNCTION_OCCURRED: Asc = Asc(0x2903);
    pub const I_T_NEXUS_LOSS_OCCURRED: Asc = Asc(0x2907);
    pub const MODE_PARAMETERS_CHANGED: Asc = Asc(0x2A01);
    pub const SAVING_PARAMETERS_NOT_SUPPORTED: Asc = Asc(0x3900);
    pub const MEDIUM_NOT_PRESENT: Asc = Asc(0x3A00);
    pub const MEDIUM_NOT_PRESENT_TRAY_CLOSED: Asc = Asc(0x3A01);
    pub const MEDIUM_NOT_PRESENT_TRAY_OPEN: Asc = Asc(0x3A02);
    pub const INTERNAL_TARGET_FAILURE: Asc = Asc(0x4400);
    pub const MEDIUM_REMOVAL_PREVENTED: Asc = Asc(0x5302);
    pub const NOT_READY_TARGET_PORT_STANDBY: Asc = Asc(0x040B);
    pub const NOT_READY_TARGET_PORT_UNAVAILABLE: Asc = Asc(0x040C);
    pub const SANITIZE_IN_PROGRESS: Asc = Asc(0x041B);
    pub const MEDIUM_FORMAT_CORRUPTED: Asc = Asc(0x3100);
    pub const SANITIZE_COMMAND_FAILED: Asc = Asc(0x3103);
    pub const UNREACHABLE_COPY_TARGET: Asc = Asc(0x0804);
    pub const COPY_TARGET_DEVICE_NOT_REACHABLE: Asc = Asc(0x0D02);
    pub const INVALID_RELEASE_OF_PERSISTENT_RESERVATION: Asc = Asc(0x2604);
    pub const TOO_MANY_TARGET_DESCRIPTORS: Asc = Asc(0x2606);
    pub const UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE: Asc = Asc(0x2607);
    pub const TOO_MANY_SEGMENT_DESCRIPTORS: Asc = Asc(0x2608);
    pub const UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE: Asc = Asc(0x2609);
    pub const RESERVATIONS_PREEMPTED: Asc = Asc(0x2A03);
    pub const RESERVATIONS_RELEASED: Asc = Asc(0x2A04);
    pub const REGISTRATIONS_PREEMPTED: Asc = Asc(0x2A05);
    pub const INSUFFICIENT_REGISTRATION_RESOURCES: Asc = Asc(0x5504);

    /// Additional sense code (ASC).
    pub const fn asc(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Additional sense code qualifier (ASCQ).
    pub const fn ascq(self) -> u8 {
        self.0 as u8
    }
}

/// A sense condition before encoding: key, ASC/ASCQ, optional INFORMATION
/// and optional sense-key specific bytes (e.g. a field pointer).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Sense {
    pub key: SenseKey,
    pub asc: Asc,
    /// INFORMATION field (e.g. the miscompare offset for VERIFY).
    pub information: Option<u64>,
    /// Sense-key specific bytes 0..3 (SKSV bit included in byte 0).
    pub sks: Option<[u8; 3]>,
}

impl Sense {
    pub const fn new(key: SenseKey, asc: Asc) -> Self {
        Sense {
            key,
            asc,
            information: None,
            sks: None,
        }
    }

    /// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (05/20/00).
    pub const fn invalid_opcode() -> Self {
        Sense::new(
            SenseKey::ILLEGAL_REQUEST,
            Asc::INVALID_COMMAND_OPERATION_CODE,
        )
    }

    /// ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (05/21/00).
    pub const fn lba_out_of_range() -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE)
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN CDB with a field pointer (SKSV=1,
    /// C/D=1) to `byte` and, when given, `bit` (0..=7).
    pub const fn invalid_field_in_cdb(byte: u16, bit: Option<u8>) -> Self {
        Sense::field_pointer(Asc::INVALID_FIELD_IN_CDB, true, byte, bit)
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST with a field pointer
    /// (SKSV=1, C/D=0) into the parameter data.
    pub const fn invalid_field_in_param_list(byte: u16, bit: Option<u8>) -> Self {
        Sense::field_pointer(Asc::INVALID_FIELD_IN_PARAMETER_LIST, false, byte, bit)
    }

    /// ILLEGAL REQUEST / PARAMETER LIST LENGTH ERROR (05/1A/00).
    pub const fn parameter_list_length_error() -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::PARAMETER_LIST_LENGTH_ERROR)
    }

    const fn field_pointer(asc: Asc, cdb: bool, byte: u16, bit: Option<u8>) -> Self {
        let mut b0 = 0x80;
        if cdb {
            b0 |= 0x40;
        }
        if let Some(bit) = bit {
            b0 |= 0x08 | (bit & 0x07);
        }
        let [hi, lo] = byte.to_be_bytes();
        Sense {
            key: SenseKey::ILLEGAL_REQUEST,
            asc,
            information: None,
            sks: Some([b0, hi, lo]),
        }
    }

    /// Internal marker: the command ends with RESERVATION CONFLICT status
    /// (no sense data). Never encoded; see [`Sense::is_conflict`].
    pub(crate) const fn conflict() -> Self {
        Sense::new(SenseKey(0xFF), Asc(0xFFFF))
    }

    /// True for the [`Sense::conflict`] marker.
    pub(crate) fn is_conflict(&self) -> bool {
        self.key.0 == 0xFF && self.asc.0 == 0xFFFF
    }
    /// Internal marker: the command ends with TASK ABORTED status (no sense
    /// data). Never encoded; see [`Sense::is_task_aborted`].
    pub(crate) const fn task_aborted() -> Self {
        Sense::new(SenseKey(0xFE), Asc(0xFFFF))
    }
    /// True for the [`Sense::task_aborted`] marker.
    pub(crate) fn is_task_aborted(&self) -> bool {
        self.key.0 == 0xFE && self.asc.0 == 0xFFFF
    }

    /// ILLEGAL REQUEST with `asc` (no field pointer).
    pub const fn illegal(asc: Asc) -> Self {
        Sense::new(SenseKey::ILLEGAL_REQUEST, asc)
    }

    /// Same sense with the INFORMATION field set.
    pub const fn with_information(mut self, info: u64) -> Self {
        self.information = Some(info);
        self
    }

    /// Encode as fixed (70h) or descriptor (72h) format sense data.
    pub fn encode(&self, descriptor: bool) -> SenseData {
        let mut d = SenseData::empty();
        if descriptor {
            d.buf[0] = 0x72;
            d.buf[1] = self.key.0 & 0x0F;
            d.buf[2] = self.asc.asc();
            d.buf[3] = self.asc.ascq();
            let mut len = 8usize;
            if let Some(info) = self.information {
                // Information sense data descriptor (SPC-4 4.5.2.2).
                d.buf[len] = 0x00;
                d.buf[len + 1] = 0x0A;
                d.buf[len + 2] = 0x80;
                d.buf[len + 4..len + 12].copy_from_slice(&info.to_be_bytes());
                len += 12;
            }
            if let Some(sks) = self.sks {
                // Sense key specific sense data descriptor (SPC-4 4.5.2.4).
                d.buf[len] = 0x02;
                d.buf[len + 1] = 0x06;
                d.buf[len + 4..len + 7].copy_from_slice(&sks);
                len += 8;
            }
            d.buf[7] = (len - 8) as u8;
            d.len = len as u8;
        } else {
            d.buf[0] = 0x70;
            d.buf[2] = self.key.0 & 0x0F;
            if let Some(info) = self.information {
                // Fixed format only carries 32 bits; VALID only if it fits.
                if let Ok(info) = u32::try_from(info) {
                    d.buf[0] |= 0x80;
                    d.buf[3..7].copy_from_slice(&info.to_be_bytes());
                }
            }
            d.buf[7] = 10;
            d.buf[12] = self.asc.asc();
            d.buf[13] = self.asc.ascq();
            if let Some(sks) = self.sks {
                d.buf[15..18].copy_from_slice(&sks);
            }
            d.len = 18;
        }
        d
    }
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}/{:02x}/{:02x}",
            self.key.0,
            self.asc.asc(),
            self.asc.ascq()
        )
    }
}

/// Maximum sense data length (SPC-4: additional sense length is one byte).
pub const SENSE_DATA_MAX: usize = 252;

/// Encoded sense bytes, inline (no heap allocation); at most 252 bytes.
#[derive(Clone, Copy)]
pub struct SenseData {
    buf: [u8; SENSE_DATA_MAX],
    len: u8,
}

impl SenseData {
    /// No sense data.
    pub const fn empty() -> Self {
        SenseData {
            buf: [0; SENSE_DATA_MAX],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Decode key and ASC/ASCQ back out of fixed or descriptor format.
    pub fn key_asc(&self) -> Option<(SenseKey, Asc)> {
        let b = self.as_bytes();
        match b.first().map(|c| c & 0x7F) {
            Some(0x70 | 0x71) if b.len() >= 14 => Some((
                SenseKey(b[2] & 0x0F),
                Asc(u16::from_be_bytes([b[12], b[13]])),
            )),
            Some(0x72 | 0x73) if b.len() >= 4 => {
                Some((SenseKey(b[1] & 0x0F), Asc(u16::from_be_bytes([b[2], b[3]]))))
            }
            _ => None,
        }
    }
}

impl Default for SenseData {
    fn default() -> Self {
        SenseData::empty()
    }
}

impl PartialEq for SenseData {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SenseData {}

impl fmt::Debug for SenseData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key_asc() {
            Some((k, a)) => write!(
                f,
                "SenseData({:02x}/{:02x}/{:02x}, {} bytes)",
                k.0,
                a.asc(),
                a.ascq(),
                self.len
            ),
            None => write!(f, "SenseData({:02x?})", self.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_format_layout() {
        let s = Sense::invalid_field_in_cdb(2, Some(5));
        let d = s.encode(false);
        let b = d.as_bytes();
        assert_eq!(b.len(), 18);
        assert_eq!(b[0], 0x70);
        assert_eq!(b[2], 0x05);
        assert_eq!(b[7], 10);
        assert_eq!((b[12], b[13]), (0x24, 0x00));
        assert_eq!(b[15], 0x80 | 0x40 | 0x08 | 5);
        assert_eq!((b[16], b[17]), (0, 2));
        assert_eq!(
            d.key_asc(),
            Some((SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB))
        );
    }

    #[test]
    fn fixed_format_information() {
        let s = Sense::new(SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY)
            .with_information(0x1234);
        let b = s.encode(false);
        let b = b.as_bytes();
        assert_eq!(b[0], 0xF0);
        assert_eq!(&b[3..7], &[0, 0, 0x12, 0x34]);
        // Too big for the fixed format: VALID stays clear.
        let s = s.with_information(1 << 40);
        assert_eq!(s.encode(false).as_bytes()[0], 0x70);
    }

    #[test]
    fn descriptor_format_layout() {
        let s = Sense::lba_out_of_range();
        let d = s.encode(true);
        assert_eq!(d.as_bytes(), &[0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0]);
        let s = Sense::invalid_field_in_cdb(1, None).with_information(7);
        let d = s.encode(true);
        let b = d.as_bytes();
        assert_eq!(b.len(), 8 + 12 + 8);
        assert_eq!(b[7], 20);
        assert_eq!(&b[8..12], &[0x00, 0x0A, 0x80, 0x00]);
        assert_eq!(&b[12..20], &7u64.to_be_bytes());
        assert_eq!(&b[20..24], &[0x02, 0x06, 0, 0]);
        assert_eq!(&b[24..27], &[0xC0, 0, 1]);
        assert_eq!(
            d.key_asc(),
            Some((SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB))
        );
    }

    #[test]
    fn empty_sense() {
        let d = SenseData::empty();
        assert!(d.is_empty());
        assert_eq!(d.key_asc(), None);
    }
}
