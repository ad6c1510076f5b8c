//! Path security under POSIX ACLs (docs/guarantees.md, "Who could have written the library").
//! With an access ACL, the mode's group bits are the ACL's mask, which also covers named users
//! and named groups: `setfacl -m u:65534:rw-` on a 0644 file shows `-rw-rw-r--`, and that other
//! user can write the file. hotmod reads the ACL itself: a named user (not this one, not root)
//! or a named group that may write, after the mask, is refused like a world-writable file; the
//! owning group is judged by its own entry under the mask, not by the mode.
//!
//! Real ACLs, set with `setfacl` (Debian's `acl` package; `.ci/run` installs it). A test is
//! skipped, saying why, only where the file system has no ACLs.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use hello_fixture::hello;
use hotmod::Error;

/// A user and a group that are neither this process's nor root's.
const OTHER_USER: u32 = 65534;
const OTHER_GROUP: u32 = 65533;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A private directory (0755) holding a copy of v2 (0644), both ours.
fn v2_copy(label: &str) -> (support::TempDir, PathBuf) {
    let dir = support::TempDir::new(label);
    chmod(dir.path(), 0o755);
    let path = dir.path().join("libcopy.so");
    std::fs::copy(support::library("v2"), &path).expect("copy v2");
    chmod(&path, 0o644);
    (dir, path)
}

/// `setfacl <args> <path>`: true if it worked, false (after saying so) if the file system has
/// no ACLs; any other failure fails the test.
fn setfacl(args: &[&str], path: &Path) -> bool {
    let output = Command::new("setfacl")
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run setfacl ({e}): install the acl package (apt-get install -y acl)")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return true;
    }
    if stderr.contains("Operation not supported") {
        eprintln!(
            "skipped: the file system of {} has no ACLs ({})",
            path.display(),
            stderr.trim()
        );
        return false;
    }
    panic!("setfacl {args:?} {} failed: {stderr}", path.display());
}

/// Loads v1, then `path`: it must be refused with `InsecurePath`, the current generation
/// serving on. Returns the offender and the reason.
fn refused(path: &Path) -> (PathBuf, String) {
    let module = hello::module();
    let live = module.load(support::library("v1")).expect("load v1");
    let error = module.load(path).expect_err("must be refused");
    assert_eq!(module.generation(), live, "the current generation stays");
    assert_eq!(hello::version(), 1);
    let message = error.to_string();
    let Error::InsecurePath {
        offender, reason, ..
    } = error
    else {
        panic!("wrong error: {message}")
    };
    assert!(
        message.contains(&format!(
            "{} {reason}, so another user could have replaced the library",
            offender.display()
        )),
        "{message}"
    );
    (offender, reason)
}

/// Loads v1, then `path`: it must load.
fn accepted(path: &Path) {
    let module = hello::module();
    module.load(support::library("v1")).expect("load v1");
    let generation = module
        .load(path)
        .unwrap_or_else(|e| panic!("{} must load: {e}", path.display()));
    assert_eq!(module.generation(), generation);
    assert_eq!(hello::version(), 2);
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).expect("canonicalize")
}

#[test]
fn a_named_user_who_may_write_the_library_is_refused_until_the_acl_is_removed() {
    let _serial = support::serial();
    let (_dir, path) = v2_copy("acl-user");
    if !setfacl(&["-m", &format!("u:{OTHER_USER}:rw-")], &path) {
        return;
    }
    // The trap: the mode now shows the mask as the group's bits.
    let mode = std::fs::metadata(&path).expect("stat").mode();
    assert_eq!(mode & 0o777, 0o664, "mode {mode:o}");
    let (offender, reason) = refused(&path);
    assert_eq!(offender, canonical(&path));
    assert_eq!(
        reason,
        format!(
            "is a file whose ACL lets user {OTHER_USER} write it (entry user:{OTHER_USER}:rw-)"
        )
    );

    // `setfacl -b` removes the extended entries: back to the mode bits, 0644.
    assert!(setfacl(&["-b"], &path));
    accepted(&path);
}

