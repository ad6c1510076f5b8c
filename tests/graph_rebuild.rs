//! The built-in rebuild with two hot crates, one calling the other (issue 14, item 6): saving
//! the called crate reloads its module, and the loaded generation of the caller reaches it; the
//! caller reloads only when its own code changed.
//!
//! A user's workspace, written by the test under `target/hotmod-fixtures/graph-rebuild` (kept
//! between runs, under its lock, so only its own crates compile again): `gr_base` (hot module
//! `b`, `value()`), `gr_top` (hot module `a`, whose `via_b()` calls `b::value()`, and `own()`),
//! and the host `gr_app`, which starts the rebuild of both and prints one line per generation
//! that goes live, with what `a` and `b` answer then.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::scratch::{hotmod_path, lines_of, manifest, write, Host};

/// The workspace's first build compiles hotmod and its dependencies: generous on a busy 2-core
/// machine.
const TIMEOUT: Duration = Duration::from_secs(1200);

fn base_source(value: u32) -> String {
    format!(
        "#[hotmod::hot_module]\npub mod b {{\n    pub fn value() -> u32 {{\n        {value}\n    }}\n}}\n"
    )
}

fn top_source(own: u32) -> String {
    format!(
        "#[hotmod::hot_module]\npub mod a {{\n    pub fn via_b() -> u32 {{\n        gr_base::b::value()\n    }}\n\n    pub fn own() -> u32 {{\n        {own}\n    }}\n}}\n"
    )
}

/// The host: starts both rebuilds, says `ready`, then prints `<module> <generation>: via_b=…
/// own=… b=…` whenever a generation of either goes live (`failed: …` for anything else a build
/// ends with).
const APP: &str = r#"use std::time::Duration;

fn watch(module: &'static hotmod::Module, name: &'static str) {
    let events = module.subscribe();
    std::thread::spawn(move || loop {
        let outcome = events.wait_for(Duration::from_secs(3600), |event| {
            matches!(
                event,
                hotmod::Event::Loaded { .. }
                    | hotmod::Event::BuildFailed { .. }
                    | hotmod::Event::Rejected { .. }
            )
        });
        match outcome {
            Some(hotmod::Event::Loaded { generation, .. }) => println!(
                "{name} {generation}: via_b={} own={} b={}",
                gr_top::a::via_b(),
                gr_top::a::own(),
                gr_base::b::value()
            ),
            other => println!("failed: {name}: {other:?}"),
        }
    });
}

fn main() {
    watch(gr_base::b::module(), "b");
    watch(gr_top::a::module(), "a");
    for module in [gr_base::b::module(), gr_top::a::module()] {
        if let Err(e) = module.rebuild().start() {
            println!("failed: {e}");
            return;
        }
    }
    println!("ready");
    std::thread::park();
}
"#;

fn write_workspace(root: &Path) {
    let hotmod = hotmod_path();
    support::scratch::workspace_manifest(root, &["app", "base", "top"], "");
    let cdylib = "[lib]\ncrate-type = [\"rlib\", \"cdylib\"]\n";
    write(
        &root.join("base/Cargo.toml"),
        &manifest(
            "gr_base",
            cdylib,
            &format!("hotmod = {{ path = {hotmod} }}\n"),
        ),
    );
    write(&root.join("base/src/lib.rs"), &base_source(1));
    write(
        &root.join("top/Cargo.toml"),
        &manifest(
            "gr_top",
            cdylib,
            &format!("hotmod = {{ path = {hotmod} }}\ngr_base = {{ path = \"../base\" }}\n"),
        ),
    );
    write(&root.join("top/src/lib.rs"), &top_source(1));
    write(
        &root.join("app/Cargo.toml"),
        &manifest(
            "gr_app",
            "",
            &format!(
                "hotmod = {{ path = {hotmod} }}\ngr_base = {{ path = \"../base\" }}\ngr_top = {{ path = \"../top\" }}\n"
            ),
        ),
    );
    write(&root.join("app/src/main.rs"), APP);
}

#[test]
fn saving_a_called_crate_reloads_its_module_and_reaches_the_loaded_caller() {
    if !support::rebuilds_allowed_here(
        "saving_a_called_crate_reloads_its_module_and_reaches_the_loaded_caller",
    ) {
        return;
    }
    let root: PathBuf = support::workspace()
        .join("target")
        .join("hotmod-fixtures")
        .join("graph-rebuild");
    let target = root.join("target");
    let _lock = support::crate_copy::lock(&target).expect("the scratch target's lock");
    write_workspace(&root);

    support::scratch::build(&root, &target, &[]);

    let mut child = Command::new(target.join("debug").join("gr_app"))
        .current_dir(&root)
        .env("CARGO_NET_OFFLINE", "true")
        .env("HOTMOD_QUIET", "1")
        .env_remove("HOTMOD_REBUILD")
        .env_remove("HOTMOD_WATCH")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the host");
    let lines = lines_of(&mut child);
    let host = Host(child);
    let next = || lines.recv_timeout(TIMEOUT).expect("the host's next line");
    assert_eq!(next(), "ready");

    // The caller's own code: `a` reloads (a library with its own copy of `b`, linked to the
    // host's).
    write(&root.join("top/src/lib.rs"), &top_source(2));
    assert_eq!(next(), "a 1: via_b=1 own=2 b=1");

    // The called crate: `b` reloads, and the loaded `a` reaches the new `b`. `a` does not
    // reload: the next line is the next edit's.
    write(&root.join("base/src/lib.rs"), &base_source(2));
    assert_eq!(next(), "b 1: via_b=2 own=2 b=2");

    write(&root.join("top/src/lib.rs"), &top_source(3));
    assert_eq!(next(), "a 2: via_b=2 own=3 b=2");

    // Back to the first sources for the next run, once the host (and its rebuilds) are gone
    // (their times change, so the next run's first build compiles the two crates again).
    drop(host);
    write(&root.join("base/src/lib.rs"), &base_source(1));
    write(&root.join("top/src/lib.rs"), &top_source(1));
}
