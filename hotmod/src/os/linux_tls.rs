//! Letting glibc unload a module library whose code registered thread-exit callbacks.
//!
//! # The problem
//!
//! A Rust library that initialises a `thread_local!` with a destructor on some thread registers
//! that destructor with glibc's `__cxa_thread_atexit_impl(dtor, obj, dso_symbol)`, passing its
//! own `__dso_handle` (std links the function weakly, so the call goes through a GOT slot of the
//! library). glibc then counts a reference on the library (`l_tls_dtor_count`) until that thread
//! exits, and `dlclose` quietly leaves the library mapped: every reload leaks the whole image
//! for as long as the threads that touched it live.
//!
//! The opposite problem is worse. `std::thread::current()` (and what uses it: parking,
//! channels, scoped threads…) registers a `pthread_key_create` destructor that lives in the
//! library. glibc does not tie keys to libraries, so the library *is* unmapped on `dlclose`,
//! and the next exit of such a thread jumps into unmapped memory (measured: `SIGSEGV`).
//!
//! # What hotmod does
//!
//! Right after `dlopen`, before any code of the library runs except its ELF initialisers
//! (Rust registers thread-local destructors lazily, on first access, never at load), hotmod reads
//! the library's dynamic relocations from the file it loaded and rewrites every GOT slot bound to
//! `__cxa_thread_atexit_impl`, `pthread_key_create`, `pthread_key_delete`,
//! `pthread_getspecific` or `pthread_setspecific` so that it points to a hook in hotmod (the
//! host's copy). Only that library's slots change: the host's own thread-locals, and every
//! other library's, still go straight to glibc.
//!
//! - `__cxa_thread_atexit_impl(dtor, obj, dso)` from the library becomes a registration with
//!   glibc of a host trampoline, with a `dso_symbol` inside the image that contains hotmod (so
//!   glibc counts a reference on that image, never on the module library), carrying
//!   `(dtor, obj, library)` in a heap record.
//! - `pthread_key_create`, `pthread_key_delete`, `pthread_getspecific` and
//!   `pthread_setspecific` from the library work on *virtual keys*: numbers from
//!   `0x4000_0000` up, never reused, whose per-thread values live in a table hotmod keeps under
//!   one real glibc key of its own (calls with real keys, below glibc's limit of 1024, pass
//!   through). The real key's destructor, hotmod's, runs the virtual keys' destructors at
//!   thread exit, with glibc's semantics (destructors run for non-null values, which are
//!   cleared first; a value set again during a round causes another round, up to glibc's
//!   limit). So libraries consume no glibc keys, however many generations are loaded.
//!
//! When a thread exits, a trampoline (or hotmod's key destructor) runs the real destructor only
//! if the library is still loaded, holding the library's *gate* open while it runs; otherwise
//! it leaks the value.
//! Unloading closes the gate (after which no destructor of that library starts), waits until the
//! destructors already running return, and only then calls `dlclose`.
//!
//! # Soundness argument
//!
//! 1. *No code of an unloaded library runs from a thread-exit callback.* Every callback the
//!    library registered through the rewritten slots is a host function (a trampoline, or the
//!    destructor of hotmod's real key), which lives in the image glibc was told to keep (the
//!    `dso_symbol` passed is hotmod's own). It calls into the library only between `enter` (gate open, `running += 1`) and the end of the
//!    destructor (`running -= 1`), and `dlclose` happens only after the gate closed with
//!    `running == 0`, both under the gate's mutex; so a destructor either starts before the
//!    close and finishes before `dlclose`, or never starts.
//! 2. *No registration escapes the rewrite before it is in place.* Slots are rewritten before
//!    the library is published to any caller; only its ELF initialisers ran, and a registration
//!    made by one (or by any path hotmod cannot see, such as C++'s `__cxa_thread_atexit` in
//!    another library, or `dlsym`) pins the library in glibc as before, which `unload` detects
//!    with `RTLD_NOLOAD` and reports.
//! 3. *Whenever hotmod cannot vouch for the rewrite, the library is kept mapped.* A relocation
//!    of another type, a slot holding something other than glibc's function, an unreadable
//!    dynamic section, an architecture hotmod does not know: the library is never `dlclose`d
//!    (the reason is returned by [`ThreadExit::release`]).
//! 4. *Leaking is sound, running unmapped code is not.* A thread-local whose library is gone is
//!    never dropped: its heap data leaks (usually a few bytes per thread and generation), and
//!    glibc frees the library's TLS block itself. Dropping it would need the library's code.
//! 5. *No deadlock from waiting.* Only a thread that is not itself running a redirected
//!    destructor waits for running destructors; a thread inside one that must unload a library
//!    with destructors running keeps that library mapped instead. So waiting threads never
//!    block destructors, and destructors (whose threads never wait) always make progress
//!    unless the destructor itself blocks forever. Nor do a waiting thread's locks: it holds none
//!    of hotmod's (`Hold`, `hold.rs`), and a destructor runs with none of them held either,
//!    so one that calls back into hotmod (loads, reloads, applies a staged generation, lists
//!    generations) finishes, and the unload goes on.
//! 6. *A retired library's keys are forgotten, never reused.* Its virtual keys are removed on
//!    release, so a value left on a thread is never handed to any destructor (it leaks), and
//!    a virtual key number is never given out twice, so no stale value can reach a later key's
//!    destructor. (Deleting and re-creating real glibc keys would not give that: glibc reads a
//!    key's destructor without a lock at thread exit.)
//! 7. *Anything else is refused.* A library that refers to `tss_create` (C11 thread-specific
//!    storage, real keys hotmod does not virtualise) is kept mapped.
//!
//! What stays outside: a library's own registrations made through another library (C++'s
//! `__cxa_thread_atexit` in libstdc++ passes the module's `dso_symbol` to glibc, which pins the
//! module: detected and reported), `dlsym` lookups of these functions, and process-global
//! registrations module code makes and does not undo (signal handlers, threads it spawned and
//! did not join).
//!
//! # Cost
//!
//! Per thread-local destructor registration: a 24-byte record (freed when the thread exits)
//! beside glibc's own 32-byte node. Per virtual key: a map entry (removed when the library
//! retires) and one table slot per thread that set a value. At unload: the thread-local values
//! of threads still alive leak (their heap data, if any). Measured by tests/memory.rs: 1000
//! reloads with 3 threads registering a destructor in each generation stay within 250 KiB RSS,
//! where glibc alone keeps every library mapped (+4 mappings and ~315 KB per reload for a
//! small release cdylib, 4.4 MB for the debug fixture).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void, CStr};
use std::mem::ManuallyDrop;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockWriteGuard};

