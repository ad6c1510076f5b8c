//! Module code that runs while its generation retires — or, for a `Pinned` value, as its last
//! use ends — may call back into hotmod without a deadlock: `live_generations()`,
//! `apply_staged()`, `load(..)` and `reload()` all return, and the generation still unloads.
//!
//! The fixture (`fixtures/reentry_fixture`) calls a host function back from each such place: a
//! thread-local's destructor and a pthread key's destructor (the unload waits for those while
//! they run), its ELF finaliser (inside `dlclose`), the drop of its `#[hotmod::state]` value as
//! the generation retires, and the drop of a value it returned in a `Pinned`. The host function makes the four calls. The risky
//! part of each test (the load that retires the generation) runs on a thread of its own, and
//! every wait has a generous timeout: a deadlock fails the test instead of hanging it (and ends
//! the test binary, see [`deadlocked`]).

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hotmod::{Event, Events};
use reentry_fixture::reentry;

/// Generous for a busy 2-core machine; past it, a call that has not returned is a deadlock.
const TIMEOUT: Duration = support::EVENT_TIMEOUT;

/// What module code's call back does (see [`call_back`]), set by each test before it arms it.
struct Plan {
    /// Told first, when module code calls back.
    started: Sender<()>,
    /// A generation to wait for before calling into hotmod: a thread-exit destructor starts
    /// before the load that retires its generation, and calls back once that load made this
    /// generation current (it then unloads the destructor's generation, waiting for it).
    after: Option<u64>,
    /// What `load` loads (`reload` loads `path()`, set to the same file).
    library: PathBuf,
    /// Each call's result as it returns, then [`Step::Done`].
    steps: Sender<Step>,
}

#[derive(Debug)]
enum Step {
    LiveGenerations(Vec<u64>),
    ApplyStaged(Option<u64>),
    Load(Result<u64, String>),
    Reload(Result<u64, String>),
    Done,
}

static PLAN: Mutex<Option<Plan>> = Mutex::new(None);

/// The host function module code calls back (a plain `fn(u64)`: it crosses into the library).
/// It never panics: it runs inside module code's destructors and finaliser.
fn call_back(_token: u64) {
    let plan = PLAN.lock().unwrap_or_else(PoisonError::into_inner).take();
    let Some(plan) = plan else {
        return;
    };
    let _ = plan.started.send(());
    let module = reentry::module();
    if let Some(generation) = plan.after {
        let _ = module.wait_for_generation(generation, TIMEOUT);
    }
    let _ = plan
        .steps
        .send(Step::LiveGenerations(module.live_generations()));
    let _ = plan.steps.send(Step::ApplyStaged(module.apply_staged()));
    let loaded = module.load(&plan.library).map_err(|e| e.to_string());
    let _ = plan.steps.send(Step::Load(loaded));
    let reloaded = module.reload().map_err(|e| e.to_string());
    let _ = plan.steps.send(Step::Reload(reloaded));
    let _ = plan.steps.send(Step::Done);
}

/// The receiving ends of a plan.
struct Calls {
    started: Receiver<()>,
    steps: Receiver<Step>,
}

/// Sets the plan for the next call back.
fn plan(library: &Path, after: Option<u64>) -> Calls {
    let (started, started_rx) = mpsc::channel();
    let (steps, steps_rx) = mpsc::channel();
    *PLAN.lock().unwrap_or_else(PoisonError::into_inner) = Some(Plan {
        started,
        after,
        library: library.to_path_buf(),
        steps,
    });
    Calls {
        started: started_rx,
        steps: steps_rx,
    }
}

/// Loads `library` on a thread of its own: should an earlier test have left a load stuck, this
/// one fails too, instead of hanging.
fn load_within_timeout(library: &Path) -> u64 {
    let library = library.to_path_buf();
    on_a_thread(move || {
        let module = reentry::module();
        module.set_staged(false);
        module.load(&library).map_err(|e| e.to_string())
    })
    .recv_timeout(TIMEOUT)
    .unwrap_or_else(|_| deadlocked(format!("a load did not return within {TIMEOUT:?}")))
    .unwrap_or_else(|e| panic!("the fixture does not load: {e}"))
}

/// Starts a test: the fixture's library at `path()`, loaded as a fresh current generation
/// (returned), nothing staged.
fn fresh_generation() -> (PathBuf, u64) {
    let library = support::library("reentry").to_path_buf();
    let module = reentry::module();
    module.set_path(&library);
    let generation = load_within_timeout(&library);
    assert_eq!(module.generation(), generation);
    (library, generation)
}