#[test]
fn a_mask_that_forbids_writing_makes_a_named_user_read_only() {
    let _serial = support::serial();
    let (_dir, path) = v2_copy("acl-mask");
    if !setfacl(&["-m", &format!("u:{OTHER_USER}:rw-,m::r--")], &path) {
        return;
    }
    accepted(&path);

    // Widening the mask again makes the entry effective: refused.
    assert!(setfacl(&["-m", "m::rw-"], &path));
    let (_, reason) = refused(&path);
    assert!(reason.contains(&format!("user {OTHER_USER}")), "{reason}");
}

#[test]
fn a_directory_whose_acl_lets_another_user_write_it_is_refused() {
    let _serial = support::serial();
    let (dir, path) = v2_copy("acl-dir");
    if !setfacl(&["-m", &format!("u:{OTHER_USER}:rwx")], dir.path()) {
        return;
    }
    let (offender, reason) = refused(&path);
    assert_eq!(offender, canonical(dir.path()));
    assert_eq!(
        reason,
        format!(
            "is a directory whose ACL lets user {OTHER_USER} write it (entry user:{OTHER_USER}:rwx)"
        )
    );
    assert!(setfacl(&["-b"], dir.path()));
    accepted(&path);
}

#[test]
fn a_named_group_that_may_write_the_library_is_refused() {
    let _serial = support::serial();
    let (_dir, path) = v2_copy("acl-group");
    if !setfacl(&["-m", &format!("g:{OTHER_GROUP}:rw-")], &path) {
        return;
    }
    let (offender, reason) = refused(&path);
    assert_eq!(offender, canonical(&path));
    assert_eq!(
        reason,
        format!(
            "is a file whose ACL lets the members of group {OTHER_GROUP} write it \
             (entry group:{OTHER_GROUP}:rw-)"
        )
    );
    assert!(setfacl(&["-b"], &path));
    accepted(&path);
}

#[test]
fn the_owning_group_is_judged_by_its_own_entry_not_by_the_mask() {
    let _serial = support::serial();
    let (_dir, path) = v2_copy("acl-owning-group");
    // A named entry for this very user: harmless, but it brings a mask rw-, which the mode
    // shows as the group's write bit although the owning group may only read.
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    if !setfacl(&["-m", &format!("u:{euid}:rw-")], &path) {
        return;
    }
    let metadata = std::fs::metadata(&path).expect("stat");
    assert_eq!(metadata.mode() & 0o777, 0o664);
    accepted(&path);

    // The owning group's own entry may write: the group rule applies to it.
    assert!(setfacl(&["-m", "g::rw-"], &path));
    let gid = metadata.gid();
    if gid == metadata.uid() && gid != 0 {
        // The owner's user-private group.
        accepted(&path);
    } else {
        let (offender, reason) = refused(&path);
        assert_eq!(offender, canonical(&path));
        assert_eq!(
            reason,
            format!(
                "is a file whose ACL lets the members of group {gid} write it (entry group::rw-)"
            )
        );
    }
    // Masked to read-only: accepted again.
    assert!(setfacl(&["-m", "m::r--"], &path));
    accepted(&path);
}

#[test]
fn a_default_acl_counts_through_the_files_created_under_it() {
    let _serial = support::serial();
    let (dir, path) = v2_copy("acl-default");
    // A default ACL on the directory grants nothing on the directory itself, nor on the file
    // that was there before: accepted.
    if !setfacl(&["-d", "-m", &format!("u:{OTHER_USER}:rwx")], dir.path()) {
        return;
    }
    accepted(&path);
    // A file created afterwards with the mode a compiler asks for (0666; the umask does not
    // apply under a default ACL) inherits it as its access ACL, masked by that mode's group
    // bits (rw-): refused by that.
    let later = dir.path().join("liblater.so");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let bytes = std::fs::read(support::library("v2")).expect("read v2");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&later)
            .expect("create a file under the default ACL");
        file.write_all(&bytes).expect("write it");
    }
    let (offender, reason) = refused(&later);
    assert_eq!(offender, canonical(&later));
    assert!(
        reason.starts_with(&format!(
            "is a file whose ACL lets user {OTHER_USER} write it"
        )),
        "{reason}"
    );
}