use super::elf::{self, SlotKind};

/// A thread-exit destructor, as glibc calls it.
type Dtor = unsafe extern "C" fn(*mut c_void);
/// `__cxa_thread_atexit_impl`.
type ThreadAtexit = unsafe extern "C" fn(Dtor, *mut c_void, *mut c_void) -> c_int;
/// `pthread_key_create`.
type KeyCreate = unsafe extern "C" fn(*mut libc::pthread_key_t, Option<Dtor>) -> c_int;
/// `pthread_key_delete`.
type KeyDelete = unsafe extern "C" fn(libc::pthread_key_t) -> c_int;
/// `pthread_getspecific`.
type GetSpecific = unsafe extern "C" fn(libc::pthread_key_t) -> *mut c_void;
/// `pthread_setspecific`.
type SetSpecific = unsafe extern "C" fn(libc::pthread_key_t, *const c_void) -> c_int;

// The prototypes above are `libc`'s declarations of the functions they name (which `libc` does
// not declare, `__cxa_thread_atexit_impl`, is glibc's in stdlib/cxa_thread_atexit_impl.c).
const _: KeyCreate = libc::pthread_key_create;
const _: KeyDelete = libc::pthread_key_delete;
const _: GetSpecific = libc::pthread_getspecific;
const _: SetSpecific = libc::pthread_setspecific;

/// Declares [`Redirect`] and `Redirect::ALL` from one list, so that no symbol can be left out of
/// `ALL` (a symbol missing there would never be looked for, and its slots never rewritten).
macro_rules! redirects {
    ($($(#[$doc:meta])* $symbol:ident,)*) => {
        /// A symbol whose slots in a module library hotmod looks for (see [`Redirect::hook`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Redirect {
            $($(#[$doc])* $symbol,)*
        }

        impl Redirect {
            /// Every symbol, each once.
            pub(crate) const ALL: [Redirect; [$(Redirect::$symbol),*].len()] =
                [$(Redirect::$symbol),*];
        }
    };
}

redirects! {
    /// `__cxa_thread_atexit_impl`: a thread-local's destructor.
    CxaThreadAtexitImpl,
    /// `pthread_key_create`.
    PthreadKeyCreate,
    /// `pthread_key_delete`.
    PthreadKeyDelete,
    /// `pthread_getspecific`.
    PthreadGetspecific,
    /// `pthread_setspecific`.
    PthreadSetspecific,
    /// `tss_create`: C11 keys, not redirected (a library that uses it is kept mapped).
    TssCreate,
}

impl Redirect {
    /// The symbol's name and the address of its hook, or `None` for a symbol whose use makes
    /// hotmod keep the library mapped.
    ///
    /// Name and hook stand in one arm, and each hook is cast to the prototype of the function
    /// it replaces (checked against `libc`'s declaration above): a hook of another prototype
    /// does not compile.
    fn entry(self) -> (&'static CStr, Option<usize>) {
        match self {
            Redirect::CxaThreadAtexitImpl => (
                c"__cxa_thread_atexit_impl",
                Some(thread_atexit_hook as ThreadAtexit as usize),
            ),
            Redirect::PthreadKeyCreate => (
                c"pthread_key_create",
                Some(key_create_hook as KeyCreate as usize),
            ),
            Redirect::PthreadKeyDelete => (
                c"pthread_key_delete",
                Some(key_delete_hook as KeyDelete as usize),
            ),
            Redirect::PthreadGetspecific => (
                c"pthread_getspecific",
                Some(getspecific_hook as GetSpecific as usize),
            ),
            Redirect::PthreadSetspecific => (
                c"pthread_setspecific",
                Some(setspecific_hook as SetSpecific as usize),
            ),
            Redirect::TssCreate => (c"tss_create", None),
        }
    }

    /// The symbol's name.
    pub(crate) fn name(self) -> &'static CStr {
        self.entry().0
    }

    /// The address of the hook a slot for this symbol is rewritten to, or `None`: a library
    /// that uses the symbol is kept mapped.
    fn hook(self) -> Option<usize> {
        self.entry().1
    }

    /// Where the host's global scope resolves the symbol: what a library's bound slot holds.
    fn glibc_address(self) -> Option<usize> {
        static ADDRESSES: OnceLock<[(Redirect, Option<usize>); Redirect::ALL.len()]> =
            OnceLock::new();
        let addresses = ADDRESSES.get_or_init(|| {
            Redirect::ALL.map(|redirect| {
                // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks a symbol
                // up.
                let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, redirect.name().as_ptr()) };
                (redirect, (!address.is_null()).then_some(address as usize))
            })
        });
        addresses
            .iter()
            .find(|(redirect, _)| *redirect == self)
            .and_then(|(_, address)| *address)
    }
}

