//! Error type of the volume engine: a kind (what the caller can act on), a
//! human-readable context and an optional OS error as the source.

use std::fmt;
use std::io;

use serde::Serialize;

/// What went wrong, in terms a CLI or HTTP API can map to a status.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Volume, snapshot or pool does not exist (HTTP 404).
    NotFound,
    /// A volume or snapshot with that name exists already (409).
    AlreadyExists,
    /// The object is in use: open as a LUN, or the pool is locked by
    /// another process (409).
    InUse,
    /// The snapshot (or a snapshot of the volume) has dependent clones (409).
    HasClones,
    /// A newer snapshot exists (rollback only goes to the latest one) (409).
    HasSnapshots,
    /// Name does not match `[A-Za-z0-9._-]{1,64}` (400).
    InvalidName,
    /// Size or block size not acceptable, or a shrink without `force` (400).
    InvalidSize,
    /// Pool capacity exhausted (507).
    NoSpace,
    /// On-disk data or metadata failed verification (500).
    Corrupt,
    /// Operating-system I/O error, or the pool failed an earlier fsync and
    /// refuses further changes until reopened (500).
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::InUse => "in use",
            ErrorKind::HasClones => "has dependent clones",
            ErrorKind::HasSnapshots => "has newer snapshots",
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::InvalidSize => "invalid size",
            ErrorKind::NoSpace => "no space left in pool",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "I/O error",
        })
    }
}

/// Error returned by every fallible pool operation.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {kind}")]
pub struct VolumeError {
    pub kind: ErrorKind,
    pub context: String,
    #[source]
    pub source: Option<io::Error>,
}

impl VolumeError {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        VolumeError {
            kind,
            context: context.into(),
            source: None,
        }
    }

    /// An OS error; ENOSPC/EDQUOT become [`ErrorKind::NoSpace`].
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        let kind = match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorKind::NoSpace,
            _ => ErrorKind::Io,
        };
        VolumeError {
            kind,
            context: context.into(),
            source: Some(source),
        }
    }

    pub fn corrupt(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, context)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = VolumeError> = std::result::Result<T, E>;
