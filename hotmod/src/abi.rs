//! The stable boundary between a host and a module's cdylib.
//!
//! A module's cdylib exports exactly one symbol per hot module: a [`ModuleDescriptor`] static,
//! named by the macro (`__hotmod_v9__<crate>__<module>`). Everything a host needs to verify and
//! call the library hangs off it: the module path, the ABI version, the toolchain identity, and
//! one [`FnEntry`] per `pub fn` (name, signature, the compiler's description of every parameter
//! and return type, trampoline).
//!
//! Invariants:
//! - Every type here is `#[repr(C)]` and built only from integers, raw pointers and function
//!   pointers. The first two fields (`magic`, `abi_version`) never move: a host reads them before
//!   trusting anything else, and the toolchain before calling any [`Describer`] (a Rust-ABI
//!   function, like the descriptions it returns, `describe.rs`).
//! - A trampoline never unwinds: [`trampoline`] and [`register_trampoline`] catch the panic
//!   inside the library and hand its message back as a value, a [`PanicMessage`] that is null
//!   when the function returned.
//! - Each function's trampoline is of one of two kinds ([`FnEntry::kind`]). A *register*
//!   trampoline ([`CALL_REGISTERS`]) is `extern "C" fn(a, b, ..) -> Returned<R>`: arguments in
//!   registers where the platform's C ABI puts them, the result and the panic message pointer in
//!   two registers (`Returned` is two words). The macro picks it when every parameter is a
//!   primitive, a reference or a raw pointer and the result is `()` or a primitive of at most one
//!   register. Every other function has a *memory* trampoline ([`CALL_MEMORY`], [`Trampoline`]):
//!   pointers to the argument tuple and to the return slot.
//! - Arguments and return values are ordinary Rust values passed by Rust's own rules. That is
//!   sound only because the loader refuses a library unless toolchain identity (target features
//!   included), signatures, layouts and trampoline kinds all match the host's, so both sides
//!   agree on every layout and calling convention involved.
//!
//! This file is the only part of hotmod a module's cdylib reaches through its exported
//! descriptor; keep it free of the loader, the watcher and their dependencies.

use std::any::Any;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::describe::Describer;

/// Bumped whenever any type in this file changes shape or meaning.
pub const ABI_VERSION: u32 = 9;

/// The first bytes of every descriptor.
pub const MAGIC: [u8; 8] = *b"HOTMOD\0\x01";

/// Prefix of every exported descriptor symbol: `__hotmod_v<ABI_VERSION>__`, checked against
/// [`ABI_VERSION`] at compile time (and written by `hotmod-macros`' `symbol_name`, which the loader
/// tests exercise). The loader also searches a library's bytes for `__hotmod_v` to tell "not a
/// hotmod library" from "a library of another hot module" or "of another ABI version".
pub const SYMBOL_PREFIX: &str = "__hotmod_v9__";

/// What every descriptor symbol starts with, whatever its ABI version.
pub const SYMBOL_STEM: &str = "__hotmod_v";

/// `SYMBOL_PREFIX` is `SYMBOL_STEM`, the decimal `ABI_VERSION`, then `__`.
const _: () = assert!(prefix_names_version(SYMBOL_PREFIX.as_bytes(), ABI_VERSION));

const fn prefix_names_version(prefix: &[u8], version: u32) -> bool {
    let stem = SYMBOL_STEM.as_bytes();
    let mut i = 0;
    while i < stem.len() {
        if i >= prefix.len() || prefix[i] != stem[i] {
            return false;
        }
        i += 1;
    }
    let mut parsed: u32 = 0;
    let mut digits = 0;
    while i < prefix.len() && prefix[i].is_ascii_digit() {
        parsed = parsed * 10 + (prefix[i] - b'0') as u32;
        digits += 1;
        i += 1;
    }
    digits > 0
        && parsed == version
        && i + 2 == prefix.len()
        && prefix[i] == b'_'
        && prefix[i + 1] == b'_'
}

/// rustc version, commit, target triple, enabled target features, hotmod version and a digest
/// of hotmod's interface source (`build.rs`) this crate was compiled with. Target features decide which registers carry floats and vectors in a
/// register trampoline's calling convention, so a library built with others is refused.
pub const TOOLCHAIN: &str = env!("HOTMOD_TOOLCHAIN");

