//! Framing: the same PDU reader and encoder the target uses
//! (`iscsi_proto::framing`), so both ends of every test share one
//! implementation and its tests.

pub use iscsi_proto::framing::{encode_pdu, FrameError, PduReader as FrameReader};