/// glibc's `__cxa_thread_atexit_impl`.
fn glibc_thread_atexit() -> Option<ThreadAtexit> {
    Redirect::CxaThreadAtexitImpl
        .glibc_address()
        .map(|address| {
            // SAFETY: glibc's `__cxa_thread_atexit_impl` has exactly this prototype
            // (stdlib/cxa_thread_atexit_impl.c: `int (dtor_func, void *, void *)`).
            unsafe { std::mem::transmute::<usize, ThreadAtexit>(address) }
        })
}

/// An address inside the image that contains this code: the `dso_symbol` hotmod passes to glibc,
/// so that glibc keeps *that* image (where the trampolines live) while callbacks are pending.
static HOST_ANCHOR: u8 = 0;

/// One module library whose callbacks go through hotmod.
struct Tracked {
    /// The address range of its loadable segments.
    start: usize,
    end: usize,
    gate: Mutex<Gate>,
    idle: Condvar,
}

struct Gate {
    /// Destructors may start. Cleared once, by `release`.
    open: bool,
    /// Destructors running now.
    running: usize,
    /// Why the library must never be unmapped, if it must not.
    keep: Option<String>,
}

impl Tracked {
    fn lock(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn contains(&self, address: usize) -> bool {
        (self.start..self.end).contains(&address)
    }

    fn keep_mapped(&self, reason: impl FnOnce() -> String) {
        let mut gate = self.lock();
        if gate.keep.is_none() {
            gate.keep = Some(reason());
        }
    }

    fn is_open(&self) -> bool {
        self.lock().open
    }

    /// Lets one destructor of this library run, if it is still loaded.
    fn enter(self: &Arc<Self>) -> Option<Running<'_>> {
        let mut gate = self.lock();
        if !gate.open {
            return None;
        }
        gate.running += 1;
        drop(gate);
        let previous = INSIDE.replace(Arc::as_ptr(self));
        Some(Running {
            tracked: self,
            previous,
        })
    }
}

thread_local! {
    /// The library whose destructor this thread is running through a trampoline, if any.
    /// `const`, and without a destructor: usable at any point of a thread's exit.
    static INSIDE: Cell<*const Tracked> = const { Cell::new(ptr::null()) };
}

/// A destructor of `tracked` is running on this thread.
struct Running<'a> {
    tracked: &'a Tracked,
    previous: *const Tracked,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        INSIDE.set(self.previous);
        let mut gate = self.tracked.lock();
        gate.running -= 1;
        if gate.running == 0 {
            self.tracked.idle.notify_all();
        }
    }
}

/// The bookkeeping's locks, held across `fork` (taken by the prepare handler, `fork.rs`): the
/// list of libraries, the virtual keys and every listed library's gate. Each is held elsewhere
/// only briefly and never while another is taken, so the forking thread can wait for them, and
/// while it holds them no thread is inside one: in the child, where only the forking thread
/// exists, none is left locked by a thread that is gone.
pub(crate) struct ForkLocks {
    // Released in the reverse order of taking: fields drop in declaration order.
    gates: Vec<HeldGate>,
    _keys: RwLockWriteGuard<'static, BTreeMap<libc::pthread_key_t, VirtualKey>>,
    _libraries: RwLockWriteGuard<'static, Vec<Arc<Tracked>>>,
}

impl ForkLocks {
    /// Takes the locks (the prepare handler).
    pub(crate) fn take() -> ForkLocks {
        let libraries = LIBRARIES.write().unwrap_or_else(PoisonError::into_inner);
        let keys = VIRTUAL_KEYS.write().unwrap_or_else(PoisonError::into_inner);
        let gates = libraries.iter().map(HeldGate::take).collect();
        ForkLocks {
            gates,
            _keys: keys,
            _libraries: libraries,
        }
    }

    /// In the child, before the locks are released: the destructors that threads of the parent
    /// were running when it forked will never finish here, so they no longer count; unloading
    /// such a library in the child must not wait for them (it would wait forever). If this
    /// thread is itself inside a destructor of some library, it cannot tell its own from the
    /// others': every library with destructors running then stays mapped in the child
    /// (`ThreadExit::release` refuses, as it does for a library it cannot vouch for).
    pub(crate) fn in_child(&mut self) {
        let inside = !INSIDE.get().is_null();
        for held in &mut self.gates {
            let gate = &mut *held.gate;
            if gate.running == 0 {
                continue;
            }
            if inside {
                gate.keep.get_or_insert_with(|| {
                    "the process forked while thread-local destructors of it were running".into()
                });
            } else {
                gate.running = 0;
            }
        }
    }
}

/// A library's gate, locked, and the count that keeps the library's `Tracked` while it is.
struct HeldGate {
    /// From `Arc::into_raw`: one count, given back in `drop`.
    tracked: *const Tracked,
    gate: ManuallyDrop<MutexGuard<'static, Gate>>,
}

impl HeldGate {
    fn take(tracked: &Arc<Tracked>) -> HeldGate {
        let tracked = Arc::into_raw(Arc::clone(tracked));
        // SAFETY: `tracked` holds a count of the `Arc` until `drop` gives it back, which happens
        // after the guard is gone: the `Tracked` outlives the guard that borrows it.
        let gate = unsafe { &*tracked }.lock();
        HeldGate {
            tracked,
            gate: ManuallyDrop::new(gate),
        }
    }
}

impl Drop for HeldGate {
    fn drop(&mut self) {
        // SAFETY: dropped here only, once; the guard goes before the count that keeps its
        // `Tracked` alive.
        unsafe { ManuallyDrop::drop(&mut self.gate) };
        // SAFETY: the count `Arc::into_raw` took in `take`, given back once.
        drop(unsafe { Arc::from_raw(self.tracked) });
    }
}

