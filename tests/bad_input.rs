//! The bad-input matrix: one test per way a library can be wrong. Each loads v1 first, offers
//! the bad input, and checks that
//! - the load fails with the expected typed error, whose message starts with the hot module,
//!   names the file, and says what is wrong;
//! - the live generation keeps serving (same number, same answers);
//! - no shadow copy is left behind.
//!
//! Plus the path-security rows (files and directories other users could write) and what happens
//! with a library whose static initialiser panics (it cannot be caught: the process aborts).

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hello_fixture::hello;
use hotmod::{Error, Incompatibility};

/// Loads v1, offers `bad`, checks the promises above and returns the error.
fn refused(bad: &Path) -> Error {
    let module = hello::module();
    let live = module.load(support::library("v1")).expect("load v1");
    let copies: BTreeSet<PathBuf> = support::shadow_copies().into_iter().collect();

    let error = module.load(bad).expect_err("the bad input must be refused");

    assert_eq!(
        module.generation(),
        live,
        "the current generation did not change"
    );
    assert_eq!(hello::version(), 1);
    assert_eq!(hello::greet("v1"), "hello v1");
    assert_eq!(hello::Handle::current().generation(), live);
    assert_eq!(*module.live_generations().last().expect("live"), live);
    let after: BTreeSet<PathBuf> = support::shadow_copies().into_iter().collect();
    assert_eq!(after, copies, "no shadow copy was left behind");

    let message = error.to_string();
    assert!(message.starts_with("hello_fixture::hello: "), "{message}");
    assert!(message.contains(&bad.display().to_string()), "{message}");
    assert_eq!(error.module(), "hello_fixture::hello");
    assert_eq!(error.path(), Some(bad));
    error
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(support::library(name)).expect("read fixture")
}

#[test]
fn a_missing_file() {
    let _serial = support::serial();
    let dir = support::TempDir::new("missing");
    let path = dir.path().join("libmissing.so");
    let error = refused(&path);
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert!(
        error.to_string().contains("the file does not exist"),
        "{error}"
    );
}

#[test]
fn an_empty_file() {
    let _serial = support::serial();
    let dir = support::TempDir::new("empty");
    let path = dir.path().join("libempty.so");
    write(&path, b"");
    let error = refused(&path);
    assert!(matches!(error, Error::NotALibrary { .. }), "{error:?}");
    assert!(error.to_string().contains("the file is empty"), "{error}");
}

