//! Text segments: `parse_text`, the value decoders and a `Negotiator`.
//!
//! Input layout: byte 0 configures the negotiation (bit 0: discovery
//! session, bit 1: full-feature Text exchange instead of login, bits 2-3:
//! one of four `TargetLimits`), the rest is split at 0xff bytes (never valid
//! in UTF-8 text) into up to four rounds of text the initiator sends.
#![no_main]

use iscsi_proto::negotiation::{
    Digest, DigestPolicy, Negotiator, SessionParams, SessionType, TargetLimits, MAX_DATA_LEN,
    MIN_DATA_LEN,
};
use iscsi_proto::text::{
    decode_binary, encode_base64, encode_hex, max_value_len, parse_bool, parse_number,
    parse_number_in, parse_text, split_list, TextWriter, MAX_KEY_LEN,
};
use libfuzzer_sys::fuzz_target;

fn limits(variant: u8) -> TargetLimits {
    let d = TargetLimits::default();
    match variant & 3 {
        0 => d,
        1 => TargetLimits {
            max_recv_data_segment_length: 512,
            max_burst_length: 4096,
            first_burst_length: 1024,
            immediate_data: false,
            header_digest: DigestPolicy::Required,
            data_digest: DigestPolicy::Required,
            default_time2wait: 10,
            default_time2retain: 0,
            ..d
        },
        // Out-of-range configuration values: the negotiator must clamp them.
        2 => TargetLimits {
            max_recv_data_segment_length: u32::MAX,
            max_burst_length: 0,
            first_burst_length: u32::MAX,
            max_outstanding_r2t: 0,
            max_connections: 0,
            error_recovery_level: 2,
            default_time2wait: u16::MAX,
            default_time2retain: u16::MAX,
            ..d
        },
        _ => TargetLimits {
            initial_r2t: false,
            data_pdu_in_order: false,
            data_sequence_in_order: false,
            max_outstanding_r2t: 8,
            max_connections: 4,
            ..d
        },
    }
}

fn check_value(key: &str, value: &str) {
    assert!(!key.is_empty() && key.len() <= MAX_KEY_LEN);
    assert!(!key.contains('=') && !key.contains('\0') && !value.contains('\0'));
    assert!(value.len() <= max_value_len(key));
    if let Ok(n) = parse_number(value) {
        assert_eq!(parse_number(&n.to_string()), Ok(n));
        assert_eq!(parse_number(&format!("0x{n:x}")), Ok(n));
        assert_eq!(parse_number_in(value, n, n), Ok(n));
    }
    let _ = parse_number_in(value, 512, (1 << 24) - 1);
    if let Ok(b) = parse_bool(value) {
        assert_eq!(iscsi_proto::text::bool_str(b), value);
    }
    if let Ok(bytes) = decode_binary(value) {
        assert!(!bytes.is_empty());
        assert_eq!(decode_binary(&encode_hex(&bytes)).as_ref(), Ok(&bytes));
        assert_eq!(decode_binary(&encode_base64(&bytes)).as_ref(), Ok(&bytes));
    }
    for item in split_list(value) {
        let _ = Digest::parse(item);
    }
}

fn check_params(p: &SessionParams, lim: &TargetLimits) {
    assert!(p.first_burst_length <= p.max_burst_length);
    let mrdsl = MIN_DATA_LEN..=MAX_DATA_LEN;
    assert!(mrdsl.contains(&p.max_recv_data_segment_length));
    assert!(mrdsl.contains(&p.target_max_recv_data_segment_length));
    if lim.header_digest == DigestPolicy::Required {
        assert_eq!(p.header_digest, Digest::Crc32c);
    }
    if lim.data_digest == DigestPolicy::Required {
        assert_eq!(p.data_digest, Digest::Crc32c);
    }
    if p.session_type == SessionType::Normal {
        assert!(mrdsl.contains(&p.max_burst_length));
        assert!(p.max_burst_length <= lim.max_burst_length.clamp(MIN_DATA_LEN, MAX_DATA_LEN));
        assert!(p.first_burst_length >= MIN_DATA_LEN);
        assert!(p.error_recovery_level <= lim.error_recovery_level);
        assert!(p.max_outstanding_r2t >= 1);
        assert!(p.max_connections >= 1);
        if !lim.immediate_data {
            assert!(!p.immediate_data);
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&config, text)) = input.split_first() else {
        return;
    };
    let session_type = if config & 1 != 0 {
        SessionType::Discovery
    } else {
        SessionType::Normal
    };
    let full_feature = config & 2 != 0;
    let lim = limits(config >> 2);
    let mut negotiator = if full_feature {
        Negotiator::for_full_feature(lim.clone(), SessionParams::default())
    } else {
        Negotiator::for_login(lim.clone(), session_type)
    };

    for round in text.split(|&b| b == 0xff).take(4) {
        let Ok(pairs) = parse_text(round) else {
            continue;
        };
        // The writer and the parser agree.
        let mut w = TextWriter::new();
        for &(k, v) in &pairs {
            check_value(k, v);
            w.push(k, v);
        }
        assert_eq!(parse_text(w.as_bytes()).as_deref(), Ok(&pairs[..]));

        let mut out = TextWriter::new();
        if negotiator.respond(&pairs, &mut out).is_err() {
            return;
        }
        let _ = negotiator.write_target_keys(&mut out);
        // Whatever the target answers is itself valid text.
        let answers = parse_text(out.as_bytes()).expect("target wrote invalid text");
        for (k, v) in answers {
            check_value(k, v);
        }
        for &(k, _) in &pairs {
            let _ = negotiator.has_seen(k);
        }
    }
    if !full_feature {
        if let Ok(params) = negotiator.finish() {
            check_params(&params, &lim);
        }
    }
});
