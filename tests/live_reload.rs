//! Live reload against real files and real cargo builds: the artifact watcher, events, staged
//! apply, the on_load gate and the built-in rebuild.

mod support;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hello_fixture::hello;
use hotmod::{Error, Event, Events};

/// Generous: a busy 2-core machine may take long, but a missing event still fails the test.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The built-in rebuild's first build compiles hotmod's dependencies in a fresh target dir.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

fn next_event(events: &Events, what: &str, mut wanted: impl FnMut(&Event) -> bool) -> Event {
    events
        .wait_for(EVENT_TIMEOUT, &mut wanted)
        .unwrap_or_else(|| panic!("no {what} event within {EVENT_TIMEOUT:?}"))
}

fn loaded(event: &Event) -> bool {
    matches!(event, Event::Loaded { .. })
}

#[test]
fn a_build_published_like_cargo_becomes_the_next_generation() {
    let _serial = support::serial();
    let dir = support::TempDir::new("publish");
    let artifact = support::watch_hello_from_v1(dir.path());
    let events = hello::module().subscribe();
    let before = hello::module().generation();
    assert_eq!(hello::version(), 1);

    support::link_library(support::library("v2"), &artifact);

    let Event::Loaded {
        generation, path, ..
    } = next_event(&events, "loaded", loaded)
    else {
        unreachable!()
    };
    assert_eq!(generation, before + 1);
    assert_eq!(path, artifact);
    assert_eq!(hello::module().generation(), before + 1);
    assert_eq!(hello::version(), 2);
    hello::module().unwatch();
}

#[test]
fn a_slow_in_place_writer_is_loaded_once_complete_and_never_half_written() {
    let _serial = support::serial();
    let dir = support::TempDir::new("slow-writer");
    let artifact = support::watch_hello_from_v1(dir.path());
    let events = hello::module().subscribe();
    let before = hello::module().generation();

    let bytes = fs::read(support::library("v2")).expect("read v2");
    let mut file = File::create(&artifact).expect("create artifact");
    for chunk in bytes.chunks(bytes.len() / 16 + 1) {
        file.write_all(chunk).expect("write chunk");
        file.flush().expect("flush");
        // Each partial write is a change the watcher sees and must skip.
        file.sync_data().expect("sync");
    }
    drop(file);

    // Every event up to the load: a half-written file is skipped silently, never reported.
    let mut until_loaded = Vec::new();
    next_event(&events, "loaded", |event| {
        until_loaded.push(event.clone());
        loaded(event)
    });
    assert!(
        !until_loaded
            .iter()
            .any(|e| matches!(e, Event::Rejected { .. })),
        "a half-written file was reported: {until_loaded:?}"
    );
    // Publish the same bytes again: the watcher reports them unchanged, and since events arrive
    // in order, everything it did for the slow writer is in `seen` by then.
    let copy = dir.path().join("same.tmp");
    fs::write(&copy, &bytes).expect("write copy");
    fs::rename(&copy, &artifact).expect("rename over");
    let mut seen = Vec::new();
    next_event(&events, "unchanged", |event| {
        seen.push(event.clone());
        matches!(event, Event::Unchanged { .. })
    });
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Event::Rejected { .. } | Event::Loaded { .. })),
        "unexpected events after the load: {seen:?}"
    );
    assert_eq!(
        hello::module().generation(),
        before + 1,
        "loaded exactly once"
    );
    assert_eq!(hello::version(), 2);
    hello::module().unwatch();
}

#[test]
fn identical_bytes_make_no_new_generation() {
    let _serial = support::serial();
    let dir = support::TempDir::new("identical");
    let artifact = support::watch_hello_from_v1(dir.path());
    let events = hello::module().subscribe();
    support::link_library(support::library("v2"), &artifact);
    next_event(&events, "loaded", loaded);
    let generation = hello::module().generation();

    support::link_library(support::library("v2"), &artifact);
    let event = next_event(&events, "unchanged or loaded", |e| {
        matches!(e, Event::Unchanged { .. } | Event::Loaded { .. })
    });
    assert!(matches!(event, Event::Unchanged { .. }), "{event:?}");
    assert_eq!(hello::module().generation(), generation);
    assert_eq!(hello::module().live_generations().last(), Some(&generation));
    hello::module().unwatch();
}

#[test]
fn staged_generations_wait_for_apply_staged() {
    let _serial = support::serial();
    let module = hello::module();
    module.unwatch();
    module.load(support::library("v1")).expect("v1 loads");
    let current = module.generation();
    let events = module.subscribe();

    module.set_staged(true);
    let staged = module.load(support::library("v2")).expect("v2 verifies");
    assert_eq!(staged, current + 1);
    assert!(matches!(
        next_event(&events, "staged", |e| matches!(e, Event::Staged { .. })),
        Event::Staged { generation, .. } if generation == staged
    ));
    // Nothing changes until the application says so.
    assert_eq!(module.generation(), current);
    assert_eq!(module.staged_generation(), Some(staged));
    assert_eq!(hello::version(), 1);
    assert_eq!(hello::Handle::current().generation(), current);
    assert!(module.live_generations().contains(&staged));

    // A newer build replaces the waiting one, which retires without ever serving.
    let newer = module.load(support::library("v2")).expect("v2 again");
    assert_eq!(module.staged_generation(), Some(newer));
    assert!(!module.live_generations().contains(&staged));
    assert_eq!(hello::version(), 1);

    assert_eq!(module.apply_staged(), Some(newer));
    assert_eq!(module.generation(), newer);
    assert_eq!(hello::version(), 2);
    assert_eq!(module.staged_generation(), None);
    assert_eq!(module.apply_staged(), None);
    module.set_staged(false);
}

