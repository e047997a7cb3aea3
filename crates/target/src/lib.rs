//! The ironsan iSCSI target runtime.
//!
//! This crate drives the sans-IO protocol core (`iscsi-proto`) and the SCSI
//! emulation (`scsi`) with tokio: it listens on the portals, runs each
//! connection's login and full feature phase, moves data between sockets and
//! logical units, and shuts down cleanly.
//!
//! Threading: one tokio task reads each connection and one writes it; SCSI
//! commands execute on blocking threads (positioned file I/O) and hand their
//! completions straight to the connection's writer.

pub mod audit;
pub mod budget;
pub mod config;
pub mod control;
pub mod diff;
pub use iscsi_proto::framing as frame;
pub mod guard;
mod login;
pub mod metrics;
mod scsi_task;
pub mod server;
mod session;
mod targets;
mod text;
pub mod writer;

pub use server::{Server, ServerError};
