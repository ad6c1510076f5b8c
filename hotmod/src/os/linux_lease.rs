//! Read leases (Linux): whether anyone has a file open for writing, and keeping writers out
//! while it is read. The artifact watcher (`watcher.rs`) takes one before each look.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `F_SETSIG` (`<asm-generic/fcntl.h>`, which these architectures use); the libc crate
/// defines it for glibc on none of them.
const F_SETSIG: libc::c_int = 10;

/// What taking a lease found.
pub(crate) enum Lease {
    /// No one had the file open for writing; until this is dropped, an `open` for writing
    /// waits (see the module docs).
    Held(File),
    /// Someone has the file open for writing.
    Busy,
    /// No lease here (not a regular file, not this user's, a file system without leases):
    /// the watcher goes by the events alone.
    Unavailable,
}

/// Takes a read lease on `path`.
pub(crate) fn take(path: &Path) -> Lease {
    // Read-only, as a read lease requires; non-blocking, so that a FIFO at the name or
    // another process's write lease never holds the watcher in `open`.
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return Lease::Unavailable;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Lease::Unavailable;
    }
    let fd = file.as_raw_fd();
    // Breaking a lease signals its holder, with SIGIO unless told otherwise, whose default
    // action ends the process. SIGURG's default is to ignore it.
    // SAFETY: fcntl on a descriptor `file` owns and keeps open; F_SETSIG takes a signal
    // number and only changes which signal this open file sends.
    if unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGURG) } == -1 {
        return Lease::Unavailable;
    }
    // SAFETY: as above; F_SETLEASE takes a lease type, and the lease goes away when `file`
    // is closed.
    if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == -1 {
        return match std::io::Error::last_os_error().raw_os_error() {
            // The kernel refuses a read lease exactly when the file is open for writing.
            Some(libc::EAGAIN) => Lease::Busy,
            _ => Lease::Unavailable,
        };
    }
    // Setting the lease made this process the signal's target; from now on no process is.
    // A failure leaves SIGURG as the signal, which is harmless too.
    // SAFETY: as above; F_SETOWN with 0 clears the owner of this open file.
    unsafe { libc::fcntl(fd, libc::F_SETOWN, 0) };
    Lease::Held(file)
}

#[cfg(test)]
mod tests {
    use super::{take, Lease};
    use std::fs::OpenOptions;
    use std::io::ErrorKind;
    use std::os::unix::fs::OpenOptionsExt;

    fn temp_file(label: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("hotmod-lease-{label}-{}.bin", std::process::id()));
        std::fs::write(&path, b"library").expect("write the file");
        path
    }

    #[test]
    fn a_file_open_for_writing_is_busy_and_a_closed_one_is_leased() {
        let path = temp_file("busy");
        let writer = OpenOptions::new().write(true).open(&path).expect("open");
        assert!(matches!(take(&path), Lease::Busy), "open for writing");
        drop(writer);
        assert!(matches!(take(&path), Lease::Held(_)), "closed again");
        // Readers do not count.
        let reader = std::fs::File::open(&path).expect("open to read");
        assert!(matches!(take(&path), Lease::Held(_)), "open for reading");
        drop(reader);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_held_lease_keeps_writers_out_until_it_is_dropped() {
        let path = temp_file("held");
        let Lease::Held(lease) = take(&path) else {
            panic!("no lease on a closed file of ours");
        };
        // A non-blocking open for writing is refused while the lease is held (a blocking one
        // would wait), and the process is still here: the break's signal did not end it.
        let refused = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .expect_err("a writer gets in while the lease is held");
        assert_eq!(refused.kind(), ErrorKind::WouldBlock, "{refused}");
        drop(lease);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("a writer gets in once the lease is gone");
        let _ = std::fs::remove_file(&path);
    }
}