/// Fails a test whose wait for a call timed out. Threads stuck in a deadlock keep hotmod's locks
/// (the next test would wait for them too) and, inside a finaliser, the dynamic loader's lock,
/// which the process's exit handlers take as well: ending the test binary at once, without
/// those handlers, is the only way it ends.
fn deadlocked(message: String) -> ! {
    // Straight to the process's stderr: the test harness's capture of `eprintln!` would be lost.
    let _ = writeln!(std::io::stderr(), "{message}");
    // SAFETY: `_exit` ends the process at once; nothing of this process runs afterwards.
    unsafe { libc::_exit(101) }
}

/// Runs `f` on a thread of its own; its result arrives on the receiver.
fn on_a_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    receiver
}

/// Loads `library` on a thread of its own; the load's result arrives on the receiver.
fn load_on_a_thread(library: &Path) -> Receiver<Result<u64, String>> {
    let library = library.to_path_buf();
    on_a_thread(move || reentry::module().load(&library).map_err(|e| e.to_string()))
}

/// Waits for module code to call back from `place`.
fn called_back(calls: &Calls, place: &str) {
    calls
        .started
        .recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| deadlocked(format!("{place}: module code never called back")));
}

/// Checks that each of the call back's four calls into hotmod returned (a deadlock shows as a
/// call that never does), with what they should return.
fn every_call_returns(calls: &Calls, place: &str) {
    let mut returned = Vec::new();
    for call in [
        "live_generations()",
        "apply_staged()",
        "load(..)",
        "reload()",
    ] {
        match calls.steps.recv_timeout(TIMEOUT) {
            Ok(step) => returned.push(step),
            Err(_) => deadlocked(format!(
                "{place}: {call}, called back from module code, did not return within \
                 {TIMEOUT:?} (a deadlock); before it: {returned:?}"
            )),
        }
    }
    assert!(
        matches!(calls.steps.recv_timeout(TIMEOUT), Ok(Step::Done)),
        "{place}: the call back did not finish"
    );
    let [Step::LiveGenerations(live), Step::ApplyStaged(applied), Step::Load(loaded), Step::Reload(reloaded)] =
        &returned[..]
    else {
        panic!("{place}: unexpected steps {returned:?}");
    };
    assert_eq!(live.first(), Some(&0), "{place}: {live:?}");
    assert_eq!(*applied, None, "{place}: nothing was staged");
    let loaded = loaded
        .clone()
        .unwrap_or_else(|e| panic!("{place}: load from module code failed: {e}"));
    let reloaded = reloaded
        .clone()
        .unwrap_or_else(|e| panic!("{place}: reload from module code failed: {e}"));
    assert_eq!(reloaded, loaded + 1, "{place}");
}

/// Waits until every generation of `generations` retired, in any order, and checks that each
/// unloaded.
fn all_retire(events: &Events, generations: &[u64], place: &str) {
    let mut waiting = generations.to_vec();
    while !waiting.is_empty() {
        let event = events
            .wait_for(TIMEOUT, |e| {
                matches!(e, Event::Retired { generation, .. } | Event::RetireBlocked { generation, .. } if waiting.contains(generation))
            })
            .unwrap_or_else(|| panic!("{place}: generations {waiting:?} never retired"));
        let (Event::Retired { generation, .. } | Event::RetireBlocked { generation, .. }) = &event
        else {
            unreachable!()
        };
        assert!(
            matches!(event, Event::Retired { .. }),
            "{place}: generation {generation} stayed mapped: {event}"
        );
        waiting.retain(|g| g != generation);
    }
}

/// The retiring generation's thread-exit destructor calls back: the thread exits while its
/// generation is current; the destructor waits for the next load to make generation g+1
/// current, and then calls into hotmod while that load unloads generation g — which waits for
/// the destructor to return.
fn a_thread_exit_destructor_calls_back(arm: fn(fn(u64), u64) -> bool, place: &str) {
    let _serial = support::serial();
    let (library, generation) = fresh_generation();
    let module = reentry::module();
    let events = module.subscribe();
    let calls = plan(&library, Some(generation + 1));

    let exited = on_a_thread(move || arm(call_back, 1));
    assert_eq!(exited.recv_timeout(TIMEOUT), Ok(true), "{place}: armed");
    called_back(&calls, place);
    // The destructor is running now, waiting for generation + 1. Load it: that load retires
    // `generation`, whose unload waits for the destructor, which calls back into hotmod.
    let next = load_on_a_thread(&library);
    every_call_returns(&calls, place);
    let loaded = next.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
        deadlocked(format!(
            "{place}: the load that retires the generation never returned"
        ))
    });
    assert_eq!(loaded, Ok(generation + 1), "{place}");
    // The call back's load and reload retired generation + 1 and + 2.
    all_retire(
        &events,
        &[generation, generation + 1, generation + 2],
        place,
    );
    assert!(
        !module.unload_blocked().contains(&generation),
        "{place}: {:?}",
        module.unload_blocked()
    );
}

