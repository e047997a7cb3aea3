//! SCSI block device emulation (SPC-4 / SBC-3) for the ironsan iSCSI target.
//!
//! Synchronous and I/O-agnostic: the transport hands a [`ScsiRequest`] to
//! [`LogicalUnit::execute`], which talks to a [`BlockDevice`] and returns a
//! [`ScsiOutcome`] (status, encoded sense, transfer length) plus the data-in
//! bytes.

// Tests may unwrap; library code may not (workspace lint `unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod alua;
mod caw;
pub mod cdb;
mod cdb_ext;
pub mod device;
mod ext;
mod inquiry;
mod lu;
mod mode;
mod pr;
mod pr_in;
mod pr_store;
mod sanitize;
mod sbc;
pub mod sense;
mod spc;
mod thin;
mod xcopy;

pub use alua::{AluaGroup, AluaState};
pub use device::{BlockDevice, DeviceError, DeviceErrorKind, DeviceOp, FileDevice, MemDevice};
pub use inquiry::MAX_TRANSFER_BYTES;
pub use lu::{LogicalUnit, LuIdentity, Nexus, ResetKind, ScsiOutcome, ScsiRequest, ScsiStatus};
pub use pr_store::{FilePrStore, PrStore, PrStoreError};
pub use sense::{Asc, Sense, SenseData, SenseKey};
pub use spc::{encode_lun, execute_no_lun, report_luns};
pub use xcopy::CopyPeers;

#[cfg(test)]
mod pr_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod sanitize_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod thin_tests;
#[cfg(test)]
mod vaai_tests;
