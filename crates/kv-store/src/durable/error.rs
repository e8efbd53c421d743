//! Why start-up cannot use a data directory, typed by what went wrong, so that recovery
//! decides by matching, and [`OpenError`] is made from it in one place.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::format::FormatError;
use super::OpenError;

/// What went wrong with one file (or the directory) during start-up.
#[derive(Debug)]
pub(crate) enum RecoveryError {
    /// The OS refused an operation on `path`; `doing` says which, for the message.
    Io {
        path: PathBuf,
        doing: &'static str,
        source: io::Error,
    },
    /// The file is damaged at byte `offset`: going on would lose acknowledged writes.
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A file the state needs is not there.
    Missing(PathBuf),
    /// Not a kv-server file of the kind expected, or its file header is damaged.
    Foreign { path: PathBuf, reason: &'static str },
    /// Written in a format version this build does not read; `found` names it.
    UnsupportedVersion { path: PathBuf, found: String },
}

impl RecoveryError {
    /// An I/O failure while `doing` something to `path`.
    pub(crate) fn io<'a>(
        path: &'a Path,
        doing: &'static str,
    ) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| RecoveryError::Io {
            path: path.to_path_buf(),
            doing,
            source,
        }
    }

    /// Damage in `path` at `offset`.
    pub(crate) fn damaged(path: &Path, offset: u64, reason: impl Into<String>) -> Self {
        RecoveryError::Damaged {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// Why the file at `path` cannot be read in any format this build knows.
    pub(crate) fn format(path: &Path, error: FormatError) -> Self {
        match error {
            FormatError::Unsupported(found) => RecoveryError::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
            },
            FormatError::Foreign(reason) => RecoveryError::Foreign {
                path: path.to_path_buf(),
                reason,
            },
        }
    }

    /// What the user is told: the data directory `dir` refused, and why.
    pub(crate) fn into_open_error(self, dir: &Path) -> OpenError {
        match self {
            RecoveryError::UnsupportedVersion { path, found } => {
                OpenError::UnsupportedVersion { file: path, found }
            }
            other => OpenError::Unusable(dir.to_path_buf(), other.to_string()),
        }
    }
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Io {
                path,
                doing,
                source,
            } => write!(f, "cannot {doing} {}: {source}", path.display()),
            RecoveryError::Damaged {
                path,
                offset,
                reason,
            } => write!(
                f,
                "{} is damaged at byte {offset} ({reason})",
                path.display()
            ),
            RecoveryError::Missing(path) => write!(f, "{} is missing", path.display()),
            RecoveryError::Foreign { path, reason } => {
                write!(f, "{} cannot be read: {reason}", path.display())
            }
            RecoveryError::UnsupportedVersion { path, found } => {
                write!(f, "{} is in {found}", path.display())
            }
        }
    }
}
