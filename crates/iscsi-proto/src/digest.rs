//! CRC32C header and data digests (RFC 7143 section 11.1, appendix B.4).
//!
//! The digest is the CRC32C (Castagnoli) of the covered bytes, sent as four
//! bytes in little-endian order, as every deployed initiator does.

/// Length in bytes of one digest on the wire.
pub const DIGEST_LEN: usize = 4;

/// CRC32C of `data` (hardware accelerated where the CPU has it).
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Continues a CRC32C over more bytes, so a data segment and its padding can
/// be covered without copying them together.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// The digest of `data` in wire order.
pub fn digest_bytes(data: &[u8]) -> [u8; DIGEST_LEN] {
    crc32c(data).to_le_bytes()
}

/// Checks a received digest against the covered bytes.
pub fn verify(data: &[u8], received: &[u8]) -> bool {
    received.len() == DIGEST_LEN && digest_bytes(data) == received
}

/// The digest of a data segment followed by its zero padding to a 4-byte boundary.
pub fn data_digest(data: &[u8]) -> u32 {
    let pad = crate::pdu::padding(data.len());
    crc32c_append(crc32c(data), &[0u8; 3][..pad])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3720_vectors() {
        // RFC 3720 appendix B.4 test vectors.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46dd_794e);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&dec), 0x113f_db5c);
    }

    #[test]
    fn verify_rejects_wrong_digest() {
        let d = digest_bytes(b"abc");
        assert!(verify(b"abc", &d));
        assert!(!verify(b"abd", &d));
        assert!(!verify(b"abc", &d[..3]));
    }

    #[test]
    fn data_digest_covers_padding() {
        let mut padded = b"hello".to_vec();
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(data_digest(b"hello"), crc32c(&padded));
    }
}
