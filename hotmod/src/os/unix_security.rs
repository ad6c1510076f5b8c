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
//! - **ACL** (Linux: the `system.posix_acl_access` attribute, read by `linux_acl.rs`): with an
//!   access ACL the mode's group bits are the ACL's *mask*, which also caps the named users'
//!   and named groups' entries, so they say nothing about the owning group alone. Each entry's
//!   effective permission is its own `& mask` (the owner's and others' entries are not masked,
//!   and are the mode's owner and other bits). A named user other than this user or root who
//!   may write is refused; a named group that may write is refused (a named entry is never a
//!   user-private group); the owning group's entry `& mask` takes the place of the mode's group
//!   bits in the group rule above. Only the access ACL counts: a directory's default ACL seeds
//!   the ACL of entries created in it later, and each of those is checked on its own.
//!
//! The checks run on the resolved path, and the loader then reads the resolved path, so a
//! symlink swapped after the check cannot redirect the read. Root is trusted: it can write
//! anything anyway.
//!
//! The built-in rebuild checks what cargo reads and runs with [`Rules::Build`]: the same rules
//! without the sticky-directory exception (see `security.rs`).

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::acl;

/// Why a path is not safe to load from.
#[derive(Debug)]
pub(crate) struct Insecure {
    /// The file or directory at fault.
    pub(crate) offender: PathBuf,
    /// What is wrong with it, as a phrase that follows its path.
    pub(crate) reason: String,
}

/// Which exceptions a check makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    /// A library about to be loaded: a sticky directory (`/tmp`) may be writable by others,
    /// since they cannot rename or delete the entries below it that are ours.
    Load,
    /// What the built-in rebuild's cargo reads or runs: no exception for sticky directories.
    /// cargo and rustup look for files by name in every directory above the crate
    /// (`.cargo/config.toml`, `rust-toolchain.toml`, `Cargo.toml`), and in a sticky directory
    /// anyone may create a name that is not there yet.
    Build,
}

/// Resolves `path` and checks the file and its directories under [`Rules::Load`]. The outer
/// `Err` is a failure to inspect them, the inner one a refusal.
pub(crate) fn check_path(path: &Path) -> io::Result<Result<PathBuf, Insecure>> {
    let resolved = std::fs::canonicalize(path)?;
    Checker::new(Rules::Load)
        .check_resolved(&resolved)
        .map(|verdict| verdict.map(|()| resolved))
}

/// Checks paths and every directory above them under one set of [`Rules`], each file or
/// directory once.
pub(crate) struct Checker {
    euid: u32,
    rules: Rules,
    /// Resolved paths that passed, with every directory above each (they passed too).
    passed: HashSet<PathBuf>,
}

impl Checker {
    pub(crate) fn new(rules: Rules) -> Checker {
        // SAFETY: geteuid cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        Checker {
            euid,
            rules,
            passed: HashSet::new(),
        }
    }

    /// A path that may not exist yet: if it exists, it is resolved and checked with its
    /// directories, and its resolved path returned; if not, the nearest directory above it
    /// that exists is checked instead (whoever can write that one could create the path) and
    /// `None` returned. The outer `Err` is a failure to inspect them, the inner one a refusal.
    pub(crate) fn check_wanted(
        &mut self,
        path: &Path,
    ) -> io::Result<Result<Option<PathBuf>, Insecure>> {
        match std::fs::canonicalize(path) {
            Ok(resolved) => {
                return Ok(self.check_resolved(&resolved)?.map(|()| Some(resolved)));
            }
            Err(e) if absent(&e) => {}
            Err(e) => return Err(e),
        }
        for dir in path.ancestors().skip(1) {
            if dir.as_os_str().is_empty() {
                break;
            }
            match std::fs::canonicalize(dir) {
                Ok(resolved) => return Ok(self.check_resolved(&resolved)?.map(|()| None)),
                Err(e) if absent(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Ok(None))
    }

    /// Checks the resolved path `resolved` and every directory above it.
    fn check_resolved(&mut self, resolved: &Path) -> io::Result<Result<(), Insecure>> {
        for entry in resolved.ancestors() {
            if self.passed.contains(entry) {
                break;
            }
            let metadata = std::fs::metadata(entry)?;
            if let Some(reason) = problem(entry, &metadata, self.euid, self.rules)? {
                return Ok(Err(Insecure {
                    offender: entry.to_path_buf(),
                    reason,
                }));
            }
        }
        for entry in resolved.ancestors() {
            if !self.passed.insert(entry.to_path_buf()) {
                break;
            }
        }
        Ok(Ok(()))
    }
}

/// Whether a failure to resolve a path means that it (or a directory on the way) is not there.
fn absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// One entry of a POSIX access ACL (only Linux reads them: `linux_acl.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct AclEntry {
    pub(crate) tag: AclTag,
    /// `rwx` as bits 4, 2, 1.
    pub(crate) perm: u16,
    /// The user or group id of a named entry (undefined for the others).
    pub(crate) id: u32,
}

