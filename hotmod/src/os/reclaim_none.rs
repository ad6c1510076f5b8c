//! Platforms without `flock`: private directories carry no lock, and nothing is reclaimed. A
//! process that ends without running its exit hook leaves its directory in the temp directory.

use std::io;
use std::path::Path;

/// Nothing to hold.
pub(crate) struct DirLock;

/// Creates `<temp>/<name>`, only this user's.
pub(crate) fn create_locked_dir(temp: &Path, name: &str) -> io::Result<DirLock> {
    super::private_dir(&temp.join(name)).map(|()| DirLock)
}

/// Removes the (empty) private directory `path`.
pub(crate) fn remove_locked_dir(path: &Path) -> io::Result<()> {
    std::fs::remove_dir(path)
}

/// Nothing tells a live owner from a gone one here: nothing is removed.
pub(crate) fn reclaim_orphans(_temp: &Path) {}
