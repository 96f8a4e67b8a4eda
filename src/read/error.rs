//! Why a deployment cannot be read from its files. Every reader returns this one type: where the
//! problem is written is data (a file and line, or the flag), and the message says what to do.

use super::ReadError;
use super::dotenv::{Interpolation, ParseError};
use super::yaml::YamlError;
use crate::deployment::{CountError, Source};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be read as text.
    #[error(transparent)]
    File(#[from] ReadError),
    /// YAML that does not parse.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// A `.env` file that does not parse.
    #[error(transparent)]
    Env(#[from] ParseError),
    /// A count (replicas, processes, pool sizes, a cap) that is not one.
    #[error(transparent)]
    Count(#[from] CountError),
    /// A value compose would refuse to interpolate.
    #[error("{at}: {cause}")]
    Interpolation { at: Source, cause: Interpolation },
    /// What a file says that difyplan cannot read as written, or that does not say what the
    /// verdict needs: where, then what is wrong and what to pass or change.
    #[error("{at}: {problem}")]
    At { at: Source, problem: String },
    /// The same about a whole file (no one line is at fault).
    #[error("{file}: {problem}")]
    In { file: String, problem: String },
}

impl Error {
    /// A problem written at a place of a file (or a flag).
    pub fn at(at: Source, problem: impl Into<String>) -> Error {
        Error::At { at, problem: problem.into() }
    }

    /// A problem at a line of a file.
    pub fn line(file: impl Into<String>, line: usize, problem: impl Into<String>) -> Error {
        Error::At { at: Source::file(file.into(), line), problem: problem.into() }
    }

    /// A problem with a whole file.
    pub fn file(file: impl Into<String>, problem: impl Into<String>) -> Error {
        Error::In { file: file.into(), problem: problem.into() }
    }
}
