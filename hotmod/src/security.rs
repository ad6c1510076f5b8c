//! What hotmod refuses to load because someone other than the host's user could have written
//! it, and the switch that turns the refusal off.
//!
//! By default a library is loaded only if the file and every directory above it are owned by
//! the host's effective user or root, and writable by nobody else: no write bit for others
//! (except on sticky directories such as `/tmp`) and none for the group (except a user-private
//! group, whose id equals its user's id). The rules and their reasons are in
//! `os/unix_security.rs`; a refusal is [`Error::InsecurePath`], naming the file or directory at
//! fault.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;
use crate::os;

static ALLOW_INSECURE: AtomicBool = AtomicBool::new(false);

/// Lets every hot module of this process load libraries that other users could have written
/// (see [`Error::InsecurePath`]): for shared build directories you trust. Off by default.
pub fn allow_insecure_paths(allow: bool) {
    ALLOW_INSECURE.store(allow, Ordering::Relaxed);
}

/// The path the loader should read: `path` resolved, once the checks passed (or `path` itself
/// when they are switched off).
pub(crate) fn checked_path(module: &'static str, path: &Path) -> Result<PathBuf, Error> {
    if ALLOW_INSECURE.load(Ordering::Relaxed) {
        return Ok(path.to_path_buf());
    }
    match os::check_path(path) {
        Ok(Ok(resolved)) => Ok(resolved),
        Ok(Err(insecure)) => Err(Error::InsecurePath {
            module,
            path: path.to_path_buf(),
            offender: insecure.offender,
            reason: insecure.reason,
        }),
        Err(source) => Err(Error::Io {
            module,
            path: path.to_path_buf(),
            action: "checking who can write it",
            source: source.into(),
        }),
    }
}
