//! Sans-IO core of the iSCSI protocol (RFC 7143).
//!
//! Nothing in this crate performs I/O or reads the clock: callers feed bytes and
//! header fields in and get bytes and decisions out. The tokio runtime in the
//! `ironsan-target` crate drives it; tests drive it with an in-memory initiator.
//!
//! - [`pdu`]: the Basic Header Segment, opcodes and typed PDUs, framing limits.
//! - [`digest`]: CRC32C header and data digests.
//! - `framing` (feature `tokio`): whole PDUs off an async stream, for the
//!   runtimes built on this crate.
//! - [`text`]: `key=value` text segments.
//! - [`negotiation`]: operational parameter negotiation (RFC 7143 section 13).
//! - [`chap`]: CHAP authentication (RFC 1994, RFC 7143 section 12.1.3).
//! - [`login`]: the target side login state machine.
//! - [`initiator`]: an initiator side login helper for tests and load tools.
#![forbid(unsafe_code)]

pub mod chap;
pub mod digest;
#[cfg(feature = "tokio")]
pub mod framing;
pub mod initiator;
pub mod login;
pub mod negotiation;
pub mod pdu;
pub mod text;
