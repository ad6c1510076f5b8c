//! The first save after `cargo run` compiles the module crate and nothing else (issue 17, item
//! 3): the built-in rebuild builds it the way the host's own build did, so every dependency is
//! already fresh.
//!
//! A user's workspace, written by the test under `target/hotmod-fixtures/first-save` (kept
//! between runs, under its lock, so only its own crates are compiled again): a virtual workspace
//! whose members are the host `fs_app` (a binary), its hot module `fs_module`, and `fs_tool`,
//! which enables hotmod's feature `state`. A bare `cargo build` (or `cargo run`) at its root
//! selects all three, so the host links a hotmod with `state`; the module's package with the
//! host's alone would get a hotmod without it — another build of hotmod and of everything that
//! depends on it. The test checks that difference first (`cargo tree`), builds the workspace as
//! a user does, starts the host in the workspace's root as `cargo run` would, edits the
//! module's source and waits for the new code to answer. Then it reads which units cargo
//! compiled after the edit — their fingerprint files (`target/debug/.fingerprint/<package>-<hash>/`)
//! are written when a unit is compiled and left alone when it is fresh — and runs the user's
//! next `cargo build`, which must find the module's library as the rebuild left it.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use support::scratch::{hotmod_path, lines_of, manifest, write, Host};

/// The workspace's first build compiles hotmod and its dependencies: generous on a busy 2-core
/// machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);

/// The module's source, with the value its `value()` returns.
fn module_source(value: u32) -> String {
    format!(
        "#[hotmod::hot_module]\npub mod m {{\n    pub fn value() -> u32 {{\n        {value}\n    }}\n}}\n"
    )
}

/// The host: starts the rebuild, says `ready`, and prints `generation <g>: <value>` for the
/// first build's outcome, or `failed: …`.
const APP: &str = r#"use std::time::Duration;

fn main() {
    let module = fs_module::m::module();
    let events = module.subscribe();
    if let Err(e) = module.rebuild().start() {
        println!("failed: {e}");
        return;
    }
    println!("ready");
    let outcome = events.wait_for(Duration::from_secs(900), |event| {
        matches!(
            event,
            hotmod::Event::Loaded { .. }
                | hotmod::Event::BuildFailed { .. }
                | hotmod::Event::Rejected { .. }
        )
    });
    match outcome {
        Some(hotmod::Event::Loaded { generation, .. }) => {
            println!("generation {generation}: {}", fs_module::m::value())
        }
        other => println!("failed: {other:?}"),
    }
}
"#;

/// Writes the user's workspace into `root`.
fn write_workspace(root: &Path) {
    let hotmod = hotmod_path();
    write(
        &root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"app\", \"module\", \"tool\"]\nresolver = \"2\"\n",
    );
    let lock =
        std::fs::read_to_string(support::workspace().join("Cargo.lock")).expect("Cargo.lock");
    if !root.join("Cargo.lock").exists() {
        write(&root.join("Cargo.lock"), &lock);
    }
    write(
        &root.join("module/Cargo.toml"),
        &manifest(
            "fs_module",
            "[lib]\ncrate-type = [\"rlib\", \"cdylib\"]\n",
            &format!("hotmod = {{ path = {hotmod} }}\n"),
        ),
    );
    write(&root.join("module/src/lib.rs"), &module_source(1));
    write(
        &root.join("tool/Cargo.toml"),
        &manifest(
            "fs_tool",
            "",
            &format!("hotmod = {{ path = {hotmod}, features = [\"state\"] }}\n"),
        ),
    );
    write(
        &root.join("tool/src/lib.rs"),
        "//! A member that enables hotmod's `state`.\n",
    );
    write(
        &root.join("app/Cargo.toml"),
        &manifest(
            "fs_app",
            "",
            &format!("hotmod = {{ path = {hotmod} }}\nfs_module = {{ path = \"../module\" }}\n"),
        ),
    );
    write(&root.join("app/src/main.rs"), APP);
}