#[test]
fn a_thread_local_destructor_of_a_retiring_generation_calls_back_into_hotmod() {
    fn arm(callback: fn(u64), token: u64) -> bool {
        reentry::call_at_thread_exit(callback, token);
        true
    }
    a_thread_exit_destructor_calls_back(arm, "a thread-local destructor");
}

#[test]
fn a_key_destructor_of_a_retiring_generation_calls_back_into_hotmod() {
    a_thread_exit_destructor_calls_back(
        reentry::call_at_key_destruction,
        "a pthread key destructor",
    );
}

/// Module code that runs on the unloading thread itself, inside `dlclose`: a load from there
/// retires the generation it replaces, which unloads after that `dlclose` returns (not inside
/// it, where glibc would only postpone the unmapping and hotmod would report it kept).
#[test]
fn the_elf_finaliser_of_a_retiring_generation_calls_back_into_hotmod() {
    let _serial = support::serial();
    let generation = the_replaced_generation_calls_back("an ELF finaliser", || {
        reentry::call_at_unload(call_back, 2)
    });
    // The finaliser's own load (generation + 2) retired generation + 1, and its reload
    // generation + 2: all three unloaded.
    let module = reentry::module();
    let current = module.generation();
    assert_eq!(current, generation + 3);
    assert_eq!(module.live_generations(), vec![0, current]);
}

/// The state value of the generation being replaced: its copy keeps it after the value moved to
/// the next generation, and hotmod drops it — module code — as that generation retires.
#[test]
fn the_state_value_of_a_retiring_generation_calls_back_into_hotmod_when_dropped() {
    let _serial = support::serial();
    the_replaced_generation_calls_back("a #[hotmod::state] value's drop", || {
        assert!(reentry::call_when_state_dropped(call_back, 3) >= 1);
    });
}

/// From a fresh generation g armed by `arm` to call back from `place` as it retires: a load on
/// another thread replaces it (generation g + 1), the call back's four calls return, the load
/// returns, and g, g + 1 and g + 2 (which the call back's load and reload retired) all unload.
/// Returns g.
fn the_replaced_generation_calls_back(place: &str, arm: impl FnOnce()) -> u64 {
    let (library, generation) = fresh_generation();
    let module = reentry::module();
    let events = module.subscribe();
    let calls = plan(&library, None);
    arm();

    let next = load_on_a_thread(&library);
    called_back(&calls, place);
    every_call_returns(&calls, place);
    assert_eq!(
        next.recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| deadlocked(format!("{place}: the load never returned"))),
        Ok(generation + 1)
    );
    all_retire(
        &events,
        &[generation, generation + 1, generation + 2],
        place,
    );
    assert!(
        module.unload_blocked().is_empty(),
        "{place}: {:?}",
        module.unload_blocked()
    );
    generation
}

/// A `Pinned` value of an old generation, dropped by the host: its drop glue is that
/// generation's code and calls back; then its pin goes, and the generation retires.
#[test]
fn a_pinned_value_of_an_old_generation_calls_back_into_hotmod_when_dropped() {
    let _serial = support::serial();
    let place = "a Pinned value's drop";
    let (library, generation) = fresh_generation();
    let module = reentry::module();
    let guard = reentry::guard(call_back, 4);
    assert_eq!(guard.generation(), Some(generation));
    assert_eq!(guard.token(), 4);
    let next = load_within_timeout(&library);
    assert!(
        module.live_generations().contains(&generation),
        "the value keeps its generation"
    );
    let events = module.subscribe();
    let calls = plan(&library, None);

    let dropped = on_a_thread(move || drop(guard));
    called_back(&calls, place);
    every_call_returns(&calls, place);
    dropped
        .recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| deadlocked(format!("{place}: the drop never returned")));
    // The call back's load and reload retired `next` and the generation after it.
    all_retire(&events, &[generation, next, next + 1], place);
    assert!(
        module.unload_blocked().is_empty(),
        "{place}: {:?}",
        module.unload_blocked()
    );
}
