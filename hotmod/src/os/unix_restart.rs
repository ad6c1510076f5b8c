//! Unix: what a kept-state restart (`handover.rs`) hands to the next process: file descriptors
//! it inherits across `exec` (a descriptor without `FD_CLOEXEC` stays open in the new image),
//! pipes between the two processes, and an anonymous file for the state of an in-place `execve`
//! (a `memfd` on Linux; elsewhere an unlinked file in the temporary directory).

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Lets `fd` survive the next `exec` (clears `FD_CLOEXEC`). Async-signal-safe: it runs in the
/// child between `fork` and `exec` (`CommandExt::pre_exec`), and before an in-place `exec`.
pub(crate) fn inherit_across_exec(fd: RawFd) -> io::Result<()> {
    set_cloexec(fd, false)
}

/// Closes `fd` at the next `exec` again (what every descriptor Rust's std opens has).
pub(crate) fn close_on_exec(fd: RawFd) -> io::Result<()> {
    set_cloexec(fd, true)
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD and F_SETFD read and write one descriptor's flags; no memory is passed.
    // An invalid `fd` fails with EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe, both ends closed on `exec` (the one the child keeps is made inheritable in the
/// child only): (read end, write end).
pub(crate) fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0 as libc::c_int; 2];
    // Atomically closed on exec where the platform can (`pipe2`): a process another thread
    // starts meanwhile must not inherit an end, or the old process would wait for an
    // end-of-file that never comes.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    // SAFETY: `pipe2` writes two descriptors into the array it is given, which has room for two.
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    // SAFETY: as above, for `pipe`.
    let made = unsafe { libc::pipe(fds.as_mut_ptr()) };
    if made < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two descriptors just opened, owned by nothing else.
    let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    close_on_exec(fds[0])?;
    close_on_exec(fds[1])?;
    Ok((read, write))
}

/// Waits until `fd` is readable (or its other end closed) for at most `timeout_ms`; `false`:
/// the time ran out.
pub(crate) fn wait_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one `pollfd` that lives across the call.
        let ready = unsafe { libc::poll(&mut poll, 1, timeout_ms) };
        if ready >= 0 {
            return Ok(ready > 0);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// An anonymous file that an in-place `exec` hands the state in, closed on `exec` until
/// [`inherit_across_exec`] says otherwise.
#[cfg(target_os = "linux")]
pub(crate) fn anonymous_file() -> io::Result<File> {
    // SAFETY: a NUL-terminated name and a flag; the result is a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"hotmod-restart".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor `memfd_create` just opened, owned by nothing else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// An anonymous file that an in-place `exec` hands the state in: created in the temporary
/// directory, only this user may read it, and unlinked at once.
#[cfg(not(target_os = "linux"))]
pub(crate) fn anonymous_file() -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = std::env::temp_dir().join(format!(
        "hotmod-restart-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