#[test]
fn on_load_gates_a_new_generation() {
    let _serial = support::serial();
    let module = hello::module();
    module.unwatch();
    module
        .load(support::library("v2"))
        .expect("v2 (on_load Ok) loads");
    let current = module.generation();
    let events = module.subscribe();

    let error = module
        .load(support::library("badinit"))
        .expect_err("on_load returned Err");
    assert!(matches!(error, Error::OnLoad { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("configuration is missing"), "{message}");
    assert!(message.contains("badinit"), "names the file: {message}");
    assert!(matches!(
        next_event(&events, "rejected", |e| matches!(e, Event::Rejected { .. })),
        Event::Rejected {
            error: Error::OnLoad { .. },
            ..
        }
    ));
    assert_eq!(module.generation(), current);
    assert_eq!(hello::version(), 2, "the old generation keeps serving");

    let error = module
        .load(support::library("panicinit"))
        .expect_err("on_load panicked");
    assert!(
        error
            .to_string()
            .contains("panicked: the fixture's on_load panicked on purpose"),
        "{error}"
    );
    assert_eq!(module.generation(), current);
    assert_eq!(hello::version(), 2);

    let next = module.load(support::library("v1")).expect("on_load Ok");
    assert_eq!(next, current + 1);
    assert_eq!(hello::version(), 1);
}

#[test]
fn wait_for_generation_times_out_with_a_typed_error() {
    let _serial = support::serial();
    let module = hello::module();
    let current = module.generation();
    assert_eq!(
        module
            .wait_for_generation(current, Duration::from_millis(1))
            .expect("already there"),
        current
    );
    let error = module
        .wait_for_generation(current + 100, Duration::from_millis(20))
        .expect_err("no such generation comes");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(file).expect("read source");
    assert!(text.contains(from), "{} lacks {from:?}", file.display());
    fs::write(file, text.replacen(from, to, 1)).expect("write source");
}

#[test]
fn saving_a_source_file_rebuilds_and_loads_it() {
    let _serial = support::serial();
    let module = hello::module();
    module.unwatch();
    module.load(support::library("v1")).expect("v1 loads");
    if !support::rebuilds_allowed_here("saving_a_source_file_rebuilds_and_loads_it") {
        return;
    }
    let dir = support::TempDir::in_target("rebuild");
    let copy = support::copy_fixture("hello_fixture", &dir.path().join("hello_fixture"));
    let lib = copy.join("src/lib.rs");
    let events = module.subscribe();
    support::start_hello_rebuild(&copy, &support::workspace().join("target/hotmod-rebuild"));

    // Rapid saves: at most one build for the burst, plus one for saves during that build.
    edit(&lib, "{ 2 } else { 1 }", "{ 2 } else { 7 }");
    for _ in 0..4 {
        let text = fs::read_to_string(&lib).expect("read");
        fs::write(&lib, text).expect("save again");
    }
    let mut builds = 0;
    let mut how = Vec::new();
    let event = events
        .wait_for(BUILD_TIMEOUT, |e| {
            builds += usize::from(matches!(e, Event::BuildStarted { .. }));
            if let Event::BuildFinished { direct, .. } = e {
                how.push(*direct);
            }
            support::is_build_outcome(e)
        })
        .expect("the edit is built and loaded");
    assert!(matches!(event, Event::Loaded { .. }), "{event}");
    assert!(
        (1..=2).contains(&builds),
        "{builds} builds for one burst of saves"
    );
    // The first build of the session is cargo's (it captures the crate's rustc command).
    assert_eq!(how.first(), Some(&false), "{how:?}");
    assert_eq!(hello::version(), 7);

    // A syntax error: the build fails, the live generation keeps serving. Only the crate's own
    // source changed, so rustc ran alone: its own closing line, not cargo's `could not compile`.
    let live = module.generation();
    edit(&lib, "{ 2 } else { 7 }", "{ 2 } else { 7 ");
    let (event, _) = next_build_outcome(&events);
    let Event::BuildFailed { message, .. } = &event else {
        panic!("expected a failed build, got {event}")
    };
    assert!(message.contains("error"), "{message}");
    assert!(message.contains("delimiter"), "{message}");
    assert!(message.contains("src/lib.rs"), "{message}");
    assert!(
        message.contains("aborting due to") && !message.contains("could not compile"),
        "not rustc's own message: {message}"
    );
    assert!(!message.contains('\u{1b}'), "colour codes in {message:?}");
    assert_eq!(module.generation(), live);
    assert_eq!(hello::version(), 7);

    // Fixing it recovers, without cargo.
    edit(&lib, "{ 2 } else { 7 ", "{ 2 } else { 8 }");
    let (event, direct) = next_build_outcome(&events);
    assert!(matches!(event, Event::Loaded { .. }), "{event}");
    assert_eq!(direct, Some(true), "the fix was built by cargo");
    assert_eq!(hello::version(), 8);

    // A manifest change (with a source change in the same save) is cargo's.
    let manifest = copy.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).expect("read the manifest");
    fs::write(&manifest, format!("{text}\n# edited\n")).expect("write the manifest");
    edit(&lib, "{ 2 } else { 8 }", "{ 2 } else { 9 }");
    let (event, direct) = next_build_outcome(&events);
    assert!(matches!(event, Event::Loaded { .. }), "{event}");
    assert_eq!(
        direct,
        Some(false),
        "a manifest change was built without cargo"
    );
    assert_eq!(hello::version(), 9);

    // That cargo build captured the command again: the next source edit is rustc's alone.
    edit(&lib, "{ 2 } else { 9 }", "{ 2 } else { 10 }");
    let (event, direct) = next_build_outcome(&events);
    assert!(matches!(event, Event::Loaded { .. }), "{event}");
    assert_eq!(direct, Some(true));
    assert_eq!(hello::version(), 10);
    module.unwatch();

    // The user's own `cargo build` afterwards compiles the crate again (its sources are newer
    // than cargo's record of its last build) and builds what was saved last.
    let target = support::workspace().join("target/hotmod-rebuild");
    let build = || {
        let output = std::process::Command::new(env!("CARGO"))
            .args(["build", "--lib", "--message-format=json", "--manifest-path"])
            .arg(copy.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .output()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        stdout
            .lines()
            .find(|line| {
                line.contains(r#""reason":"compiler-artifact""#) && line.contains("hello_fixture")
            })
            .map(|line| line.contains(r#""fresh":false"#))
            .expect("cargo reports the library")
    };
    assert!(build(), "cargo found the saved crate fresh");
    assert!(!build(), "a second cargo build compiled the crate again");
    let built = target.join("debug").join(support::hello_artifact_name());
    module.load(&built).expect("cargo's build loads");
    assert_eq!(hello::version(), 10);
}

/// The next build's outcome, and how the library was built if it was (`BuildFinished::direct`).
fn next_build_outcome(events: &Events) -> (Event, Option<bool>) {
    let mut direct = None;
    let event = events
        .wait_for(BUILD_TIMEOUT, |e| {
            if let Event::BuildFinished { direct: d, .. } = e {
                direct = Some(*d);
            }
            support::is_build_outcome(e)
        })
        .expect("a build outcome");
    (event, direct)
}

/// A path with no directory part (`libhello_fixture.so`) is watched in the working directory.
#[test]
fn a_bare_file_name_is_watched_in_the_working_directory() {
    let _serial = support::serial();
    let dir = support::TempDir::new("bare-name");
    let module = hello::module();
    module.unwatch();
    module.set_staged(false);
    module.load(support::library("v1")).expect("v1 loads");
    let before = module.generation();
    let events = module.subscribe();
    // Tests of this binary take `serial()` and use absolute paths: changing the working
    // directory while this test runs is safe. The load reads the name relative to it too.
    struct Restore(PathBuf);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::env::set_current_dir(&self.0);
        }
    }
    let _restore = Restore(std::env::current_dir().expect("current dir"));
    std::env::set_current_dir(dir.path()).expect("enter the temp dir");
    let name = support::hello_artifact_name();
    module.set_path(&name);
    module.watch().expect("watching a bare file name starts");

    let incoming = dir.path().join("incoming.tmp");
    fs::copy(support::library("v2"), &incoming).expect("copy v2");
    fs::rename(&incoming, dir.path().join(&name)).expect("publish v2");
    next_event(&events, "loaded", loaded);
    assert_eq!(module.generation(), before + 1);
    assert_eq!(hello::version(), 2);
    module.unwatch();
}

/// A file that is not a complete library and stays so (no writer at work: no change follows
/// within the watcher's quiet period) is reported as rejected, naming the cause; the current
/// generation keeps serving.
#[test]
fn a_file_that_stays_incomplete_is_reported() {
    let _serial = support::serial();
    let dir = support::TempDir::new("stays-incomplete");
    let artifact = support::watch_hello_from_v1(dir.path());
    let events = hello::module().subscribe();
    let before = hello::module().generation();

    let incoming = dir.path().join("incoming.tmp");
    fs::write(&incoming, b"not a library at all").expect("write");
    fs::rename(&incoming, &artifact).expect("publish");

    let rejected = next_event(&events, "rejected", |e| matches!(e, Event::Rejected { .. }));
    let Event::Rejected { error, .. } = rejected else {
        unreachable!()
    };
    assert!(
        matches!(error, Error::NotALibrary { .. }),
        "unexpected refusal: {error}"
    );
    assert_eq!(hello::module().generation(), before);
    assert_eq!(hello::version(), 1);
    hello::module().unwatch();
}
