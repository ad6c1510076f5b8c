//! Unix: private directories whose owner can be told alive or gone, and the reclaiming of those
//! whose owner is gone.
//!
//! A process that ends without running its exit hook (Ctrl-C's SIGINT, SIGTERM, SIGKILL, a
//! crash) leaves its private directory, with a copy of every library it had loaded (megabytes
//! each). So each directory carries a lock, and the first load of every process removes the
//! directories whose lock nobody holds:
//!
//! - **The lock** is an exclusive `flock` on the file `.lock` inside the directory, taken by its
//!   owner before the directory gets its name and held, through an open descriptor
//!   (close-on-exec), until the owner removes the directory. The kernel releases it when the last
//!   descriptor of that open file description closes, which happens when the process ends,
//!   however it ends. A `flock` belongs to the open file description, not to the process: a
//!   second `open` of the file, even in the same process, conflicts with it, and pids play no
//!   part (they repeat across pid namespaces that share a temp directory). `fcntl` locks are
//!   per-process and dropped by any `close` of the file in that process: not used.
//! - **Creation is atomic for observers.** The directory is created as
//!   `hotmod-<pid>-<random>.new` (mode 0700), the lock file is created inside and locked, and only
//!   then is the directory renamed to `hotmod-<pid>-<random>`: every directory under that name
//!   has a held lock from its first instant until its owner is gone or removes it. The owner
//!   removes it in the reverse order (`.lock` unlinked while still held, then the directory, then
//!   the descriptor closed), so a scanner never sees a free lock in a live directory.
//! - **The scan** (`reclaim_orphans`) looks at the entries of the temp directory named exactly
//!   `hotmod-<digits>-<16 hex digits>`. Each is opened with `O_NOFOLLOW | O_DIRECTORY` (a symlink
//!   is never followed, a file is skipped) and kept only if it is a directory owned by this
//!   effective user with mode exactly 0700. Its `.lock` is opened relative to that descriptor
//!   (`O_NOFOLLOW`, must be a regular file of ours) and `flock(LOCK_EX | LOCK_NB)` tried: held by
//!   someone, the owner is alive and the directory is left alone; taken, the owner is gone, and
//!   the directory's entries are unlinked relative to the checked descriptor (never through a
//!   path that could lead elsewhere), then the directory itself, if the name still leads to the
//!   same inode, with `rmdir` (which refuses a directory that is not empty). The lock is held
//!   until the end, so two scanners never remove the same directory at once. A directory
//!   without `.lock` is never removed: that is how a hotmod version from before these locks
//!   leaves its directories, live or not.
//! - **Leftovers of creation.** A process killed between creating `….new` and renaming it
//!   leaves that (nearly empty) directory. The scan removes a `….new` directory whose lock is
//!   not held and which is older than [`STALE`]: a live process spends microseconds there, and if
//!   it was stopped for longer than that, its rename fails and the load reports it.
//! - **`fork`.** A child inherits the descriptor, so the lock (one open file description) stays
//!   held while either process keeps it. The fork handler closes the child's copy at once
//!   (`shadow.rs`, `ForkDir::in_child`), so the parent's directory is reclaimable as soon as the
//!   parent is gone, whatever its children do; a child made without the handlers (a raw
//!   `clone`) closes it at its first load, or when it execs or ends. No `LOCK_UN` is ever
//!   issued, so a child can never release the parent's lock. `shadow.rs` keeps a child from
//!   removing the parent's files.
//! - **Best effort.** Reclaiming never fails a load: every error skips that entry. If `flock` is
//!   not supported where the temp directory lives, the directory is published without `.lock`
//!   (never reclaimed, as before these locks) rather than with a lock file nobody holds.
//!
//! Why not `memfd_create` copies, which never touch the file system? They would leave nothing
//! behind by construction, but: the library's name becomes `/proc/self/fd/N`, and glibc's
//! `dlopen` matches already-loaded libraries by name, so every memfd must stay open for as
//! long as its library is mapped (a reused fd number would hand back the old library); kernels
//! with `vm.memfd_noexec = 2` and some SELinux policies refuse to map memfds executable; and
//! debuggers, profilers and `/proc/<pid>/maps` readers (this crate's tests among them) lose the
//! file they could open. Files in a private directory keep `dlopen`'s path semantics on every
//! Unix; the locks make them as clean after a kill as memfds.

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The lock file inside each private directory.
pub(crate) const LOCK_FILE: &str = ".lock";
const LOCK_FILE_C: &CStr = c".lock";

