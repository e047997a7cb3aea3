//! `key=value` text segments (RFC 7143 section 6.1) and value encodings.
//!
//! A text segment is a sequence of `key=value` pairs, each terminated by a NUL
//! byte. [`parse_text`] splits one into borrowed pairs; [`TextWriter`] builds
//! one. The helpers below decode and encode numbers, booleans and binary
//! values (`0x` hex and `0b` base64).

use thiserror::Error;

/// Longest key name allowed (RFC 7143 section 6.1).
pub const MAX_KEY_LEN: usize = 63;
/// Longest ordinary value allowed (RFC 7143 section 6.1).
pub const MAX_VALUE_LEN: usize = 255;
/// Longest value allowed for CHAP binary values and `SendTargets`.
pub const MAX_LONG_VALUE_LEN: usize = 8192;

/// Reserved value: the responder rejects the offered value.
pub const REJECT: &str = "Reject";
/// Reserved value: the key is irrelevant in this session.
pub const IRRELEVANT: &str = "Irrelevant";
/// Reserved value: the responder does not know the key.
pub const NOT_UNDERSTOOD: &str = "NotUnderstood";

/// Why a text segment or value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// The pair at this byte offset has no `=`.
    #[error("text pair at offset {offset} has no '='")]
    MissingEquals {
        /// Byte offset of the pair in the segment.
        offset: usize,
    },
    /// The pair at this byte offset is not UTF-8.
    #[error("text pair at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Byte offset of the pair in the segment.
        offset: usize,
    },
    /// The pair at this byte offset has an empty key.
    #[error("text pair at offset {offset} has an empty key")]
    EmptyKey {
        /// Byte offset of the pair in the segment.
        offset: usize,
    },
    /// A key is longer than [`MAX_KEY_LEN`].
    #[error("key of {len} bytes exceeds {MAX_KEY_LEN}")]
    KeyTooLong {
        /// Length of the key.
        len: usize,
    },
    /// A value is longer than allowed for its key.
    #[error("value of key {key} is {len} bytes, over the limit of {max}")]
    ValueTooLong {
        /// The key (truncated to [`MAX_KEY_LEN`]).
        key: String,
        /// Length of the value.
        len: usize,
        /// Limit that applies to this key.
        max: usize,
    },
    /// A numerical value could not be parsed or overflows.
    #[error("invalid numerical value {0:?}")]
    InvalidNumber(String),
    /// A boolean value is neither `Yes` nor `No`.
    #[error("invalid boolean value {0:?}")]
    InvalidBool(String),
    /// A binary value is not valid `0x` hex or `0b` base64.
    #[error("invalid binary value")]
    InvalidBinary,
}

/// Maximum value length accepted for `key`.
pub fn max_value_len(key: &str) -> usize {
    if key.starts_with("CHAP_") || key == "SendTargets" {
        MAX_LONG_VALUE_LEN
    } else {
        MAX_VALUE_LEN
    }
}

