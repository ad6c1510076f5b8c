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
//!   harmless. A process killed by a signal leaves its directory behind, in the temp directory.

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
}

static DIR: Mutex<Option<Dir>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Dir>> {
    DIR.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A file in the private directory; dropping it removes the file (and the directory with the
/// last copy).
pub(crate) struct ShadowCopy {
    path: PathBuf,
}

impl ShadowCopy {
    /// Writes `bytes`, the contents of `source`, to a fresh copy.
    pub(crate) fn create(
        source: &Path,
        bytes: &[u8],
    ) -> Result<ShadowCopy, (&'static str, io::Error)> {
        let copy = {
            let mut dir = lock();
            let dir = match &mut *dir {
                Some(dir) => dir,
                None => {
                    let path = std::env::temp_dir().join(format!(
                        "hotmod-{}-{:016x}",
                        std::process::id(),
                        random()
                    ));
                    os::private_dir(&path)
                        .map_err(|e| ("creating hotmod's private directory", e))?;
                    remove_at_exit();
                    dir.insert(Dir { path, copies: 0 })
                }
            };
            dir.copies += 1;
            ShadowCopy {
                path: dir.path.join(copy_name(source)),
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
        let _ = std::fs::remove_file(&self.path);
        let mut dir = lock();
        // Only the directory this copy was made in (the exit hook may have replaced it).
        if let Some(d) = dir.as_mut().filter(|d| self.path.parent() == Some(&d.path)) {
            d.copies -= 1;
            if d.copies == 0 {
                let _ = std::fs::remove_dir(&d.path);
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
            if let Some(d) = dir.take() {
                let _ = std::fs::remove_dir_all(d.path);
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