/// A memory trampoline: reads the argument tuple from `args` and writes the return value to
/// `ret` (returning null), or returns a panic's message. The flag travels in a register: a call
/// that does not panic touches nothing but its return slot.
pub type Trampoline = unsafe extern "C" fn(args: *mut u8, ret: *mut u8) -> PanicMessage;

/// A function called through a host's handle (`FnEntry::handle`): `handle` is a host's
/// `Handle` (`HandleOps`), `args` and `ret` as for a [`Trampoline`].
pub type HandleTrampoline =
    unsafe extern "C" fn(handle: *const (), args: *mut u8, ret: *mut u8) -> PanicMessage;

/// A panic's message, boxed by the library and owned by whoever receives it; null when the
/// function returned. Allocated by the library and freed by its caller (the host, or another
/// library whose call the host's forwarding trampoline handed on): both use the process's
/// global allocator as long as neither installs its own `#[global_allocator]`
/// (see docs/reload-model.md).
pub type PanicMessage = *mut String;

/// A trampoline of either kind as the descriptor stores it; the host casts it back to the type
/// its own [`FnEntry::kind`] names (the loader checked that the library's kind is the same).
pub type RawTrampoline = unsafe extern "C" fn();

/// [`FnEntry::kind`] of a memory trampoline ([`Trampoline`]).
pub const CALL_MEMORY: u32 = 0;

/// [`FnEntry::kind`] of a register trampoline: `extern "C" fn(a, b, ..) -> Returned<R>`.
pub const CALL_REGISTERS: u32 = 1;

/// What a register trampoline returns: two words, so the platform's C ABI returns it in two
/// registers (`rax:rdx`, or `xmm0` and `rax` for a float, on x86-64; `x0:x1` on AArch64).
/// `value` is initialised exactly when `panic` is null.
#[repr(C)]
pub struct Returned<R> {
    /// The function's result.
    pub value: MaybeUninit<R>,
    /// The panic's message, or null.
    pub panic: PanicMessage,
}

/// A `&'static str` with a layout fixed by `#[repr(C)]`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StrRef {
    ptr: *const u8,
    len: usize,
}

