//! The bad-input matrix: a table of the ways a library can be wrong ([`refusals`]). For each,
//! [`every_bad_input_is_refused`] loads v1 first, offers the bad input, and checks that
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
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use hello_fixture::hello;
use hotmod::{Error, Incompatibility};

/// One way a library can be wrong: how to make it, and how its refusal must look.
struct Refusal {
    /// What is wrong, for the report.
    name: &'static str,
    /// Makes the bad input in an empty private directory; returns its path.
    input: Box<dyn Fn(&Path) -> PathBuf>,
    /// How the input is offered.
    load: fn(&Path) -> Result<u64, Error>,
    /// Whether the error is the one expected: its variant, and its fields where they tell.
    is: Box<dyn Fn(&Error) -> bool>,
    /// What the error's message says…
    says: Vec<String>,
    /// … and how it ends.
    ends_with: Option<&'static str>,
}

impl Refusal {
    fn new(
        name: &'static str,
        input: impl Fn(&Path) -> PathBuf + 'static,
        is: impl Fn(&Error) -> bool + 'static,
    ) -> Refusal {
        Refusal {
            name,
            input: Box::new(input),
            load,
            is: Box::new(is),
            says: Vec::new(),
            ends_with: None,
        }
    }

    fn says(mut self, text: impl Into<String>) -> Refusal {
        self.says.push(text.into());
        self
    }

    fn ends_with(mut self, text: &'static str) -> Refusal {
        self.ends_with = Some(text);
        self
    }

    fn loaded_by(mut self, load: fn(&Path) -> Result<u64, Error>) -> Refusal {
        self.load = load;
        self
    }

    /// Offers the input after v1 and checks its refusal; panics at the first thing amiss.
    fn check(&self) {
        let dir = support::TempDir::new("refusal");
        let bad = (self.input)(dir.path());
        let error = refused(&bad, self.load);
        assert!((self.is)(&error), "wrong error: {error:?}");
        let message = error.to_string();
        for text in &self.says {
            assert!(message.contains(text), "no {text:?} in: {message}");
        }
        if let Some(end) = self.ends_with {
            assert!(message.ends_with(end), "not ending with {end:?}: {message}");
        }
    }
}

/// How the message of a library with changed or missing functions ends.
const SIGNATURE_ADVICE: &str = "restart the host to pick up signature changes";
/// How the message of a library with changed types ends.
const TYPE_ADVICE: &str = "restart the host to pick up changes to types that cross the boundary";

