//! Reloadable Rust modules.
//!
//! Mark a module with [`#[hot_module]`](hot_module); build its crate as both `rlib` (linked into
//! the host as generation 0) and `cdylib` (the reloadable artifact). While the host runs, new
//! builds of that artifact are verified and loaded as new *generations*:
//!
//! - plain calls (`hello::greet("x")`) run the generation current at the moment of the call;
//! - a `Handle` (`hello::Handle::current()`) pins the generation it captured, however many
//!   reloads happen, until it is dropped;
//! - a library whose signatures or layouts differ from what the host was compiled against is
//!   refused with an [`Error`] that names the file and the difference, and never called;
//! - a generation is unloaded as soon as nothing pins it and it is no longer current.
//!
//! ```
//! #[hotmod::hot_module]
//! pub mod hello {
//!     pub fn greet(name: &str) -> String {
//!         format!("hello {name}")
//!     }
//! }
//!
//! // Nothing loaded yet: generation 0, the code compiled into this binary, serves.
//! let h = hello::Handle::current();
//! assert_eq!(h.greet("world"), "hello world");
//! assert_eq!(h.generation(), 0);
//! assert_eq!(hello::module().live_generations(), [0]);
//! ```
//!
//! # A project
//!
//! The hot module lives in a crate of its own, which the host depends on:
//!
//! ```toml
//! # greeter/Cargo.toml
//! [lib]
//! crate-type = ["rlib", "cdylib"]   # rlib: linked into the host; cdylib: the reloadable file
//!
//! [dependencies]
//! hotmod = "0.1"
//! ```
//!
//! The host calls the module's functions as usual. To load new builds as they come, run it
//! with `HOTMOD_REBUILD=1` in the environment (or write `#[hot_module(rebuild)]`): at the
//! module's first use hotmod starts watching the module crate's sources, runs
//! `cargo build --lib -p greeter` after every save (the host's profile and target directory;
//! greeter's package alone without debug info, which makes saves go live 15–27 % sooner)
//! and loads the result. `HOTMOD_WATCH=1` (`#[hot_module(watch)]`) only watches the library
//! file, for builds you run yourself (`cargo build -p greeter`). From code:
//! [`module().reload()`](Module::reload) loads the library once,
//! [`watch()`](Module::watch) and [`rebuild_on_save()`](Module::rebuild_on_save) start the
//! same services, [`unwatch()`](Module::unwatch) stops them.
//!
//! The library loaded is [`module().path()`](Module::path): the path given to
//! [`set_path`](Module::set_path), else the environment variable `HOTMOD_<CRATE>_PATH`, else
//! `#[hot_module(path = "…")]`, else cargo's location of the crate's cdylib next to the running
//! executable, `target/<profile>/lib<crate>.so`. Every generation is loaded from a private copy
//! of that file, so a build may overwrite it at any time.
//!
//! # Plain calls and handles
//!
//! A plain call runs the generation current when it starts and keeps it loaded until it
//! returns; two calls in a row may run two generations if a reload lands between them. A
//! `Handle` is for a unit of work that must see one version of the code from start to end (a
//! request, a frame, a job): pin it at the start, make every call through it, drop it at the
//! end. It is `Clone + Send + Sync + 'static`; pinning costs an atomic increment, a plain call
//! about as much as a call through a function pointer. Module code that calls its own module's
//! functions stays in its own generation.
//!
//! # What may change without a restart
//!
//! Function bodies, private helpers, constants, statics, new functions and new types. Refused at
//! load, while the current generation keeps serving: a hot function's changed or removed
//! signature; a changed struct, enum or `dyn` trait of the module that crosses the boundary
//! (size, alignment, field order, names or types, methods); a library from another compiler
//! (rustc version and target) or hotmod ABI version; a library another user could have written
//! (see [`allow_insecure_paths`]). Types from other crates are compared by name, size and
//! alignment: keep the module's dependencies at the host's versions (one `Cargo.lock`).
//!
//! A generation's `static`s and `thread_local!`s are its own and start fresh. State that must
//! survive a reload lives in the host and is passed in (`fn update(state: &mut State)`), or is
//! declared in the module as [`State`] with `#[hotmod::state]` (feature `state`): it is handed to
//! each new generation, and migrated with serde when its type changes.
//!
//! The methods of the module's public types, written in its own `impl` blocks, are hot too;
//! [`#[not_hot]`](not_hot) keeps one compiled into the host.
//!
//! What [`#[hot_module]`](hot_module) refuses at compile time — generic, `async`, `const`,
//! `unsafe` and `extern` functions and methods, `self` receivers on free functions,
//! `impl Trait`, and return values that would point into an unloaded library (references, trait
//! objects, function pointers) unless wrapped in [`Pinned`] — is listed with the reasons in its
//! documentation.
//!
//! # More control
//!
//! - [`#[on_load]`](on_load): a function every new generation runs first; it goes live only if
//!   the function returns `Ok`.
//! - Staged mode: after [`set_staged(true)`](Module::set_staged) new builds wait until
//!   [`apply_staged()`](Module::apply_staged), e.g. at the top of a game loop's frame.
//! - [`snapshot!`] pins several modules at one instant; [`load_all`] switches several modules
//!   all or nothing.
//! - [`restart`]: where a change cannot be loaded (a signature, a boundary type), a host that
//!   opted in rebuilds itself and hands its state, sockets and terminal to the new executable:
//!   beside the old process for a server, in place (`exec`) for a terminal program.
//! - [`Rollback`]: a new generation whose first calls keep panicking is replaced by the previous
//!   one ([`set_rollback`](Module::set_rollback)).
//! - [`Module::subscribe`] gives every [`Event`] (built, loaded, rejected, staged, retired, …);
//!   each one's `Display` is a progress line, and each is also logged through `tracing`
//!   (target `hotmod`). While a module watches or rebuilds, those lines go to stderr unless
//!   the host subscribes, has a `tracing` subscriber, or calls [`print_progress`]`(false)`.
//!
//! # `fork`
//!
//! A process may `fork` while other threads call, pin or load hot modules. The child keeps
//! calling; its collector unloads what the child no longer uses; its first load makes a private
//! directory of its own, and neither its generations nor its exit touch the parent's. Only a
//! module whose load another thread had under way at the fork refuses loads in the child
//! ([`Error::ForkedDuringLoad`]): that load stopped half-way and can never finish there. Handles
//! the parent's other threads held keep their generations loaded in the child; watchers and
//! rebuilds do not run in it.
//!
//! # Platform support
//!
//! Linux with glibc is where hotmod runs and is tested. Generations unload even when their code
//! used thread-locals or `std::thread::current()`: right after loading a library, before its
//! code runs, hotmod redirects that library's thread-exit registrations
//! (`__cxa_thread_atexit_impl` and the pthread key functions) to hooks of its own, so glibc never
//! pins the library and no destructor runs from an unloaded one (on x86_64 and aarch64, whose
//! relocations hotmod reads; elsewhere such a library is kept mapped). Registrations hotmod
//! cannot see (C++ `thread_local` through libstdc++, `dlsym`, C11 `tss_create`) keep that
//! library mapped too; [`Event::RetireBlocked`] and [`Module::unload_blocked`] report it. Not undone at unload:
//! threads the module spawned and did not join, callbacks it registered elsewhere, process-wide
//! settings it changed. A panic in module code is caught at the boundary and raised again in the
//! caller.
//!
//! # Static builds
//!
//! Reloading is the default Cargo feature `reload`. Build without it (`default-features = false`
//! on every `hotmod` dependency in the build) and `#[hot_module]` compiles reloading out:
//!
//! - the `pub fn`s are the functions as written: a call is an ordinary direct call, inlined like
//!   any other;
//! - `Handle` is zero-sized and its methods call those functions directly; `generation()` is 0
//!   and `is_current()` true;
//! - `module()` still exists, so host code compiles unchanged: `generation()` is 0,
//!   `live_generations()` is `[0]`, and `load`, `reload`, `watch`, `rebuild_on_save` and
//!   `rebuild().start()` return [`Error::ReloadDisabled`] without touching any file;
//! - no descriptor is exported and hotmod links no loader or watcher (`libloading`, `libc` and
//!   `notify` are not even dependencies): nothing can be loaded, and an `#[on_load]` function
//!   never runs.
//!
//! ```toml
//! [dependencies]
//! hotmod = { version = "0.1", default-features = false }
//! ```
//!
//! Cargo unifies features: if any crate in the build enables `reload` (the default), every hot
//! module in that build is reloadable. So a shipping build depends on hotmod with
//! `default-features = false` everywhere and turns reloading on only for development, e.g. with
//! a feature of the host (`dev = ["hotmod/reload"]`, `cargo run --features dev`).