impl StrRef {
    /// Borrow a static string.
    pub const fn new(s: &'static str) -> Self {
        StrRef {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The string, or `"<invalid utf-8>"` if a foreign library stored bytes that are not UTF-8.
    ///
    /// # Safety
    /// `self` must point to `len` readable bytes that stay mapped for `'a`: true for a `StrRef`
    /// built by [`StrRef::new`] in this process, or read from a library that stays loaded for `'a`.
    pub unsafe fn as_str<'a>(&self) -> &'a str {
        if self.len == 0 {
            return "";
        }
        // SAFETY: the caller guarantees `ptr..ptr+len` is readable for `'a`.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        std::str::from_utf8(bytes).unwrap_or("<invalid utf-8>")
    }
}

/// A `&'static [T]` with a layout fixed by `#[repr(C)]`.
#[repr(C)]
pub struct SliceRef<T: 'static> {
    ptr: *const T,
    len: usize,
}

impl<T> Clone for SliceRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SliceRef<T> {}

impl<T> SliceRef<T> {
    /// Borrow a static slice.
    pub const fn new(s: &'static [T]) -> Self {
        SliceRef {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Borrow a slice that is not static: whoever reads it relies on its owner keeping it alive
    /// (the host's links, kept until the library they were made for is unloaded).
    pub(crate) fn borrowed(s: &[T]) -> Self {
        SliceRef {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The slice.
    ///
    /// # Safety
    /// As for [`StrRef::as_str`]: the memory must stay mapped for `'a`.
    pub unsafe fn as_slice<'a>(&self) -> &'a [T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees `ptr..ptr+len` holds initialised `T`s mapped for `'a`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// What a module's cdylib exports, once per hot module.
#[repr(C)]
pub struct ModuleDescriptor {
    /// Always [`MAGIC`].
    pub magic: [u8; 8],
    /// Always [`ABI_VERSION`] of the hotmod that built the library.
    pub abi_version: u32,
    /// `module_path!()` of the hot module, e.g. `greeter::hello`.
    pub module_path: StrRef,
    /// [`TOOLCHAIN`] of the library.
    pub toolchain: StrRef,
    /// One entry per `pub fn`, in source order.
    pub functions: SliceRef<FnEntry>,
    /// The module's `#[hotmod::on_load]` function (argument `()`, return
    /// `Result<(), String>`), run before a new generation may become current.
    pub on_load: Option<Trampoline>,
    /// [`enter_library`] of the hotmod copy linked into the library: the host calls it right
    /// after verifying the descriptor, before any other code of the library runs, with the
    /// host's modules the library's embedded copies of other hot modules call instead.
    pub enter: unsafe extern "C" fn(links: *const HostLinks),
    /// The handles of the hotmod copy linked into the build (`__private::HOST_HANDLES`): in
    /// the host's own descriptor, what a library's code takes, calls and drops a handle of
    /// this module with (`HostLink::handles`).
    pub handles: &'static HandleOps,
    /// The module's `#[hotmod::state]` statics, handed from generation to generation.
    pub states: SliceRef<StateEntry>,
    /// The items of the module a host runs its own copy of (public constants and statics,
    /// methods), each with a digest of its source: a library whose digests differ changed code
    /// the host does not run, which a load reports (`Event::StaleItems`).
    pub kept: SliceRef<KeptItem>,
}

/// An item a host runs its own copy of, and a digest of its source tokens.
#[repr(C)]
pub struct KeptItem {
    /// `const GREETING`, `Visitor::initial`, `<Visitor as Display>::fmt` (`not_hot` methods).
    pub name: StrRef,
    /// FNV-1a of the item's tokens as written, doc comments left out.
    pub digest: u64,
}

/// One `#[hotmod::state]` static of a hot module.
///
/// Each generation's copy of the static has a status (see `state.rs`): *ready* (accesses run),
/// *pending* (accesses wait until the value arrives) or *moved* (accesses panic: the value went
/// to another generation). The host drives the hand-over through these trampolines; none of
/// them waits for the status.
#[repr(C)]
pub struct StateEntry {
    /// The static's name.
    pub name: StrRef,
    /// The state's version (`#[hotmod::state(version = N)]`, default 1).
    pub version: u32,
    /// `()` in, [`StateExport`] out: a serialized copy of the value (the trial hand-over); the
    /// value and the status stay. Fails if the copy has moved.
    pub export: Trampoline,
    /// [`StateImport`] in, `Result<(), String>` out: replaces the value with the serialized one,
    /// migrating it if it comes from another version. The status stays.
    pub import: Trampoline,
    /// [`StateTake`] in, [`StateExport`] out: serializes the value and marks the copy moved, in
    /// one step under the copy's lock (the final hand-over). The value is kept until a
    /// [`StateMark`] says what becomes of it. Fails, changing nothing, if the copy has moved
    /// already or serialization fails.
    pub take: Trampoline,
    /// [`StateMark`] in, `()` out: sets the copy's status and wakes accesses waiting for it.
    pub mark: Trampoline,
}

/// What a state's export trampoline returns: the serialized value, or why it failed.
pub type StateExport = Result<String, String>;

/// What a state's import trampoline takes: the exporting side's version and serialized value.
pub type StateImport = (u32, String);

/// What a state's take trampoline takes: the number of the generation the value moves to (it
/// names it in the message of a refused access).
pub type StateTake = u64;

/// The status a state's mark trampoline sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateMark {
    /// Accesses run again on the value the copy holds (a hand-over that was undone, or the
    /// value arrived).
    Ready,
    /// Accesses wait: the value is on its way to this copy.
    Pending,
    /// Accesses panic, naming generation `to`; the value the copy held is dropped.
    Moved {
        /// The generation the value went to.
        to: u64,
    },
}

/// The pin a [`Pinned`](crate::Pinned) carries of the generation that made its value, and how
/// to release it wherever the `Pinned` is dropped.
///
/// A `Pinned` crosses between copies of hotmod: a library's embedded copy of another hot module
/// gets its `Pinned` results from the host's module (the host's forwarding trampoline makes the
/// call and pins the host's generation), and the library's code may keep or drop them. Each
/// copy has its own runtime (its own registry, hazard slots and collector), so the count must
/// go back through the runtime that raised it: `release` is that runtime's function, and drops
/// the count there, whichever copy's code runs the drop.
#[repr(C)]
pub struct HeldPin {
    /// The pinned generation's number (`Pinned::generation`), kept here so that reading it
    /// does not depend on the other copy's layout of a generation.
    pub(crate) number: u64,
    /// Opaque to everyone but `release`: its runtime and generation.
    pub(crate) runtime: *const (),
    pub(crate) generation: *const (),
    /// Releases the count (`runtime.rs`'s `release_held`, in the copy that took it).
    pub(crate) release: unsafe extern "C" fn(runtime: *const (), generation: *const ()),
}

impl Drop for HeldPin {
    fn drop(&mut self) {
        // SAFETY: `release`, `runtime` and `generation` were made together by the runtime that
        // raised this count (`CountPin::into_held`), which lives in the host or in a library
        // the count's generation belongs to; the `HeldPin` owns the count, and drops it once.
        unsafe { (self.release)(self.runtime, self.generation) }
    }
}

// SAFETY: a `HeldPin` is a count that any thread may release (an atomic decrement behind
// `release`); its pointers are only passed back to `release`.
unsafe impl Send for HeldPin {}
// SAFETY: `&HeldPin` allows reading `number` only.
unsafe impl Sync for HeldPin {}

/// True in a hotmod copy that lives inside a library loaded as a generation (set by
/// [`enter_library`]); false in the host.
pub static HOSTED: AtomicBool = AtomicBool::new(false);

/// Prepares a library loaded as a generation, inside it (its own copies of hotmod and std):
///
/// - its module statics learn that they live in a loaded generation, so they never start
///   watchers or builds of their own;
/// - its std gets a panic hook that prints a panic's message and location without a backtrace.
///   std's default hook resolves a backtrace (with `RUST_BACKTRACE` set) by mapping the
///   library's file into a cache of the library's own std, which nothing unmaps once the library
///   is gone: each generation that ever panicked would keep its whole file mapped until the
///   process exits. The panic itself still reaches the caller (see [`trampoline`]).
///
/// The hook replaces only the library's own std's hook; the host's is untouched.
///
/// # Safety
/// Call only through a verified descriptor of a library loaded as a generation, before any of
/// its other functions runs, and once per loaded copy (it sets that copy's panic hook), with
/// `links` null or valid until the library is unloaded.
pub unsafe extern "C" fn enter_library(links: *const HostLinks) {
    HOSTED.store(true, Ordering::Relaxed);
    LINKS.store(links.cast_mut(), Ordering::Release);
    std::panic::set_hook(Box::new(report_module_panic));
}

/// The panic hook of a loaded library's std: std's first line, without a backtrace.
fn report_module_panic(info: &std::panic::PanicHookInfo<'_>) {
    let location = info
        .location()
        .map(|at| format!(" at {at}"))
        .unwrap_or_default();
    let message = panic_message(info.payload());
    let wanted = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    let note = if wanted {
        "\nnote: hotmod does not capture backtraces in hot module code: resolving one would \
         keep the library mapped after its generation unloads"
    } else {
        ""
    };
    eprintln!("hot module code panicked{location}:\n{message}{note}");
}

/// One `pub fn` of a hot module.
#[repr(C)]
pub struct FnEntry {
    /// The function's name.
    pub name: StrRef,
    /// Its signature as written, normalised: `fn(&str, u32) -> String`.
    pub signature: StrRef,
    /// Every parameter's type as the compiler sees it (`describe.rs`), in order. Read only
    /// after the toolchain matched: a [`Describer`] is a Rust-ABI function pointer.
    pub params: SliceRef<Describer>,
    /// The return type's (`()` for none).
    pub ret: Describer,
    /// [`CALL_MEMORY`] or [`CALL_REGISTERS`]: the type `trampoline` really has.
    pub kind: u32,
    /// Calls the function: a [`Trampoline`] or a register trampoline, as `kind` says.
    pub trampoline: RawTrampoline,
    /// The same kind of trampoline, for a call in the build it is in: what a library's embedded
    /// copy of this module calls in the host. It hands the call on, with its own arguments, to
    /// the trampoline of the generation the caller's view sees, or makes a plain call. For a
    /// function returning `Pinned` it always makes the plain call, which pins the host's
    /// generation in the value (`HeldPin`).
    pub forward: Option<RawTrampoline>,
    /// The function called through a `Handle` of the build it is in, whatever its kind: what
    /// a library's code calls through a handle of this module that it took in the host
    /// (`HandleOps`). The handle's own method runs, with everything a handle does there.
    pub handle: HandleTrampoline,
}

/// What the host hands a library it loads (`ModuleDescriptor::enter`): for each other hot
/// module the library embeds and the host has too (a crate the module's crate depends on), the
/// host's forwarding trampolines, so the embedded copy's calls run the host's module; and for
/// those and the module the library is loaded as, the host's `Module`, so that controlling a
/// module from the library's code controls the host's. Lives until the library is unloaded.
#[repr(C)]
pub struct HostLinks {
    pub modules: SliceRef<HostLink>,
    /// The host's `hotmod::print_progress` and `hotmod::allow_insecure_paths`: settings of the
    /// process, which the library's copies of them hand on to ([`host_links`]).
    pub print_progress: fn(bool),
    pub allow_insecure_paths: fn(bool),
}

/// A host's `Handle`s as a library's code holds them: opaque pointers that only these
/// functions of the host's hotmod take (pin, clone, drop, read), and that the library calls
/// functions through (`HostLink::handle`). So a handle the library's code takes of a module the
/// host links pins the host's generation, and keeps calling it however many reloads happen,
/// as a handle taken in the host does; its count goes back to the host's runtime.
#[repr(C)]
pub struct HandleOps {
    /// `Handle::current()` of the host's module whose runtime (`HostLink::runtime`) this is.
    pub current: unsafe extern "C" fn(runtime: *const ()) -> *mut (),
    /// A clone of the handle.
    pub clone: unsafe extern "C" fn(handle: *const ()) -> *mut (),
    /// Drops the handle.
    pub drop: unsafe extern "C" fn(handle: *mut ()),
    /// `Handle::generation`.
    pub generation: unsafe extern "C" fn(handle: *const ()) -> u64,
    /// `Handle::is_current`.
    pub is_current: unsafe extern "C" fn(handle: *const ()) -> bool,
}

/// One embedded module's link to the host's module of the same path.
#[repr(C)]
pub struct HostLink {
    /// `module_path!()` of the module, as both descriptors say.
    pub module_path: StrRef,
    /// In the library's function order: the host's `FnEntry::forward` of the function of the
    /// same name (verified equal), or `None` where the host has none. Empty for the module
    /// the library is loaded as: its calls of itself run its own code.
    pub forward: SliceRef<Option<RawTrampoline>>,
    /// The host's `hotmod::Module` of this path, opaque: the library's `module()` returns it,
    /// and the library's copy of its methods reads the host's operations table from it (its
    /// first field), so they run in the host's runtime (`module.rs`).
    pub module: *const (),
    /// The host's runtime of this path, opaque, for `HandleOps::current`.
    pub runtime: *const (),
    /// The host's handles (its descriptor's `ModuleDescriptor::handles`).
    pub handles: &'static HandleOps,
    /// In the library's function order: the host's `FnEntry::handle` of the function of the
    /// same name, or `None` where the host has none. Empty for the module the library is
    /// loaded as.
    pub handle: SliceRef<Option<HandleTrampoline>>,
}

// SAFETY: immutable after the host builds it, before the library sees it; pointers to host
// statics and to the host's allocation that outlives the library.
unsafe impl Sync for HostLinks {}
// SAFETY: as above.
unsafe impl Sync for HostLink {}

/// The library's links (null in the host, and in a library until `enter_library`).
static LINKS: AtomicPtr<HostLinks> = AtomicPtr::new(std::ptr::null_mut());

/// What the host handed this library at load (only inside a loaded library).
pub(crate) fn host_links() -> Option<&'static HostLinks> {
    let links = LINKS.load(Ordering::Acquire);
    // SAFETY: set once by `enter_library` from the host's `HostLinks`, which outlives this
    // library (the host frees it only after unloading it).
    unsafe { links.as_ref() }
}

/// The host's forwarding trampolines for the embedded module `module_path`, if the host linked
/// it (only inside a loaded library).
pub(crate) fn host_link(module_path: &str) -> Option<&'static HostLink> {
    let links = host_links()?;
    // SAFETY: the host built the slices and strings from live data it keeps with the links.
    let modules = unsafe { links.modules.as_slice() };
    modules.iter().find(|link| {
        // SAFETY: as above: a string of the host's, alive with the links.
        unsafe { link.module_path.as_str() == module_path }
    })
}

// SAFETY: descriptors are immutable statics made of pointers to other immutable statics;
// sharing them between threads is sharing `&'static` data.
unsafe impl Sync for ModuleDescriptor {}
// SAFETY: as above.
unsafe impl Sync for FnEntry {}
// SAFETY: read-only strings and function pointers.
unsafe impl Sync for StateEntry {}
// SAFETY: a read-only string and an integer.
unsafe impl Sync for KeptItem {}
// SAFETY: `StrRef` is a `&'static str` in another form.
unsafe impl Sync for StrRef {}
// SAFETY: as above.
unsafe impl Send for StrRef {}

/// The body of every memory trampoline: moves the argument tuple out of `args`, runs `f` with
/// panics caught, and writes the result to `ret` (returns null) or returns the panic's message.
///
/// # Safety
/// `args` must point to an initialised `A` that the caller will not use or drop again;
/// `ret` must be valid for writing an `R`.
#[inline]
pub unsafe fn trampoline<A, R>(
    args: *mut u8,
    ret: *mut u8,
    f: impl FnOnce(A) -> R,
) -> PanicMessage {
    // SAFETY: the caller hands over ownership of the `A` behind `args`.
    let args = unsafe { args.cast::<A>().read() };
    match catch_unwind(AssertUnwindSafe(move || f(args))) {
        Ok(value) => {
            // SAFETY: the caller guarantees `ret` is valid for writing an `R`.
            unsafe { ret.cast::<R>().write(value) };
            std::ptr::null_mut()
        }
        Err(payload) => caught(payload),
    }
}

/// The body of every register trampoline: runs `f` (which owns the arguments) with panics
/// caught; the result, or the panic's message, comes back in registers.
#[inline]
pub fn register_trampoline<R>(f: impl FnOnce() -> R) -> Returned<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Returned {
            value: MaybeUninit::new(value),
            panic: std::ptr::null_mut(),
        },
        Err(payload) => Returned {
            value: MaybeUninit::uninit(),
            panic: caught(payload),
        },
    }
}

/// A caught panic's message, boxed for the host. The payload's vtable lives in this library: it
/// is dropped here, never in the host; a payload whose own drop panics is leaked rather than
/// allowed to unwind.
#[cold]
#[inline(never)]
fn caught(payload: Box<dyn Any + Send>) -> PanicMessage {
    let message = panic_message(&*payload);
    if let Err(nested) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(nested);
    }
    Box::into_raw(Box::new(message))
}

/// The message of a panic payload, as `std` prints it.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// What an `#[on_load]` function's trampoline returns: its error rendered with `Display`.
pub type OnLoadResult = Result<(), String>;

/// Turns an `#[on_load]` function's `Result` into an [`OnLoadResult`] inside the library, so
/// no value of a library-defined error type ever reaches the host.
pub fn on_load_result<E: std::fmt::Display>(result: Result<(), E>) -> OnLoadResult {
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::TOOLCHAIN;

    /// Register trampolines follow the C ABI, which target features change: they are part of
    /// the identity the loader compares.
    #[test]
    fn the_toolchain_identity_names_the_target_features() {
        let features = TOOLCHAIN
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(features, _)| features)
            .unwrap_or_else(|| panic!("no features in {TOOLCHAIN}"));
        let listed: Vec<&str> = features.split(',').collect();
        #[cfg(target_feature = "sse2")]
        assert!(listed.contains(&"sse2"), "{TOOLCHAIN}");
        #[cfg(target_feature = "neon")]
        assert!(listed.contains(&"neon"), "{TOOLCHAIN}");
        assert!(!listed.is_empty());
    }

    /// A path or git dependency on hotmod changes without a version bump: the identity carries
    /// a digest of hotmod's interface source too.
    #[test]
    fn the_toolchain_identity_carries_the_interface_digest() {
        let digest = TOOLCHAIN
            .rsplit_once(" interface ")
            .map(|(_, digest)| digest)
            .unwrap_or_else(|| panic!("no interface digest in {TOOLCHAIN}"));
        assert_eq!(digest.len(), 16, "{TOOLCHAIN}");
        assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()), "{TOOLCHAIN}");
        assert_ne!(digest, "0000000000000000", "{TOOLCHAIN}");
    }
}