/// Whom an ACL entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum AclTag {
    /// The owner (`user::`).
    UserObj,
    /// A named user (`user:<uid>:`).
    User,
    /// The owning group (`group::`).
    GroupObj,
    /// A named group (`group:<gid>:`).
    Group,
    /// The most a named entry or the owning group may get (`mask::`).
    Mask,
    /// Everyone else (`other::`).
    Other,
}

const ACL_WRITE: u16 = 2;

/// What is wrong with one file or directory, if anything.
fn problem(
    path: &Path,
    metadata: &std::fs::Metadata,
    euid: u32,
    rules: Rules,
) -> io::Result<Option<String>> {
    let (uid, gid, mode) = (metadata.uid(), metadata.gid(), metadata.mode());
    let is_dir = metadata.is_dir();
    let what = if is_dir {
        "is a directory"
    } else {
        "is a file"
    };
    if uid != euid && uid != 0 {
        return Ok(Some(format!(
            "{what} owned by user {uid}, not by this process's user ({euid}) or root"
        )));
    }
    let sticky = is_dir && mode & 0o1000 != 0;
    if sticky && rules == Rules::Load {
        // Others may add entries but cannot rename or delete ours; the next one down is checked.
        return Ok(None);
    }
    let sticky_note = if sticky {
        "; the rebuild makes no exception for sticky directories: anyone may create the files \
         cargo and rustup look for in it"
    } else {
        ""
    };
    if mode & 0o002 != 0 {
        return Ok(Some(format!(
            "{what} every user can write to (mode {:o}{sticky_note})",
            mode & 0o7777
        )));
    }
    let private_group = gid == uid && uid != 0;
    match acl::access_acl(path)? {
        Some(acl) => Ok(acl_problem(&acl, what, gid, private_group, euid)),
        None if mode & 0o020 != 0 && !private_group => Ok(Some(format!(
            "{what} the members of group {gid} can write to (mode {:o})",
            mode & 0o7777
        ))),
        None => Ok(None),
    }
}

/// What an access ACL lets others do that the mode check above does not cover: named users
/// and groups, and the owning group (whose write bit in the mode is the ACL's mask).
fn acl_problem(
    acl: &[AclEntry],
    what: &str,
    gid: u32,
    private_group: bool,
    euid: u32,
) -> Option<String> {
    let mask = acl
        .iter()
        .find(|entry| entry.tag == AclTag::Mask)
        .map(|entry| entry.perm);
    for entry in acl {
        let effective = match (entry.tag, mask) {
            (AclTag::User | AclTag::Group | AclTag::GroupObj, Some(mask)) => entry.perm & mask,
            _ => entry.perm,
        };
        if effective & ACL_WRITE == 0 {
            continue;
        }
        let whom = match entry.tag {
            AclTag::User if entry.id != euid && entry.id != 0 => format!("user {}", entry.id),
            AclTag::Group => format!("the members of group {}", entry.id),
            AclTag::GroupObj if !private_group => format!("the members of group {gid}"),
            _ => continue,
        };
        let mut shown = acl_text(entry.tag, entry.id, entry.perm);
        if effective != entry.perm {
            shown.push_str(&format!(", effective {}", rwx(effective)));
        }
        return Some(format!(
            "{what} whose ACL lets {whom} write it (entry {shown})"
        ));
    }
    None
}

