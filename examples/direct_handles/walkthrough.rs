//! The direct-handles walkthrough: hotmod from a library user's side, asserting as it goes.
//! Shared by the example's `main` and the tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use greeter::hello;
use hotmod::{Event, Events};

/// What the walkthrough returns: the first check that failed, or any other error.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Generous: a busy machine is slow, but a missing event still fails.
const WAIT: Duration = Duration::from_secs(60);

/// Prints `what` and fails unless `holds`.
fn check(out: &mut dyn Write, holds: bool, what: &str) -> Result<()> {
    if !holds {
        writeln!(out, "  FAILED: {what}")?;
        return Err(format!("check failed: {what}").into());
    }
    writeln!(out, "  ok: {what}")?;
    Ok(())
}

fn next_event(events: &Events, what: &str, wanted: impl FnMut(&Event) -> bool) -> Result<Event> {
    events
        .wait_for(WAIT, wanted)
        .ok_or_else(|| format!("no {what} event within {WAIT:?}").into())
}

/// Runs the walkthrough with three builds of the `greeter` crate, each answering `greet`
/// differently: `first` (as written: "hello"), `second` (edited: "bonjour") and `third` (edited
/// again: "hola").
pub fn run(first: &Path, second: &Path, third: &Path, out: &mut dyn Write) -> Result<()> {
    let module = hello::module();
    let events = module.subscribe();

    writeln!(
        out,
        "1. Load a library: module().load(path) verifies it and makes it current."
    )?;
    let start = module.generation();
    writeln!(
        out,
        "     generation {start} is the code compiled into the binary"
    )?;
    let g1 = module.load(first)?;
    check(out, g1 > start, &format!("load returned generation {g1}"))?;
    check(
        out,
        module.generation() == g1,
        "module().generation() is the new one",
    )?;
    let loaded = next_event(&events, "Loaded", |e| matches!(e, Event::Loaded { .. }))?;
    writeln!(out, "     event: {loaded}")?;
    check(
        out,
        matches!(&loaded, Event::Loaded { generation, path, .. } if *generation == g1 && path == first),
        "subscribe() delivered Loaded with that generation and path",
    )?;

    writeln!(
        out,
        "2. Capture: a Handle pins the generation that is current now."
    )?;
    let before = hello::Handle::current();
    check(
        out,
        before.generation() == g1,
        &format!("the handle pinned generation {g1}, the current one"),
    )?;
    check(out, before.is_current(), "it is current")?;
    check(
        out,
        before.greet("world") == "hello world",
        "before.greet(\"world\") == \"hello world\"",
    )?;

    writeln!(
        out,
        "3. Load the edited library: plain calls move on, `before` stays."
    )?;
    let g2 = module.load(second)?;
    check(
        out,
        g2 == g1 + 1,
        &format!("the edited library is generation {g2}"),
    )?;
    check(
        out,
        hello::greet("x") == "bonjour x",
        "a plain call runs the new code: hello::greet(\"x\") == \"bonjour x\"",
    )?;
    check(
        out,
        !before.is_current(),
        "the first handle is no longer current",
    )?;
    check(
        out,
        before.generation() == g1 && before.greet("x") == "hello x",
        &format!("… but still calls generation {g1}: before.greet(\"x\") == \"hello x\""),
    )?;

    writeln!(out, "4. Hold a handle while loading a new file.")?;
    let old = hello::Handle::current();
    check(
        out,
        old.generation() == g2,
        &format!("`old` pins generation {g2}"),
    )?;
    let g3 = module.load(third)?;
    let new = hello::Handle::current();
    check(
        out,
        g3 == g2 + 1,
        &format!("the library edited again is generation {g3}"),
    )?;
    check(
        out,
        old.generation() < new.generation(),
        "generations compare: old < new",
    )?;
    check(
        out,
        !old.is_current() && new.is_current(),
        "only `new` is current",
    )?;
    let (o, n, plain) = (
        old.greet("world"),
        new.greet("world"),
        hello::greet("world"),
    );
    writeln!(out, "     old: {o:?}  new: {n:?}  plain call: {plain:?}")?;
    check(
        out,
        o == "bonjour world",
        "the old handle runs the old code",
    )?;
    check(out, n == "hola world", "the new handle runs the new code")?;
    check(
        out,
        plain == "hola world",
        "a plain call runs the current generation",
    )?;
    let live = module.live_generations();
    check(
        out,
        live.contains(&g1) && live.contains(&g2) && live.contains(&g3),
        &format!(
            "live_generations() is {live:?}: {g1} and {g2} stay while `before` and `old` hold them"
        ),
    )?;

    writeln!(
        out,
        "5. Handles are values: clone them, send them to threads, pass &mut."
    )?;
    let clone = old.clone();
    let reply = std::thread::spawn(move || clone.reply("ab", 2))
        .join()
        .map_err(|_| "the thread panicked")?;
    check(
        out,
        reply.text == "abab" && reply.count == 2,
        "a clone of `old` called from another thread",
    )?;
    let mut counter = 41;
    old.bump(&mut counter);
    check(
        out,
        counter == 42,
        "old.bump(&mut counter) changed the caller's counter",
    )?;

    writeln!(out, "6. A refused file changes nothing.")?;
    let not_a_library =
        std::env::temp_dir().join(format!("hotmod-not-a-library-{}.so", std::process::id()));
    std::fs::write(&not_a_library, b"this is not a shared library")?;
    let refused = module.load(&not_a_library);
    let _ = std::fs::remove_file(&not_a_library);
    let Err(error) = refused else {
        return Err("a text file was loaded as a library".into());
    };
    writeln!(out, "     error: {error}")?;
    check(
        out,
        error.to_string().contains("not-a-library"),
        "the error names the file",
    )?;
    check(
        out,
        module.generation() == g3,
        "the current generation is unchanged",
    )?;
    let rejected = next_event(&events, "Rejected", |e| matches!(e, Event::Rejected { .. }))?;
    writeln!(out, "     event: {rejected}")?;

    writeln!(out, "7. Retire: drop the last handle of generation {g2}.")?;
    drop(old);
    let retired = next_event(
        &events,
        "Retired",
        |e| matches!(e, Event::Retired { generation, .. } | Event::RetireBlocked { generation, .. } if *generation == g2),
    )?;
    writeln!(out, "     event: {retired}")?;
    if matches!(retired, Event::RetireBlocked { .. }) {
        check(
            out,
            module.unload_blocked().contains(&g2),
            "unload_blocked() reports it",
        )?;
    }
    let live = module.live_generations();
    check(
        out,
        !live.contains(&g2),
        &format!("generation {g2} is gone: live_generations() is {live:?}"),
    )?;
    check(
        out,
        live.contains(&g1) && before.greet("x") == "hello x",
        &format!("generation {g1}, older and not current either, stays: `before` still pins it"),
    )?;
    check(
        out,
        module.wait_for_generation(g3, WAIT)? == g3,
        "wait_for_generation(g3) returns at once",
    )?;
    drop((before, new));
    writeln!(out, "All checks passed.")?;
    Ok(())
}
