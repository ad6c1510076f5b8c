//! Linux: ELF checks, `membarrier(2)`, private directories.

use std::io;
use std::path::Path;
use std::ptr;
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

/// The offset from this thread's thread pointer of `addr`, a thread-local of this thread, when
/// it is the same in every thread: `addr` lies in the main program's TLS block, which the ELF
/// TLS ABI places at one fixed offset from every thread's pointer (what the local-exec model
/// relies on). `None` for a thread-local of a library (loaded by `dlopen`, its block may be
/// allocated per thread anywhere), and on an architecture without `read_static_tls`.
pub(crate) fn static_tls_offset(addr: *const u8) -> Option<isize> {
    let tp = thread_pointer()?;
    let mut inside = (addr.addr(), false);
    /// Visits the main program only (the first object `dl_iterate_phdr` reports): whether the
    /// address in `data` lies in this thread's copy of its `PT_TLS` segment.
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `(usize, bool)` passed below, alive for the whole iteration;
        // `info` and its program headers are the loader's, valid during this callback.
        let (inside, info) = unsafe { (&mut *data.cast::<(usize, bool)>(), &*info) };
        if !info.dlpi_tls_data.is_null() && !info.dlpi_phdr.is_null() {
            // SAFETY: `dlpi_phnum` headers at `dlpi_phdr` (as above).
            let headers =
                unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
            if let Some(tls) = headers.iter().find(|h| h.p_type == libc::PT_TLS) {
                let start = info.dlpi_tls_data.addr();
                let size = usize::try_from(tls.p_memsz).unwrap_or(0);
                inside.1 = (start..start.saturating_add(size)).contains(&inside.0);
            }
        }
        1
    }
    // SAFETY: `visit` matches the callback type and only reads what the loader hands it.
    unsafe { libc::dl_iterate_phdr(Some(visit), ptr::from_mut(&mut inside).cast()) };
    inside
        .1
        .then(|| addr.addr().wrapping_sub(tp) as isize)
        .filter(|&offset| offset != 0)
}

/// This thread's thread pointer.
#[cfg(target_arch = "x86_64")]
fn thread_pointer() -> Option<usize> {
    let tp: usize;
    // SAFETY: on x86-64 Linux (glibc and musl alike) the first word of the thread control
    // block, at `%fs:0`, is the thread pointer itself.
    unsafe {
        std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags));
    }
    Some(tp)
}

/// This thread's thread pointer.
#[cfg(target_arch = "aarch64")]
fn thread_pointer() -> Option<usize> {
    let tp: usize;
    // SAFETY: reads the thread pointer register; no memory.
    unsafe {
        std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nomem, nostack, preserves_flags));
    }
    Some(tp)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn thread_pointer() -> Option<usize> {
    None
}

/// Reads the word at `offset` from this thread's thread pointer: one instruction on x86-64,
/// with none of the thread-local machinery (which, in code built position-independent, the
/// compiler treats as a call).
///
/// # Safety
/// `offset` came from `static_tls_offset` and the word there is a `usize`-sized value that
/// only this thread writes (or that does not change).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn read_static_tls(offset: isize) -> usize {
    let value: usize;
    // SAFETY: the caller's contract: this thread's thread-local in the main program's static
    // block, at the same offset in every thread; an aligned word load.
    unsafe {
        std::arch::asm!("mov {}, qword ptr fs:[{}]", out(reg) value, in(reg) offset, options(nostack, readonly, preserves_flags));
    }
    value
}

/// As on x86-64: the thread pointer, then the word at `offset` from it.
///
/// # Safety
/// As on x86-64.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(crate) unsafe fn read_static_tls(offset: isize) -> usize {
    let value: usize;
    // SAFETY: as on x86-64.
    unsafe {
        std::arch::asm!(
            "mrs {tp}, tpidr_el0",
            "ldr {value}, [{tp}, {offset}]",
            tp = out(reg) _,
            value = out(reg) value,
            offset = in(reg) offset,
            options(nostack, readonly, preserves_flags),
        );
    }
    value
}

/// Never called: `static_tls_offset` finds no offset here.
///
/// # Safety
/// None needed.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) unsafe fn read_static_tls(_offset: isize) -> usize {
    unreachable!("no static TLS offset on this architecture")
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::ptr;

    thread_local! {
        static HERE: Cell<usize> = const { Cell::new(0) };
    }

    fn offset_here() -> Option<isize> {
        super::static_tls_offset(HERE.with(|here| here.as_ptr().cast_const().cast()))
    }

    /// The test binary is the main program: its thread-local has one offset in every thread,
    /// and reading at it reads each thread's own copy.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn a_thread_local_of_the_main_program_has_one_offset_in_every_thread() {
        let offset = offset_here().expect("a thread-local of the main program");
        HERE.with(|here| here.set(0x5eed));
        // SAFETY: a static offset, of a word only this thread writes.
        assert_eq!(unsafe { super::read_static_tls(offset) }, 0x5eed);
        for n in 1..=4 {
            let theirs = std::thread::spawn(move || {
                HERE.with(|here| here.set(n));
                let offset = offset_here().expect("in every thread");
                // SAFETY: as above, in this thread.
                (offset, unsafe { super::read_static_tls(offset) })
            })
            .join()
            .expect("the thread ran");
            assert_eq!(theirs, (offset, n));
        }
    }

    /// Memory outside the main program's TLS block (here on the heap) has no static offset.
    #[test]
    fn memory_outside_the_main_programs_tls_block_has_none() {
        let heap = Box::new(0usize);
        assert_eq!(super::static_tls_offset(ptr::from_ref(&*heap).cast()), None);
    }
}
