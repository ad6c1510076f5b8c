//! Unix: the process's fork handlers, registered with `pthread_atfork` (`fork.rs` says what
//! they do).

/// Registers `prepare`, `parent` and `child`: from now on every `fork()` of the process runs
/// `prepare` on the forking thread before the fork, then `parent` in the parent or `child` in the
/// child, on that same thread. `Err` carries the error number (`ENOMEM`).
///
/// glibc runs the handlers of all registrations under one lock, so two forks never run them at
/// once; `posix_spawn` and `vfork` run none (their child only `exec`s or exits).
pub(crate) fn at_fork(
    prepare: unsafe extern "C" fn(),
    parent: unsafe extern "C" fn(),
    child: unsafe extern "C" fn(),
) -> Result<(), i32> {
    // SAFETY: three functions without arguments that stay callable while the image containing
    // hotmod is loaded; glibc forgets a registration when the image that made it is unloaded
    // (`pthread_atfork` passes the caller's `__dso_handle`). What they may do after `fork` is the
    // callers' contract (`fork.rs`).
    let status = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if status == 0 {
        Ok(())
    } else {
        Err(status)
    }
}
