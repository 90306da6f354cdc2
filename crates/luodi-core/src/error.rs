//! The error type of the storage and engine layers.
//!
//! User errors (bad input a person can fix) are kept apart from internal failures so the CLI
//! and the HTTP server can map them to an exit code or a status without guessing.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A knowledge base that does not exist.
    #[error("knowledge base {0:?} does not exist (see `luodi kb list`)")]
    UnknownKb(String),
    /// A knowledge base that already exists.
    #[error("knowledge base {0:?} already exists")]
    KbExists(String),
    /// Input a person can fix: a bad name, flag, file or field.
    #[error("{0}")]
    InvalidInput(String),
    /// An item named by its id that is not there (a glossary entry, a FAQ, …).
    #[error("{0}")]
    NotFound(String),
    /// A file that could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The store on disk is damaged or of an unknown version.
    #[error("store at {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// Any other failure inside a storage or index library.
    #[error("{context}: {message}")]
    Internal { context: String, message: String },
}

impl Error {
    pub fn internal(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Error::Internal {
            context: context.into(),
            message: err.to_string(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the caller (a person) can fix the cause.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::UnknownKb(_)
                | Error::KbExists(_)
                | Error::InvalidInput(_)
                | Error::NotFound(_)
                | Error::Io { .. }
        )
    }
}