#![warn(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

// The public façade: the types users name, each written once for both builds.
mod module;
mod pinned;
mod rollback;

// What the façade delegates to: reloading, or compiled out (`module.rs`).
#[cfg(feature = "reload")]
#[path = "reloading.rs"]
mod imp;
#[cfg(not(feature = "reload"))]
#[path = "disabled.rs"]
mod imp;

// The reloading runtime, top to bottom (docs/architecture.md): services, the load pipeline and
// the call paths, the runtime, then generations, loading and the platform.
#[cfg(feature = "reload")]
mod abi;
#[cfg(feature = "reload")]
mod builder;
#[cfg(feature = "reload")]
mod direct_build;
#[cfg(feature = "reload")]
mod fork;
#[cfg(feature = "reload")]
mod generation;
#[cfg(hotmod_restart)]
mod handover;
#[cfg(feature = "reload")]
mod hazard;
#[cfg(feature = "reload")]
mod hold;
#[cfg(feature = "reload")]
mod invocation;
#[cfg(feature = "reload")]
mod json;
#[cfg(feature = "reload")]
mod loader;
#[cfg(feature = "reload")]
mod os;
#[cfg(feature = "reload")]
mod pin;
#[cfg(feature = "reload")]
mod runtime;
#[cfg(feature = "reload")]
mod security;
#[cfg(feature = "reload")]
mod shadow;
#[cfg(feature = "reload")]
mod transaction;
#[cfg(feature = "reload")]
mod verify;
#[cfg(feature = "reload")]
mod watcher;