/// An entry as `getfacl` shows it: `user:1001:rw-`.
fn acl_text(tag: AclTag, id: u32, perm: u16) -> String {
    let perm = rwx(perm);
    match tag {
        AclTag::UserObj => format!("user::{perm}"),
        AclTag::User => format!("user:{id}:{perm}"),
        AclTag::GroupObj => format!("group::{perm}"),
        AclTag::Group => format!("group:{id}:{perm}"),
        AclTag::Mask => format!("mask::{perm}"),
        AclTag::Other => format!("other::{perm}"),
    }
}

fn rwx(perm: u16) -> String {
    [(4, 'r'), (2, 'w'), (1, 'x')]
        .iter()
        .map(|&(bit, c)| if perm & bit != 0 { c } else { '-' })
        .collect()
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
        let verdict = problem(&file, &meta, uid, Rules::Load).expect("getxattr");
        if gid == uid && uid != 0 {
            assert!(verdict.is_none(), "{verdict:?}");
        } else {
            let reason = verdict.expect("group-writable file refused");
            assert!(reason.contains(&format!("group {gid}")), "{reason}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_rebuild_makes_no_exception_for_sticky_directories() {
        let dir = scratch("build-rules");
        let file = dir.join("config.toml");
        std::fs::write(&file, b"x").expect("write");
        chmod(&file, 0o644);
        chmod(&dir, 0o1777);
        Checker::new(Rules::Load)
            .check_wanted(&file)
            .expect("stat")
            .expect("sticky is fine for a load");
        let refusal = Checker::new(Rules::Build)
            .check_wanted(&file)
            .expect("stat")
            .expect_err("not for the rebuild");
        assert_eq!(
            refusal.offender,
            std::fs::canonicalize(&dir).expect("canonicalize")
        );
        assert!(
            refusal
                .reason
                .starts_with("is a directory every user can write to (mode 1777; the rebuild"),
            "{refusal:?}"
        );

        // A missing path: the nearest directory that exists is checked in its place.
        let missing = dir.join(".cargo").join("config.toml");
        let refusal = Checker::new(Rules::Build)
            .check_wanted(&missing)
            .expect("stat")
            .expect_err("anyone could create it");
        assert_eq!(
            refusal.offender,
            std::fs::canonicalize(&dir).expect("canonicalize")
        );
        // Closed to others, our directory passes: what is left to refuse is above it (the
        // temporary directory itself, when it is the sticky /tmp).
        chmod(&dir, 0o755);
        let resolved_dir = std::fs::canonicalize(&dir).expect("canonicalize");
        let above =
            |verdict: Result<Option<PathBuf>, Insecure>, expected: Option<PathBuf>| match verdict {
                Ok(found) => assert_eq!(found, expected),
                Err(refusal) => assert!(
                    resolved_dir.starts_with(&refusal.offender) && refusal.offender != resolved_dir,
                    "{refusal:?}"
                ),
            };
        let mut checker = Checker::new(Rules::Build);
        above(checker.check_wanted(&missing).expect("stat"), None);
        let resolved_file = std::fs::canonicalize(&file).expect("canonicalize");
        above(
            checker.check_wanted(&file).expect("stat"),
            Some(resolved_file),
        );
        // Nothing can be created below a regular file: its directory is checked.
        above(checker.check_wanted(&file.join("x")).expect("stat"), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    const UNDEFINED: u32 = u32::MAX;
    const ME: u32 = 1000;

    fn acl(entries: &[(AclTag, u16, u32)]) -> Vec<AclEntry> {
        entries
            .iter()
            .map(|&(tag, perm, id)| AclEntry { tag, perm, id })
            .collect()
    }

    /// A file of ours (uid ME) with group `gid`, its access ACL `entries`.
    fn verdict(entries: &[(AclTag, u16, u32)], gid: u32) -> Option<String> {
        acl_problem(&acl(entries), "is a file", gid, gid == ME, ME)
    }

    use AclTag::{Group, GroupObj, Mask, Other, User, UserObj};

    #[test]
    fn a_named_user_who_may_write_is_refused_unless_the_mask_forbids_it() {
        let base = [
            (UserObj, 6, UNDEFINED),
            (GroupObj, 4, UNDEFINED),
            (Other, 4, UNDEFINED),
        ];
        let with = |extra: &[(AclTag, u16, u32)]| {
            let mut entries = base.to_vec();
            entries.extend_from_slice(extra);
            verdict(&entries, 50)
        };
        assert_eq!(
            with(&[(User, 6, 1001), (Mask, 6, UNDEFINED)]).as_deref(),
            Some("is a file whose ACL lets user 1001 write it (entry user:1001:rw-)")
        );
        assert_eq!(
            with(&[(User, 7, 1001), (Mask, 6, UNDEFINED)]).as_deref(),
            Some(
                "is a file whose ACL lets user 1001 write it (entry user:1001:rwx, effective rw-)"
            )
        );
        assert_eq!(with(&[(User, 6, 1001), (Mask, 4, UNDEFINED)]), None);
        assert_eq!(with(&[(User, 4, 1001), (Mask, 6, UNDEFINED)]), None);
        // This user and root are trusted.
        assert_eq!(
            with(&[(User, 6, ME), (User, 7, 0), (Mask, 7, UNDEFINED)]),
            None
        );
        // No mask (not valid with named entries, but not trusted either): the entry counts.
        assert!(with(&[(User, 2, 1001)]).is_some());
    }

    #[test]
    fn a_named_group_who_may_write_is_refused_even_a_private_one() {
        let entries = |group: u32, perm: u16, mask: u16| {
            [
                (UserObj, 6, UNDEFINED),
                (GroupObj, 4, UNDEFINED),
                (Group, perm, group),
                (Mask, mask, UNDEFINED),
                (Other, 4, UNDEFINED),
            ]
        };
        assert_eq!(
            verdict(&entries(77, 6, 7), 50).as_deref(),
            Some("is a file whose ACL lets the members of group 77 write it (entry group:77:rw-)")
        );
        // Our own private group's id, named: no exception.
        assert!(verdict(&entries(ME, 6, 7), ME).is_some());
        assert_eq!(verdict(&entries(77, 6, 5), 50), None);
        assert_eq!(verdict(&entries(77, 5, 7), 50), None);
    }

    #[test]
    fn the_owning_group_counts_by_its_own_entry_under_the_mask_not_by_the_mode() {
        let entries = |group: u16, mask: u16| {
            [
                (UserObj, 6, UNDEFINED),
                (User, 6, ME),
                (GroupObj, group, UNDEFINED),
                (Mask, mask, UNDEFINED),
                (Other, 4, UNDEFINED),
            ]
        };
        // The mask (the mode's group bits) says rw-, the group's entry r--: accepted.
        assert_eq!(verdict(&entries(4, 6), 50), None);
        // The group's entry rw-, masked to r--: accepted.
        assert_eq!(verdict(&entries(6, 4), 50), None);
        // rw- under rw-: refused for a shared group …
        assert_eq!(
            verdict(&entries(6, 6), 50).as_deref(),
            Some("is a file whose ACL lets the members of group 50 write it (entry group::rw-)")
        );
        // … accepted for the owner's private group.
        assert_eq!(verdict(&entries(6, 6), ME), None);
    }

    #[test]
    fn entries_that_grant_nothing_to_others_pass() {
        let entries = [
            (UserObj, 7, UNDEFINED),
            (User, 7, ME),
            (GroupObj, 5, UNDEFINED),
            (Group, 5, 77),
            (Mask, 7, UNDEFINED),
            (Other, 5, UNDEFINED),
        ];
        assert_eq!(verdict(&entries, 50), None);
        assert_eq!(acl_text(Mask, UNDEFINED, 5), "mask::r-x");
        assert_eq!(acl_text(Other, UNDEFINED, 0), "other::---");
    }
}
