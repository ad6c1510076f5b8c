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

/// Makes `command` hand `fds` to the program it runs: they are made inheritable right before
/// its `exec` — in the child after `fork` for `spawn`, in this process for `exec` — and nowhere
/// else, so no other process this one starts inherits them. A descriptor closed meanwhile makes
/// the `spawn` or `exec` fail (`EBADF`).
pub(crate) fn inherit_at_exec(command: &mut std::process::Command, fds: Vec<RawFd>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs between `fork` and `exec` (or right before an in-place `exec`); it
    // only calls `fcntl` (async-signal-safe) on numbers collected before, allocating nothing.
    unsafe {
        command.pre_exec(move || {
            for fd in &fds {
                inherit_across_exec(*fd)?;
            }
            Ok(())
        });
    }
}

/// An [`anonymous_file`] holding `bytes`, read from its start: the state an in-place `exec`
/// hands on.
pub(crate) fn file_holding(bytes: &[u8]) -> io::Result<File> {
    use std::io::{Seek, Write};
    let mut file = anonymous_file()?;
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file)
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

/// The process `wait_for_child` waits for, for the signal handler that passes signals on.
static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn pass_on(signal: libc::c_int) {
    let child = CHILD.load(std::sync::atomic::Ordering::Relaxed);
    if child > 0 {
        // SAFETY: `kill` is async-signal-safe; it sends a signal and touches no memory of ours.
        unsafe { libc::kill(child, signal) };
    }
}

/// Waits for the child `pid` to end and exits as it did (its exit code, or 128 + the signal
/// that ended it), passing `SIGTERM` and `SIGHUP` sent to this process on to it and ignoring
/// `SIGINT` and `SIGQUIT` (a terminal sends those to its whole foreground process group, the
/// child included). What a server's old process becomes after an overlapping restart: it keeps
/// its pid, so whatever started it (`cargo run`, a shell, a supervisor) still waits for it.
pub(crate) fn wait_for_child(pid: u32) -> ! {
    let pid = libc::pid_t::try_from(pid).unwrap_or(0);
    CHILD.store(pid, std::sync::atomic::Ordering::Relaxed);
    let handler = pass_on as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installs handlers that only call `kill` (async-signal-safe), or ignores signals.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGHUP, handler);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let code = loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `waitpid` writes the child's status into `status`, which lives across the
        // call.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        if waited == pid {
            if libc::WIFEXITED(status) {
                break libc::WEXITSTATUS(status);
            }
            if libc::WIFSIGNALED(status) {
                break 128 + libc::WTERMSIG(status);
            }
            continue;
        }
        if waited < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // Not (or no longer) a child of this process: nothing to wait for.
        break 0;
    };
    // SAFETY: ends the process at once, running nothing of this image (it ran no `main`).
    unsafe { libc::_exit(code) }
}

/// Replaces this process's image with its own executable again (`/proc/self/exe`, the file it
/// runs, even where a build replaced the file at its path), with `env` added: how an old
/// server process becomes a small waiter without its memory. Returns only if that failed.
#[cfg(target_os = "linux")]
pub(crate) fn exec_self(env: (&str, &str)) -> io::Error {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("/proc/self/exe");
    if let Some(arg0) = std::env::args_os().next() {
        command.arg0(arg0);
    }
    command.env(env.0, env.1).exec()
}

/// Elsewhere there is no `/proc/self/exe` to run: the caller waits in this image.
#[cfg(not(target_os = "linux"))]
pub(crate) fn exec_self(_env: (&str, &str)) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "no /proc/self/exe")
}

/// The file this process runs, open (closed on exec until [`inherit_across_exec`] says
/// otherwise): `/proc/self/exe` is the running executable even after a build replaced the file
/// at its path.
#[cfg(target_os = "linux")]
pub(crate) fn running_executable() -> io::Result<File> {
    File::open("/proc/self/exe")
}

/// Elsewhere: the executable at its path (which a build may have replaced).
#[cfg(not(target_os = "linux"))]
pub(crate) fn running_executable() -> io::Result<File> {
    File::open(std::env::current_exe()?)
}