/// Runs cargo with `args` in `root` (offline); its stdout.
fn cargo(root: &Path, args: &[&str]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(args)
        .args(["--color", "never"])
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "cargo {args:?} in {} failed:\n{}\n{stdout}",
        root.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// hotmod's features as `cargo tree` resolves them for the packages `select` (none: cargo's
/// default selection in `root`).
fn hotmod_features(root: &Path, select: &[&str]) -> String {
    let mut args = vec!["tree", "-e", "features", "-i", "hotmod", "--depth", "0"];
    args.extend(["--prefix", "none", "--format", "{f}"]);
    args.extend(select);
    cargo(root, &args).trim().to_owned()
}

/// `cargo build` in `root` into `target`, as the user's next `cargo run` builds: the packages
/// whose units cargo compiled (cargo's JSON messages: `"fresh":false`).
fn user_build(root: &Path, target: &Path) -> BTreeSet<String> {
    let target = target.to_str().expect("a UTF-8 target path");
    let stdout = cargo(
        root,
        &["build", "--message-format=json", "--target-dir", target],
    );
    stdout
        .lines()
        .filter(|line| line.contains(r#""reason":"compiler-artifact""#))
        .filter(|line| line.contains(r#""fresh":false"#))
        .filter_map(|line| {
            // `"package_id":"path+file:///…/module#fs_module@0.1.0"` or `"…#name@version"`.
            let id = line.split(r#""package_id":""#).nth(1)?.split('"').next()?;
            let name = id.rsplit_once('#')?.1;
            Some(name.split('@').next().unwrap_or(name).to_owned())
        })
        .collect()
}

/// The packages of the units whose fingerprint files (`.fingerprint/<package>-<hash>/…`) were
/// written at or after `since`: the units cargo compiled (or ran, for build scripts) since.
fn compiled_since(profile_dir: &Path, since: SystemTime) -> BTreeSet<String> {
    let fingerprints = profile_dir.join(".fingerprint");
    let mut compiled = BTreeSet::new();
    for unit in std::fs::read_dir(&fingerprints).expect("the fingerprint directory") {
        let unit = unit.expect("a fingerprint entry").path();
        let written = std::fs::read_dir(&unit)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|file| file.metadata().and_then(|m| m.modified()).ok())
            .any(|modified| modified >= since);
        if written {
            let name = unit
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let package = name.rsplit_once('-').map_or(name, |(package, _)| package);
            compiled.insert(package.to_owned());
        }
    }
    compiled
}

/// The section names of the ELF file at `path`; `None` where it is not a 64-bit little-endian
/// ELF file (another platform's library: the check is skipped there).
fn elf_section_names(path: &Path) -> Option<Vec<String>> {
    let bytes = std::fs::read(path).expect("read the rebuild's library");
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return None;
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (table, entry, count, names) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let names_at = u64_at(table + names * entry + 0x18);
    Some(
        (0..count)
            .map(|i| {
                let start = names_at + u32_at(table + i * entry);
                let len = bytes[start..].iter().position(|b| *b == 0).unwrap_or(0);
                String::from_utf8_lossy(&bytes[start..start + len]).into_owned()
            })
            .collect(),
    )
}

#[test]
fn the_first_save_compiles_only_the_module_crate() {
    if !support::rebuilds_allowed_here("the_first_save_compiles_only_the_module_crate") {
        return;
    }
    let root: PathBuf = support::workspace()
        .join("target")
        .join("hotmod-fixtures")
        .join("first-save");
    let target = root.join("target");
    let _lock = support::crate_copy::lock(&target).expect("the scratch target's lock");
    write_workspace(&root);

    // What makes the test mean something: the host's package with the module's would build
    // another hotmod than the workspace's default selection does.
    let alone = hotmod_features(&root, &["-p", "fs_module", "-p", "fs_app"]);
    let all = hotmod_features(&root, &[]);
    assert_ne!(alone, all, "the selections resolve hotmod alike");
    assert!(all.contains("state"), "{all}");

    // The user's `cargo build` at the root. (A bare `cargo run` there would build fs_app and
    // what it links, not fs_tool's library: the rebuild, which selects fs_tool for its
    // features, would then compile that library at the first save, once.)
    user_build(&root, &target);

    // The user's `cargo run`: the binary, started in the workspace's root.
    let mut child = Command::new(target.join("debug").join("fs_app"))
        .current_dir(&root)
        .env("CARGO_NET_OFFLINE", "true")
        .env("HOTMOD_QUIET", "1")
        .env_remove("HOTMOD_REBUILD")
        .env_remove("HOTMOD_WATCH")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the host");
    let lines = lines_of(&mut child);
    let _host = Host(child);
    let ready = lines.recv_timeout(BUILD_TIMEOUT).expect("the host starts");
    assert_eq!(ready, "ready");

    let saved = SystemTime::now();
    std::fs::write(root.join("module/src/lib.rs"), module_source(2)).expect("edit the module");
    let outcome = lines
        .recv_timeout(BUILD_TIMEOUT)
        .expect("the first build's outcome");
    assert_eq!(outcome, "generation 1: 2", "the edit went live");

    // The rebuild builds the module's package alone without debug info (builder.rs,
    // `module_settings`): the library it loaded has no debug sections, while nothing else was
    // compiled for it (below).
    let library = target.join("debug").join(format!(
        "{}fs_module{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    if let Some(sections) = elf_section_names(&library) {
        let debug: Vec<&String> = sections
            .iter()
            .filter(|s| s.starts_with(".debug"))
            .collect();
        assert!(
            debug.is_empty(),
            "the rebuild's library has debug sections {debug:?}"
        );
        assert!(
            sections.iter().any(|s| s == ".symtab"),
            "the rebuild's library lost its symbol table (backtraces name functions by it): \
             {sections:?}"
        );
    }

    let compiled = compiled_since(&target.join("debug"), saved);
    assert!(compiled.contains("fs_module"), "{compiled:?}");
    let others: Vec<&String> = compiled.iter().filter(|p| *p != "fs_module").collect();
    assert!(
        others.is_empty(),
        "the first save compiled {others:?} too: the rebuild did not build the module crate \
         like the host's build"
    );
    // The user's next `cargo run` compiles the module once more, with the profile's own
    // settings (the rebuild's are the module's alone, so cargo compiles the module again), and
    // relinks the host's binary (the module changed, and a binary host is not relinked by the
    // rebuild, `--lib`): nothing else. A dependency built with other features or settings would
    // be compiled again here, even where the other build's dependencies were left over from an
    // earlier run, so that nothing but the module was compiled above.
    let next = user_build(&root, &target);
    assert!(
        next.iter().all(|p| p == "fs_app" || p == "fs_module"),
        "the user's next build compiled {next:?}: the rebuild built a dependency with another \
         identity than the host's build"
    );
}