#[test]
fn random_bytes() {
    let _serial = support::serial();
    let dir = support::TempDir::new("random");
    let path = dir.path().join("librandom.so");
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    write(&path, &bytes);
    let error = refused(&path);
    assert!(matches!(error, Error::NotALibrary { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("does not start with an ELF header"),
        "{error}"
    );
}

#[test]
fn a_truncated_library() {
    let _serial = support::serial();
    let dir = support::TempDir::new("truncated");
    let bytes = fixture_bytes("v2");
    let path = dir.path().join("libtruncated.so");
    write(&path, &bytes[..bytes.len() / 2]);
    let error = refused(&path);
    assert!(matches!(error, Error::NotALibrary { .. }), "{error:?}");
    assert!(error.to_string().contains("it is truncated"), "{error}");

    // Without section headers (as after `strip --strip-section-headers`), no header sits at
    // the end of the file: the loadable segments are what tell the cut. Cut inside the last
    // one (a cut in the debug sections after it would still be a loadable library).
    let mut stripped = bytes.clone();
    stripped[40..48].copy_from_slice(&0u64.to_ne_bytes()); // e_shoff
    stripped[60..62].copy_from_slice(&0u16.to_ne_bytes()); // e_shnum
    stripped[62..64].copy_from_slice(&0u16.to_ne_bytes()); // e_shstrndx
    let u64_at = |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let u16_at = |at: usize| u16::from_ne_bytes(bytes[at..at + 2].try_into().expect("2 bytes"));
    let (phoff, phnum) = (u64_at(32) as usize, u16_at(56) as usize);
    let loads_end = (0..phnum)
        .map(|i| phoff + i * 56)
        .filter(|at| u32::from_ne_bytes(bytes[*at..*at + 4].try_into().expect("4 bytes")) == 1)
        .map(|at| u64_at(at + 8) + u64_at(at + 32))
        .max()
        .expect("a PT_LOAD") as usize;
    let path = dir.path().join("libstripped-truncated.so");
    write(&path, &stripped[..loads_end - 64]);
    let error = refused(&path);
    assert!(matches!(error, Error::NotALibrary { .. }), "{error:?}");
    assert!(
        error.to_string().contains("a loadable segment reaches"),
        "{error}"
    );
}

#[test]
fn a_text_file_named_like_a_library() {
    let _serial = support::serial();
    let dir = support::TempDir::new("text");
    let path = dir.path().join("libtext.so");
    write(&path, b"this is not a library\n");
    let error = refused(&path);
    assert!(matches!(error, Error::NotALibrary { .. }), "{error:?}");
    assert!(
        error.to_string().contains("it is not a shared library"),
        "{error}"
    );
}

#[test]
fn a_directory() {
    let _serial = support::serial();
    let dir = support::TempDir::new("directory");
    let path = dir.path().join("libdir.so");
    std::fs::create_dir(&path).expect("mkdir");
    let error = refused(&path);
    assert!(matches!(error, Error::NotAFile { .. }), "{error:?}");
    assert!(error.to_string().contains("it is a directory"), "{error}");
}

/// Linux capabilities are per thread: dropping the two that let root ignore file permissions
/// affects only the calling thread, so root can be denied for real without touching the rest of
/// the test process.
fn drop_file_permission_override() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_DAC_OVERRIDE: u32 = 1;
    const CAP_DAC_READ_SEARCH: u32 = 2;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two `Data` for version 3 and reads the header.
    let status = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(status, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH));
    // SAFETY: capset reads the header and two `Data`; it changes only this thread's set.
    let status = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(status, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn permission_denied() {
    let _serial = support::serial();
    let dir = support::TempDir::new("denied");
    let path = dir.path().join("libdenied.so");
    write(&path, &fixture_bytes("v2"));
    chmod(&path, 0o000);
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let module = hello::module();
    let live = module.load(support::library("v1")).expect("load v1");
    let copies = support::shadow_copies();
    let bad = path.clone();
    let error = std::thread::spawn(move || {
        if root {
            drop_file_permission_override();
        }
        let denied = std::fs::read(&bad).expect_err("reading a mode-000 file is denied");
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        module.load(&bad).expect_err("must be refused")
    })
    .join()
    .expect("thread");
    let Error::Io { source, action, .. } = &error else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!(
        source.kind(),
        std::io::ErrorKind::PermissionDenied,
        "{error}"
    );
    assert_eq!(*action, "reading it");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("Permission denied"), "{message}");
    assert_eq!(module.generation(), live);
    assert_eq!(hello::greet("v1"), "hello v1");
    assert_eq!(support::shadow_copies(), copies);
}

#[test]
fn a_cdylib_without_a_hotmod_descriptor() {
    let _serial = support::serial();
    let error = refused(support::library("plain"));
    assert!(matches!(error, Error::NoDescriptor { .. }), "{error:?}");
    assert!(
        error.to_string().contains("it has no hotmod descriptor"),
        "{error}"
    );
}

#[test]
fn another_hot_modules_library() {
    let _serial = support::serial();
    let error = refused(support::library("greeter"));
    let Error::OtherModule { found, .. } = &error else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!(found, &["greeter::hello".to_string()]);
    assert!(
        error
            .to_string()
            .contains("another hot module (greeter::hello)"),
        "{error}"
    );
}

fn incompatible(variant: &str) -> (Vec<Incompatibility>, String) {
    let error = refused(support::library(variant));
    let message = error.to_string();
    let advice = if variant == "sig" || variant == "removed" {
        "restart the host to pick up signature changes"
    } else {
        "restart the host to pick up changes to types that cross the boundary"
    };
    assert!(message.ends_with(advice), "{message}");
    match error {
        Error::Incompatible { changes, .. } => (changes, message),
        other => panic!("wrong error: {other:?}"),
    }
}

#[test]
fn a_changed_signature() {
    let _serial = support::serial();
    let (changes, message) = incompatible("sig");
    assert_eq!(
        changes,
        [Incompatibility::FunctionChanged {
            name: "greet".into(),
            expected: "fn(&str) -> String".into(),
            found: "fn(&str, bool) -> String".into(),
        }]
    );
    assert!(
        message.contains(
            "function `greet` changed from fn(&str) -> String to fn(&str, bool) -> String; \
             restart the host"
        ),
        "{message}"
    );
}

#[test]
fn a_removed_function() {
    let _serial = support::serial();
    let (changes, message) = incompatible("removed");
    assert_eq!(
        changes,
        [Incompatibility::FunctionRemoved {
            name: "answer".into(),
            expected: "fn() -> u32".into(),
        }]
    );
    assert!(
        message.contains("function `answer` (fn() -> u32) is missing"),
        "{message}"
    );
}

#[test]
fn a_struct_that_grew_a_field() {
    let _serial = support::serial();
    let (changes, message) = incompatible("layout");
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Incompatibility::TypeChanged { name, .. } if name == "Reply")),
        "{message}"
    );
    assert!(
        message.contains("extra: u64"),
        "the message shows the new field: {message}"
    );
}