/// Libraries whose slots point to the hooks, until they are released.
static LIBRARIES: RwLock<Vec<Arc<Tracked>>> = RwLock::new(Vec::new());

/// The tracked library whose image contains `address`.
fn find(address: usize) -> Option<Arc<Tracked>> {
    let libraries = LIBRARIES.read().unwrap_or_else(PoisonError::into_inner);
    libraries.iter().find(|t| t.contains(address)).cloned()
}

/// One redirected `__cxa_thread_atexit_impl` registration.
struct Registration {
    dtor: Dtor,
    obj: *mut c_void,
    tracked: Arc<Tracked>,
}

/// What a module library's `__cxa_thread_atexit_impl` slot points to.
///
/// # Safety
/// Called by glibc's callers with `__cxa_thread_atexit_impl`'s contract: `dtor(obj)` must be
/// sound to call once at this thread's exit while `dso` 's image is loaded.
unsafe extern "C" fn thread_atexit_hook(dtor: Dtor, obj: *mut c_void, dso: *mut c_void) -> c_int {
    let Some(real) = glibc_thread_atexit() else {
        // Unreachable: the slot is only rewritten when glibc's function was found. Not
        // registering leaks the value, which is sound.
        return -1;
    };
    let tracked = find(dso as usize).or_else(|| find(dtor as usize));
    match tracked {
        Some(tracked) if tracked.is_open() => {
            let registration = Box::into_raw(Box::new(Registration { dtor, obj, tracked }));
            // SAFETY: glibc's own function with its contract: `run_registration` may be called
            // once with `registration` at this thread's exit, and the image containing
            // `HOST_ANCHOR` (which contains `run_registration`) is kept until then.
            let result = unsafe {
                real(
                    run_registration,
                    registration.cast(),
                    ptr::addr_of!(HOST_ANCHOR).cast_mut().cast(),
                )
            };
            if result != 0 {
                // SAFETY: glibc did not take the registration; we still own it.
                drop(unsafe { Box::from_raw(registration) });
            }
            result
        }
        Some(tracked) => {
            // Module code runs after its generation retired (a thread it spawned, say). Let glibc
            // pin the library as it would without hotmod, and never unmap it ourselves.
            tracked.keep_mapped(|| {
                "its code registered a thread-local destructor after the generation retired".into()
            });
            // SAFETY: forwarding the caller's arguments to the function it meant to call.
            unsafe { real(dtor, obj, dso) }
        }
        // SAFETY: as above: not a module library's registration, so glibc handles it as usual.
        None => unsafe { real(dtor, obj, dso) },
    }
}

/// The destructor glibc runs for a redirected registration.
///
/// # Safety
/// `registration` must come from `Box::into_raw` in [`thread_atexit_hook`]; glibc calls each
/// registered destructor once.
unsafe extern "C" fn run_registration(registration: *mut c_void) {
    // SAFETY: see the function's contract.
    let registration = unsafe { Box::from_raw(registration.cast::<Registration>()) };
    let running = registration.tracked.enter();
    if running.is_some() {
        // SAFETY: the library registered `dtor(obj)` for this thread's exit, and it stays loaded
        // until `running` drops (soundness argument, point 1).
        unsafe { (registration.dtor)(registration.obj) };
    }
    // Otherwise the library is gone: the value leaks (point 4).
    drop(running);
}

/// Virtual keys start here; glibc's keys are below `PTHREAD_KEYS_MAX` (1024).
const VIRTUAL_BASE: libc::pthread_key_t = 0x4000_0000;
/// The next virtual key; numbers are never reused.
static NEXT_VIRTUAL: AtomicU32 = AtomicU32::new(VIRTUAL_BASE);

/// A key a module library created.
struct VirtualKey {
    dtor: Option<Dtor>,
    /// The library the destructor (or the key variable) belongs to, if any.
    tracked: Option<Arc<Tracked>>,
}

/// Live virtual keys. A key leaves when deleted or when its library is released.
static VIRTUAL_KEYS: RwLock<BTreeMap<libc::pthread_key_t, VirtualKey>> =
    RwLock::new(BTreeMap::new());

fn virtual_keys() -> std::sync::RwLockReadGuard<'static, BTreeMap<libc::pthread_key_t, VirtualKey>>
{
    VIRTUAL_KEYS.read().unwrap_or_else(PoisonError::into_inner)
}

/// One thread's values of virtual keys, owned through hotmod's real key. Only its thread
/// touches it.
struct Values(Vec<(libc::pthread_key_t, *mut c_void)>);

/// hotmod's one real glibc key, whose value on each thread is that thread's `Values`.
fn host_key() -> Option<libc::pthread_key_t> {
    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is valid for writing; `run_values` lives as long as the process's image
        // of hotmod, which is never unloaded while threads can exit (it is the host).
        let status = unsafe { libc::pthread_key_create(&mut key, Some(run_values)) };
        (status == 0).then_some(key)
    })
}

/// This thread's `Values`, or null.
fn thread_values(host: libc::pthread_key_t) -> *mut Values {
    // SAFETY: reading this thread's value of our own key.
    unsafe { libc::pthread_getspecific(host) }.cast()
}

