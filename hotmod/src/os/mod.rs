//! Platform-specific pieces, one file per platform. Everything else in hotmod is portable.
//!
//! Each platform provides:
//! - `check_library(bytes)`: is this a complete shared library for this platform?
//! - `process_barrier()` and `reader_fence()`: the asymmetric fence pair of the pinning protocol
//!   (see `pin.rs`); `barrier_registered()`: whether the reader half is a compiler fence only.
//! - `private_dir(path)`: create a directory only this user can enter.
//! - `still_mapped(path)`: whether a library was really unloaded.
//! - `open_library(path, bytes)` and `ThreadExit`: `dlopen`, and what keeps the library's
//!   thread-exit callbacks from pinning it or outliving it (`linux_tls.rs` on glibc).
//! - `near::open(bytes, dlopen)`: runs the `dlopen` with the library steered within 2 GiB of
//!   the host's code (`linux_near.rs` on Linux x86_64; elsewhere it lands where `dlopen` puts
//!   it); `near::in_child()`: what the fork child handler puts right for it.
//! - `check_path(path)`: who besides this user could have written the file (`unix_security.rs`,
//!   with the access ACL from `linux_acl.rs` on Linux); `Checker` and `Rules`: the same checks
//!   for the built-in rebuild's inputs.
//! - `create_locked_dir`, `remove_locked_dir`, `DirLock` and `reclaim_orphans`: private
//!   directories that carry a lock while their owner lives, and the removal of those whose owner
//!   is gone (`unix_reclaim.rs`; elsewhere no lock, nothing reclaimed).
//! - `at_fork(prepare, parent, child)`: the process's fork handlers (`unix_fork.rs`, nothing
//!   elsewhere); `ForkLocks`: the thread-exit bookkeeping's locks, held across `fork` and put
//!   right in the child (`linux_tls.rs`; nothing to hold elsewhere).
//! - `restart`: descriptors inherited across `exec`, pipes and an anonymous file for a
//!   kept-state restart (`unix_restart.rs`; Unix only, as `handover.rs` is).
//! - `dl_op(f)` and `hold_dl_ops_for_fork()`: the lock around every `dlopen`/`dlclose`, held
//!   across `fork` (`dl_ops.rs`, portable).

mod dl_ops;
pub(crate) use dl_ops::{dl_op, hold_for_fork as hold_dl_ops_for_fork};

#[cfg(target_os = "linux")]
pub(crate) mod elf;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::*;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod linux_tls;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub use linux_tls::set_thread_exit_redirect;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) use linux_tls::{open_library, ForkLocks, ThreadExit};
// The redirected symbols' names, for the ELF fuzz target (`fuzz.rs`).
#[cfg(all(target_os = "linux", target_env = "gnu", feature = "fuzz"))]
pub(crate) use linux_tls::Redirect;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod thread_exit_none;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub use thread_exit_none::set_thread_exit_redirect;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) use thread_exit_none::{open_library, ForkLocks, ThreadExit};

#[cfg(unix)]
mod unix_security;
#[cfg(unix)]
pub(crate) use unix_security::{check_path, Checker, Insecure, Rules};

// The access ACL `unix_security.rs` weighs with the mode bits: read on Linux, none elsewhere.
#[cfg(target_os = "linux")]
mod linux_acl;
#[cfg(target_os = "linux")]
use linux_acl as acl;
#[cfg(all(unix, not(target_os = "linux")))]
mod acl_none;
#[cfg(all(unix, not(target_os = "linux")))]
use acl_none as acl;

#[cfg(not(unix))]
mod security_none;
#[cfg(not(unix))]
pub(crate) use security_none::{check_path, Checker, Insecure, Rules};

#[cfg(unix)]
mod unix_reclaim;
#[cfg(unix)]
pub(crate) use unix_reclaim::{create_locked_dir, reclaim_orphans, remove_locked_dir, DirLock};

#[cfg(unix)]
mod unix_fork;
#[cfg(unix)]
pub(crate) use unix_fork::at_fork;

// What a kept-state restart hands to the next process (`handover.rs`, Unix only).
#[cfg(unix)]
#[path = "unix_restart.rs"]
pub(crate) mod restart;

#[cfg(not(unix))]
mod fork_none;
#[cfg(not(unix))]
pub(crate) use fork_none::at_fork;

#[cfg(not(unix))]
mod reclaim_none;
#[cfg(not(unix))]
pub(crate) use reclaim_none::{create_locked_dir, reclaim_orphans, remove_locked_dir, DirLock};

// Where a library is mapped: near the host's code (Linux x86_64), or where dlopen puts it.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[path = "linux_near.rs"]
pub(crate) mod near;
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
#[path = "near_none.rs"]
pub(crate) mod near;

// Read leases on the artifact the watcher is about to read (`F_SETLEASE`; the architectures
// whose `F_SETSIG` the lease code knows).
// `hotmod_lease` is set by build.rs for those targets.
#[cfg(hotmod_lease)]
#[path = "linux_lease.rs"]
pub(crate) mod lease;
#[cfg(not(hotmod_lease))]
#[path = "lease_none.rs"]
pub(crate) mod lease;
