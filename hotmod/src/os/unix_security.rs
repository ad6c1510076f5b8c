//! Unix: who besides the user running the host could have written a library before it is
//! loaded. Loading a library runs its code with the host's privileges, so a library another
//! user can replace is a way for that user to run code as this one.
//!
//! The file and every directory above it (after resolving symlinks) are checked:
//!
//! - **owner**: the effective user or root. Anyone else who owns the file or a directory above
//!   it can rewrite, rename or replace it whatever its mode says.
//! - **others**: no write bit for others, except on a directory with the sticky bit (`/tmp`):
//!   there others may add entries but cannot rename or delete entries they do not own, and the
//!   entry below (checked next) must be ours or root's. So `/tmp/x/libfoo.so` is fine when `/tmp/x`
//!   and the file belong to this user and are not writable by others.
//! - **group**: no write bit for the group, unless the group is a *user-private group*: its id
//!   equals the owner's user id and the owner is not root. That is how Debian, Ubuntu, Fedora
//!   and others create users (with umask 002, so cargo's output is mode 775); refusing those
//!   files would refuse nearly every build on such systems. The exception trusts that nobody
//!   else was added to the user's private group.
//!
//! The checks run on the resolved path, and the loader then reads the resolved path, so a
//! symlink swapped after the check cannot redirect the read. Root is trusted: it can write
//! anything anyway.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a path is not safe to load from.
#[derive(Debug)]
pub(crate) struct Insecure {
    /// The file or directory at fault.
    pub(crate) offender: PathBuf,
    /// What is wrong with it, as a phrase that follows its path.
    pub(crate) reason: String,
}

/// Resolves `path` and checks the file and its directories. The outer `Err` is a failure to
/// inspect them, the inner one a refusal.
pub(crate) fn check_path(path: &Path) -> std::io::Result<Result<PathBuf, Insecure>> {
    let resolved = std::fs::canonicalize(path)?;
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    for (i, entry) in resolved.ancestors().enumerate() {
        let metadata = std::fs::metadata(entry)?;
        if let Some(reason) = problem(&metadata, i > 0, euid) {
            return Ok(Err(Insecure {
                offender: entry.to_path_buf(),
                reason,
            }));
        }
    }
    Ok(Ok(resolved))
}

/// What is wrong with one file or directory, if anything.
fn problem(metadata: &std::fs::Metadata, is_dir: bool, euid: u32) -> Option<String> {
    let (uid, gid, mode) = (metadata.uid(), metadata.gid(), metadata.mode());
    let what = if is_dir {
        "is a directory"
    } else {
        "is a file"
    };
    if uid != euid && uid != 0 {
        return Some(format!(
            "{what} owned by user {uid}, not by this process's user ({euid}) or root"
        ));
    }
    let sticky = is_dir && mode & 0o1000 != 0;
    if mode & 0o002 != 0 && !sticky {
        return Some(format!(
            "{what} every user can write to (mode {:o})",
            mode & 0o7777
        ));
    }
    let private_group = gid == uid && uid != 0;
    if mode & 0o020 != 0 && !sticky && !private_group {
        return Some(format!(
            "{what} the members of group {gid} can write to (mode {:o})",
            mode & 0o7777
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hotmod-security-unit-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("create scratch dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_private_file_in_a_sticky_world_writable_directory_is_accepted() {
        let dir = scratch("ok");
        let file = dir.join("lib.so");
        std::fs::write(&file, b"x").expect("write");
        chmod(&file, 0o644);
        let resolved = check_path(&file).expect("stat").expect("accepted");
        assert_eq!(
            resolved,
            std::fs::canonicalize(&file).expect("canonicalize")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn writable_files_and_directories_are_named() {
        let dir = scratch("bad");
        let file = dir.join("lib.so");
        std::fs::write(&file, b"x").expect("write");
        chmod(&file, 0o646);
        let refusal = check_path(&file).expect("stat").expect_err("o+w file");
        assert!(refusal.offender.ends_with("lib.so"), "{refusal:?}");
        assert!(
            refusal.reason.contains("every user can write"),
            "{refusal:?}"
        );

        chmod(&file, 0o644);
        chmod(&dir, 0o757);
        let refusal = check_path(&file).expect("stat").expect_err("o+w dir");
        assert_eq!(
            refusal.offender,
            std::fs::canonicalize(&dir).expect("canonicalize")
        );
        assert!(refusal.reason.starts_with("is a directory"), "{refusal:?}");

        chmod(&dir, 0o1757);
        check_path(&file)
            .expect("stat")
            .expect("sticky dir is fine");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn group_write_is_refused_unless_the_group_is_private() {
        // The scratch file is ours, with our primary group: private or not depends on the system.
        let dir = scratch("group");
        let file = dir.join("lib.so");
        std::fs::write(&file, b"x").expect("write");
        chmod(&file, 0o664);
        let meta = std::fs::metadata(&file).expect("stat");
        let (uid, gid) = (meta.uid(), meta.gid());
        let verdict = problem(&meta, false, uid);
        if gid == uid && uid != 0 {
            assert!(verdict.is_none(), "{verdict:?}");
        } else {
            let reason = verdict.expect("group-writable file refused");
            assert!(reason.contains(&format!("group {gid}")), "{reason}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
