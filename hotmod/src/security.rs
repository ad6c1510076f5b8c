//! What hotmod refuses to load because someone other than the host's user could have written
//! it, and the switch that turns the refusal off.
//!
//! By default a library is loaded only if the file and every directory above it are owned by
//! the host's effective user or root, and writable by nobody else: no write bit for others
//! (except on sticky directories such as `/tmp`) and none for the group (except a user-private
//! group, whose id equals its user's id), and on Linux no entry of their access ACL that lets
//! another user or a group write them. The rules and their reasons are in
//! `os/unix_security.rs`; a refusal is [`Error::InsecurePath`], naming the file or directory at
//! fault.
//!
//! The built-in rebuild runs nothing another user could have written either: before each
//! `cargo build`, [`check_rebuild`] checks what that build reads or runs by the same rules,
//! without the sticky-directory exception (`/tmp` is refused: anyone can create a `/tmp/.cargo/`
//! or `/tmp/rust-toolchain.toml` that cargo and rustup would read); a refusal is
//! [`Error::InsecureBuildInput`].

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;
use crate::os;

static ALLOW_INSECURE: AtomicBool = AtomicBool::new(false);

/// The public `allow_insecure_paths` (lib.rs).
pub(crate) fn allow_insecure_paths(allow: bool) {
    // From a loaded library's code: the host's setting (its copy of this function).
    if let Some(host) = crate::abi::host_links() {
        return (host.allow_insecure_paths)(allow);
    }
    ALLOW_INSECURE.store(allow, Ordering::Relaxed);
}

/// The path the loader should read: `path` resolved, once the checks passed (or `path` itself
/// when they are switched off).
pub(crate) fn checked_path(module: &'static str, path: &Path) -> Result<PathBuf, Error> {
    if ALLOW_INSECURE.load(Ordering::Relaxed) {
        return Ok(path.to_path_buf());
    }
    match os::check_path(path) {
        Ok(Ok(resolved)) => Ok(resolved),
        Ok(Err(insecure)) => Err(Error::InsecurePath {
            module,
            path: path.to_path_buf(),
            offender: insecure.offender,
            reason: insecure.reason,
        }),
        Err(source) => Err(Error::Io {
            module,
            path: path.to_path_buf(),
            action: "checking who can write it",
            source: source.into(),
        }),
    }
}

/// Why the built-in rebuild did not run cargo.
#[derive(Debug)]
pub(crate) enum RebuildRefusal {
    /// Another user could have written something the build reads or runs:
    /// [`Error::InsecureBuildInput`].
    Insecure(Error),
    /// Something could not be inspected; the message says what and why.
    Unchecked(String),
}

/// Where cargo and rustup look for configuration in every directory above the crate (cargo
/// runs in the crate's manifest directory): cargo's configuration and rustup's toolchain
/// overrides. `Cargo.toml` (and the workspace root's `Cargo.lock`) are looked for up to the
/// workspace root, see [`RebuildCheck::workspace_root`].
const LOOKED_FOR: &[&str] = &[
    ".cargo/config.toml",
    ".cargo/config",
    "rust-toolchain",
    "rust-toolchain.toml",
];

