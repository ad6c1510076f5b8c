//! Platforms where hotmod does not redirect thread-exit callbacks (everything but Linux with
//! glibc): the library is opened as is, and `still_mapped` reports whether the platform really
//! unloaded it. On musl `dlclose` never unloads; on macOS a library whose thread-locals have
//! destructors stays loaded until those threads exit.

use std::path::Path;

/// Nothing to release.
pub(crate) struct ThreadExit;

impl ThreadExit {
    /// Nothing to wait for.
    pub(crate) fn release(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Nothing to hold across `fork`: no bookkeeping here.
pub(crate) struct ForkLocks;

impl ForkLocks {
    /// Nothing to take.
    pub(crate) fn take() -> ForkLocks {
        ForkLocks
    }

    /// Nothing to put right.
    pub(crate) fn in_child(&mut self) {}
}

/// Loads the library at `path` (whose contents are `bytes`), near the host's code when it can
/// (`near.rs`).
///
/// # Safety
/// As for `libloading::Library::new`: loading a library runs its initialisers.
pub(crate) unsafe fn open_library(
    path: &Path,
    bytes: &[u8],
) -> Result<(libloading::Library, ThreadExit), libloading::Error> {
    super::dl_op(|| {
        super::near::open(bytes, || {
            // SAFETY: forwarded from the caller.
            unsafe { libloading::Library::new(path) }
        })
    })
    .map(|library| (library, ThreadExit))
}

/// Nothing to switch off on this platform (tests only).
pub fn set_thread_exit_redirect(_on: bool) {}
