//! Config errors: each names the file, the entry and the field, and says what was expected.

use std::fmt;
use std::path::PathBuf;

/// One problem in an app's entry files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The entry file (or source file) the problem is in.
    pub file: PathBuf,
    /// The entry's id (`namespace:name`), or `#n` when the entry has no usable name.
    pub entry: Option<String>,
    /// The field, dotted for nested tables (`lifecycle.restart.delay`).
    pub field: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(e) = &self.entry {
            write!(f, ": entry `{e}`")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one load, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Whether any of the errors' texts contains `needle` (for tests and tools).
    pub fn mentions(&self, needle: &str) -> bool {
        self.0.iter().any(|e| e.to_string().contains(needle))
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
