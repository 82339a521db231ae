//! The search table the server answers `search` requests from.

use std::collections::HashMap;
use std::path::Path;

/// What the guide's server knows.
const GUIDE_TABLE: [(&str, &str); 3] = [
    ("morpheus", "Follow the white rabbit. \u{1f430}"),
    (
        "ring",
        "In the caves beneath the Misty Mountains. \u{1f48d}",
    ),
    ("\u{1f436}", "\u{1f43e} Playing ball! \u{1f3d0}"),
];

/// Search terms and their answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchTable {
    entries: HashMap<String, String>,
}

/// Why a table file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a JSON object of strings.
    #[error(
        "{path} is not a JSON object of strings (as {{\"morpheus\": \"Follow the white rabbit.\"}}): {why}"
    )]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// A table file is a flag's value: one that cannot be read or used is a
/// usage error, like a bad endpoint.
impl crate::exit::Classify for TableError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            TableError::Read { .. } | TableError::Format { .. } => crate::exit::ExitCode::Usage,
        }
    }
}

impl Default for SearchTable {
    fn default() -> SearchTable {
        SearchTable {
            entries: GUIDE_TABLE
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl SearchTable {
    /// A table from a JSON file: an object whose values are strings.
    pub fn from_file(path: &Path) -> Result<SearchTable, TableError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| TableError::Read {
            path: shown.clone(),
            source,
        })?;
        let entries: HashMap<String, String> =
            serde_json::from_slice(&text).map_err(|e| TableError::Format {
                path: shown,
                why: e.to_string(),
            })?;
        Ok(SearchTable { entries })
    }

    /// The answer to a search term, if there is one.
    pub fn get(&self, term: &str) -> Option<&str> {
        self.entries.get(term).map(String::as_str)
    }

    /// How many terms it knows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
