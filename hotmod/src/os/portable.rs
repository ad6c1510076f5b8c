//! Platforms without a dedicated implementation yet: conservative fences, no file checks beyond
//! what the platform loader does.

use std::io;
use std::path::Path;
use std::sync::atomic::{fence, Ordering};

pub(crate) fn check_library(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(())
}

pub(crate) fn prepare_barrier() {}

#[inline(always)]
pub(crate) fn reader_fence() {
    fence(Ordering::SeqCst);
}

/// No process-wide barrier here: readers always need a real fence.
pub(crate) fn barrier_registered() -> bool {
    false
}

/// Always succeeds: readers fence for real, so a fence here pairs with theirs.
pub(crate) fn process_barrier() -> bool {
    fence(Ordering::SeqCst);
    true
}

pub(crate) fn private_dir(path: &Path) -> io::Result<()> {
    std::fs::create_dir(path)
}

pub(crate) fn still_mapped(_path: &Path) -> bool {
    false
}

/// No thread-local is read by offset here (see `linux.rs`).
pub(crate) fn static_tls_offset(_addr: *const u8) -> Option<isize> {
    None
}

/// Never called: `static_tls_offset` finds no offset here.
///
/// # Safety
/// None needed.
pub(crate) unsafe fn read_static_tls(_offset: isize) -> usize {
    unreachable!("no static TLS offset on this platform")
}
