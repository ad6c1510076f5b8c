//! Private copies of libraries, one per generation.
//!
//! `dlopen` of a path that is already loaded returns the old image, even after the file was
//! replaced, so every generation is loaded from a copy of its own. Copies live in one directory
//! per process, `<temp>/hotmod-<pid>-<random>`, created with mode 0700 under an unpredictable
//! name, and are named `<stem>.<n>.<random>.<ext>`.
//!
//! Invariants:
//! - The directory exists exactly while at least one [`ShadowCopy`] does (counted under `DIR`'s
//!   lock): it is created by the first copy and removed with the last, so a process whose
//!   generations all retired leaves nothing behind.
//! - At process exit (`atexit`), the directory is removed with whatever copies remain (those of
//!   generations still current). Their libraries stay mapped: on Unix unlinking a mapped file is
//!   harmless.
//! - A process that ends without its exit hook running (SIGINT, SIGTERM, SIGKILL, a crash)
//!   leaves its directory; the next process's first copy removes every such directory first.
//!   While a directory exists its owner holds a lock on it that the kernel drops when the owner
//!   dies; the scan removes only directories whose lock it can take (`os::reclaim_orphans`; the
//!   protocol and why it is sound are in `os/unix_reclaim.rs`).
//! - Only the process that made a directory or a copy removes it. A child forked from it
//!   inherits `DIR`, the copies and the exit hook, but its pid differs from the one recorded:
//!   it leaves the parent's directory and copies alone (when it drops an inherited generation
//!   or calls `exit`), and makes a directory of its own at its first load. The fork handlers
//!   (`fork.rs`) hold `DIR` across the fork, and in the child forget the parent's directory at
//!   once ([`ForkDir::in_child`]), closing the child's descriptor of the parent's lock: a child
//!   that lives on does not keep the parent's directory from being reclaimed once the parent is
//!   gone. (A child made without the handlers, by a raw `clone`, forgets it at its first load.)

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use crate::os;

/// The process's private directory and how many copies live in it.
struct Dir {
    path: PathBuf,
    copies: usize,
    /// The process that made it (see the module documentation on `fork`).
    pid: u32,
    /// Held while the directory exists: it tells other processes its owner is alive. Dropped
    /// after the directory is removed.
    _lock: os::DirLock,
}

static DIR: Mutex<Option<Dir>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Dir>> {
    DIR.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `DIR`, held across `fork` (see the module docs). Held elsewhere while a copy is counted in
/// or out, and while the directory is made (the first one after the scan for orphans), which
/// takes no other lock and runs no code of others.
pub(crate) struct ForkDir(MutexGuard<'static, Option<Dir>>);

impl ForkDir {
    /// Takes `DIR` (the prepare handler).
    pub(crate) fn take() -> ForkDir {
        ForkDir(lock())
    }

    /// In the child: forgets the parent's directory (its own is made at its first load).
    pub(crate) fn in_child(&mut self) {
        let pid = std::process::id();
        // Dropping it closes only this process's descriptor of the parent's lock.
        drop(self.0.take_if(|dir| dir.pid != pid));
    }
}

/// A file in the private directory; dropping it removes the file (and the directory with the
/// last copy).
pub(crate) struct ShadowCopy {
    path: PathBuf,
    /// The process that made it: only that one removes it.
    pid: u32,
}

impl ShadowCopy {
    /// Writes `bytes`, the contents of `source`, to a fresh copy.
    pub(crate) fn create(
        source: &Path,
        bytes: &[u8],
    ) -> Result<ShadowCopy, (&'static str, io::Error)> {
        let pid = std::process::id();
        let copy = {
            let mut dir = lock();
            if dir.as_ref().is_some_and(|d| d.pid != pid) {
                // Inherited through `fork`: the parent's directory. Forgetting it closes only
                // this process's descriptor of the parent's lock, which the parent still holds.
                *dir = None;
            }
            let dir = match &mut *dir {
                Some(dir) => dir,
                None => {
                    let temp = std::env::temp_dir();
                    reclaim_once(&temp);
                    let name = format!("hotmod-{pid}-{:016x}", random());
                    let lock = os::create_locked_dir(&temp, &name)
                        .map_err(|e| ("creating hotmod's private directory", e))?;
                    remove_at_exit();
                    dir.insert(Dir {
                        path: temp.join(name),
                        copies: 0,
                        pid,
                        _lock: lock,
                    })
                }
            };
            dir.copies += 1;
            ShadowCopy {
                path: dir.path.join(copy_name(source)),
                pid,
            }
        };
        // Written outside the lock; the count taken above keeps the directory.
        write_new(&copy.path, bytes).map_err(|e| ("writing its private copy", e))?;
        Ok(copy)
    }

    /// Where the copy is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ShadowCopy {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // Made by the process this one was forked from: its file, in its directory.
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        let mut dir = lock();
        // Only the directory this copy was made in (the exit hook may have replaced it).
        if let Some(d) = dir.as_mut().filter(|d| self.path.parent() == Some(&d.path)) {
            d.copies -= 1;
            // Kept (and reused) if it cannot be removed: the exit hook tries again.
            if d.copies == 0 && os::remove_locked_dir(&d.path).is_ok() {
                // Releases the lock, after the directory is gone.
                *dir = None;
            }
        }
    }
}

/// Creates `path` (which must not exist) readable only by this user, and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)
}

/// `<stem>.<n>.<random>.<ext>` for a copy of `source`.
fn copy_name(source: &Path) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stem = source
        .file_stem()
        .map_or_else(|| "module".into(), |s| s.to_string_lossy().into_owned());
    let extension = source
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{stem}.{n}.{:016x}{extension}", random())
}

/// 64 unpredictable bits from the standard library's per-process random hash keys.
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// Removes, once per process (before its first directory), the private directories of
/// processes that are gone. Best effort: it never fails a load.
fn reclaim_once(temp: &Path) {
    static RECLAIM: Once = Once::new();
    RECLAIM.call_once_force(|_| os::reclaim_orphans(temp));
}

/// Registers, once per process, the exit hook that removes the private directory.
fn remove_at_exit() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        extern "C" fn remove() {
            // `try_lock`: a thread that holds the lock while another calls `exit` must not hang
            // the exit; the directory then stays behind.
            let mut dir = match DIR.try_lock() {
                Ok(dir) => dir,
                Err(std::sync::TryLockError::Poisoned(dir)) => dir.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            // Only this process's directory: after `fork`, `exit` in the child runs this hook
            // on the parent's `DIR`.
            let pid = std::process::id();
            if let Some(d) = dir.take_if(|d| d.pid == pid) {
                let _ = std::fs::remove_dir_all(&d.path);
            }
        }
        // SAFETY: `remove` is an `extern "C" fn()` that lives as long as the image containing
        // hotmod, which glibc keeps (or runs the hook early, at dlclose, if that image is a
        // library); it never unwinds (it only calls non-panicking functions).
        unsafe { libc_atexit(remove) };
    });
}

/// # Safety
/// `hook` must stay callable until the process exits and must not unwind.
#[cfg(unix)]
unsafe fn libc_atexit(hook: extern "C" fn()) {
    // SAFETY: forwarded from the caller; a failed registration only skips the cleanup.
    let _ = unsafe { libc::atexit(hook) };
}

/// # Safety
/// None: nothing is registered on this platform.
#[cfg(not(unix))]
unsafe fn libc_atexit(_hook: extern "C" fn()) {}