/// The bad inputs, each refused with its own error.
fn refusals() -> Vec<Refusal> {
    let abi = hotmod::__private::ABI_VERSION;
    let (ours, theirs) = (hotmod::__private::TOOLCHAIN, other_toolchain());
    vec![
        Refusal::new(
            "a_missing_file",
            |dir| dir.join("libmissing.so"),
            |e| matches!(e, Error::NotFound { .. }),
        )
        .says("the file does not exist"),
        Refusal::new(
            "an_empty_file",
            |dir| written(dir, "libempty.so", b""),
            |e| matches!(e, Error::NotALibrary { .. }),
        )
        .says("the file is empty"),
        Refusal::new(
            "random_bytes",
            |dir| written(dir, "librandom.so", &random_bytes(64 * 1024)),
            |e| matches!(e, Error::NotALibrary { .. }),
        )
        .says("does not start with an ELF header"),
        Refusal::new(
            "a_truncated_library",
            |dir| {
                let bytes = fixture_bytes("v2");
                written(dir, "libtruncated.so", &bytes[..bytes.len() / 2])
            },
            |e| matches!(e, Error::NotALibrary { .. }),
        )
        .says("it is truncated"),
        Refusal::new(
            "a_truncated_library_without_section_headers",
            |dir| written(dir, "libstripped-truncated.so", &stripped_and_cut_v2()),
            |e| matches!(e, Error::NotALibrary { .. }),
        )
        .says("a loadable segment reaches"),
        Refusal::new(
            "a_text_file_named_like_a_library",
            |dir| written(dir, "libtext.so", b"this is not a library\n"),
            |e| matches!(e, Error::NotALibrary { .. }),
        )
        .says("it is not a shared library"),
        Refusal::new(
            "a_directory",
            |dir| {
                let path = dir.join("libdir.so");
                std::fs::create_dir(&path).expect("mkdir");
                path
            },
            |e| matches!(e, Error::NotAFile { .. }),
        )
        .says("it is a directory"),
        Refusal::new(
            "permission_denied",
            |dir| {
                let path = written(dir, "libdenied.so", &fixture_bytes("v2"));
                chmod(&path, 0o000);
                path
            },
            |e| {
                matches!(e, Error::Io { source, action, .. }
                    if source.kind() == std::io::ErrorKind::PermissionDenied
                        && *action == "reading it")
            },
        )
        .loaded_by(load_without_file_permission_override)
        .says("Permission denied"),
        Refusal::new(
            "a_cdylib_without_a_hotmod_descriptor",
            |_| support::library("plain").to_owned(),
            |e| matches!(e, Error::NoDescriptor { .. }),
        )
        .says("it has no hotmod descriptor"),
        Refusal::new(
            "another_hot_modules_library",
            |_| support::library("greeter").to_owned(),
            |e| matches!(e, Error::OtherModule { found, .. } if found == &["greeter::hello"]),
        )
        .says("another hot module (greeter::hello)"),
        Refusal::new(
            "a_changed_signature",
            |_| support::library("sig").to_owned(),
            |e| {
                incompatible(e, |changes| {
                    changes
                        == [Incompatibility::FunctionChanged {
                            name: "greet".into(),
                            expected: "fn(&str) -> String".into(),
                            found: "fn(&str, bool) -> String".into(),
                        }]
                })
            },
        )
        .says(
            "function `greet` changed from fn(&str) -> String to fn(&str, bool) -> String; \
             restart the host",
        )
        .ends_with(SIGNATURE_ADVICE),
        Refusal::new(
            "a_removed_function",
            |_| support::library("removed").to_owned(),
            |e| {
                incompatible(e, |changes| {
                    changes
                        == [Incompatibility::FunctionRemoved {
                            name: "answer".into(),
                            expected: "fn() -> u32".into(),
                        }]
                })
            },
        )
        .says("function `answer` (fn() -> u32) is missing")
        .ends_with(SIGNATURE_ADVICE),
        Refusal::new(
            "a_struct_that_grew_a_field",
            |_| support::library("layout").to_owned(),
            |e| incompatible(e, |changes| type_changed(changes, "hello_fixture::hello::Reply")),
        )
        // The message shows the new field.
        .says("extra: u64")
        .ends_with(TYPE_ADVICE),
        Refusal::new(
            "a_struct_whose_fields_swapped_places_at_the_same_size",
            |_| support::library("reorder").to_owned(),
            |e| incompatible(e, |changes| type_changed(changes, "hello_fixture::hello::Reply")),
        )
        .says("type `hello_fixture::hello::Reply` changed")
        .ends_with(TYPE_ADVICE),
        Refusal::new(
            "a_struct_whose_field_changed_type_at_the_same_size",
            |_| support::library("retype").to_owned(),
            |e| {
                incompatible(e, |changes| {
                    changes
                        .iter()
                        .find_map(|c| match c {
                            Incompatibility::TypeChanged {
                                name,
                                expected,
                                found,
                            } if name == "hello_fixture::hello::Reply" => Some((expected, found)),
                            _ => None,
                        })
                        .is_some_and(|(expected, found)| {
                            expected.contains("count: u32") && found.contains("count: i32")
                        })
                })
            },
        )
        .ends_with(TYPE_ADVICE),
        // `Tag`'s fields move because a constant changed, while every text (definition and
        // signatures) and the size stay the same: the compiler's field types tell.
        Refusal::new(
            "a_struct_whose_fields_moved_with_the_same_text_and_size",
            |_| support::library("shifted").to_owned(),
            |e| {
                incompatible(e, |changes| {
                    matches!(changes, [Incompatibility::TypeChanged { name, expected, found }]
                        if name == "hello_fixture::hello::Tag"
                            && expected.contains("tail: [u8; 4] @4")
                            && found.contains("tail: [u8; 2] @6"))
                })
            },
        )
        .ends_with(TYPE_ADVICE),
        // `Code` grows from 4 to 8 bytes with the same text; the function that returns it is
        // refused for its result's type, which is named once.
        Refusal::new(
            "a_struct_that_grew_with_the_same_text",
            |_| support::library("grown").to_owned(),
            |e| {
                incompatible(e, |changes| {
                    matches!(changes, [Incompatibility::TypeChanged { name, expected, found }]
                        if name == "hello_fixture::hello::Code"
                            && expected.contains("(4 bytes, align 1)")
                            && found.contains("(8 bytes, align 1)"))
                })
            },
        )
        .ends_with(TYPE_ADVICE),
        // Issue 13's reproductions, none visible in any signature's text: aliases that name
        // other types, a submodule's struct whose field changed type, a supertrait that gained
        // a method (every vtable slot after it moves), an enum whose discriminants come from a
        // constant that changed. Each is named with its difference.
        Refusal::new(
            "types_changed_behind_aliases_submodules_supertraits_and_constants",
            |_| support::library("hidden").to_owned(),
            |e| {
                incompatible(e, |changes| {
                    let function = |name: &str, want: &str, have: &str| {
                        changes.iter().any(|c| {
                            matches!(c, Incompatibility::FunctionChanged { name: n, expected, found }
                                if n == name && expected.contains(want) && found.contains(have))
                        })
                    };
                    let ty = |name: &str, want: &str, have: &str| {
                        changes.iter().any(|c| {
                            matches!(c, Incompatibility::TypeChanged { name: n, expected, found }
                                if n == name && expected.contains(want) && found.contains(have))
                        })
                    };
                    // Each slot that differs is named: the aliases are parameter and result.
                    changes.len() == 7
                        && function("token", "parameter 1 is u64", "parameter 1 is Box<u64>")
                        && function("token", "result is u64", "result is Box<u64>")
                        && function("rename", "parameter 1 is String", "parameter 1 is Vec<u8>")
                        && function("rename", "result is String", "result is Vec<u8>")
                        && ty("hello_fixture::hello::shapes::Point", "y: u32 @4", "y: i32 @4")
                        && ty("hello_fixture::hello::Named", "{ fn name(&self) -> String; }", "fn nickname(&self) -> String; fn name")
                        && ty("hello_fixture::hello::Level", "Low = 1, High = 2", "Low = 10, High = 11")
                })
            },
        )
        .says("function `token` changed from fn(Token) -> Token (parameter 1 is u64) to fn(Token) -> Token (parameter 1 is Box<u64>)")
        .ends_with(TYPE_ADVICE),
        // The descriptor as a library built against another hotmod ABI would carry it: the
        // header's version field (right after the magic) differs.
        Refusal::new(
            "a_library_of_another_hotmod_abi_version",
            move |dir| {
                patched_v1(dir, "libother-abi.so", |bytes| {
                    let mut from = hotmod::__private::MAGIC.to_vec();
                    from.extend_from_slice(&abi.to_ne_bytes());
                    let mut to = hotmod::__private::MAGIC.to_vec();
                    to.extend_from_slice(&(abi + 1).to_ne_bytes());
                    replace_all(bytes, &from, &to);
                })
            },
            move |e| {
                matches!(e, Error::AbiVersion { expected, found, .. }
                    if (*expected, *found) == (abi, abi + 1))
            },
        )
        .says(format!(
            "it uses hotmod ABI version {}, this host uses version {abi}",
            abi + 1
        )),
        // A library from a hotmod whose ABI differs names that version in its descriptor
        // symbols (`__hotmod_v<N>__…`): the host cannot even find its descriptor, and says why
        // rather than "no hotmod descriptor".
        Refusal::new(
            "a_library_whose_symbols_name_another_abi_version",
            move |dir| {
                let prefix = hotmod::__private::SYMBOL_PREFIX;
                assert_eq!(prefix, format!("__hotmod_v{abi}__"));
                let older = format!("__hotmod_v{}__", abi - 1);
                patched_v1(dir, "libolder-abi.so", |bytes| {
                    replace_all(bytes, prefix.as_bytes(), older.as_bytes());
                })
            },
            move |e| {
                matches!(e, Error::AbiVersion { expected, found, .. }
                    if (*expected, *found) == (abi, abi - 1))
            },
        ),
        // The descriptor as another compiler would write it: the toolchain identity's commit
        // hash differs (same length, so nothing else moves).
        Refusal::new(
            "a_library_built_by_another_toolchain",
            {
                let theirs = theirs.clone();
                move |dir| {
                    assert_ne!(theirs, ours);
                    patched_v1(dir, "libother-toolchain.so", |bytes| {
                        replace_all(bytes, ours.as_bytes(), theirs.as_bytes());
                    })
                }
            },
            {
                let theirs = theirs.clone();
                move |e| {
                    matches!(e, Error::Toolchain { expected, found, .. }
                        if (expected.as_str(), found.as_str()) == (ours, theirs.as_str()))
                }
            },
        )
        .says(format!("it was built with {theirs}, the host with {ours}")),
    ]
}