/// Splits a text segment into `(key, value)` pairs, in order.
///
/// Empty entries (NUL padding, doubled NULs) are skipped and the last pair may
/// lack its terminating NUL. Duplicate keys are kept; detecting them is the
/// negotiation layer's job.
pub fn parse_text(data: &[u8]) -> Result<Vec<(&str, &str)>, TextError> {
    let mut pairs = Vec::new();
    let mut offset = 0usize;
    for chunk in data.split(|&b| b == 0) {
        let start = offset;
        offset += chunk.len() + 1;
        if chunk.is_empty() {
            continue;
        }
        let text =
            std::str::from_utf8(chunk).map_err(|_| TextError::InvalidUtf8 { offset: start })?;
        let (key, value) = text
            .split_once('=')
            .ok_or(TextError::MissingEquals { offset: start })?;
        if key.is_empty() {
            return Err(TextError::EmptyKey { offset: start });
        }
        if key.len() > MAX_KEY_LEN {
            return Err(TextError::KeyTooLong { len: key.len() });
        }
        let max = max_value_len(key);
        if value.len() > max {
            return Err(TextError::ValueTooLong {
                key: key.to_owned(),
                len: value.len(),
                max,
            });
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Builds a text segment: `key=value\0` pairs appended in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextWriter {
    buf: Vec<u8>,
}

impl TextWriter {
    /// Creates an empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key=value\0`.
    pub fn push(&mut self, key: &str, value: &str) -> &mut Self {
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(b'=');
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self
    }

    /// Appends a decimal number.
    pub fn push_num(&mut self, key: &str, value: u64) -> &mut Self {
        self.push(key, &value.to_string())
    }

    /// Appends `Yes` or `No`.
    pub fn push_bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.push(key, bool_str(value))
    }

    /// Appends a binary value in `0x` hex form.
    pub fn push_hex(&mut self, key: &str, value: &[u8]) -> &mut Self {
        self.push(key, &encode_hex(value))
    }

    /// Appends raw, already encoded text (pairs with their NULs).
    pub fn extend_raw(&mut self, raw: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(raw);
        self
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The segment built so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Consumes the writer, returning the segment.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// `Yes` or `No`.
pub fn bool_str(value: bool) -> &'static str {
    if value {
        "Yes"
    } else {
        "No"
    }
}

/// Parses `Yes` / `No` (exact case, as RFC 7143 requires).
pub fn parse_bool(value: &str) -> Result<bool, TextError> {
    match value {
        "Yes" => Ok(true),
        "No" => Ok(false),
        other => Err(TextError::InvalidBool(truncate(other))),
    }
}

/// Parses a numerical value: decimal, or hex with a `0x`/`0X` prefix.
pub fn parse_number(value: &str) -> Result<u64, TextError> {
    let bad = || TextError::InvalidNumber(truncate(value));
    let (digits, radix) = match value.get(..2) {
        Some("0x" | "0X") => (&value[2..], 16),
        _ => (value, 10),
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return Err(bad());
    }
    u64::from_str_radix(digits, radix).map_err(|_| bad())
}

/// Parses a numerical value and checks it lies in `min..=max`.
pub fn parse_number_in(value: &str, min: u64, max: u64) -> Result<u64, TextError> {
    let n = parse_number(value)?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(TextError::InvalidNumber(truncate(value)))
    }
}

/// Decodes a binary value: `0x`/`0X` hex or `0b`/`0B` base64 (RFC 4648).
///
/// An odd number of hex digits is accepted, as if a leading `0` were present.
pub fn decode_binary(value: &str) -> Result<Vec<u8>, TextError> {
    match value.get(..2) {
        Some("0x" | "0X") => decode_hex(&value[2..]),
        Some("0b" | "0B") => decode_base64(&value[2..]),
        _ => Err(TextError::InvalidBinary),
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_hex(digits: &str) -> Result<Vec<u8>, TextError> {
    let bytes = digits.as_bytes();
    if bytes.is_empty() {
        return Err(TextError::InvalidBinary);
    }
    let mut out = Vec::with_capacity(bytes.len() / 2 + 1);
    let (head, rest) = if bytes.len() % 2 == 1 {
        bytes.split_at(1)
    } else {
        bytes.split_at(0)
    };
    if let Some(&c) = head.first() {
        out.push(hex_val(c).ok_or(TextError::InvalidBinary)?);
    }
    for pair in rest.chunks_exact(2) {
        let hi = hex_val(pair[0]).ok_or(TextError::InvalidBinary)?;
        let lo = hex_val(pair[1]).ok_or(TextError::InvalidBinary)?;
        out.push(hi << 4 | lo);
    }
    Ok(out)
}

fn b64_val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, TextError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() & 3 != 0 {
        return Err(TextError::InvalidBinary);
    }
    let pad = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return Err(TextError::InvalidBinary);
    }
    let body = &bytes[..bytes.len() - pad];
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in body {
        let v = b64_val(c).ok_or(TextError::InvalidBinary)?;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero (canonical encoding).
    if acc != 0 {
        return Err(TextError::InvalidBinary);
    }
    Ok(out)
}

/// Encodes bytes as `0x` followed by lowercase hex digits.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Encodes bytes as `0b` followed by padded base64 (RFC 4648).
pub fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(2 + bytes.len().div_ceil(3) * 4);
    s.push_str("0b");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Splits a list value (`a,b,c`) into its items.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',')
}

fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_pairs_with_padding_and_without_final_nul() {
        let pairs = parse_text(b"A=1\0B=two\0\0\0").unwrap();
        assert_eq!(pairs, vec![("A", "1"), ("B", "two")]);
        let pairs = parse_text(b"A=1\0B=").unwrap();
        assert_eq!(pairs, vec![("A", "1"), ("B", "")]);
        assert!(parse_text(b"").unwrap().is_empty());
        assert!(parse_text(b"\0\0\0\0").unwrap().is_empty());
    }

    #[test]
    fn value_may_contain_equals() {
        let pairs = parse_text(b"TargetAddress=a=b\0").unwrap();
        assert_eq!(pairs, vec![("TargetAddress", "a=b")]);
    }

    #[test]
    fn duplicates_are_kept() {
        let pairs = parse_text(b"A=1\0A=2\0").unwrap();
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            parse_text(b"A=1\0Bogus\0"),
            Err(TextError::MissingEquals { offset: 4 })
        );
        assert_eq!(parse_text(b"=x\0"), Err(TextError::EmptyKey { offset: 0 }));
        assert_eq!(
            parse_text(b"A=\xff\0"),
            Err(TextError::InvalidUtf8 { offset: 0 })
        );
        let long_key = format!("{}=1", "K".repeat(64));
        assert_eq!(
            parse_text(long_key.as_bytes()),
            Err(TextError::KeyTooLong { len: 64 })
        );
        let ok_key = format!("{}=1", "K".repeat(63));
        assert!(parse_text(ok_key.as_bytes()).is_ok());
    }

    #[test]
    fn value_limits() {
        let v255 = format!("A={}", "v".repeat(255));
        assert!(parse_text(v255.as_bytes()).is_ok());
        let v256 = format!("A={}", "v".repeat(256));
        assert!(matches!(
            parse_text(v256.as_bytes()),
            Err(TextError::ValueTooLong {
                len: 256,
                max: 255,
                ..
            })
        ));
        let chap = format!("CHAP_C=0x{}", "ab".repeat(1024));
        assert!(parse_text(chap.as_bytes()).is_ok());
        let chap = format!("CHAP_C=0x{}", "ab".repeat(4096));
        assert!(parse_text(chap.as_bytes()).is_err());
    }

    #[test]
    fn writer_round_trip() {
        let mut w = TextWriter::new();
        w.push("A", "x")
            .push_num("N", 8192)
            .push_bool("B", false)
            .push_hex("H", &[1, 0xab]);
        assert_eq!(w.as_bytes(), b"A=x\0N=8192\0B=No\0H=0x01ab\0");
        let pairs = parse_text(w.as_bytes()).unwrap();
        assert_eq!(pairs[3], ("H", "0x01ab"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("8192"), Ok(8192));
        assert_eq!(parse_number("0x2000"), Ok(8192));
        assert_eq!(parse_number("0X1f"), Ok(31));
        assert_eq!(parse_number("0"), Ok(0));
        for bad in [
            "",
            "0x",
            "-1",
            "+1",
            "1 ",
            "12a",
            "99999999999999999999999",
            "0xg",
        ] {
            assert!(parse_number(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_number_in("512", 512, 1024), Ok(512));
        assert!(parse_number_in("511", 512, 1024).is_err());
        assert!(parse_number_in("1025", 512, 1024).is_err());
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("Yes"), Ok(true));
        assert_eq!(parse_bool("No"), Ok(false));
        assert!(parse_bool("yes").is_err());
        assert!(parse_bool("").is_err());
    }

    #[test]
    fn binary_hex() {
        assert_eq!(decode_binary("0x00ff10"), Ok(vec![0, 0xff, 0x10]));
        assert_eq!(decode_binary("0XABC"), Ok(vec![0x0a, 0xbc]));
        assert!(decode_binary("0x").is_err());
        assert!(decode_binary("0xzz").is_err());
        assert!(decode_binary("00ff").is_err());
        assert_eq!(encode_hex(&[0xde, 0xad]), "0xdead");
    }

    #[test]
    fn binary_base64() {
        // RFC 4648 test vectors.
        let vectors: [(&[u8], &str); 7] = [
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xff, 0xfe, 0xfd], "//79"),
        ];
        for (raw, enc) in vectors {
            assert_eq!(encode_base64(raw), format!("0b{enc}"));
            assert_eq!(decode_binary(&format!("0b{enc}")).unwrap(), raw);
            assert_eq!(decode_binary(&format!("0B{enc}")).unwrap(), raw);
        }
        for bad in ["0b", "0bZg=", "0bZ===", "0bZh==", "0bZm9v!A==", "0b=Zg="] {
            assert!(decode_binary(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_text_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_text(&data);
        }

        #[test]
        fn binary_round_trips(data in proptest::collection::vec(any::<u8>(), 1..300)) {
            prop_assert_eq!(decode_binary(&encode_hex(&data)).unwrap(), data.clone());
            prop_assert_eq!(decode_binary(&encode_base64(&data)).unwrap(), data);
        }

        #[test]
        fn decoders_never_panic(s in ".{0,80}") {
            let _ = decode_binary(&s);
            let _ = parse_number(&s);
            let _ = decode_binary(&format!("0b{s}"));
            let _ = decode_binary(&format!("0x{s}"));
        }
    }
}