/// Checks, before the built-in rebuild runs `cargo` (as given, or found on `PATH`) in
/// `manifest_dir` to build into `target_dir` (both absolute), everything that build reads or
/// runs that another user might have written:
///
/// - the package: its directory, `Cargo.toml`, `Cargo.lock`, `build.rs` and everything under
///   `src/`;
/// - in every directory above it (as given, lexically normalised, and resolved):
///   `.cargo/config.toml`, `.cargo/config`, `rust-toolchain`, `rust-toolchain.toml`, and
///   `Cargo.toml` up to the workspace root, with the root's `Cargo.lock`;
/// - `config.toml` and `config` in `CARGO_HOME` (default `~/.cargo`);
/// - the cargo executable (and, when it is found on `PATH`, the directories before its own,
///   where someone could put another `cargo`), and the target directory with the directories
///   above it.
///
/// A file that is not there is checked by the nearest directory above it that is: whoever can
/// write that one could create it. Everything is checked under [`os::Rules::Build`] (the
/// library rules without the sticky-directory exception), except the target directory, which
/// cargo does not look for but is given: when it exists, it is checked like a library's
/// directory ([`os::Rules::Load`]). The directories above a path as given are checked too, so a
/// symlink on the way sits in a directory nobody else can write.
pub(crate) fn check_rebuild(
    module: &'static str,
    package: &str,
    manifest_dir: &Path,
    target_dir: &Path,
    cargo: &OsStr,
) -> Result<(), RebuildRefusal> {
    if ALLOW_INSECURE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut check = RebuildCheck {
        module,
        package,
        build: os::Checker::new(os::Rules::Build),
    };

    // The package.
    check.along(manifest_dir)?;
    for name in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        check.wanted(&manifest_dir.join(name))?;
    }
    check.tree(&manifest_dir.join("src"))?;

    // What cargo and rustup look for above it.
    let chains = chains(manifest_dir);
    for chain in &chains {
        for dir in chain.ancestors() {
            for name in LOOKED_FOR {
                check.wanted(&dir.join(name))?;
            }
        }
    }
    for chain in &chains {
        check.workspace_root(chain)?;
    }
    if let Some(home) = cargo_home() {
        let home = manifest_dir.join(home);
        for name in ["config.toml", "config"] {
            check.wanted(&home.join(name))?;
        }
    }

    // What runs: cargo, and what cargo builds into the target directory.
    for cargo in executables(cargo, manifest_dir) {
        check.along(&cargo)?;
    }
    check.target_dir(target_dir)
}

/// One rebuild check: the package it is for, and the checker that remembers what passed.
struct RebuildCheck<'a> {
    module: &'static str,
    package: &'a str,
    build: os::Checker,
}