/// Every row of [`refusals`], each checked whatever becomes of the others; fails naming every
/// row that failed.
#[test]
fn every_bad_input_is_refused() {
    let _serial = support::serial();
    let refusals = refusals();
    let failed: Vec<String> = refusals
        .iter()
        .filter_map(|refusal| {
            let panic = catch_unwind(AssertUnwindSafe(|| refusal.check())).err()?;
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            Some(format!("{}: {why}", refusal.name))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} bad inputs were not refused as they must be:\n{}",
        failed.len(),
        refusals.len(),
        failed.join("\n")
    );
}

/// Loads v1, offers `bad` through `load`, checks the promises above and returns the error.
fn refused(bad: &Path, load: fn(&Path) -> Result<u64, Error>) -> Error {
    let module = hello::module();
    let live = module.load(support::library("v1")).expect("load v1");
    let copies: BTreeSet<PathBuf> = support::shadow_copies().into_iter().collect();

    let error = load(bad).expect_err("the bad input must be refused");

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

/// How most inputs are offered.
fn load(bad: &Path) -> Result<u64, Error> {
    hello::module().load(bad)
}

/// How an unreadable input is offered: from a thread that cannot read it, root included.
fn load_without_file_permission_override(bad: &Path) -> Result<u64, Error> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let bad = bad.to_owned();
    std::thread::spawn(move || {
        if root {
            drop_file_permission_override();
        }
        let denied = std::fs::read(&bad).expect_err("reading a mode-000 file is denied");
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        hello::module().load(&bad)
    })
    .join()
    .expect("thread")
}