/// What a module library's `pthread_key_create` slot points to.
///
/// # Safety
/// POSIX `pthread_key_create`'s contract: `key` is valid for writing.
unsafe extern "C" fn key_create_hook(key: *mut libc::pthread_key_t, dtor: Option<Dtor>) -> c_int {
    if host_key().is_none() {
        return libc::EAGAIN;
    }
    let id = NEXT_VIRTUAL.fetch_add(1, Ordering::Relaxed);
    if id < VIRTUAL_BASE || id == libc::pthread_key_t::MAX {
        // Three billion keys later: out of numbers, as glibc would be out of keys.
        return libc::EAGAIN;
    }
    let tracked = dtor
        .and_then(|d| find(d as usize))
        .or_else(|| find(key as usize));
    VIRTUAL_KEYS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, VirtualKey { dtor, tracked });
    // SAFETY: the caller guarantees `key` is valid for writing.
    unsafe { key.write(id) };
    0
}

/// What a module library's `pthread_key_delete` slot points to.
///
/// # Safety
/// POSIX `pthread_key_delete`'s contract.
unsafe extern "C" fn key_delete_hook(key: libc::pthread_key_t) -> c_int {
    if key < VIRTUAL_BASE {
        // SAFETY: a real key: glibc's function with the caller's argument.
        return unsafe { libc::pthread_key_delete(key) };
    }
    // Values left on threads are never passed to a destructor (as POSIX specifies).
    let removed = VIRTUAL_KEYS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&key);
    if removed.is_some() {
        0
    } else {
        libc::EINVAL
    }
}

/// What a module library's `pthread_getspecific` slot points to.
///
/// # Safety
/// POSIX `pthread_getspecific`'s contract.
unsafe extern "C" fn getspecific_hook(key: libc::pthread_key_t) -> *mut c_void {
    if key < VIRTUAL_BASE {
        // SAFETY: a real key: glibc's function with the caller's argument.
        return unsafe { libc::pthread_getspecific(key) };
    }
    let Some(host) = host_key() else {
        return ptr::null_mut();
    };
    let values = thread_values(host);
    if values.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `values` is this thread's table (only this thread uses it), alive while it is our
    // key's value; no other reference to it exists during this call.
    let values = unsafe { &*values };
    values
        .0
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(ptr::null_mut(), |(_, value)| *value)
}

/// What a module library's `pthread_setspecific` slot points to.
///
/// # Safety
/// POSIX `pthread_setspecific`'s contract.
unsafe extern "C" fn setspecific_hook(key: libc::pthread_key_t, value: *const c_void) -> c_int {
    if key < VIRTUAL_BASE {
        // SAFETY: a real key: glibc's function with the caller's arguments.
        return unsafe { libc::pthread_setspecific(key, value) };
    }
    let Some(host) = host_key() else {
        return libc::EINVAL;
    };
    if !virtual_keys().contains_key(&key) {
        return libc::EINVAL;
    }
    let mut values = thread_values(host);
    if values.is_null() {
        if value.is_null() {
            return 0;
        }
        values = Box::into_raw(Box::new(Values(Vec::new())));
        // SAFETY: setting this thread's value of our own key to its new table.
        let status = unsafe { libc::pthread_setspecific(host, values.cast()) };
        if status != 0 {
            // SAFETY: not handed to glibc; still ours.
            drop(unsafe { Box::from_raw(values) });
            return status;
        }
    }
    // SAFETY: this thread's table, used only by this thread; no other reference to it exists
    // during this call.
    let values = unsafe { &mut *values };
    if let Some(entry) = values.0.iter_mut().find(|(k, _)| *k == key) {
        entry.1 = value.cast_mut();
    } else if !value.is_null() {
        if values.0.len() >= 16 {
            // Forget values of keys deleted or retired since.
            let live = virtual_keys();
            values.0.retain(|(k, _)| live.contains_key(k));
        }
        values.0.push((key, value.cast_mut()));
    }
    0
}

/// hotmod's real key's destructor: one round of the virtual keys' destructors on an exiting
/// thread.
///
/// # Safety
/// Called by glibc with this thread's `Values` (our key's value), once per round.
unsafe extern "C" fn run_values(values: *mut c_void) {
    let Some(host) = host_key() else {
        return;
    };
    let values = values.cast::<Values>();
    // glibc cleared our value before calling: restore it, so that destructors that set values
    // again find this table (and cause another round, as with glibc's keys).
    // SAFETY: setting this thread's value of our own key.
    unsafe { libc::pthread_setspecific(host, values.cast()) };
    let pending: Vec<(libc::pthread_key_t, *mut c_void)> = {
        // SAFETY: this thread's table; the reference ends before any destructor runs.
        let table = unsafe { &mut *values };
        table
            .0
            .iter_mut()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, value)| (*key, std::mem::replace(value, ptr::null_mut())))
            .collect()
    };
    for (key, value) in pending {
        let target = virtual_keys()
            .get(&key)
            .and_then(|k| k.dtor.map(|dtor| (dtor, k.tracked.clone())));
        // A key deleted, retired, or without destructor: the value is left alone.
        let Some((dtor, tracked)) = target else {
            continue;
        };
        match tracked {
            Some(tracked) => {
                let running = tracked.enter();
                if running.is_some() {
                    // SAFETY: the library set `value` for this key on this thread and asked for
                    // `dtor(value)` at exit; it stays loaded until `running` drops.
                    unsafe { dtor(value) };
                }
                drop(running);
            }
            // SAFETY: a destructor outside every module library (libc's `free`, say), called as
            // glibc would.
            None => unsafe { dtor(value) },
        }
    }
    // SAFETY: this thread's table; no destructor is running any more.
    let table = unsafe { &mut *values };
    table.0.retain(|(_, value)| !value.is_null());
    if table.0.is_empty() {
        // SAFETY: clearing our own key, then freeing the table made by `setspecific_hook`.
        unsafe {
            libc::pthread_setspecific(host, ptr::null());
            drop(Box::from_raw(values));
        }
    }
    // Otherwise values were set again during this round: glibc calls us again, up to its limit
    // of rounds (after which, as for its own keys, the rest leaks).
}

