//! The rebuild's fast path: a save that changed only the module crate's own `.rs` sources runs
//! the crate's rustc command again, without cargo.
//!
//! Every `cargo build` of the rebuild runs with `-vv`, which makes cargo print each rustc it
//! starts, environment included (`Running \`CARGO=… CARGO_PKG_NAME=… LD_LIBRARY_PATH=… /…/rustc
//! --crate-name greeter …\``). The line of the module's library is kept ([`Capture`]), with what
//! it read: its sources (its dep-info file) and the files whose change would make cargo do more
//! than that one rustc (the libraries it links against, the local sources of every crate built
//! into the same directory, the manifests, `Cargo.lock`, cargo's configuration and toolchain
//! files, the rustc executable, what the package's build script said to watch; a build script
//! that named nothing to watch runs again at every change of its package, so there is no
//! capture). A later build whose changes are all
//! among those sources, and where none of the rest changed, runs that command again as it was
//! (same arguments: rustc's incremental cache is kept per set of tracked options, and even the
//! diagnostics format counts, measured: another `--error-format` made every build a full one),
//! then links the library to the name cargo gives it, as cargo does. What cargo would add on such a
//! build is its own bookkeeping: ~40 ms with nothing to build (BENCHMARKS.md, issue 17).
//!
//! Anything else builds with cargo, which captures again: no capture (cargo found the library
//! fresh, or a wrapper runs rustc, or its line was not understood, or the host is an example or
//! test cargo relinks after the library), a changed path that is not one
//! of those sources (a new file, `Cargo.toml`, `build.rs`), a changed input, a cargo holding the
//! target directory's lock, a rustc that does not start. cargo's own record of the module is left
//! as cargo wrote it, so the user's next `cargo build` sees sources newer than its last build and
//! compiles the module again: nothing is mistaken for fresh.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::json;

/// A module library's rustc command, as cargo ran it, and what it depends on.
#[derive(Debug)]
pub(crate) struct Capture {
    program: PathBuf,
    args: Vec<String>,
    env: Environment,
    /// Where cargo ran it (relative source paths are relative to it).
    cwd: PathBuf,
    /// The dynamic library rustc writes (`<out-dir>/lib<crate><extra>.so`).
    out: PathBuf,
    /// The dep-info file rustc writes beside it.
    dep_info: PathBuf,
    /// The crate's own sources, canonical, read from the dep-info file.
    sources: BTreeSet<PathBuf>,
    /// Files whose change makes cargo's build more than this command: their state at capture.
    inputs: Vec<(PathBuf, Option<Stamp>)>,
    /// cargo's lock of the build directory, held while rustc runs (`<profile-dir>/.cargo-lock`).
    lock: PathBuf,
}

/// What a file's change is seen by: size, modification time, inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

/// Options of rustc's command line that take the next argument as their value.
const WITH_VALUE: &[&str] = &[
    "--crate-name",
    "--crate-type",
    "--edition",
    "--emit",
    "--error-format",
    "--json",
    "--out-dir",
    "--target",
    "--cap-lints",
    "--cfg",
    "--check-cfg",
    "--extern",
    "--explain",
    "--print",
    "--sysroot",
    "--color",
    "--diagnostic-width",
    "-C",
    "-L",
    "-l",
    "-o",
    "-Z",
    "-A",
    "-W",
    "-D",
    "-F",
];