/// Whether `error` is `Incompatible` with `changes` that pass `check`.
fn incompatible(error: &Error, check: impl FnOnce(&[Incompatibility]) -> bool) -> bool {
    matches!(error, Error::Incompatible { changes, .. } if check(changes))
}

/// Whether `changes` include a change of the type `name`.
fn type_changed(changes: &[Incompatibility], name: &str) -> bool {
    changes
        .iter()
        .any(|c| matches!(c, Incompatibility::TypeChanged { name: changed, .. } if changed == name))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write test file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// `dir/name`, written with `bytes`.
fn written(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    write(&path, bytes);
    path
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(support::library(name)).expect("read fixture")
}

/// `len` bytes of noise, the same each run.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// v2 without section headers (as after `strip --strip-section-headers`), cut short: no header
/// sits at the end of the file, so the loadable segments are what tell the cut. Cut inside the
/// last one (a cut in the debug sections after it would still be a loadable library).
fn stripped_and_cut_v2() -> Vec<u8> {
    let bytes = fixture_bytes("v2");
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
    stripped.truncate(loads_end - 64);
    stripped
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

/// Writes a copy of v1 with `patch` applied to `dir/name`.
fn patched_v1(dir: &Path, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = fixture_bytes("v1");
    patch(&mut bytes);
    written(dir, name, &bytes)
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

/// This host's toolchain identity with another commit hash in its parentheses.
fn other_toolchain() -> String {
    let ours = hotmod::__private::TOOLCHAIN;
    let (open, close) = (
        ours.find('(').expect("commit in parentheses"),
        ours.find(')').expect("commit in parentheses"),
    );
    format!(
        "{}{}{}",
        &ours[..=open],
        "0".repeat(close - open - 1),
        &ours[close..]
    )
}

/// The macro writes the descriptor symbol with the runtime's prefix: the fixture's library
/// exports `<SYMBOL_PREFIX>hello_fixture__hello`.
#[test]
fn the_macro_and_the_runtime_agree_on_the_symbol_prefix() {
    let bytes = fixture_bytes("v1");
    let symbol = format!("{}hello_fixture__hello\0", hotmod::__private::SYMBOL_PREFIX);
    assert!(
        bytes.windows(symbol.len()).any(|w| w == symbol.as_bytes()),
        "{symbol:?} is not in the fixture library"
    );
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
    let error = refused(bad, load);
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
    let _allow = support::AllowInsecure::on();
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

/// A user and group id of the user-private-group shape (gid = uid, not root): the path-security
/// tests give files to it when they run as root, and become it in a child process to load as a
/// user who is not root (`nobody`/`nogroup` on Debian; the ids need not name anyone).
const USER: u32 = 65534;
/// Another user and group: neither [`USER`]'s nor root's.
const STRANGER: u32 = 65533;
/// Where a child started by [`run_as_user`] finds the files its parent set up.
const SETUP_ENV: &str = "HOTMOD_TEST_SETUP";

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {uid}:{gid} {}: {e}", path.display()));
}

/// As root: the directory `setup` with a subdirectory `lib` that [`USER`] owns, group-writable by
/// its private group (mode 775, how cargo leaves its output under umask 002).
fn user_setup(label: &str) -> support::TempDir {
    let setup = support::TempDir::new(label);
    chmod(setup.path(), 0o755);
    for dir in setup.path().ancestors().skip(1) {
        let mode = std::fs::metadata(dir).expect("stat").permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "user {USER} cannot reach {}: {} (mode {mode:o}) is closed to other users; point \
             TMPDIR at a directory they can traverse, such as /tmp",
            setup.path().display(),
            dir.display()
        );
    }
    let lib = setup.path().join("lib");
    std::fs::create_dir(&lib).expect("mkdir lib");
    chown(&lib, USER, USER);
    chmod(&lib, 0o775);
    setup
}

/// As root: `name` in `dir`, a copy of v2 with `mode`, owned by `uid:gid`.
fn v2_file(dir: &Path, name: &str, uid: u32, gid: u32, mode: u32) -> PathBuf {
    let path = dir.join(name);
    write(&path, &fixture_bytes("v2"));
    chown(&path, uid, gid);
    chmod(&path, mode);
    path
}

/// As root: runs test `name` in a child process that becomes [`USER`] (see [`become_user`]) and
/// checks the files in `setup`, with a temporary directory of [`USER`]'s for its shadow copies.
/// Fails unless the child passes and prints `done`.
fn run_as_user(name: &str, setup: &Path, done: &str) {
    let temp = setup.join("tmp");
    std::fs::create_dir(&temp).expect("mkdir tmp");
    chown(&temp, USER, USER);
    chmod(&temp, 0o700);
    // Built here: the child must not run cargo.
    support::library("v2");
    let output = support::run_child(
        name,
        &[(SETUP_ENV, setup.as_os_str()), ("TMPDIR", temp.as_os_str())],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(done), "{stdout}\n{stderr}");
}

/// In a child of [`run_as_user`]: becomes [`USER`] (real, effective and saved uid and gid, no
/// supplementary groups) for every thread of the process, and returns the setup directory.
fn become_user() -> PathBuf {
    // SAFETY: plain system calls; glibc applies them to every thread of the process.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setresgid(USER, USER, USER), 0, "setresgid");
        assert_eq!(libc::setresuid(USER, USER, USER), 0, "setresuid");
    }
    assert_eq!(euid(), USER);
    PathBuf::from(std::env::var_os(SETUP_ENV).expect("the setup directory"))
}

/// In a child of [`run_as_user`]: `path` loads and serves.
fn loads_as_user(path: &Path) {
    let module = hello::module();
    let generation = module
        .load(path)
        .unwrap_or_else(|e| panic!("{} must load as user {USER}: {e}", path.display()));
    assert_eq!(module.generation(), generation);
    assert_eq!(hello::version(), 2);
}

/// In a child of [`run_as_user`]: loading `path` is refused with `InsecurePath`, naming
/// `offender` and a reason that starts with `reason`; the current generation stays.
fn refused_as_user(path: &Path, offender: &Path, reason: &str) {
    let module = hello::module();
    let generation = module.generation();
    let error = module
        .load(path)
        .expect_err("an insecure path must be refused");
    let Error::InsecurePath {
        offender: found,
        reason: why,
        ..
    } = &error
    else {
        panic!("wrong error: {error:?}")
    };
    assert_eq!(
        found,
        &std::fs::canonicalize(offender).expect("canonicalize"),
        "{error}"
    );
    assert!(why.starts_with(reason), "{error}");
    assert_eq!(module.generation(), generation);
}

#[test]
fn a_library_its_group_can_write() {
    use std::os::unix::fs::MetadataExt;
    const NAME: &str = "a_library_its_group_can_write";
    if support::is_child() {
        let setup = become_user();
        let lib = setup.join("lib");
        // USER's private group may write the file and its directory: accepted …
        loads_as_user(&lib.join("libprivate.so"));
        // … another group may not.
        let shared = lib.join("libshared.so");
        refused_as_user(
            &shared,
            &shared,
            &format!("is a file the members of group {STRANGER} can write to (mode 664)"),
        );
        println!("child: group-writable files checked as user {USER}");
        return;
    }
    let _serial = support::serial();
    let (dir, path) = v2_copy("group-writable");
    chmod(&path, 0o664);
    if euid() == 0 {
        // Root has no private group, whatever the file's group id.
        for gid in [0, STRANGER] {
            std::os::unix::fs::chown(&path, None, Some(gid)).expect("chgrp");
            chmod(&path, 0o664);
            let (_, reason) = insecure(&path);
            let expected = format!("is a file the members of group {gid} can write to (mode 664)");
            assert!(reason.starts_with(&expected), "{reason}");
        }
        // A user who is not root, with a private group: in a child that becomes USER.
        let setup = user_setup("private-group");
        let lib = setup.path().join("lib");
        v2_file(&lib, "libprivate.so", USER, USER, 0o664);
        v2_file(&lib, "libshared.so", USER, STRANGER, 0o664);
        run_as_user(NAME, setup.path(), "child: group-writable files checked");
        return;
    }

    // Not root: only groups this user is a member of can be set up.
    let uid = euid();
    // SAFETY: getegid cannot fail.
    let mut groups = vec![unsafe { libc::getegid() }];
    // SAFETY: getgroups writes at most `groups.len()` ids into the buffer.
    unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        let mut more = vec![0; usize::try_from(n).expect("getgroups")];
        let n = libc::getgroups(n, more.as_mut_ptr());
        more.truncate(usize::try_from(n).expect("getgroups"));
        groups.extend(more);
    }
    match groups.iter().find(|&&gid| gid != uid) {
        Some(&gid) => {
            std::os::unix::fs::chown(&path, None, Some(gid)).expect("chgrp");
            chmod(&path, 0o664);
            let (_, reason) = insecure(&path);
            let expected = format!("is a file the members of group {gid} can write to (mode 664)");
            assert!(reason.starts_with(&expected), "{reason}");
        }
        None => eprintln!(
            "{NAME}: skipped the refusal: user {uid} belongs to no group but its private one"
        ),
    }
    if groups.contains(&uid) {
        for entry in [dir.path(), path.as_path()] {
            std::os::unix::fs::chown(entry, None, Some(uid)).expect("chgrp");
        }
        chmod(dir.path(), 0o775);
        chmod(&path, 0o664);
        assert_eq!(std::fs::metadata(&path).expect("stat").gid(), uid);
        hello::module()
            .load(&path)
            .expect("a user-private group may write it");
        assert_eq!(hello::version(), 2);
    } else {
        eprintln!(
            "{NAME}: skipped the user-private group: user {uid} is not a member of a group {uid}"
        );
    }
}