/// The redirection state of one loaded module library. Owned by its `LoadedLibrary`.
pub(crate) struct ThreadExit {
    tracked: Arc<Tracked>,
    /// Whether `tracked` is in [`LIBRARIES`].
    registered: bool,
}

impl ThreadExit {
    /// A library hotmod cannot vouch for: it will be kept mapped.
    fn kept(reason: String) -> ThreadExit {
        ThreadExit {
            tracked: Arc::new(Tracked {
                start: 0,
                end: 0,
                gate: Mutex::new(Gate {
                    open: true,
                    running: 0,
                    keep: Some(reason),
                }),
                idle: Condvar::new(),
            }),
            registered: false,
        }
    }

    /// Nothing redirected, nothing kept: the platform's behaviour (tests only).
    fn unprotected() -> ThreadExit {
        let thread_exit = ThreadExit::kept(String::new());
        thread_exit.tracked.lock().keep = None;
        thread_exit
    }

    /// Called before `dlclose`: stops the library's destructors from starting, waits for running
    /// ones, and says whether the library may be unmapped (`Err` carries why not).
    pub(crate) fn release(&mut self) -> Result<(), String> {
        let mut gate = self.tracked.lock();
        if let Some(reason) = &gate.keep {
            // Stays mapped for good: let its destructors keep running normally.
            return Err(reason.clone());
        }
        gate.open = false;
        if gate.running > 0 {
            if !INSIDE.get().is_null() {
                let reason = "it had thread-local destructors running while it retired from \
                              inside another thread-local destructor"
                    .to_string();
                gate.keep = Some(reason.clone());
                gate.open = true;
                return Err(reason);
            }
            while gate.running > 0 {
                gate = self
                    .tracked
                    .idle
                    .wait(gate)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        drop(gate);
        self.unregister();
        // Its keys are dead: their values are never passed to a destructor again.
        VIRTUAL_KEYS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, key| {
                !key.tracked
                    .as_ref()
                    .is_some_and(|t| Arc::ptr_eq(t, &self.tracked))
            });
        Ok(())
    }

    fn unregister(&mut self) {
        if std::mem::take(&mut self.registered) {
            let mut libraries = LIBRARIES.write().unwrap_or_else(PoisonError::into_inner);
            libraries.retain(|t| !Arc::ptr_eq(t, &self.tracked));
        }
    }
}

impl Drop for ThreadExit {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// The public part of glibc's `struct link_map` (`<link.h>`).
#[repr(C)]
struct LinkMap {
    l_addr: usize,
    l_name: *const libc::c_char,
    l_ld: *const c_void,
    l_next: *mut LinkMap,
    l_prev: *mut LinkMap,
}

/// Whether [`open_library`] redirects (on unless a test switched it off).
static REDIRECT: AtomicBool = AtomicBool::new(true);

/// Switches the redirection off (or on again) for libraries loaded from now on. Not an API:
/// tests use it to show what happens without it (glibc keeps such libraries mapped; and one
/// that created a key destructor crashes its thread at exit once unloaded).
pub fn set_thread_exit_redirect(on: bool) {
    REDIRECT.store(on, Ordering::SeqCst);
}

/// Loads the library at `path` (whose contents are `bytes`), near the host's code when it can
/// (`near.rs`), and redirects its thread-exit registrations before anything else can run its
/// code.
///
/// # Safety
/// As for `libloading::Library::new`: loading a library runs its initialisers. `bytes` must be
/// the contents of `path`.
pub(crate) unsafe fn open_library(
    path: &Path,
    bytes: &[u8],
) -> Result<(libloading::Library, ThreadExit), libloading::Error> {
    // Placement and `dlopen` under the lock `fork` waits for (`dl_ops.rs`).
    let library = super::dl_op(|| {
        super::near::open(bytes, || {
            // SAFETY: forwarded from the caller; the same flags libloading::Library::new uses.
            unsafe {
                libloading::os::unix::Library::open(Some(path), libc::RTLD_LAZY | libc::RTLD_LOCAL)
            }
        })
    })?;
    let handle = library.into_raw();
    let thread_exit = if REDIRECT.load(Ordering::SeqCst) {
        // SAFETY: `handle` is a live handle of the library just loaded from `bytes`; nothing
        // else knows it yet, so none of its code but its initialisers ran.
        unsafe { redirect(handle, bytes) }
    } else {
        ThreadExit::unprotected()
    };
    // SAFETY: `handle` came from `into_raw` above and is handed back exactly once.
    let library = unsafe { libloading::os::unix::Library::from_raw(handle) };
    Ok((library.into(), thread_exit))
}

/// Rewrites the library's slots for every [`Redirect`].
///
/// # Safety
/// `handle` must be a live `dlopen` handle of the library loaded from `bytes`, none of whose code
/// may run concurrently (it is not published yet).
unsafe fn redirect(handle: *mut c_void, bytes: &[u8]) -> ThreadExit {
    let cannot = |why: &dyn std::fmt::Display| {
        ThreadExit::kept(format!(
            "hotmod could not redirect its thread-exit callbacks ({why})"
        ))
    };
    let image = match elf::Image::parse(bytes) {
        Ok(image) => image,
        Err(why) => return cannot(&why),
    };
    let symbols = Redirect::ALL.map(|redirect| (redirect, redirect.name().to_bytes()));
    let slots = match image.symbol_slots(bytes, &symbols, elf::host_relocation_kind) {
        Ok(slots) => slots,
        Err(why) => return cannot(&why),
    };
    let mut map: *mut LinkMap = ptr::null_mut();
    // SAFETY: RTLD_DI_LINKMAP writes one `struct link_map *` to the pointer we pass.
    let status =
        unsafe { libc::dlinfo(handle, libc::RTLD_DI_LINKMAP, ptr::addr_of_mut!(map).cast()) };
    if status != 0 || map.is_null() {
        return cannot(&"dlinfo(RTLD_DI_LINKMAP) failed");
    }
    // SAFETY: glibc returned a pointer to the library's live link map, whose public prefix
    // `LinkMap` mirrors; the library stays loaded while we hold `handle`.
    let (bias, dynamic) = unsafe { ((*map).l_addr, (*map).l_ld as usize) };
    let (Some((dyn_vaddr, _, _)), Some((start, end))) = (image.dynamic, image.span()) else {
        return cannot(&elf::ElfError::NoDynamicSection);
    };
    let at = |vaddr: u64| {
        usize::try_from(vaddr)
            .ok()
            .and_then(|v| bias.checked_add(v))
    };
    if at(dyn_vaddr) != Some(dynamic) {
        // The file we parsed is not what is mapped: trust neither.
        return cannot(&"the mapped dynamic section is not where the file says");
    }
    let (Some(start), Some(end)) = (at(start), at(end)) else {
        return cannot(&"its segments overflow the address space");
    };
    let tracked = Arc::new(Tracked {
        start,
        end,
        gate: Mutex::new(Gate {
            open: true,
            running: 0,
            keep: None,
        }),
        idle: Condvar::new(),
    });
    LIBRARIES
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .push(tracked.clone());
    let thread_exit = ThreadExit {
        tracked,
        registered: true,
    };

    for slot in slots {
        let name = slot.symbol.name().to_string_lossy();
        let width = std::mem::size_of::<usize>();
        let address = at(slot.offset).filter(|a| a % width == 0);
        let segment = image.segment_at(slot.offset, width as u64);
        let (Some(address), Some(segment)) = (address, segment) else {
            thread_exit
                .tracked
                .keep_mapped(|| format!("its slot for {name} lies outside its segments"));
            continue;
        };
        // SAFETY: `address` is an aligned word inside a mapped segment of the library.
        let current = unsafe { ptr::read_volatile(address as *const usize) };
        let real = slot.symbol.glibc_address();
        let Some(hook) = slot.symbol.hook() else {
            thread_exit
                .tracked
                .keep_mapped(|| format!("it uses {name}, which hotmod does not redirect"));
            continue;
        };
        let action = match slot.kind {
            SlotKind::Other(kind) => Err(format!("it uses {name} through relocation type {kind}")),
            _ if slot.addend != 0 => Err(format!("it refers to {name} with an offset")),
            // A weak reference glibc left unresolved: nothing calls through it.
            SlotKind::GlobDat | SlotKind::Absolute if current == 0 => Ok(false),
            _ if Some(current) == real => Ok(true),
            // Not bound yet: still the lazy-binding stub inside the library.
            SlotKind::JumpSlot if (start..end).contains(&current) => Ok(true),
            _ => Err(format!("its {name} does not resolve to glibc's")),
        };
        match action {
            Ok(true) => {}
            Ok(false) => continue,
            Err(reason) => {
                thread_exit.tracked.keep_mapped(|| reason);
                continue;
            }
        }
        let page_size = page_size();
        let page = address & !(page_size - 1);
        let relro = image.relro.and_then(|(vaddr, size)| {
            let start = at(vaddr)? & !(page_size - 1);
            let end = at(vaddr.checked_add(size)?)? & !(page_size - 1);
            Some(start..end)
        });
        let read_only = relro.is_some_and(|range| range.contains(&page));
        if !read_only && segment.flags & elf::PF_W == 0 {
            thread_exit
                .tracked
                .keep_mapped(|| format!("its slot for {name} is in a read-only segment"));
            continue;
        }
        // SAFETY: `address` is the library's own slot for `name`, checked above to hold glibc's
        // function (or its lazy stub); the library's code cannot run concurrently (caller's
        // contract); the hook has the same prototype as the function it replaces.
        if let Err(reason) = unsafe { write_slot(address, page, page_size, read_only, hook) } {
            thread_exit
                .tracked
                .keep_mapped(|| format!("rewriting its slot for {name} failed: {reason}"));
        }
    }
    thread_exit
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system parameter.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(4096)
}

/// Writes `value` to the word at `address`, lifting the read-only protection glibc put on its
/// RELRO page for the duration of the write.
///
/// # Safety
/// `address` must be an aligned, mapped word of a library whose code does not run concurrently,
/// on page `page`; `read_only` must say whether that page is one glibc made read-only after
/// relocation (and is otherwise writable).
unsafe fn write_slot(
    address: usize,
    page: usize,
    page_size: usize,
    read_only: bool,
    value: usize,
) -> Result<(), std::io::Error> {
    if read_only {
        // SAFETY: `page` is a page of the library's RELRO region, mapped read-only; making it
        // writable affects only that library, whose code is not running.
        let status = unsafe {
            libc::mprotect(
                page as *mut c_void,
                page_size,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if status != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: the page is writable now, `address` is aligned and mapped (caller's contract).
    unsafe { ptr::write_volatile(address as *mut usize, value) };
    if read_only {
        // SAFETY: restores the protection glibc chose for this page. Should it fail, the slot
        // is rewritten all the same and the page merely stays writable.
        let _ = unsafe { libc::mprotect(page as *mut c_void, page_size, libc::PROT_READ) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_redirected_symbol_is_glibc_s_and_named_once() {
        assert!(glibc_thread_atexit().is_some());
        for (i, redirect) in Redirect::ALL.iter().enumerate() {
            let name = redirect.name();
            assert!(
                Redirect::ALL[..i].iter().all(|other| other.name() != name),
                "{name:?} twice"
            );
            // Everything hooked resolves in the host (tss_create too on glibc >= 2.28, but
            // hotmod never calls it), and to glibc's function, not to the hook.
            if let Some(hook) = redirect.hook() {
                let real = redirect.glibc_address();
                assert!(real.is_some_and(|real| real != hook), "{name:?}");
            }
        }
    }

    /// The hooks, called through the addresses a library's slots get, as its code calls them:
    /// each behaves as the function its symbol names. (The prototypes are tied to the names at
    /// compile time; this catches a hook that has the right prototype but another meaning.)
    #[test]
    fn each_hook_does_what_its_symbol_names() {
        fn hook<F>(redirect: Redirect) -> F {
            let address = redirect.hook().expect("a hook");
            // SAFETY: `F` is the prototype `Redirect::entry` cast this symbol's hook to (each
            // call below names the alias of its symbol), and the address is that hook's.
            unsafe { std::mem::transmute_copy::<usize, F>(&address) }
        }
        let create: KeyCreate = hook(Redirect::PthreadKeyCreate);
        let delete: KeyDelete = hook(Redirect::PthreadKeyDelete);
        let get: GetSpecific = hook(Redirect::PthreadGetspecific);
        let set: SetSpecific = hook(Redirect::PthreadSetspecific);
        let value = ptr::addr_of!(HOST_ANCHOR).cast::<c_void>();
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: each hook with its function's contract: `key` is valid for writing, and every
        // key passed was created by `create` (or deleted by `delete`, which makes it invalid).
        unsafe {
            assert_eq!(create(&mut key, None), 0);
            assert!(key >= VIRTUAL_BASE, "{key}");
            assert!(get(key).is_null());
            assert_eq!(set(key, value), 0);
            assert_eq!(get(key), value.cast_mut());
            assert_eq!(set(key, ptr::null()), 0);
            assert_eq!(delete(key), 0);
            assert_eq!(delete(key), libc::EINVAL);
            assert_eq!(set(key, value), libc::EINVAL);
        }

        // `__cxa_thread_atexit_impl`: a destructor registered outside every module library runs
        // at the thread's exit, as glibc's would.
        static RAN: AtomicBool = AtomicBool::new(false);
        unsafe extern "C" fn mark(flag: *mut c_void) {
            // SAFETY: `flag` is `&RAN`, a static.
            unsafe { (*flag.cast::<AtomicBool>()).store(true, Ordering::SeqCst) };
        }
        let atexit: ThreadAtexit = hook(Redirect::CxaThreadAtexitImpl);
        std::thread::spawn(move || {
            // SAFETY: `mark(&RAN)` is sound at any time; the `dso` is this test binary's, which
            // stays loaded.
            let status = unsafe {
                atexit(
                    mark,
                    ptr::addr_of!(RAN).cast_mut().cast(),
                    ptr::addr_of!(HOST_ANCHOR).cast_mut().cast(),
                )
            };
            assert_eq!(status, 0);
            assert!(!RAN.load(Ordering::SeqCst));
        })
        .join()
        .expect("the thread");
        assert!(RAN.load(Ordering::SeqCst));
        assert!(Redirect::TssCreate.hook().is_none());
    }

    /// A library tracked for the fork tests only (never listed in `LIBRARIES`).
    fn tracked() -> Arc<Tracked> {
        Arc::new(Tracked {
            start: 0,
            end: 0,
            gate: Mutex::new(Gate {
                open: true,
                running: 0,
                keep: None,
            }),
            idle: Condvar::new(),
        })
    }

    /// `ForkLocks::in_child` over the gates of `libraries` (with the real lists' locks held, as
    /// across a fork).
    fn as_in_a_forked_child(libraries: &[Arc<Tracked>]) {
        let mut locks = ForkLocks {
            gates: libraries.iter().map(HeldGate::take).collect(),
            _keys: VIRTUAL_KEYS.write().unwrap_or_else(PoisonError::into_inner),
            _libraries: LIBRARIES.write().unwrap_or_else(PoisonError::into_inner),
        };
        locks.in_child();
    }

    /// Destructors another thread was running at the fork no longer count in the child: the
    /// library can be released there without waiting for them.
    #[test]
    fn destructors_running_on_other_threads_at_the_fork_do_not_count_in_the_child() {
        let library = tracked();
        library.lock().running = 2;
        as_in_a_forked_child(std::slice::from_ref(&library));
        assert_eq!(library.lock().running, 0);
        let mut thread_exit = ThreadExit {
            tracked: library,
            registered: false,
        };
        assert_eq!(thread_exit.release(), Ok(()), "released at once");
    }

    /// A thread that forks from inside a destructor cannot tell its own from the others': the
    /// libraries with destructors running stay mapped in the child.
    #[test]
    fn forked_from_inside_a_destructor_the_libraries_with_destructors_running_stay_mapped() {
        let (inside, other, idle) = (tracked(), tracked(), tracked());
        other.lock().running = 1;
        let running = inside.enter().expect("open");
        as_in_a_forked_child(&[inside.clone(), other.clone(), idle.clone()]);
        drop(running);
        for library in [&inside, &other] {
            let gate = library.lock();
            assert!(gate
                .keep
                .as_deref()
                .is_some_and(|why| why.contains("forked")));
        }
        assert_eq!(other.lock().running, 1, "not waited for: kept");
        assert!(idle.lock().keep.is_none());
        let mut thread_exit = ThreadExit {
            tracked: other,
            registered: false,
        };
        assert!(thread_exit.release().is_err(), "kept mapped");
    }
}