impl Capture {
    /// The capture of `package`'s library (crate `crate_name`, a `cdylib`) from the commands a
    /// `cargo build -vv` that succeeded said it ran ([`split_verbose`]); `src_path` is the
    /// library's source root as cargo's JSON message gave it (absolute), `artifact` the uplifted
    /// library cargo reported. `Err`: why there is none (a `tracing` line says it; cargo builds
    /// the next time too).
    pub(crate) fn from_cargo(
        commands: &[String],
        package: &str,
        crate_name: &str,
        src_path: &Path,
        artifact: &Path,
    ) -> Result<Capture, String> {
        let mut found = commands.iter().filter_map(|command| {
            let (env, program, args) = parse_command(command)?;
            let is_ours = env
                .iter()
                .any(|(k, v)| k == "CARGO_PKG_NAME" && v == package)
                && args.first().map(String::as_str) == Some("--crate-name")
                && args.get(1).map(String::as_str) == Some(crate_name)
                && args
                    .windows(2)
                    .any(|w| w[0] == "--crate-type" && w[1] == "cdylib")
                && !args.iter().any(|a| a == "--test");
            is_ours.then_some((env, program, args))
        });
        let (env, program, args) = found
            .next()
            .ok_or("cargo ran no rustc for the library it could repeat (fresh, or a wrapper)")?;
        if found.next().is_some() {
            return Err("cargo ran more than one rustc for the library".into());
        }
        let program = PathBuf::from(program);
        if !program.is_absolute() || !program.is_file() {
            return Err(format!("rustc at {} is not a file", program.display()));
        }
        let value = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
        let codegen = |key: &str| {
            args.windows(2)
                .filter(|w| w[0] == "-C")
                .find_map(|w| w[1].strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
        };
        // The source root: the first argument that is not an option or an option's value.
        let mut source = None;
        let mut skip = false;
        for arg in &args {
            if skip {
                skip = false;
            } else if WITH_VALUE.contains(&arg.as_str()) {
                skip = true;
            } else if !arg.starts_with('-') {
                source = Some(arg.clone());
                break;
            }
        }
        let source = PathBuf::from(source.ok_or("no source file in rustc's command")?);
        // cargo runs rustc in the workspace root for a member (the source relative to it), else
        // in the package's directory (the source absolute).
        let cwd = if source.is_absolute() {
            let dir = env
                .iter()
                .find(|(k, _)| k == "CARGO_MANIFEST_DIR")
                .map(|(_, v)| PathBuf::from(v))
                .ok_or("no CARGO_MANIFEST_DIR in rustc's environment")?;
            if source != src_path {
                return Err("rustc's source is not the library's".into());
            }
            dir
        } else {
            let mut dir = src_path.to_path_buf();
            if !src_path.ends_with(&source) {
                return Err("rustc's source is not the library's".into());
            }
            for _ in source.components() {
                dir.pop();
            }
            dir
        };
        let out_dir = PathBuf::from(value("--out-dir").ok_or("no --out-dir")?);
        let out_dir = if out_dir.is_absolute() {
            out_dir
        } else {
            cwd.join(out_dir)
        };
        let extra = codegen("extra-filename").unwrap_or_default();
        let out = out_dir.join(format!(
            "{}{crate_name}{extra}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        let dep_info = out_dir.join(format!("{crate_name}{extra}.d"));
        // cargo hard-links the library to its final name: the one it reported must be this one.
        if !same_file(&out, artifact) {
            return Err(format!(
                "{} is not the library cargo reported ({})",
                out.display(),
                artifact.display()
            ));
        }
        let sources = read_dep_info(&dep_info, &cwd)?;
        let mut inputs: Vec<PathBuf> = vec![program.clone()];
        // The libraries it links against.
        for arg in args
            .windows(2)
            .filter(|w| w[0] == "--extern")
            .map(|w| &w[1])
        {
            if let Some((_, file)) = arg.split_once('=') {
                inputs.push(PathBuf::from(file));
            }
        }
        // The sources of every crate built from local sources into this directory (path
        // dependencies, direct or not, and whatever else this target directory holds): one
        // edited without a build since would be compiled first by cargo. Their linked libraries
        // cannot show that, being rebuilt only then.
        inputs.extend(
            local_sources(&out_dir, &cwd)
                .into_iter()
                .filter(|file| !sources.contains(file)),
        );
        // Manifests, lock file, configuration, toolchain files, from the package up.
        let manifest_dir = env
            .iter()
            .find(|(k, _)| k == "CARGO_MANIFEST_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .ok_or("no CARGO_MANIFEST_DIR in rustc's environment")?;
        inputs.push(manifest_dir.join("build.rs"));
        // A build script: cargo runs it again before rustc when what it said to watch changed,
        // or, where it named nothing to watch, at any change in the package (an edited source
        // too), and rustc may then get other settings from it. Its last output says which.
        let script_out = env.iter().find(|(k, _)| k == "OUT_DIR");
        if let Some((_, script_out)) = script_out {
            let output = Path::new(script_out)
                .parent()
                .ok_or("OUT_DIR has no parent")?
                .join("output");
            let text = std::fs::read_to_string(&output).map_err(|e| {
                format!(
                    "reading the build script's output {}: {e}",
                    output.display()
                )
            })?;
            let mut watches = false;
            for line in text.lines() {
                let directive = line
                    .strip_prefix("cargo::")
                    .or_else(|| line.strip_prefix("cargo:"));
                let Some(directive) = directive else {
                    continue;
                };
                if let Some(path) = directive.strip_prefix("rerun-if-changed=") {
                    watches = true;
                    // Stamped even where it is one of the crate's sources: its change is cargo's.
                    inputs.push(manifest_dir.join(path));
                } else if directive.starts_with("rerun-if-env-changed=") {
                    watches = true;
                }
            }
            if !watches {
                return Err(
                    "its build script runs again at any change of the package (it names nothing \
                     to watch)"
                        .into(),
                );
            }
        }
        for dir in manifest_dir.ancestors().chain(cwd.ancestors()) {
            for name in [
                "Cargo.toml",
                "Cargo.lock",
                ".cargo/config.toml",
                ".cargo/config",
                "rust-toolchain",
                "rust-toolchain.toml",
            ] {
                inputs.push(dir.join(name));
            }
        }
        inputs.sort();
        inputs.dedup();
        let inputs = inputs
            .into_iter()
            .map(|path| {
                let state = stamp(&path);
                (path, state)
            })
            .collect();
        let lock = out_dir
            .parent()
            .ok_or("--out-dir has no parent")?
            .join(".cargo-lock");
        Ok(Capture {
            program,
            args,
            env,
            cwd,
            out,
            dep_info,
            sources,
            inputs,
            lock,
        })
    }

    /// Why `changed` (the paths the watcher reported since the last build) needs cargo, if it
    /// does: a path that is not one of the crate's own sources, or a changed input.
    pub(crate) fn needs_cargo(&self, changed: &BTreeSet<PathBuf>) -> Option<String> {
        if changed.is_empty() {
            return Some("no changed source known".into());
        }
        let mut any_source = false;
        for path in changed {
            if std::fs::canonicalize(path).is_ok_and(|p| self.sources.contains(&p)) {
                any_source = true;
                continue;
            }
            // A Rust source or manifest that is not one of the crate's sources (a new module, a
            // removed one, `build.rs`, `Cargo.toml`) changes what cargo builds. Anything else the
            // watcher reported with it (an editor's scratch or backup file, `lib.rs~`) is
            // nothing cargo would read: the dep-info lists every file the crate includes, and the
            // inputs below cover the rest.
            let rust = path.extension().is_some_and(|e| e == "rs");
            let manifest = path.file_name().is_some_and(|n| n == "Cargo.toml");
            if rust || manifest {
                return Some(format!("{} is not one of its sources", path.display()));
            }
        }
        if !any_source {
            return Some("none of its sources changed".into());
        }
        for (path, state) in &self.inputs {
            if stamp(path) != *state {
                return Some(format!("{} changed", path.display()));
            }
        }
        None
    }

    /// Runs the captured rustc. `Err`: it could not run (cargo builds instead); `Ok` with
    /// rustc's outcome otherwise.
    pub(crate) fn run(&mut self) -> Result<Outcome, String> {
        // cargo's lock of the build directory: a `cargo build` running now (the user's) would
        // write the same files. Held until rustc is done; busy, cargo builds (and waits).
        let lock = std::fs::File::open(&self.lock)
            .map_err(|e| format!("opening {}: {e}", self.lock.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err("cargo holds the build directory's lock".into())
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("locking {}: {e}", self.lock.display()))
            }
        }
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.cwd)
            // A jobserver inherited from whatever started the host is not ours to use.
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("could not run {}: {e}", self.program.display()))?;
        let mut stderr = Vec::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_end(&mut stderr);
        }
        let status = child
            .wait()
            .map_err(|e| format!("could not wait for rustc: {e}"))?;
        drop(lock);
        let rendered = rendered_diagnostics(&String::from_utf8_lossy(&stderr));
        if !status.success() {
            return Ok(Outcome::Failed(rendered));
        }
        // A `mod` added in a source already listed: the next change of the new file is its own.
        if let Ok(sources) = read_dep_info(&self.dep_info, &self.cwd) {
            self.sources = sources;
        }
        Ok(Outcome::Built)
    }