/// The suffix of a private directory that is not published yet.
const STAGING: &str = ".new";

/// How old an unpublished directory must be before the scan removes it.
const STALE: Duration = Duration::from_secs(10 * 60);

/// The held lock of a private directory (`None`: the file system does not support `flock`, and
/// the directory has no lock file). Dropping it closes the descriptor, which releases the lock
/// once no forked child holds it either.
pub(crate) struct DirLock {
    _file: Option<File>,
}

/// Creates `<temp>/<name>`, mode 0700, with its lock held (see the module documentation).
pub(crate) fn create_locked_dir(temp: &Path, name: &str) -> io::Result<DirLock> {
    let staging = temp.join(format!("{name}{STAGING}"));
    super::private_dir(&staging)?;
    let locked = lock_new_dir(&staging).and_then(|lock| {
        std::fs::rename(&staging, temp.join(name))?;
        Ok(lock)
    });
    if locked.is_err() {
        // Ours: just created by `mkdir`, which fails if anything is there.
        let _ = std::fs::remove_dir_all(&staging);
    }
    locked
}

/// Sets the new directory's mode to exactly 0700 (whatever the umask), then creates and locks
/// its lock file. Best effort: where that fails (a file system without `flock`, or one that
/// records another owner, which the scan skips anyway) the directory gets no lock file, and is
/// never reclaimed. `Err` only if a lock file nobody holds could not be removed: published, it
/// would be taken for an abandoned directory's.
fn lock_new_dir(dir_path: &Path) -> io::Result<DirLock> {
    let unlocked = DirLock { _file: None };
    let Ok(dir) = open_dir(dir_path) else {
        return Ok(unlocked);
    };
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    if !dir.metadata().is_ok_and(|m| m.uid() == euid) {
        return Ok(unlocked);
    }
    let _ = dir.set_permissions(std::fs::Permissions::from_mode(0o700));
    match open_at(
        &dir,
        LOCK_FILE_C,
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
    ) {
        Ok(file) if try_lock(&file) => Ok(DirLock { _file: Some(file) }),
        _ => match unlink_at(&dir, LOCK_FILE_C, 0) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(unlocked),
        },
    }
}