impl RebuildCheck<'_> {
    /// Checks `path` as [`os::Checker::check_wanted`] does; its resolved path if it exists.
    fn wanted(&mut self, path: &Path) -> Result<Option<PathBuf>, RebuildRefusal> {
        let verdict = self.build.check_wanted(path);
        self.verdict(path, verdict)
    }

    /// Checks `path` and every directory above it as given (a symlink on the way lives in one of
    /// them).
    fn along(&mut self, path: &Path) -> Result<(), RebuildRefusal> {
        for dir in path.ancestors().filter(|dir| !dir.as_os_str().is_empty()) {
            self.wanted(dir)?;
        }
        Ok(())
    }

    /// Checks `dir` and everything under it (symlinks followed, each directory once).
    fn tree(&mut self, dir: &Path) -> Result<(), RebuildRefusal> {
        let mut pending = vec![dir.to_path_buf()];
        let mut seen = HashSet::new();
        while let Some(path) = pending.pop() {
            let Some(resolved) = self.wanted(&path)? else {
                continue;
            };
            if !resolved.is_dir() || !seen.insert(resolved) {
                continue;
            }
            let entries = std::fs::read_dir(&path).map_err(|e| self.unchecked(&path, &e))?;
            for entry in entries {
                pending.push(entry.map_err(|e| self.unchecked(&path, &e))?.path());
            }
        }
        Ok(())
    }

    /// The workspace cargo looks for from the crate in `manifest_dir`: unless the package's own
    /// `Cargo.toml` declares `[workspace]`, cargo reads each `Cargo.toml` above it until one
    /// does, and uses that one's `Cargo.lock`.
    fn workspace_root(&mut self, manifest_dir: &Path) -> Result<(), RebuildRefusal> {
        if declares_workspace(&manifest_dir.join("Cargo.toml")) {
            return Ok(());
        }
        for dir in manifest_dir.ancestors().skip(1) {
            let manifest = dir.join("Cargo.toml");
            if self.wanted(&manifest)?.is_some() && declares_workspace(&manifest) {
                self.wanted(&dir.join("Cargo.lock"))?;
                break;
            }
        }
        Ok(())
    }

    /// The target directory: cargo is given it rather than looking for it, so when it exists
    /// the library rules apply (a private target directory under `/tmp` is fine); when it does
    /// not, the nearest directory above it must be one nobody else can write. Build scripts
    /// run from there.
    fn target_dir(&mut self, target_dir: &Path) -> Result<(), RebuildRefusal> {
        let mut load = os::Checker::new(os::Rules::Load);
        for dir in target_dir
            .ancestors()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            if dir.exists() {
                let verdict = load.check_wanted(dir);
                self.verdict(dir, verdict)?;
            } else {
                self.wanted(dir)?;
            }
        }
        Ok(())
    }

    fn verdict(
        &self,
        path: &Path,
        verdict: std::io::Result<Result<Option<PathBuf>, os::Insecure>>,
    ) -> Result<Option<PathBuf>, RebuildRefusal> {
        match verdict {
            Ok(Ok(resolved)) => Ok(resolved),
            Ok(Err(insecure)) => {
                let mut reason = insecure.reason;
                let at_fault = std::fs::canonicalize(path).ok();
                if at_fault.is_none() {
                    reason.push_str(&format!(
                        "; cargo or rustup would read {} if someone created it",
                        path.display()
                    ));
                } else if at_fault.as_deref() != Some(insecure.offender.as_path()) {
                    reason.push_str(&format!("; the build reads {} below it", path.display()));
                }
                Err(RebuildRefusal::Insecure(Error::InsecureBuildInput {
                    module: self.module,
                    package: self.package.to_owned(),
                    path: insecure.offender,
                    reason,
                }))
            }
            Err(e) => Err(self.unchecked(path, &e)),
        }
    }

    fn unchecked(&self, path: &Path, error: &std::io::Error) -> RebuildRefusal {
        RebuildRefusal::Unchecked(format!(
            "cargo was not run: checking who can write {} (a file the build of {} reads) failed: \
             {error}",
            path.display(),
            self.package
        ))
    }
}

/// The directory `manifest_dir` the ways cargo may walk up from it: as given, lexically
/// normalised (`a/b/../c` is `a/c`) and resolved; without repeats.
fn chains(manifest_dir: &Path) -> Vec<PathBuf> {
    let mut normalised = PathBuf::new();
    for component in manifest_dir.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normalised.pop();
            }
            other => normalised.push(other),
        }
    }
    let mut chains = vec![manifest_dir.to_path_buf()];
    chains.push(normalised);
    if let Ok(resolved) = std::fs::canonicalize(manifest_dir) {
        chains.push(resolved);
    }
    chains.dedup();
    chains
}

/// Whether the manifest at `path` has a `[workspace]` table (or a `[workspace.…]` one). A
/// manifest that cannot be read declares nothing (cargo fails on it anyway).
fn declares_workspace(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines().any(|line| {
            line.trim_start()
                .strip_prefix("[workspace")
                .is_some_and(|rest| rest.starts_with(']') || rest.starts_with('.'))
        })
    })
}

/// Where cargo keeps its own configuration: `CARGO_HOME`, else `~/.cargo`.
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

/// The file `cargo` names: itself if it is a path; else `cargo` in each directory of `PATH`
/// (relative ones relative to `cwd`, where cargo runs) up to the first that has it — someone who
/// could create it in a directory before that one would be run instead.
fn executables(cargo: &OsStr, cwd: &Path) -> Vec<PathBuf> {
    let cargo = Path::new(cargo);
    if cargo.components().count() > 1 {
        return vec![cwd.join(cargo)];
    }
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    let mut candidates = Vec::new();
    for dir in std::env::split_paths(&path) {
        let candidate = cwd.join(dir).join(cargo);
        let found = candidate.is_file();
        candidates.push(candidate);
        if found {
            break;
        }
    }
    candidates
}