    /// The library rustc writes.
    pub(crate) fn out(&self) -> &Path {
        &self.out
    }
}

/// cargo's stderr under `-vv` split into the commands it ran (each `Running \`…\`` without the
/// quotes: a value in one may span lines, a package description with a line break) and the
/// rest, as cargo would have written it without them.
pub(crate) fn split_verbose(stderr: &str) -> (Vec<String>, String) {
    let mut commands = Vec::new();
    let mut rest = String::new();
    let mut lines = stderr.lines();
    while let Some(line) = lines.next() {
        let Some(command) = line.trim_start().strip_prefix("Running `") else {
            rest.push_str(line);
            rest.push('\n');
            continue;
        };
        let mut command = command.to_owned();
        while !command.ends_with('`') {
            match lines.next() {
                Some(next) => {
                    command.push('\n');
                    command.push_str(next);
                }
                None => break,
            }
        }
        if let Some(command) = command.strip_suffix('`') {
            commands.push(command.to_owned());
        }
    }
    (commands, rest)
}

/// What the captured rustc did.
pub(crate) enum Outcome {
    Built,
    /// Its diagnostics, rendered as cargo shows them.
    Failed(String),
}

/// Whether `a` and `b` are the same file (cargo's uplift is a hard link; where it copied, the
/// same bytes).
fn same_file(a: &Path, b: &Path) -> bool {
    match (stamp(a), stamp(b)) {
        (Some(x), Some(y)) if cfg!(unix) => x.inode == y.inode,
        (Some(x), Some(y)) => x.len == y.len,
        _ => false,
    }
}