#[test]
fn a_struct_whose_fields_swapped_places_at_the_same_size() {
    let _serial = support::serial();
    let (changes, message) = incompatible("reorder");
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Incompatibility::TypeChanged { name, .. } if name == "Reply")),
        "{message}"
    );
    assert!(message.contains("type `Reply` changed"), "{message}");
}

#[test]
fn a_struct_whose_field_changed_type_at_the_same_size() {
    let _serial = support::serial();
    let (changes, message) = incompatible("retype");
    let change = changes
        .iter()
        .find_map(|c| match c {
            Incompatibility::TypeChanged {
                name,
                expected,
                found,
            } if name == "Reply" => Some((expected, found)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no change of Reply in {message}"));
    assert!(change.0.contains("count: u32"), "{message}");
    assert!(change.1.contains("count: i32"), "{message}");
}

/// Only the layout tells: `Tag`'s fields move because a constant changed, while every text the
/// macro records (definition and signatures) and the size stay the same.
#[test]
fn a_struct_whose_fields_moved_with_the_same_text_and_size() {
    let _serial = support::serial();
    let (changes, message) = incompatible("shifted");
    let [Incompatibility::TypeChanged {
        name,
        expected,
        found,
    }] = changes.as_slice()
    else {
        panic!("expected exactly one change, of Tag: {message}");
    };
    assert_eq!(name, "Tag", "{message}");
    assert!(
        expected.contains("tail: [u8; 8 - HEAD] @4 (4 bytes)"),
        "{message}"
    );
    assert!(found.contains("tail: [u8; 8 - HEAD] @6 (2 bytes)"), "{message}");
}

/// Only the layout tells: `Code` grows from 4 to 8 bytes with the same text; the function that
/// returns it is refused for its return type's size, and the type for its own.
#[test]
fn a_struct_that_grew_with_the_same_text() {
    let _serial = support::serial();
    let (changes, message) = incompatible("grown");
    assert_eq!(changes.len(), 2, "{message}");
    assert!(
        changes.iter().any(|c| matches!(
            c,
            Incompatibility::FunctionChanged { name, expected, found }
                if name == "code"
                    && expected.contains("Code: 4 bytes")
                    && found.contains("Code: 8 bytes")
        )),
        "{message}"
    );
    assert!(
        changes.iter().any(|c| matches!(
            c,
            Incompatibility::TypeChanged { name, expected, found }
                if name == "Code"
                    && expected.contains("(4 bytes, align 1)")
                    && found.contains("(8 bytes, align 1)")
        )),
        "{message}"
    );
}

/// Writes a copy of v1 with `patch` applied to `dir/name`.
fn patched_v1(dir: &support::TempDir, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = fixture_bytes("v1");
    patch(&mut bytes);
    let path = dir.path().join(name);
    write(&path, &bytes);
    path
}

/// Replaces every occurrence of `from` in `bytes` with `to` (same length): one per hot module
/// of the library (the fixture has two).
fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let found: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    assert!(!found.is_empty(), "nothing to patch");
    for at in found {
        bytes[at..at + to.len()].copy_from_slice(to);
    }
}

/// The descriptor as a library built against another hotmod ABI would carry it: the header's
/// version field (right after the magic) differs.
#[test]
fn a_library_of_another_hotmod_abi_version() {
    let _serial = support::serial();
    let dir = support::TempDir::new("abi");
    let version = hotmod::__private::ABI_VERSION;
    let path = patched_v1(&dir, "libother-abi.so", |bytes| {
        let mut from = hotmod::__private::MAGIC.to_vec();
        from.extend_from_slice(&version.to_ne_bytes());
        let mut to = hotmod::__private::MAGIC.to_vec();
        to.extend_from_slice(&(version + 1).to_ne_bytes());
        replace_all(bytes, &from, &to);
    });
    let error = refused(&path);
    let Error::AbiVersion {
        expected, found, ..
    } = &error
    else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!((*expected, *found), (version, version + 1));
    let expected_text = format!(
        "it uses hotmod ABI version {}, this host uses version {version}",
        version + 1
    );
    assert!(error.to_string().contains(&expected_text), "{error}");
}

/// The descriptor as another compiler would write it: the toolchain identity's commit hash
/// differs (same length, so nothing else moves).
#[test]
fn a_library_built_by_another_toolchain() {
    let _serial = support::serial();
    let dir = support::TempDir::new("toolchain");
    let ours = hotmod::__private::TOOLCHAIN;
    let (open, close) = (
        ours.find('(').expect("commit in parentheses"),
        ours.find(')').expect("commit in parentheses"),
    );
    let theirs = format!(
        "{}{}{}",
        &ours[..=open],
        "0".repeat(close - open - 1),
        &ours[close..]
    );
    assert_ne!(theirs, ours);
    let path = patched_v1(&dir, "libother-toolchain.so", |bytes| {
        replace_all(bytes, ours.as_bytes(), theirs.as_bytes());
    });
    let error = refused(&path);
    let Error::Toolchain {
        expected, found, ..
    } = &error
    else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!((expected.as_str(), found.as_str()), (ours, theirs.as_str()));
    assert!(
        error
            .to_string()
            .contains(&format!("it was built with {theirs}, the host with {ours}")),
        "{error}"
    );
}

/// Switches the insecure-path override back off however the test ends.
struct AllowInsecure;

impl AllowInsecure {
    fn on() -> AllowInsecure {
        hotmod::allow_insecure_paths(true);
        AllowInsecure
    }
}

impl Drop for AllowInsecure {
    fn drop(&mut self) {
        hotmod::allow_insecure_paths(false);
    }
}

/// A private directory (0755, ours) holding a copy of v2 (0644, ours).
fn v2_copy(label: &str) -> (support::TempDir, PathBuf) {
    let dir = support::TempDir::new(label);
    chmod(dir.path(), 0o755);
    let path = dir.path().join("libcopy.so");
    write(&path, &fixture_bytes("v2"));
    (dir, path)
}

fn insecure(bad: &Path) -> (PathBuf, String) {
    let error = refused(bad);
    let message = error.to_string();
    assert!(
        message.contains("so another user could have replaced the library"),
        "{message}"
    );
    assert!(
        message.contains("hotmod::allow_insecure_paths(true)"),
        "{message}"
    );
    match error {
        Error::InsecurePath {
            offender, reason, ..
        } => {
            assert!(
                message.contains(&format!("{} {reason}", offender.display())),
                "{message}"
            );
            (offender, reason)
        }
        other => panic!("wrong error: {other:?}"),
    }
}

#[test]
fn a_private_copy_under_the_sticky_temp_directory_is_accepted() {
    let _serial = support::serial();
    let (_dir, path) = v2_copy("secure");
    let generation = hello::module()
        .load(&path)
        .expect("a private file under /tmp loads");
    assert_eq!(hello::module().generation(), generation);
    assert_eq!(hello::version(), 2);
}

#[test]
fn a_library_every_user_can_write() {
    let _serial = support::serial();
    let (_dir, path) = v2_copy("world-writable");
    chmod(&path, 0o666);
    let (offender, reason) = insecure(&path);
    assert_eq!(
        offender,
        std::fs::canonicalize(&path).expect("canonicalize")
    );
    assert!(
        reason.contains("every user can write to (mode 666)"),
        "{reason}"
    );

    // The documented override lets it through.
    let _allow = AllowInsecure::on();
    hello::module()
        .load(&path)
        .expect("loads with the override");
    assert_eq!(hello::version(), 2);
}

#[test]
fn a_library_in_a_directory_every_user_can_write() {
    let _serial = support::serial();
    let (dir, path) = v2_copy("open-directory");
    chmod(dir.path(), 0o777);
    let (offender, reason) = insecure(&path);
    assert_eq!(
        offender,
        std::fs::canonicalize(dir.path()).expect("canonicalize")
    );
    assert!(
        reason.starts_with("is a directory every user can write to"),
        "{reason}"
    );

    // With the sticky bit (like /tmp itself), others cannot replace our entry: accepted.
    chmod(dir.path(), 0o1777);
    hello::module()
        .load(&path)
        .expect("sticky directory is fine");
}

#[test]
fn a_library_its_group_can_write() {
    use std::os::unix::fs::MetadataExt;
    let _serial = support::serial();
    let (_dir, path) = v2_copy("group-writable");
    chmod(&path, 0o664);
    let metadata = std::fs::metadata(&path).expect("stat");
    if metadata.gid() == metadata.uid() && metadata.uid() != 0 {
        // A user-private group (uid == gid): accepted, see os/unix_security.rs.
        hello::module().load(&path).expect("user-private group");
    } else {
        let (_, reason) = insecure(&path);
        let expected = format!(
            "is a file the members of group {} can write to",
            metadata.gid()
        );
        assert!(reason.starts_with(&expected), "{reason}");
    }
}

#[test]
fn a_library_or_directory_owned_by_another_user() {
    let _serial = support::serial();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        // Only root can give a file away; as another user, check that our own files pass.
        let (_dir, path) = v2_copy("own");
        hello::module().load(&path).expect("our own file loads");
        return;
    }
    let nobody = 65534;
    let (dir, path) = v2_copy("foreign-file");
    std::os::unix::fs::chown(&path, Some(nobody), Some(nobody)).expect("chown file");
    let (offender, reason) = insecure(&path);
    assert!(offender.ends_with("libcopy.so"), "{offender:?}");
    assert!(
        reason.starts_with(&format!("is a file owned by user {nobody}")),
        "{reason}"
    );

    std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown file back");
    std::os::unix::fs::chown(dir.path(), Some(nobody), Some(nobody)).expect("chown dir");
    let (offender, reason) = insecure(&path);
    assert_eq!(
        offender,
        std::fs::canonicalize(dir.path()).expect("canonicalize")
    );
    assert!(
        reason.starts_with(&format!("is a directory owned by user {nobody}")),
        "{reason}"
    );
}

/// A panic in an ELF initialiser happens inside `dlopen`, in an `extern "C"` function: Rust
/// aborts the process there, before hotmod regains control. hotmod cannot catch it (a
/// pre-flight `dlopen` in a child would run the initialiser's side effects twice and is not
/// sound after `fork` in a threaded process), so the promise is only that the abort is
/// immediate and says why. This test shows that, in a child process.
#[test]
fn a_library_whose_static_initialiser_panics_aborts_the_process() {
    use std::os::unix::process::ExitStatusExt;
    const NAME: &str = "a_library_whose_static_initialiser_panics_aborts_the_process";
    if support::is_child() {
        hello::module()
            .load(support::library("v1"))
            .expect("load v1");
        println!("loading the initpanic variant");
        let result = hello::module().load(support::library("initpanic"));
        println!("the load returned: {result:?}");
        return;
    }
    // Build it here: the child must not run cargo.
    support::library("initpanic");
    support::library("v1");
    let output = support::run_child(NAME, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("loading the initpanic variant"),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("the load returned"), "{stdout}\n{stderr}");
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "{:?}\n{stderr}",
        output.status
    );
    assert!(
        stderr.contains("hello_fixture initpanic: a static initialiser panicked"),
        "{stderr}"
    );
}