/// Removes a private directory made by `create_locked_dir` once its copies are gone: `.lock`
/// first (still held by `DirLock`, which the caller drops afterwards), then the directory.
/// Refuses, changing nothing, while anything else is in it.
pub(crate) fn remove_locked_dir(path: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        if entry?.file_name() != LOCK_FILE {
            return Err(io::Error::other("the directory is not empty"));
        }
    }
    match std::fs::remove_file(path.join(LOCK_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::remove_dir(path)
}

/// Removes, from `temp`, the private directories of processes that are gone. Best effort:
/// anything unexpected leaves that entry alone.
pub(crate) fn reclaim_orphans(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(kind) = classify(&name) {
            let _ = reclaim(temp, &name, kind, euid);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `hotmod-<pid>-<random>`: locked for as long as its owner lives.
    Published,
    /// `hotmod-<pid>-<random>.new`: being created, or left by a process killed while creating.
    Staging,
}

/// Which of hotmod's names `name` is: `hotmod-<decimal>-<16 lowercase hex digits>`, optionally
/// followed by `.new`.
fn classify(name: &OsStr) -> Option<Kind> {
    let name = name.to_str()?;
    let (name, kind) = match name.strip_suffix(STAGING) {
        Some(base) => (base, Kind::Staging),
        None => (name, Kind::Published),
    };
    let (pid, random) = name.strip_prefix("hotmod-")?.split_once('-')?;
    let pid_ok = !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit());
    let random_ok = random.len() == 16
        && random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (pid_ok && random_ok).then_some(kind)
}

/// Removes `<temp>/<name>` if it is one of ours whose owner is gone.
fn reclaim(temp: &Path, name: &OsStr, kind: Kind, euid: u32) -> io::Result<()> {
    let path = temp.join(name);
    let dir = open_dir(&path)?;
    let metadata = dir.metadata()?;
    if !metadata.is_dir() || metadata.uid() != euid || metadata.mode() & 0o7777 != 0o700 {
        return Ok(());
    }
    let lock = match open_at(&dir, LOCK_FILE_C, libc::O_RDWR | libc::O_NONBLOCK) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(lock) = &lock {
        let lock_metadata = lock.metadata()?;
        if !lock_metadata.is_file() || lock_metadata.uid() != euid || !try_lock(lock) {
            // Its owner is alive (or it is not our lock file).
            return Ok(());
        }
    }
    match kind {
        // Every published directory of this hotmod has a lock file until its owner removes it.
        Kind::Published if lock.is_none() => return Ok(()),
        Kind::Published => {}
        Kind::Staging => {
            let age = SystemTime::now().duration_since(metadata.modified()?);
            if !age.is_ok_and(|age| age > STALE) {
                return Ok(());
            }
        }
    }
    // Unlinked relative to the checked descriptor: the names come from a listing through the
    // path, but only entries of this directory can be removed.
    for entry in std::fs::read_dir(&path)?.flatten() {
        let Ok(entry_name) = std::ffi::CString::new(entry.file_name().as_bytes()) else {
            continue;
        };
        let _ = unlink_at(&dir, &entry_name, 0);
    }
    // The name must still lead to the directory checked above.
    let now = std::fs::symlink_metadata(&path)?;
    if now.dev() != metadata.dev() || now.ino() != metadata.ino() {
        return Ok(());
    }
    std::fs::remove_dir(&path)
    // `lock` is released here, after the removal.
}

/// Opens the directory `path` itself: a symlink in its place fails (`ELOOP`), as does a file.
fn open_dir(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
}

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600)`.
fn open_at(dir: &File, name: &CStr, flags: libc::c_int) -> io::Result<File> {
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both valid for the
    // call; the mode argument is read only with O_CREAT and is an integer.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by `openat`, is open, and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `unlinkat(dir, name, flags)`.
fn unlink_at(dir: &File, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both valid for the
    // call.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Tries to take the exclusive `flock` of `file`'s open file description without waiting.
fn try_lock(file: &File) -> bool {
    // SAFETY: flock takes a descriptor, which `file` keeps open, and touches no memory.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh directory standing in for the temp directory, removed on drop.
    struct Temp(PathBuf);

    impl Temp {
        fn new(label: &str) -> Temp {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("hotmod-unit-{label}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir(&path).expect("create the test directory");
            Temp(path)
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const NAME: &str = "hotmod-42-0123456789abcdef";

    /// A published directory with a copy in it; its lock is held while the result lives.
    fn published(temp: &Temp, name: &str) -> DirLock {
        let lock = create_locked_dir(&temp.0, name).expect("create");
        std::fs::write(temp.0.join(name).join("lib.0.so"), b"copy").expect("write a copy");
        lock
    }

    #[test]
    fn names_are_recognised_exactly() {
        let kind = |name: &str| classify(OsStr::new(name));
        assert_eq!(kind(NAME), Some(Kind::Published));
        assert_eq!(kind(&format!("{NAME}.new")), Some(Kind::Staging));
        for other in [
            "hotmod-test-child-1-0",
            "hotmod--0123456789abcdef",
            "hotmod-42-0123456789ABCDEF",
            "hotmod-42-0123456789abcde",
            "hotmod-42-0123456789abcdef0",
            "hotmod-42-0123456789abcdef.old",
            "hotmod-12345678901-0123456789abcdef",
            "xhotmod-42-0123456789abcdef",
            "hotmod-4x-0123456789abcdef",
        ] {
            assert_eq!(kind(other), None, "{other}");
        }
    }

    #[test]
    fn a_new_directory_is_private_and_locked_under_its_final_name() {
        let temp = Temp::new("create");
        let lock = create_locked_dir(&temp.0, NAME).expect("create");
        assert_eq!(temp.names(), [NAME], "no staging directory remains");
        let dir = temp.0.join(NAME);
        let mode = std::fs::metadata(&dir).expect("stat").mode();
        assert_eq!(mode & 0o7777, 0o700);
        let lock_file = File::open(dir.join(LOCK_FILE)).expect("the lock file");
        assert!(!try_lock(&lock_file), "held by its owner");
        drop(lock);
        assert!(try_lock(&lock_file), "released with the DirLock");
    }

    #[test]
    fn a_directory_whose_lock_is_free_is_removed() {
        let temp = Temp::new("free");
        drop(published(&temp, NAME));
        reclaim_orphans(&temp.0);
        assert!(temp.names().is_empty(), "{:?}", temp.names());
    }

    #[test]
    fn a_directory_whose_lock_is_held_is_kept() {
        let temp = Temp::new("held");
        let _lock = published(&temp, NAME);
        reclaim_orphans(&temp.0);
        assert_eq!(temp.names(), [NAME]);
        assert!(temp.0.join(NAME).join("lib.0.so").is_file());
        // And its owner can still remove it as usual.
        std::fs::remove_file(temp.0.join(NAME).join("lib.0.so")).expect("remove the copy");
        remove_locked_dir(&temp.0.join(NAME)).expect("remove");
        assert!(temp.names().is_empty());
    }

    #[test]
    fn a_directory_with_copies_is_not_removed_by_its_owner() {
        let temp = Temp::new("busy");
        let _lock = published(&temp, NAME);
        remove_locked_dir(&temp.0.join(NAME)).expect_err("a copy is still there");
        assert!(temp.0.join(NAME).join(LOCK_FILE).is_file(), "still locked");
    }

    #[test]
    fn a_directory_without_a_lock_file_is_kept() {
        let temp = Temp::new("nolock");
        let dir = temp.0.join(NAME);
        super::super::private_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("lib.0.so"), b"copy").expect("write");
        reclaim_orphans(&temp.0);
        assert!(dir.join("lib.0.so").is_file());
    }

    #[test]
    fn a_directory_with_another_mode_is_kept() {
        let temp = Temp::new("mode");
        drop(published(&temp, NAME));
        let dir = temp.0.join(NAME);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        reclaim_orphans(&temp.0);
        assert!(dir.join("lib.0.so").is_file());
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let temp = Temp::new("symlink");
        let elsewhere = Temp::new("symlink-target");
        // A directory that would be reclaimed if the scan followed the link to it.
        drop(published(&elsewhere, NAME));
        let target = elsewhere.0.join(NAME);
        std::os::unix::fs::symlink(&target, temp.0.join(NAME)).expect("symlink");
        reclaim_orphans(&temp.0);
        assert!(temp.0.join(NAME).is_symlink(), "the link stays");
        assert!(target.join("lib.0.so").is_file(), "its target is untouched");
        assert!(target.join(LOCK_FILE).is_file());
    }

    #[test]
    fn other_names_are_kept() {
        let temp = Temp::new("names");
        for name in ["hotmod-test-x-1-0", "hotmod-42-0123456789ABCDEF", "other"] {
            drop(published(&temp, name));
        }
        let before = temp.names();
        reclaim_orphans(&temp.0);
        assert_eq!(temp.names(), before);
    }

    /// A directory left between `mkdir` and rename: kept while young or locked, removed once
    /// stale.
    #[test]
    fn an_unpublished_directory_is_removed_once_stale() {
        let temp = Temp::new("staging");
        let young = format!("{NAME}.new");
        let old = "hotmod-7-fedcba9876543210.new";
        let old_locked = "hotmod-8-fedcba9876543210.new";
        for name in [young.as_str(), old, old_locked] {
            super::super::private_dir(&temp.0.join(name)).expect("mkdir");
        }
        let dir = open_dir(&temp.0.join(old_locked)).expect("open");
        let held = open_at(&dir, LOCK_FILE_C, libc::O_RDWR | libc::O_CREAT).expect("lock file");
        assert!(try_lock(&held));
        let long_ago = SystemTime::now() - 2 * STALE;
        for name in [old, old_locked] {
            File::open(temp.0.join(name))
                .expect("open")
                .set_modified(long_ago)
                .expect("set the time");
        }
        reclaim_orphans(&temp.0);
        assert_eq!(temp.names(), [young.as_str(), old_locked]);
        drop(held);
        reclaim_orphans(&temp.0);
        assert_eq!(temp.names(), [young.as_str()]);
    }
}
