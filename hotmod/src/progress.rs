//! Progress on stderr for a host that does not take hotmod's events itself.
//!
//! While a module watches or rebuilds (started by `#[hot_module(watch)]`,
//! `#[hot_module(rebuild)]`, `HOTMOD_WATCH=1`, `HOTMOD_REBUILD=1`, `module().watch()`,
//! `rebuild_on_save()` or `rebuild().start()`; ended by `unwatch()`), hotmod says so in one line
//! on stderr when it starts, and prints each of the module's events there as one
//! `hotmod: <event>` line (a failed build's line is followed by the compiler's errors). A line
//! is printed only when nobody else takes it:
//!
//! - no [`Events`](crate::Events) subscription of that module is alive (checked at every
//!   event: a host that subscribes later stops the printing from then on, one that drops every
//!   subscription gets it back);
//! - no `tracing` subscriber receives what the emitting thread logs (every event is also logged
//!   through `tracing`, target `hotmod`; a global default subscriber is seen from every thread);
//! - printing was not turned off with [`print_progress(false)`](print_progress) or
//!   `HOTMOD_QUIET=1`.
//!
//! Explicit `load`/`reload` calls of a module that does not watch print nothing: the caller gets
//! every outcome as a `Result`.

use std::fmt::Display;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Set by `print_progress(false)`.
static OFF: AtomicBool = AtomicBool::new(false);

/// Whether hotmod may print its progress on stderr: on by default; `print_progress(false)`
/// silences it for every hot module of the process, from the next event on, and
/// `print_progress(true)` restores the default.
///
/// What is printed: when a module starts watching or rebuilding (`#[hot_module(watch)]` or
/// `(rebuild)`, `HOTMOD_WATCH=1` or `HOTMOD_REBUILD=1`, `module().watch()`, `rebuild_on_save()`,
/// `rebuild().start()`), one line saying so, then, until `unwatch()`, each of the module's
/// [`Event`](crate::Event)s as `hotmod: <its Display>` (a failed build's line is followed by the
/// compiler's errors as cargo shows them). Explicit `load`/`reload` calls of a module that does
/// not watch print nothing: their caller gets the `Result`.
///
/// Printed only while the host takes the events no other way, checked at every line: a host
/// that holds a [`subscribe()`](crate::Module::subscribe) subscription of the module, or that
/// installed a `tracing` subscriber (every event is logged with target `hotmod`; a global
/// default is seen from hotmod's threads, a thread's scoped default only on that thread), sees
/// no progress on stderr. So a subscription or a tracing subscriber that comes after printing
/// started stops it from then on; dropping every subscription of the module brings it back.
/// `HOTMOD_QUIET=1` (anything but empty or `0`) in the environment silences it as well,
/// whatever this function was told.
///
/// ```
/// // This host reports reloads in its own way, or not at all.
/// hotmod::print_progress(false);
/// ```
pub fn print_progress(on: bool) {
    // From a loaded library's code: the host's setting (its copy of this function).
    #[cfg(feature = "reload")]
    if let Some(host) = crate::abi::host_links() {
        return (host.print_progress)(on);
    }
    OFF.store(!on, Ordering::Relaxed);
}

/// `HOTMOD_QUIET` set to anything but empty or `0`; read once.
fn quiet_env() -> bool {
    static QUIET: OnceLock<bool> = OnceLock::new();
    *QUIET
        .get_or_init(|| std::env::var_os("HOTMOD_QUIET").is_some_and(|v| !v.is_empty() && v != "0"))
}

/// Whether a `tracing` subscriber receives what this thread logs: a scoped default of this
/// thread, or the global default.
fn tracing_takes_it() -> bool {
    tracing::dispatcher::get_default(|dispatch| !dispatch.is::<tracing::subscriber::NoSubscriber>())
}

/// Whether a progress line that no subscriber received should be printed now, on this thread.
pub(crate) fn wanted() -> bool {
    !OFF.load(Ordering::Relaxed) && !quiet_env() && !tracing_takes_it()
}

/// Writes `hotmod: <line>` to stderr in one write, so a process that exits meanwhile leaves no
/// torn line. A failed write is ignored: progress is never worth a panic in the watcher's
/// thread.
pub(crate) fn print(line: impl Display) {
    let text = format!("hotmod: {line}\n");
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `tracing` subscriber that takes everything and keeps nothing.
    struct Sink;

    impl tracing::Subscriber for Sink {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    // One test, so the process-wide switch is not raced by another test of this binary.
    #[test]
    fn a_tracing_subscriber_or_the_switch_silences_progress() {
        // `cargo test` may run with HOTMOD_QUIET set; the rest is only meaningful without it.
        if quiet_env() {
            return;
        }
        assert!(!tracing_takes_it(), "no subscriber in this test thread");
        assert!(wanted());
        tracing::subscriber::with_default(Sink, || {
            assert!(tracing_takes_it(), "a scoped subscriber is seen");
            assert!(!wanted());
        });
        assert!(wanted(), "the scoped subscriber is gone again");
        print_progress(false);
        assert!(!wanted());
        print_progress(true);
        assert!(wanted());
    }
}