/// The private directory of shadow copies is gone once the process exits, with the copies of
/// the generations that were still current: shown in a child whose temp directory is fresh.
#[test]
fn no_shadow_copy_outlives_the_process() {
    if support::is_child() {
        let module = hello::module();
        module.load(support::library("v1")).expect("load v1");
        let handle = hello::Handle::current();
        module.load(support::library("v2")).expect("load v2");
        assert_eq!(support::shadow_copies().len(), 2, "v1 (pinned) and v2");
        drop(handle);
        assert_eq!(
            support::shadow_copies().len(),
            1,
            "v1's copy left with its generation"
        );
        assert_eq!(support::shadow_dirs().len(), 1);
        println!("child: one copy, of the current generation");
        return;
    }
    // Build them here: the child must not run cargo.
    support::library("v1");
    support::library("v2");
    let temp = support::TempDir::new("exit-cleanup");
    let output = support::run_child(
        "no_shadow_copy_outlives_the_process",
        &[("TMPDIR", temp.path().as_os_str())],
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("child: one copy"));
    let left: Vec<_> = std::fs::read_dir(temp.path())
        .expect("read temp dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// In this process: after its generations retire, only the current generation's copy remains,
/// and refused loads (every test above) leave none.
#[test]
fn only_current_generations_have_shadow_copies() {
    let _serial = support::serial();
    let module = hello::module();
    for _ in 0..3 {
        module.load(support::library("v1")).expect("load");
    }
    let handle = hello::Handle::current();
    module.load(support::library("v2")).expect("load");
    let ours: Vec<_> = support::shadow_copies()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("v"))
        })
        .collect();
    assert_eq!(
        ours.len(),
        2,
        "the pinned and the current generation: {ours:?}"
    );
    drop(handle);
    let ours: Vec<_> = support::shadow_copies()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("v"))
        })
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    for dir in support::shadow_dirs() {
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{dir:?} is private");
    }
}
