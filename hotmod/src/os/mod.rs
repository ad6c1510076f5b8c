//! Platform-specific pieces, one file per platform. Everything else in hotmod is portable.
//!
//! Each platform provides:
//! - `check_library(bytes)`: is this a complete shared library for this platform?
//! - `process_barrier()` and `reader_fence()`: the asymmetric fence pair of the pinning protocol
//!   (see `pin.rs`); `barrier_registered()`: whether the reader half is a compiler fence only.
//! - `private_dir(path)`: create a directory only this user can enter.
//! - `still_mapped(path)`: whether a library was really unloaded.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::*;
