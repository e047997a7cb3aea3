//! A small async iSCSI initiator built on the project's sans-IO codec
//! (`iscsi-proto`: PDU encoders, the login driver, CHAP), on tokio.
//!
//! - [`Client`]: one connection of one session, one command at a time:
//!   login (none, CHAP, mutual CHAP; digests), SCSI commands with immediate,
//!   unsolicited and R2T-solicited data, READ/WRITE/READ CAPACITY helpers,
//!   pings, text requests, task management and logout. It reports what the
//!   target sends instead of judging it, which is what the target's
//!   integration tests need.
//! - [`retry`]: connect and log in, retrying 0x0301 SERVICE UNAVAILABLE
//!   answers with jittered exponential backoff; every attempt is bounded.
//! - [`load`]: login storms with I/O and a victim session, reporting login
//!   latency percentiles, throughput and failures by reason (the engine of
//!   the `ironsan-load` tool).
//! - [`wire`]: PDU framing on the initiator side.
//!
//! Nothing here panics on network input: malformed or unexpected PDUs
//! become errors.

pub mod client;
pub mod load;
pub mod retry;
pub mod wire;

pub use client::{read10, write10, Capacity, Client, ClientError, CommandOutcome, Pdu};
pub use load::{run_storm, Latency, StormConfig, StormReport, VictimReport};
pub use retry::{login_with_retry, Backoff, LoginError, LoginRun, RetryPolicy};
