//! Copying a module crate out of the workspace, editing it and building it with cargo: what a
//! user does to a hot module while the host runs, scripted for the tour, the examples and the
//! tests (`#[path]`-included by each of them).
//!
//! The copy gets absolute paths for its path dependencies (so `hotmod` is the workspace's), an
//! empty `[workspace]` table (so cargo builds it on its own rather than as part of this
//! workspace) and the workspace's `Cargo.lock` (the same dependency versions, no registry
//! lookup).
#![allow(dead_code)]

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What these helpers return: every error says what failed and where.
pub type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// The workspace's root directory: the nearest directory holding `Cargo.lock` at or above the
/// manifest of the package that includes this file (the examples' package is `examples/`, the
/// tests' package is the root).
pub fn workspace() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// Copies the module crate at `crate_dir` (`Cargo.toml`, `build.rs` if any, and `src/`) to
/// `dest`, replacing what was there, ready to be built outside the workspace. Returns `dest`.
///
/// Reuse one `dest` per crate and target directory: cargo's fingerprint of a package follows
/// the source files of the copy it last built, so a copy in a new directory whose package
/// another copy already built in the same target directory may be taken for up to date.
/// Rewriting the same directory gives every file a new modification time, which cargo sees.
pub fn copy_crate(crate_dir: &Path, dest: &Path) -> Result<PathBuf> {
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(|e| format!("removing {}: {e}", dest.display()))?;
    }
    let manifest_path = crate_dir.join("Cargo.toml");
    let manifest = fs::read_to_string(&manifest_path)
        .map_err(|e| format!("reading {}: {e}", manifest_path.display()))?;
    let manifest = absolute_paths(&manifest, crate_dir);
    fs::create_dir_all(dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    fs::write(
        dest.join("Cargo.toml"),
        format!("{manifest}\n[workspace]\n"),
    )
    .map_err(|e| format!("writing the copy's Cargo.toml: {e}"))?;
    fs::copy(workspace().join("Cargo.lock"), dest.join("Cargo.lock"))
        .map_err(|e| format!("copying Cargo.lock: {e}"))?;
    if crate_dir.join("build.rs").is_file() {
        fs::copy(crate_dir.join("build.rs"), dest.join("build.rs"))
            .map_err(|e| format!("copying build.rs: {e}"))?;
    }
    copy_dir(&crate_dir.join("src"), &dest.join("src"))?;
    Ok(dest.to_path_buf())
}

/// Rewrites every relative `path = "…"` of a manifest as an absolute one, relative to `dir`.
fn absolute_paths(manifest: &str, dir: &Path) -> String {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut out = String::with_capacity(manifest.len());
    let mut rest = manifest;
    while let Some(at) = rest.find("path = \"") {
        let start = at + "path = \"".len();
        let Some(len) = rest[start..].find('"') else {
            break;
        };
        let value = &rest[start..start + len];
        out.push_str(&rest[..start]);
        if Path::new(value).is_relative() {
            let absolute = dir.join(value);
            let absolute = fs::canonicalize(&absolute).unwrap_or(absolute);
            // Debug-escaped, so the result is a valid TOML basic string.
            let quoted = format!("{:?}", absolute.display().to_string());
            out.push_str(&quoted[1..quoted.len() - 1]);
        } else {
            out.push_str(value);
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", from.display()))?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if source.is_dir() {
            copy_dir(&source, &dest)?;
        } else {
            fs::copy(&source, &dest).map_err(|e| format!("copying {}: {e}", source.display()))?;
        }
    }
    Ok(())
}

/// Applies `edits` to `file` in one write: each `(from, to)` replaces the first `from` with
/// `to`. An error, and no write, if `file` lacks one of the `from`s.
pub fn edit(file: &Path, edits: &[(&str, &str)]) -> Result<()> {
    let mut text =
        fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    for (from, to) in edits {
        if !text.contains(from) {
            return Err(format!("{} no longer contains {from:?}", file.display()).into());
        }
        text = text.replacen(from, to, 1);
    }
    fs::write(file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(())
}

/// Takes the file lock of the target directory `target_dir` (`<target_dir>/.lock`, the lock
/// `tests/support` takes around every fixture build), waiting while another process holds it.
/// It is released when the returned file is dropped.
///
/// Processes that build into one target directory take it before a build and keep it until they
/// have loaded or copied the library it wrote. cargo serialises its own runs on a target
/// directory, but not the time after one: the artifact's path is the same for every build of a
/// package (`debug/lib<name>.so`), so another process's build of an edited copy in between would
/// replace it.
pub fn lock(target_dir: &Path) -> Result<fs::File> {
    fs::create_dir_all(target_dir)
        .map_err(|e| format!("creating {}: {e}", target_dir.display()))?;
    let path = target_dir.join(".lock");
    let file = fs::File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("locking {}: {e}", path.display()))?;
    Ok(file)
}