/// Links the library rustc wrote to the name cargo gives it (`<profile-dir>/lib<crate>.so`), as
/// cargo does: the old name removed, then a hard link (or a copy).
pub(crate) fn uplift(out: &Path, artifact: &Path) -> std::io::Result<()> {
    // Where rustc wrote the final name itself there is nothing to link (and removing it would
    // remove the new library).
    if out == artifact {
        return Ok(());
    }
    match std::fs::remove_file(artifact) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if std::fs::hard_link(out, artifact).is_err() {
        std::fs::copy(out, artifact)?;
    }
    Ok(())
}

/// The files a dep-info file (`target: dep dep …`, spaces in names escaped as `\ `) lists as
/// the target's prerequisites, canonical; relative ones are relative to `cwd`.
fn read_dep_info(path: &Path, cwd: &Path) -> Result<BTreeSet<PathBuf>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut files = BTreeSet::new();
    // The first rule lists everything; the rest are `file:` lines for each.
    let line = text
        .lines()
        .find(|line| !line.starts_with('#') && line.contains(": "))
        .ok_or_else(|| format!("{} lists nothing", path.display()))?;
    let (_, deps) =
        split_rule(line).ok_or_else(|| format!("{} is not dep-info", path.display()))?;
    for dep in deps {
        let dep = cwd.join(dep);
        files.insert(std::fs::canonicalize(&dep).unwrap_or(dep));
    }
    Ok(files)
}

/// `target: a b\ c` → (`target`, [`a`, `b c`]).
fn split_rule(line: &str) -> Option<(String, Vec<String>)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => word.push(next),
                None => word.push('\\'),
            },
            ' ' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let target = words.first()?.strip_suffix(':')?.to_owned();
    Some((target, words.split_off(1)))
}

/// The files listed by the dep-info files in `deps` (`<crate>[-<hash>].d`, one per crate built
/// there), but those under cargo's home (registry and git sources, which do not change in place
/// and are many).
fn local_sources(deps: &Path, cwd: &Path) -> BTreeSet<PathBuf> {
    let in_cargo_home = |path: &Path| {
        path.components().any(|c| {
            let c = c.as_os_str();
            c == "registry" || c == "git"
        }) && path.components().any(|c| c.as_os_str() == ".cargo")
    };
    let Ok(entries) = std::fs::read_dir(deps) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "d"))
        .filter_map(|path| read_dep_info(&path, cwd).ok())
        .flatten()
        .filter(|file| !in_cargo_home(file))
        .collect()
}