// Shared by both builds.
mod artifact_path;
pub mod describe;
mod error;
// Without `reload` nothing emits events; `subscribe` still works.
#[cfg_attr(not(feature = "reload"), allow(dead_code))]
mod events;
// Without `reload` nothing watches, so nothing is printed; `print_progress` still exists.
#[cfg_attr(not(feature = "reload"), allow(dead_code))]
mod progress;
mod snapshot;
// Without `reload` a `State` is never handed over: only its value API is used.
#[cfg_attr(not(feature = "reload"), allow(dead_code, unused_imports))]
mod state;

pub use describe::{Describe, Owned};
pub use error::{Error, Incompatibility};
pub use events::{Event, Events};
pub use hotmod_macros::{describe_trait, hot_module, not_hot, on_load, state, Describe};
pub use module::{load_all, Module, Rebuild};
pub use pinned::{Pinnable, Pinned};
pub use progress::print_progress;
pub mod restart;
pub use rollback::Rollback;
pub use snapshot::snapshot;
pub use state::State;

/// The JSON value a state's `migrate` function receives (feature `state`).
#[cfg(feature = "state")]
pub use serde_json;

/// Lets every hot module of this process load libraries that other users could have written
/// (see [`Error::InsecurePath`]), and lets the built-in rebuild build crates whose sources or
/// configuration they could have written (see [`Error::InsecureBuildInput`]): for shared build
/// directories you trust. Off by default. Does nothing when reloading is compiled out: that
/// build loads no library.
pub fn allow_insecure_paths(allow: bool) {
    imp::allow_insecure_paths(allow);
}

/// What the code generated by `#[hot_module]` calls. Not a public API: it changes without notice.
#[cfg(feature = "reload")]
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// What the fuzz targets in `fuzz/` call (feature `fuzz`). Not a public API.
#[cfg(feature = "fuzz")]
#[doc(hidden)]
#[path = "fuzz.rs"]
pub mod __fuzz;

/// What the code generated by `#[hot_module]` calls when reloading is compiled out.
#[cfg(not(feature = "reload"))]
#[doc(hidden)]
pub mod __private {
    pub use core::option::Option::{None, Some};
}