/// `cargo build --lib` of the crate in `manifest_dir` into `target_dir` (dev profile); returns
/// the path of the built cdylib `lib<lib_name>.so` (the package is named `lib_name` too).
///
/// If cargo took the package for up to date although its sources are newer than the library
/// (see [`copy_crate`]), this package alone is cleaned and built again.
pub fn build(manifest_dir: &Path, target_dir: &Path, lib_name: &str) -> Result<PathBuf> {
    let artifact = target_dir.join("debug").join(dylib(lib_name));
    cargo(&["build", "--lib"], manifest_dir, target_dir)?;
    if older_than_sources(&artifact, manifest_dir) {
        cargo(&["clean", "-p", lib_name], manifest_dir, target_dir)?;
        cargo(&["build", "--lib"], manifest_dir, target_dir)?;
    }
    Ok(artifact)
}

fn cargo(args: &[&str], manifest_dir: &Path, target_dir: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .args(["--quiet", "--color", "never", "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo {} of {} failed:\n{}",
            args.join(" "),
            manifest_dir.display(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

/// Whether `artifact` is older than a file of `manifest_dir/src`.
fn older_than_sources(artifact: &Path, manifest_dir: &Path) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(built) = modified(artifact) else {
        return false;
    };
    let Ok(entries) = fs::read_dir(manifest_dir.join("src")) else {
        return false;
    };
    entries
        .flatten()
        .filter_map(|entry| modified(&entry.path()))
        .any(|source| source > built)
}

/// `lib<name>.so` on Linux.
pub fn dylib(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Writes `text` to `path` unless it already holds it (an unchanged file keeps its time, so
/// cargo keeps what it built from it).
pub fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// The HTTP example as a user's project of its own, written under `root`: a workspace with the
/// handler, the price list and a package `http_example` whose example `http_server` is
/// `examples/http_server` (its three files, and the dependencies `examples/Cargo.toml` gives
/// it), with hotmod the workspace's and the workspace's `Cargo.lock`. What a kept-state restart
/// needs that the examples' own package cannot give: a server whose rebuild compiles an edited
/// handler (`tests/http_restart.rs`, and the tour's last step). Files already as written keep
/// their times. Returns the handler's `src/lib.rs` in it.
pub fn http_project(root: &Path) -> Result<PathBuf> {
    let here = workspace();
    let read = |path: PathBuf| {
        fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
    };
    let hotmod = format!("{:?}", here.join("hotmod").display().to_string());
    write_if_changed(
        &root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"server\", \"handler\", \"pricing\"]\nresolver = \"2\"\n",
    )?;
    if !root.join("Cargo.lock").exists() {
        write_if_changed(&root.join("Cargo.lock"), &read(here.join("Cargo.lock"))?)?;
    }
    for name in ["handler", "pricing"] {
        let from = here.join("examples").join(name);
        let manifest = read(from.join("Cargo.toml"))?;
        if !manifest.contains(r#"path = "../../hotmod""#) {
            return Err(format!("{}: no hotmod path dependency", from.display()).into());
        }
        let manifest = manifest.replace(r#"path = "../../hotmod""#, &format!("path = {hotmod}"));
        write_if_changed(&root.join(name).join("Cargo.toml"), &manifest)?;
        write_if_changed(
            &root.join(name).join("src/lib.rs"),
            &read(from.join("src/lib.rs"))?,
        )?;
    }
    let examples = read(here.join("examples/Cargo.toml"))?;
    let dependency = |name: &str| {
        examples
            .lines()
            .find(|line| line.starts_with(&format!("{name} = ")))
            .map(str::to_owned)
            .ok_or_else(|| format!("examples/Cargo.toml has no dependency {name}"))
    };
    let manifest = format!(
        "[package]\nname = \"http_example\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         publish = false\nautoexamples = false\n\n[[example]]\nname = \"http_server\"\n\
         path = \"http_server/main.rs\"\n\n[dependencies]\nhotmod = {{ path = {hotmod} }}\n\
         handler = {{ path = \"../handler\" }}\npricing = {{ path = \"../pricing\" }}\n{}\n{}\n",
        dependency("tokio")?,
        dependency("axum")?,
    );
    write_if_changed(&root.join("server/Cargo.toml"), &manifest)?;
    for file in ["main.rs", "server.rs", "client.rs"] {
        write_if_changed(
            &root.join("server/http_server").join(file),
            &read(here.join("examples/http_server").join(file))?,
        )?;
    }
    Ok(root.join("handler/src/lib.rs"))
}

/// `cargo build --example http_server` of the project [`http_project`] wrote at `root`, into
/// `target_dir`; returns the executable.
pub fn build_http_project(root: &Path, target_dir: &Path) -> Result<PathBuf> {
    cargo(&["build", "--example", "http_server"], root, target_dir)?;
    Ok(target_dir
        .join("debug")
        .join("examples")
        .join("http_server"))
}