/// rustc's JSON diagnostics (`--error-format=json --json=diagnostic-rendered-ansi`, as cargo
/// passes them) as cargo's `--message-format=json-render-diagnostics` prints them: each one's
/// `rendered` text, without colour; lines that are not JSON kept as they are.
fn rendered_diagnostics(stderr: &str) -> String {
    let mut out = String::new();
    for line in stderr.lines() {
        if !line.starts_with('{') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let Ok(message) = json::parse(line) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        // Diagnostics only: not the artifact notices, nor the future-incompatibility report
        // (which cargo summarises in a note of its own).
        if message.get("$message_type").and_then(json::Value::as_str) != Some("diagnostic") {
            continue;
        }
        if let Some(rendered) = message.get("rendered").and_then(json::Value::as_str) {
            out.push_str(&strip_ansi(rendered));
        }
    }
    out
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Environment variables as cargo sets them for a command.
type Environment = Vec<(String, String)>;

/// cargo's `-vv` rendering of a command (`KEY=value … program arg …`, each value and argument
/// escaped for a POSIX shell where needed, the program not) split back into (environment,
/// program, arguments). `None` where it cannot be read back for certain (text that was not
/// UTF-8, an unterminated quote, no program).
fn parse_command(command: &str) -> Option<(Environment, String, Vec<String>)> {
    if command.contains('\u{FFFD}') {
        return None;
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                started = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                started = true;
                word.push(chars.next()?);
            }
            ' ' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    let is_key = |key: &str| {
        !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let mut words = words.into_iter();
    let mut env = Vec::new();
    for word in words.by_ref() {
        match word.split_once('=') {
            Some((key, value)) if is_key(key) => env.push((key.to_owned(), value.to_owned())),
            _ => return Some((env, word, words.collect())),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{parse_command, split_rule, split_verbose, strip_ansi, Capture};
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    /// A package `x` as cargo leaves it after a build: its source, its library under `deps/`
    /// hard-linked to the uplifted name, the dep-info, and a build script's `output` saying
    /// `script_output`. Returns (package dir, the command cargo would print, src_path,
    /// uplifted library).
    fn built_package(root: &Path, script_output: &str) -> (PathBuf, String, PathBuf, PathBuf) {
        let _ = std::fs::remove_dir_all(root);
        let pkg = root.join("x");
        let profile = root.join("target/debug");
        let deps = profile.join("deps");
        let script = profile.join("build/x-1");
        for dir in [pkg.join("src"), deps.clone(), script.join("out")] {
            std::fs::create_dir_all(&dir).expect("create the layout");
        }
        std::fs::write(pkg.join("Cargo.toml"), "[package]\n").expect("write the manifest");
        std::fs::write(pkg.join("src/lib.rs"), "// x\n").expect("write the source");
        let dylib = |dir: &Path| {
            dir.join(format!(
                "{}x{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ))
        };
        std::fs::write(dylib(&deps), b"library").expect("write the library");
        std::fs::hard_link(dylib(&deps), dylib(&profile)).expect("uplift the library");
        std::fs::write(
            deps.join("x.d"),
            format!("{}: src/lib.rs\n", deps.join("x.d").display()),
        )
        .expect("write the dep-info");
        std::fs::write(profile.join(".cargo-lock"), "").expect("write the lock");
        std::fs::write(script.join("output"), script_output).expect("write the script output");
        let program = std::env::current_exe().expect("this test's executable");
        let command = format!(
            "CARGO_PKG_NAME=x CARGO_MANIFEST_DIR={} OUT_DIR={} {} --crate-name x --edition=2021 \
             src/lib.rs --crate-type rlib --crate-type cdylib --out-dir {}",
            pkg.display(),
            script.join("out").display(),
            program.display(),
            deps.display()
        );
        (
            pkg.clone(),
            command,
            pkg.join("src/lib.rs"),
            dylib(&profile),
        )
    }

    #[test]
    fn only_the_crates_own_sources_changing_skips_cargo() {
        let root = std::env::temp_dir().join(format!("hotmod-direct-{}", std::process::id()));
        let (pkg, command, src, artifact) = built_package(&root, "cargo::rerun-if-env-changed=X\n");
        let capture = Capture::from_cargo(&[command], "x", "x", &src, &artifact)
            .expect("the command is captured");
        let changed = |paths: &[PathBuf]| paths.iter().cloned().collect::<BTreeSet<_>>();
        assert_eq!(
            capture.needs_cargo(&changed(std::slice::from_ref(&src))),
            None
        );
        // An editor's backup beside it is nothing cargo reads.
        let backup = pkg.join("src/lib.rs~");
        assert_eq!(
            capture.needs_cargo(&changed(&[src.clone(), backup.clone()])),
            None
        );
        assert!(capture.needs_cargo(&changed(&[backup])).is_some());
        // A new module file, the manifest: cargo's.
        let new = pkg.join("src/new.rs");
        std::fs::write(&new, "").expect("write a new module");
        assert!(capture.needs_cargo(&changed(&[src.clone(), new])).is_some());
        std::fs::write(pkg.join("Cargo.toml"), "[package]\n# edited\n").expect("edit");
        assert!(capture
            .needs_cargo(&changed(std::slice::from_ref(&src)))
            .is_some());

        // A build script that names nothing to watch runs again at every change: no capture.
        let (_, command, src, artifact) = built_package(&root, "cargo::rustc-cfg=x\n");
        let refused =
            Capture::from_cargo(&[command], "x", "x", &src, &artifact).expect_err("not captured");
        assert!(refused.contains("build script"), "{refused}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn commands_spanning_lines_are_kept_whole_and_out_of_the_rest() {
        let stderr = "   Compiling a v1.0.0\n     Running `A='one\ntwo' /r/rustc --crate-name a`\nerror: x\n     Running `/r/rustc --crate-name b`\n";
        let (commands, rest) = split_verbose(stderr);
        assert_eq!(
            commands,
            [
                "A='one\ntwo' /r/rustc --crate-name a",
                "/r/rustc --crate-name b"
            ]
        );
        assert_eq!(rest, "   Compiling a v1.0.0\nerror: x\n");
        let (env, _, _) = parse_command(&commands[0]).expect("parses");
        assert_eq!(env, [("A".to_owned(), "one\ntwo".to_owned())]);
    }

    #[test]
    fn cargos_rendering_of_a_command_is_read_back() {
        let line = r#"CARGO=/c/cargo CARGO_PKG_DESCRIPTION='The HTTP example'\''s handler' CARGO_PKG_AUTHORS='' LD_LIBRARY_PATH='/t/deps:/r/lib' /r/bin/rustc --crate-name handler --edition=2021 src/lib.rs --check-cfg 'cfg(feature, values())' -C metadata=12"#;
        let (env, program, args) = parse_command(line).expect("parses");
        assert_eq!(
            env,
            [
                ("CARGO".to_owned(), "/c/cargo".to_owned()),
                (
                    "CARGO_PKG_DESCRIPTION".to_owned(),
                    "The HTTP example's handler".to_owned()
                ),
                ("CARGO_PKG_AUTHORS".to_owned(), String::new()),
                ("LD_LIBRARY_PATH".to_owned(), "/t/deps:/r/lib".to_owned()),
            ]
        );
        assert_eq!(program, "/r/bin/rustc");
        assert_eq!(
            args,
            [
                "--crate-name",
                "handler",
                "--edition=2021",
                "src/lib.rs",
                "--check-cfg",
                "cfg(feature, values())",
                "-C",
                "metadata=12"
            ]
        );
        assert_eq!(parse_command("A='open"), None);
        assert_eq!(parse_command("A=1 B=2"), None);
        assert_eq!(parse_command("x\u{FFFD} --a"), None);
    }

    #[test]
    fn dep_info_rules_and_colours() {
        let (target, deps) = split_rule("/t/deps/libx.so: src/lib.rs src/a\\ b.rs").expect("rule");
        assert_eq!(target, "/t/deps/libx.so");
        assert_eq!(deps, ["src/lib.rs", "src/a b.rs"]);
        assert_eq!(
            strip_ansi("\u{1b}[0m\u{1b}[1m\u{1b}[38;5;9merror\u{1b}[0m: x"),
            "error: x"
        );
    }
}
