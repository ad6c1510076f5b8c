//! Platforms without Unix ownership and permission bits: no path check beyond the platform's.

use std::path::{Path, PathBuf};

/// Never produced here.
pub(crate) struct Insecure {
    pub(crate) offender: PathBuf,
    pub(crate) reason: String,
}

/// Accepts every path, resolved.
pub(crate) fn check_path(path: &Path) -> std::io::Result<Result<PathBuf, Insecure>> {
    std::fs::canonicalize(path).map(Ok)
}

/// Which exceptions a check makes (none apply here: nothing is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    /// A library about to be loaded.
    Load,
    /// What the built-in rebuild's cargo reads or runs.
    Build,
}

/// Accepts every path.
pub(crate) struct Checker;

impl Checker {
    pub(crate) fn new(_rules: Rules) -> Checker {
        Checker
    }

    /// `path` resolved if it exists, `None` if it does not.
    pub(crate) fn check_wanted(
        &mut self,
        path: &Path,
    ) -> std::io::Result<Result<Option<PathBuf>, Insecure>> {
        match std::fs::canonicalize(path) {
            Ok(resolved) => Ok(Ok(Some(resolved))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ok(None)),
            Err(e) => Err(e),
        }
    }
}