#[test]
fn a_library_or_directory_owned_by_another_user() {
    const NAME: &str = "a_library_or_directory_owned_by_another_user";
    if support::is_child() {
        let setup = become_user();
        let lib = setup.join("lib");
        // Our own file, and root's, load …
        loads_as_user(&lib.join("libown.so"));
        loads_as_user(&lib.join("libroot.so"));
        // … another user's file does not, nor our file in another user's directory.
        let foreign = lib.join("libstranger.so");
        refused_as_user(
            &foreign,
            &foreign,
            &format!(
                "is a file owned by user {STRANGER}, not by this process's user ({USER}) or root"
            ),
        );
        let foreign_dir = setup.join("stranger");
        refused_as_user(
            &foreign_dir.join("libown.so"),
            &foreign_dir,
            &format!("is a directory owned by user {STRANGER}"),
        );
        println!("child: owners checked as user {USER}");
        return;
    }
    let _serial = support::serial();
    if euid() != 0 {
        // Only root can give a file away; as another user, check that our own files pass.
        let (_dir, path) = v2_copy("own");
        hello::module().load(&path).expect("our own file loads");
        eprintln!(
            "{NAME}: skipped the refusals: only root can give a file or directory to another user"
        );
        return;
    }
    let nobody = USER;
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

    // A user who is not root: in a child that becomes USER.
    let setup = user_setup("owners");
    let lib = setup.path().join("lib");
    v2_file(&lib, "libown.so", USER, USER, 0o644);
    v2_file(&lib, "libroot.so", 0, 0, 0o644);
    v2_file(&lib, "libstranger.so", STRANGER, STRANGER, 0o644);
    let foreign_dir = setup.path().join("stranger");
    std::fs::create_dir(&foreign_dir).expect("mkdir stranger");
    chmod(&foreign_dir, 0o755);
    v2_file(&foreign_dir, "libown.so", USER, USER, 0o644);
    chown(&foreign_dir, STRANGER, STRANGER);
    run_as_user(NAME, setup.path(), "child: owners checked");
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
