//! Error types.

use thiserror::Error;

/// Errors building a [`crate::Guard`].
#[derive(Debug, Error)]
pub enum GuardError {
    /// A built-in or configured pattern failed to compile.
    #[error("pattern for {category} failed to compile: {source}")]
    Pattern {
        /// Category of the pattern.
        category: String,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
    /// The keyword prefilter failed to build.
    #[error("prefilter failed to build: {0}")]
    Prefilter(#[from] aho_corasick::BuildError),
    /// The configuration is invalid.
    #[error("invalid guard configuration: {0}")]
    Config(String),
}

/// A string that is not a known enum value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("unknown {kind}: {value:?}")]
pub struct ParseEnumError {
    /// Which enum.
    pub kind: &'static str,
    /// The rejected value.
    pub value: String,
}
