//! Linux: ELF checks, `membarrier(2)`, private directories.

use std::io;
use std::path::Path;
use std::sync::atomic::{compiler_fence, fence, AtomicU8, Ordering};

/// Checks that `bytes` are a whole ELF shared object for this machine (not empty, then
/// [`check_shared_object`](super::elf::check_shared_object)).
pub(crate) fn check_library(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    super::elf::check_shared_object(bytes).map_err(|error| error.to_string())
}

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

const UNKNOWN: u8 = 0;
const EXPEDITED: u8 = 1;
const FENCING: u8 = 2;

/// Whether `process_barrier` can use `membarrier`; until `prepare_barrier` ran, readers fence.
static BARRIER: AtomicU8 = AtomicU8::new(UNKNOWN);

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
}

/// Registers the process for expedited membarrier. Must run before the first loaded generation
/// is published (the loader calls it), so that every reader that can see a loaded generation
/// also sees which fence it must use.
pub(crate) fn prepare_barrier() {
    if BARRIER.load(Ordering::Acquire) != UNKNOWN {
        return;
    }
    let supported = membarrier(MEMBARRIER_CMD_QUERY);
    let mode = if supported >= 0
        && supported & libc::c_long::from(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0
        && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
    {
        EXPEDITED
    } else {
        FENCING
    };
    BARRIER.store(mode, Ordering::Release);
}

/// The reader half: orders the reader's hazard store before its re-check of `current`.
/// With membarrier a compiler fence suffices, because `process_barrier` forces a full fence on
/// every running thread; otherwise this is a real `SeqCst` fence.
#[inline(always)]
pub(crate) fn reader_fence() {
    if BARRIER.load(Ordering::Relaxed) == EXPEDITED {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// Whether `reader_fence` is only a compiler fence: the process is registered for expedited
/// membarrier (registration is never undone). The plain-call fast path checks this once per
/// thread instead of once per call.
#[inline]
pub(crate) fn barrier_registered() -> bool {
    BARRIER.load(Ordering::Acquire) == EXPEDITED
}

/// The reclaimer half: when it returns `true`, every reader's hazard store that preceded its
/// re-check is visible to this thread. `false` means that cannot be known now, and the caller
/// must retire nothing: the process is registered, so readers use compiler fences only, and a
/// fence on this side alone does not pair with those (only the `membarrier` that just failed
/// would have forced one on every running thread).
#[must_use]
pub(crate) fn process_barrier() -> bool {
    if BARRIER.load(Ordering::Acquire) == EXPEDITED {
        return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
    }
    // Readers that read `BARRIER` as anything but `EXPEDITED` use a real fence: this pairs.
    fence(Ordering::SeqCst);
    true
}

/// Creates `path` with mode 0700.
pub(crate) fn private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

/// Whether the library loaded from `path` is still mapped after its last handle was closed
/// (glibc keeps a library whose code registered a thread-exit callback that hotmod's redirect
/// did not see, e.g. through libstdc++, until those threads exit; see `linux_tls.rs`).
pub(crate) fn still_mapped(path: &Path) -> bool {
    super::dl_op(|| {
        // SAFETY: RTLD_NOLOAD never loads anything, so no initialiser runs; it only returns a
        // new reference to an already-loaded library, which we close again at once.
        match unsafe {
            libloading::os::unix::Library::open(Some(path), libc::RTLD_NOLOAD | libc::RTLD_LAZY)
        } {
            Ok(library) => {
                drop(library);
                true
            }
            Err(_) => false,
        }
    })
}
