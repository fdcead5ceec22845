//! The core crate's error type: a small opaque [`Error`] over a `#[non_exhaustive]` [`ErrorKind`].

use std::fmt;

/// What went wrong, coarsely; the message says exactly what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Tensor shapes do not fit together (rank, sizes, layer chain).
    Shape,
    /// A value is NaN or infinite where finite numbers are required.
    NonFinite,
    /// The explained score is not positive although the rule requires it (DTD).
    NonPositiveScore,
    /// A rule was assigned to a layer it cannot act on, or its parameters are invalid.
    Rule,
    /// A class index or other argument is out of range.
    Argument,
    /// The backend failed (device, allocation, driver).
    Backend,
}

/// An error of the LRP engine: a kind plus a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// Creates an error of `kind` with the given message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Shape mismatch.
    pub fn shape(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Shape, message)
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
