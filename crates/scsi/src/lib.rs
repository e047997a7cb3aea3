//! SCSI block device emulation (SPC-4 / SBC-3) for the ironsan iSCSI target.
//!
//! Synchronous and I/O-agnostic: the transport hands a [`ScsiRequest`] to
//! [`LogicalUnit::execute`], which talks to a [`BlockDevice`] and returns a
//! [`ScsiOutcome`] (status, encoded sense, transfer length) plus the data-in
//! bytes.

// Tests may unwrap; library code may not (workspace lint `unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cdb;
pub mod device;
mod inquiry;
mod lu;
mod mode;
mod sbc;
pub mod sense;
mod spc;

pub use inquiry::MAX_TRANSFER_BYTES;
pub use device::{BlockDevice, DeviceError, DeviceErrorKind, DeviceOp, FileDevice, MemDevice};
pub use lu::{LogicalUnit, LuIdentity, Nexus, ResetKind, ScsiOutcome, ScsiRequest, ScsiStatus};
pub use sense::{Asc, Sense, SenseData, SenseKey};
pub use spc::{encode_lun, execute_no_lun, report_luns};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
