//! The owner of one hot module's generations: which one is current, which are alive, the locks,
//! and the one place that makes a generation current.
//!
//! Invariants:
//! - `current` is null while generation 0 (the compiled-in code) is current, else it points to
//!   a generation in `Registry::live`. It is only stored by [`Runtime::make_current`], under the
//!   registry lock, with the loading lock held (`&mut Loading`) inside `snapshot::publish`
//!   (`&Publishing`): the types of its arguments are those three preconditions.
//! - `Registry::live` owns every loaded generation that has not retired, current and staged
//!   included.
//! - A generation leaves `live` only in [`Runtime::collect`], under the registry lock, when it is
//!   neither current nor staged, its pin count is 0, and no thread's hazard slot holds it after a
//!   process-wide barrier (the protocol is described in `pin.rs`). It is unloaded afterwards by a
//!   thread that holds no lock of hotmod's (`hold.rs`, which also gives the lock order).
//!
//! The load pipeline that drives these steps is `transaction.rs`; the call paths are `pin.rs`.
//!
//! Every runtime enrols with the fork handlers (`fork.rs`) before it first takes a lock of its
//! own, so that a `fork` never leaves one of them held by a thread the child does not have.
//! That is also why the loading lock is a [`LoadingLock`], which knows its holder, rather than a
//! `std::sync::Mutex`.

use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::abi::{self, HeldPin, HostLink, ModuleDescriptor, RawTrampoline, StateMark, HOSTED};
use crate::artifact_path;
use crate::error::Error;
use crate::events::{Event, Events, Hub};
use crate::fork;
use crate::generation::Generation;
use crate::hazard;
use crate::hold::Hold;
use crate::invocation::invoke;
use crate::loader::LoadedLibrary;
use crate::rollback::Rollback;
use crate::snapshot::Publishing;

/// Every hot module linked into this binary (or library), enrolled before `main` by the
/// generated code (`__private::register`): how a load finds the host's module for a copy of it
/// that a library embeds. A list through `Runtime::next_module`, so that enrolling allocates
/// nothing (a library's copies enrol too, at `dlopen`, and a library leaves no allocation
/// behind when it is unloaded).
static MODULES: AtomicPtr<Runtime> = AtomicPtr::new(ptr::null_mut());
/// How many modules enrolled: the next one's reach bit.
static ENROLLED: AtomicUsize = AtomicUsize::new(0);

/// Enrols a module's runtime (see `MODULES`); once per runtime, before `main`. It gets its
/// reach bit (`Runtime::reach_bit`).
pub(crate) fn register(runtime: &'static Runtime) {
    if runtime.listed.swap(true, Ordering::AcqRel) {
        return;
    }
    let this = ptr::from_ref(runtime).cast_mut();
    let mut head = MODULES.load(Ordering::Acquire);
    loop {
        runtime.next_module.store(head, Ordering::Relaxed);
        // Release: a reader that finds `this` also finds its `next_module`.
        match MODULES.compare_exchange_weak(head, this, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(now) => head = now,
        }
    }
    // Beyond 63 modules, the last bit stands for all the others (a view then keeps more loaded
    // than it needs, never less).
    let index = ENROLLED.fetch_add(1, Ordering::AcqRel);
    runtime
        .reach_bit
        .store(1 << index.min(63), Ordering::Relaxed);
    // Every call announces a view (`pin.rs`), whose reader side is a compiler fence only once
    // the process is registered for the expedited barrier: register it before the first call.
    crate::os::prepare_barrier();
}

/// The enrolled modules, newest first.
pub(crate) fn registered() -> impl Iterator<Item = &'static Runtime> {
    let mut next = MODULES.load(Ordering::Acquire);
    std::iter::from_fn(move || {
        // SAFETY: only `&'static Runtime`s are ever linked in, and never unlinked.
        let runtime: &'static Runtime = unsafe { next.as_ref()? };
        next = runtime.next_module.load(Ordering::Acquire);
        Some(runtime)
    })
}

/// What the generated code knows about its module at compile time.
#[doc(hidden)]
pub struct ModuleInfo {
    /// `module_path!()` of the hot module.
    pub name: &'static str,
    /// The exported descriptor's symbol name.
    pub symbol: &'static str,
    /// The module crate's cargo package name.
    pub package: &'static str,
    /// The module crate's manifest directory.
    pub manifest_dir: &'static str,
    /// `#[hot_module(path = "…")]`.
    pub default_path: Option<&'static str>,
    /// `#[hot_module(watch)]`: watch the artifact from first use.
    pub watch: bool,
    /// `#[hot_module(rebuild)]`: rebuild on save from first use.
    pub rebuild: bool,
}

/// One hot module's generations and the locks over them.
pub(crate) struct Runtime {
    /// This runtime, as the static it lives in: what enrols with the fork handlers.
    this: &'static Runtime,
    /// The `Module` it is part of, opaque below the façade: what a library's copy of this
    /// module is linked to (`abi::HostLink::module`).
    module: *const (),
    /// Whether it enrolled (see [`Runtime::enrol`]).
    enrolled: AtomicBool,
    info: ModuleInfo,
    descriptor: &'static ModuleDescriptor,
    current: AtomicPtr<Generation>,
    /// The epoch at which `current` last changed (`snapshot::epoch`): a call whose view began
    /// at a later epoch may run the current generation as it is (`pin.rs`).
    since: AtomicU64,
    /// This module's bit in a view's reach (set when it enrols).
    reach_bit: AtomicU64,
    /// Whether the first-use check of `watch`/`rebuild` (attribute or environment) ran.
    started: AtomicBool,
    /// Starts what the attribute or the environment asks for (the façade's services).
    autostart: fn(&'static Runtime),
    builtin: Generation,
    /// Inside a loaded library, for a copy of another hot module the library embeds: the host's
    /// forwarding trampolines of its own module of the same path (`HostLink::forward`, copied
    /// here so that a call reads it in one step; null and 0: none, or not looked up yet).
    forward: AtomicPtr<Option<RawTrampoline>>,
    forward_len: AtomicUsize,
    /// Inside a loaded library, for the copy of the module it was loaded as and the copies
    /// the host links: the host's link of the same path (its `Module`, its runtime, its
    /// handles' calls; null: none, or not looked up yet).
    link: AtomicPtr<HostLink>,
    /// Whether the host's link was looked up (once, at the copy's first call).
    link_resolved: AtomicBool,
    /// The next enrolled module (see `MODULES`), and whether this one is enrolled.
    next_module: AtomicPtr<Runtime>,
    listed: AtomicBool,
    registry: Mutex<Registry>,
    /// Signalled whenever the current or staged generation changes.
    changed: Condvar,
    /// Held for a whole load, so loads from the caller, the watcher and the rebuild take turns.
    loading: LoadingLock,
    events: Hub,
    services: Mutex<Services>,
}

struct Registry {
    /// Loaded generations that have not retired, in load order (staged one included).
    live: Vec<NonNull<Generation>>,
    /// The number the next loaded generation gets.
    next: u64,
    /// Set by `set_path`.
    path: Option<PathBuf>,
    /// Retired generations whose library the platform refused to unmap.
    unload_blocked: Vec<u64>,
    /// Staged mode: new generations wait in `staged` for `apply_staged`.
    staging: bool,
    /// A verified generation waiting to become current.
    staged: Option<NonNull<Generation>>,
    /// The opt-in rollback policy new generations are watched with.
    rollback: Option<Rollback>,
    /// Which generation became current at which epoch, oldest first (generation 0 at epoch 0
    /// before the first entry): where a call whose view began before a swap finds the
    /// generation it sees (`Runtime::at_epoch`). Pruned by `collect` to what views still need.
    history: Vec<(u64, *const Generation)>,
}

/// Background work started for the module (the watcher, the rebuild); dropping one stops it.
/// The runtime only keeps them: what they are is the services' business.
#[derive(Default)]
pub(crate) struct Services {
    pub(crate) watcher: Option<Box<dyn Send>>,
    pub(crate) rebuild: Option<Box<dyn Send>>,
}

/// A module's loading lock, held (from [`Runtime::lock_loading`]): the proof the pipeline's
/// steps ask for. Dropping it releases the lock, then unloads what this thread retired meanwhile
/// if it holds no other loading lock (`hold.rs`).
pub(crate) struct Loading<'a> {
    runtime: &'a Runtime,
    // Fields drop in order: the lock is released before `_hold` unloads anything.
    _lock: LoadingGuard<'a>,
    _hold: Hold,
}

impl Loading<'_> {
    /// The current generation, which cannot be replaced while this guard is only borrowed
    /// (replacing it takes `&mut Loading`) and is never retired while current.
    pub(crate) fn current(&self) -> &Generation {
        // SAFETY: see above: `make_current` needs `&mut self`, so for as long as the returned
        // borrow lives the current generation stays current, and `collect` never frees it.
        unsafe { &*self.runtime.current_ptr() }
    }

    /// The staged generation, if any: alive while staged, and only this guard's holder can
    /// unstage it (`take_staged` needs `&mut self`).
    pub(crate) fn staged(&self) -> Option<&Generation> {
        let staged = self.runtime.registry().staged;
        // SAFETY: see above: `collect` never frees the staged generation, and only this guard's
        // holder can unstage it.
        staged.map(|g| unsafe { &*g.as_ptr() })
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        self.runtime
    }
}

/// A generation pinned by count: alive and loaded while this exists. Dropping it releases the
/// count, and retires the generation if that was its last user and it is no longer current.
pub(crate) struct CountPin {
    runtime: &'static Runtime,
    generation: NonNull<Generation>,
}

// SAFETY: a `CountPin` only reads its generation (immutable apart from atomics) and releases the
// count with an atomic decrement; the runtime is a `Sync` static.
unsafe impl Send for CountPin {}
// SAFETY: as above; `&CountPin` allows only reads.
unsafe impl Sync for CountPin {}

impl CountPin {
    /// Takes over a count someone raised on `generation`.
    ///
    /// # Safety
    /// The caller owns one count of `generation` (raised and not yet released), which this pin
    /// releases when dropped.
    pub(crate) unsafe fn adopt(runtime: &'static Runtime, generation: *const Generation) -> Self {
        CountPin {
            runtime,
            // SAFETY: a counted generation is a live one, never null (the caller's contract).
            generation: unsafe { NonNull::new_unchecked(generation.cast_mut()) },
        }
    }

    pub(crate) fn get(&self) -> &Generation {
        // SAFETY: the count keeps the generation alive while `self` exists.
        unsafe { self.generation.as_ref() }
    }

    pub(crate) fn as_ptr(&self) -> *const Generation {
        self.generation.as_ptr()
    }

    pub(crate) fn runtime(&self) -> &'static Runtime {
        self.runtime
    }

    /// The count as a [`HeldPin`], which releases it through this copy of hotmod's runtime
    /// wherever it is dropped (a `Pinned` that reached a library's code).
    pub(crate) fn into_held(self) -> HeldPin {
        let pin = ManuallyDrop::new(self);
        HeldPin {
            number: pin.get().number,
            runtime: ptr::from_ref(pin.runtime).cast(),
            generation: pin.generation.as_ptr().cast_const().cast(),
            release: release_held,
        }
    }
}

/// `HeldPin::release` of the counts this copy of the runtime raises.
///
/// # Safety
/// `runtime` and `generation` come from one `CountPin::into_held` of this copy, whose count
/// the caller owns and gives up.
unsafe extern "C" fn release_held(runtime: *const (), generation: *const ()) {
    // SAFETY: the caller's contract: a `&'static Runtime` of this copy and a generation it
    // counted, whose count `into_held` kept and the caller hands back.
    drop(unsafe { CountPin::adopt(&*runtime.cast::<Runtime>(), generation.cast()) });
}

impl Clone for CountPin {
    fn clone(&self) -> Self {
        // Relaxed: `self` holds a count, so it cannot reach 0 concurrently.
        self.get().pins.fetch_add(1, Ordering::Relaxed);
        CountPin {
            runtime: self.runtime,
            generation: self.generation,
        }
    }
}

impl Drop for CountPin {
    fn drop(&mut self) {
        // SAFETY: `self` owns one count of the generation.
        unsafe { self.runtime.unpin(self.generation.as_ptr()) };
    }
}

/// How long a swap that moves state waits for plain calls still running in the outgoing
/// generation before it seals the outgoing copies (see `state.rs`); an access to the state a
/// longer call makes afterwards is refused with a panic.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

// SAFETY: the raw generation pointers in `Registry` are owned by the runtime and only
// dereferenced under the pinning protocol; everything else is `Sync` or behind a mutex.
unsafe impl Sync for Runtime {}
// SAFETY: as above.
unsafe impl Send for Runtime {}

impl Runtime {
    /// A runtime to be stored in the static that `this` refers to (a `Module`'s, made by the
    /// generated code: `static M: Module = Module::__new(&M, …)`). A runtime stored elsewhere
    /// works, but never enrols with the fork handlers.
    pub(crate) const fn new(
        this: &'static Runtime,
        module: *const (),
        descriptor: &'static ModuleDescriptor,
        info: ModuleInfo,
        autostart: fn(&'static Runtime),
    ) -> Runtime {
        Runtime {
            this,
            module,
            enrolled: AtomicBool::new(false),
            info,
            descriptor,
            current: AtomicPtr::new(ptr::null_mut()),
            since: AtomicU64::new(0),
            reach_bit: AtomicU64::new(u64::MAX),
            started: AtomicBool::new(false),
            autostart,
            builtin: Generation::builtin(),
            forward: AtomicPtr::new(ptr::null_mut()),
            forward_len: AtomicUsize::new(0),
            link: AtomicPtr::new(ptr::null_mut()),
            link_resolved: AtomicBool::new(false),
            next_module: AtomicPtr::new(ptr::null_mut()),
            listed: AtomicBool::new(false),
            registry: Mutex::new(Registry {
                live: Vec::new(),
                next: 1,
                path: None,
                unload_blocked: Vec::new(),
                staging: false,
                staged: None,
                rollback: None,
                history: Vec::new(),
            }),
            changed: Condvar::new(),
            loading: LoadingLock::new(),
            events: Hub::new(),
            services: Mutex::new(Services {
                watcher: None,
                rebuild: None,
            }),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.info.name
    }

    pub(crate) fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// The host's own descriptor: what every library is verified against.
    pub(crate) fn host_descriptor(&self) -> &'static ModuleDescriptor {
        self.descriptor
    }

    /// The descriptor `generation` was built with (the host's own for generation 0).
    pub(crate) fn descriptor_of<'g>(&self, generation: &'g Generation) -> &'g ModuleDescriptor {
        generation.descriptor().unwrap_or(self.descriptor)
    }

    pub(crate) fn is_builtin(&self, generation: *const Generation) -> bool {
        ptr::eq(generation, &self.builtin)
    }

    /// Enrols this runtime with the fork handlers (`fork.rs`), once: called before each of its
    /// locks is taken (the registry, the loading lock, the events hub). The first time it takes
    /// the handlers' list lock, so it must not run under a lock the prepare handler takes: it
    /// never does, as each runtime's first lock is taken with no lock of hotmod's held but
    /// loading locks (of other modules, in `load_all`'s order).
    #[inline]
    fn enrol(&self) {
        if !self.enrolled.load(Ordering::Acquire) {
            self.enrol_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn enrol_slow(&self) {
        // Only the host's copy of hotmod handles forks: a copy inside a loaded library would
        // register handlers of its own for statics its module code barely uses. And only a
        // runtime in the static it was made for (see `new`).
        if !HOSTED.load(Ordering::Relaxed) && ptr::eq(self, self.this) {
            fork::enrol(self.this);
        }
        self.enrolled.store(true, Ordering::Release);
    }

    fn registry(&self) -> Locked<'_> {
        self.enrol();
        Locked {
            runtime: self,
            registry: self.registry.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// The events hub (after enrolling: its lock is one the fork handlers hold).
    fn events(&self) -> &Hub {
        self.enrol();
        &self.events
    }

    /// Serialises loads of this module (from callers, the watcher, the rebuild, `load_all`).
    /// Generations retired meanwhile are unloaded once this thread holds no loading lock.
    /// Refused in a child forked while another thread held it, and on a thread that holds it
    /// ([`LoadingLock`]).
    pub(crate) fn lock_loading(&self) -> Result<Loading<'_>, Error> {
        self.enrol();
        let module = self.name();
        let lock = self.loading.lock().map_err(|refused| match refused {
            LockRefused::Abandoned => Error::ForkedDuringLoad { module },
            LockRefused::Reentered => Error::LoadReentered { module },
        })?;
        Ok(Loading {
            runtime: self,
            _lock: lock,
            _hold: Hold::new(),
        })
    }

    /// As `lock_loading`, unless a load is in progress (or can never end, after a fork).
    pub(crate) fn try_lock_loading(&self) -> Option<Loading<'_>> {
        self.enrol();
        let lock = self.loading.try_lock()?;
        Some(Loading {
            runtime: self,
            _lock: lock,
            _hold: Hold::new(),
        })
    }

    // ---- The current generation (read by the call paths) ----

    /// The current generation, generation 0 included (never null).
    #[inline]
    pub(crate) fn current_ptr(&self) -> *const Generation {
        // Acquire: pairs with the SeqCst stores that publish a generation, so its fields are
        // visible.
        self.or_builtin(self.current.load(Ordering::Acquire))
    }

    /// As `current_ptr`, for the count-pin protocol that needs a total order with the store.
    #[inline]
    pub(crate) fn current_ptr_seqcst(&self) -> *const Generation {
        self.or_builtin(self.current.load(Ordering::SeqCst))
    }

    /// `current` as stored (null for generation 0) to a generation pointer.
    #[inline]
    fn or_builtin(&self, current: *const Generation) -> *const Generation {
        if current.is_null() {
            &self.builtin
        } else {
            current
        }
    }

    /// The current loaded generation, or null while generation 0 is current.
    #[inline]
    pub(crate) fn current_loaded(&self) -> *const Generation {
        self.current.load(Ordering::Acquire)
    }

    /// The epoch `current` last changed at. Read after `current`: if it is at most a view's
    /// epoch, the `current` read is the generation current at that epoch.
    #[inline(always)]
    pub(crate) fn since(&self) -> u64 {
        self.since.load(Ordering::Relaxed)
    }

    /// This module's bit in a view's reach.
    #[inline(always)]
    pub(crate) fn reach_bit(&self) -> u64 {
        self.reach_bit.load(Ordering::Relaxed)
    }

    /// Whether `generation` is one of this module's loaded generations (not retired).
    #[cold]
    pub(crate) fn owns(&self, generation: *const Generation) -> bool {
        self.registry()
            .live
            .iter()
            .any(|g| ptr::eq(g.as_ptr(), generation))
    }

    /// The generation that was current at `epoch`, for a call whose view (which keeps it
    /// loaded) began then; generation 0 before the history's first entry.
    #[cold]
    pub(crate) fn at_epoch(&self, epoch: u64) -> *const Generation {
        self.registry().at_epoch(epoch)
    }

    /// Pins the current generation by count, under the registry lock (for threads without a
    /// hazard slot, and for the loading thread).
    pub(crate) fn pin_locked(&'static self) -> CountPin {
        let registry = self.registry();
        let generation = registry.current();
        generation.pins.fetch_add(1, Ordering::SeqCst);
        // SAFETY: we just raised the count this pin releases.
        unsafe { CountPin::adopt(self, generation) }
    }

    /// Releases one count pin; collects if that was the last pin of a generation that is no
    /// longer current.
    ///
    /// # Safety
    /// The caller owns one count of `generation`, which it gives up here.
    pub(crate) unsafe fn unpin(&'static self, generation: *const Generation) {
        // SAFETY: the caller holds a pin on `generation`, so it is alive until this decrement.
        let previous = unsafe { &*generation }.pins.fetch_sub(1, Ordering::SeqCst);
        // Nothing below dereferences `generation`: it may be freed as soon as the count is 0.
        if previous == 1 && !ptr::eq(self.current_ptr_seqcst(), generation) {
            self.collect();
        }
    }

    // ---- Making a generation current: the one place ----

    /// Numbers a generation that passed verification and on_load and adds it to the live ones.
    /// Under the registry lock, with the loading lock held (which orders numbers with loads).
    fn admit(registry: &mut Registry, generation: Box<Generation>) -> NonNull<Generation> {
        let mut generation = generation;
        generation.number = registry.next;
        registry.next += 1;
        let generation = NonNull::from(Box::leak(generation));
        registry.live.push(generation);
        generation
    }

    /// Makes `to` current: a prepared generation (numbered and added to the live ones in the same
    /// step, so the collector never sees it idle), or one already live (staged, or a rollback's
    /// fallback, or generation 0). With `watch`, the
    /// outgoing generation's probation ends and, if a rollback policy is set, `to` starts one
    /// with the outgoing generation as its fallback (pinned). Clears `to` from staging if it was
    /// staged. Returns the fallback pin a probation that ended held, to release.
    ///
    /// The three preconditions are its arguments: the loading lock (`&mut Loading`, so no
    /// borrow of the outgoing generation taken from the guard survives the swap), the snapshot
    /// writer (`&Publishing`), and the registry lock, taken here.
    pub(crate) fn make_current(
        &'static self,
        loading: &mut Loading,
        publishing: &Publishing,
        to: To,
        watch: bool,
    ) -> (*const Generation, Option<CountPin>) {
        debug_assert!(ptr::eq(loading.runtime, self));
        let mut registry = self.registry();
        let to = match to {
            To::Fresh(generation) => Self::admit(&mut registry, generation).as_ptr().cast_const(),
            To::Live(generation) => generation,
        };
        let outgoing = registry.current();
        let ended = outgoing.probation.end();
        if watch {
            if let Some(policy) = registry.rollback {
                // SAFETY: `to` is live (admitted above, or `To::Live`'s contract) and the
                // registry lock keeps it so.
                let incoming = unsafe { &*to };
                // The count keeps the outgoing generation alive as the fallback from here on.
                outgoing.pins.fetch_add(1, Ordering::SeqCst);
                incoming.probation.start(policy, outgoing);
            }
        }
        if registry.staged.is_some_and(|s| ptr::eq(s.as_ptr(), to)) {
            registry.staged = None;
        }
        let stored = if self.is_builtin(to) {
            ptr::null_mut()
        } else {
            to.cast_mut()
        };
        let epoch = publishing.epoch();
        registry.history.push((epoch, to));
        // Before `current`: a call that reads the new `current` reads this `since` or a later
        // one (the SeqCst store below releases it), so it never runs the new generation in a
        // view that began before it.
        self.since.store(epoch, Ordering::Relaxed);
        // SeqCst: the collector and `PinnedGeneration::current` order their pin-count accesses
        // against this store (see pin.rs).
        self.current.store(stored, Ordering::SeqCst);
        drop(registry);
        // SAFETY: a probation's fallback holds one count, which `end` handed to us.
        let ended = ended.map(|fallback| unsafe { CountPin::adopt(self, fallback) });
        (to, ended)
    }

    /// Wakes `wait_for_generation`: the current (or staged) generation changed.
    pub(crate) fn notify_changed(&self) {
        self.changed.notify_all();
    }

    /// Ends `generation`'s probation, if it has one; returns the fallback it pinned.
    pub(crate) fn end_probation(&'static self, generation: &Generation) -> Option<CountPin> {
        let fallback = generation.probation.end()?;
        // SAFETY: a probation's fallback holds one count, which `end` handed to us.
        Some(unsafe { CountPin::adopt(self, fallback) })
    }

    /// Keeps a prepared generation as the staged one; returns its number and whether it replaced
    /// a staged generation that was never applied (which retires now).
    pub(crate) fn stage(&'static self, _loading: &mut Loading, generation: Box<Generation>) -> u64 {
        let path = generation.origin.clone().unwrap_or_default();
        let mut registry = self.registry();
        let generation = Self::admit(&mut registry, generation);
        // SAFETY: just admitted; we hold the lock.
        let number = unsafe { generation.as_ref() }.number;
        let replaced = registry.staged.replace(generation).is_some();
        drop(registry);
        self.changed.notify_all();
        self.events().emit(Event::Staged {
            module: self.name(),
            generation: number,
            path,
        });
        if replaced {
            // The generation it replaced was never current; it retires now.
            self.collect();
        }
        number
    }

    /// Drops the staged generation (its hand-over was refused); it retires at the next
    /// `collect`, which the caller runs once it has reported why.
    pub(crate) fn unstage(&'static self, _loading: &mut Loading) {
        self.registry().staged = None;
    }

    /// Waits (at most `DRAIN_LIMIT`) until no other thread runs a plain call in `outgoing`, which
    /// is no longer current. Plain calls of generation 0 take no pin, so there is nothing to see.
    pub(crate) fn drain(&self, outgoing: &Generation) {
        if self.is_builtin(outgoing) {
            return;
        }
        // After the swap and this barrier, a plain call either shows `outgoing` in its hazard
        // slot or re-reads `current` and goes to the new generation (pin.rs).
        if !crate::os::process_barrier() {
            return;
        }
        let deadline = Instant::now() + DRAIN_LIMIT;
        let mut pause = Duration::from_micros(20);
        while hazard::running_elsewhere(outgoing) || self.viewed_elsewhere(outgoing) {
            if Instant::now() >= deadline {
                tracing::warn!(
                    target: "hotmod",
                    "{}: a plain call still runs in generation {} after {} s; its state moves \
                     now, and that call's accesses to it will be refused",
                    self.name(),
                    outgoing.number,
                    DRAIN_LIMIT.as_secs()
                );
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// Whether another thread's view reaches `generation`: a call that began while it was
    /// current, and may still call it.
    fn viewed_elsewhere(&self, generation: &Generation) -> bool {
        let bit = self.reach_bit();
        let views = hazard::views(true);
        let registry = self.registry();
        views
            .iter()
            .any(|view| view.reach & bit != 0 && ptr::eq(registry.at_epoch(view.epoch), generation))
    }

    // ---- Retiring ----

    /// `collect` for every module of the process: after a call whose view spanned a swap, any
    /// of the modules it reaches may have kept a generation on its account.
    #[cold]
    #[inline(never)]
    pub(crate) fn collect_all() {
        for runtime in registered() {
            runtime.collect();
        }
    }

    /// Unloads every generation that is not current or staged and that nothing uses any more.
    pub(crate) fn collect(&'static self) {
        let mut registry = self.registry();
        let current = self.current_ptr_seqcst();
        let staged = registry.staged;
        let idle = |g: &NonNull<Generation>| {
            if staged == Some(*g) {
                return false;
            }
            // SAFETY: generations in `live` are alive while we hold the lock.
            let pins = unsafe { g.as_ref() }.pins.load(Ordering::SeqCst);
            !ptr::eq(g.as_ptr(), current) && pins == 0
        };
        if !registry.live.iter().any(idle) {
            return;
        }
        if !crate::os::process_barrier() {
            // Without the barrier a reader's hazard may be invisible: retire nothing now; the
            // next collect (the next unpin or load) tries again.
            tracing::warn!(
                target: "hotmod",
                "{}: the process-wide barrier failed; retired generations stay loaded for now",
                self.name()
            );
            return;
        }
        let mut hazards = hazard::hazards();
        // A view keeps this module's generation at its epoch if it reaches this module.
        let bit = self.reach_bit();
        let views: Vec<u64> = hazard::views(false)
            .into_iter()
            .filter(|view| view.reach & bit != 0)
            .map(|view| view.epoch)
            .collect();
        hazards.extend(views.iter().map(|epoch| registry.at_epoch(*epoch)));
        registry.prune_history(views.iter().copied().min());
        let (retiring, live): (Vec<_>, Vec<_>) = registry
            .live
            .iter()
            .copied()
            .partition(|g| idle(g) && !hazards.contains(&g.as_ptr().cast_const()));
        if retiring.is_empty() {
            return;
        }
        registry.live = live;
        // No view can reach a retiring generation: its history entries go too.
        registry
            .history
            .retain(|(_, g)| !retiring.iter().any(|r| ptr::eq(r.as_ptr(), *g)));
        // Unload outside the registry lock, and outside any loading lock this thread holds:
        // module code runs while a library unloads, and may call back into hotmod (hold.rs).
        drop(registry);
        let hold = Hold::new();
        for generation in retiring {
            let generation = Retiring(generation);
            hold.defer(Box::new(move || self.retire(generation)));
        }
        drop(hold);
    }

    /// Unloads a generation `collect` took out of `live`, and says so. Module code runs here:
    /// called only through a `Hold`, with no lock held.
    fn retire(&'static self, generation: Retiring) {
        // SAFETY: `collect` took the generation out of `live` when it was not current or staged,
        // had no pins and no hazard: nothing can reach it any more. We own the allocation made
        // in `admit`, handed to exactly one `retire` (through one `Retiring`).
        let generation = unsafe { Box::from_raw(generation.0.as_ptr()) };
        self.drop_state_values(&generation);
        let Generation {
            number, library, ..
        } = *generation;
        let module = self.name();
        match library.map_or(Ok(()), LoadedLibrary::unload_or_reason) {
            Ok(()) => self.events().emit(Event::Retired {
                module,
                generation: number,
            }),
            Err(reason) => {
                // Listed first: a subscriber that sees the event finds it in `unload_blocked()`.
                self.registry().unload_blocked.push(number);
                self.events().emit(Event::RetireBlocked {
                    module,
                    generation: number,
                    reason,
                });
            }
        }
    }

    /// Drops the values a retiring generation's `#[hotmod::state]` copies still hold (a copy
    /// keeps its value after it moved, see `transaction::Swap::commit`), before its library
    /// unloads. Their `Drop` is module code, run here with no lock held.
    fn drop_state_values(&self, generation: &Generation) {
        let Some(descriptor) = generation.descriptor() else {
            return;
        };
        // SAFETY: the descriptor is verified, so its states slice is whole, and it lives in the
        // generation's library, loaded while we borrow the generation.
        let states = unsafe { descriptor.states.as_slice() };
        if states.is_empty() {
            return;
        }
        // Named in the message of an access to a moved copy; none can come any more.
        let to = self.generation();
        for entry in states {
            // SAFETY: mark trampolines take `StateMark` and return `()` (ABI contract); the
            // library is loaded (above).
            let marked = unsafe { invoke::<StateMark, ()>(entry.mark, StateMark::Moved { to }) };
            if let Err(panic) = marked {
                // SAFETY: as above.
                let name = unsafe { entry.name.as_str() };
                tracing::warn!(
                    target: "hotmod",
                    "{}: state `{name}`: dropping its value as generation {} retired panicked: {panic}",
                    self.name(),
                    generation.number
                );
            }
        }
    }

    // ---- Events ----

    /// Tells waiters and subscribers that generation `number` (from `path`) is current, and
    /// retires what that freed.
    pub(crate) fn announce(&'static self, number: u64, path: &Path, started: Instant) -> u64 {
        self.events().emit(Event::Loaded {
            module: self.name(),
            generation: number,
            path: path.to_path_buf(),
            took: started.elapsed(),
        });
        self.collect();
        number
    }

    pub(crate) fn reject(&self, error: &Error) {
        self.events().emit(Event::Rejected {
            module: self.name(),
            error: error.clone(),
        });
    }

    pub(crate) fn emit(&self, event: Event) {
        self.events().emit(event);
    }

    /// Says that watching or rebuilding started (`what`); see `progress.rs`.
    pub(crate) fn started(&self, what: &str) {
        self.events().started(self.name(), what);
    }

    pub(crate) fn subscribe(&self) -> Events {
        self.events().subscribe()
    }

    // ---- Services ----

    pub(crate) fn services(&self) -> MutexGuard<'_, Services> {
        self.services.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops watching and rebuilding, and printing progress.
    pub(crate) fn stop_services(&self) {
        let mut services = self.services();
        services.watcher = None;
        services.rebuild = None;
        self.events().stopped();
    }

    /// Inside a loaded library, for a copy of a hot module the host links (see
    /// `abi::HostLinks`): the host's forwarding trampoline of function `index` (the library's
    /// index), which makes the call in the host's module. `None` in the host, for the module the
    /// library was loaded as, and for a function the host's module lacks.
    #[inline]
    pub(crate) fn forwarded(&self, index: usize) -> Option<RawTrampoline> {
        // Resolved only inside a library (`HOSTED`): in the host, the flag and `HOSTED` are read.
        if !self.link_resolved.load(Ordering::Acquire) {
            if !HOSTED.load(Ordering::Relaxed) {
                return None;
            }
            self.resolve_link();
        }
        if index >= self.forward_len.load(Ordering::Relaxed) {
            return None;
        }
        // SAFETY: `forward` and `forward_len` are a slice of the host's link, stored before
        // `link_resolved` (Release, read with Acquire above) and alive until this library is
        // unloaded (`abi::host_link`); `index` is in bounds.
        unsafe { *self.forward.load(Ordering::Relaxed).add(index) }
    }

    /// Inside a loaded library, the host's `Module` of this copy's path, opaque: for the module
    /// the library was loaded as and the copies the host links. `None` in the host and for a
    /// module the host does not have.
    pub(crate) fn host_module(&self) -> Option<*const ()> {
        self.host_link().map(|link| link.module)
    }

    /// Inside a loaded library, the host's link of this copy's path (see the field). `None` in
    /// the host and for a module the host does not have.
    pub(crate) fn host_link(&self) -> Option<&'static HostLink> {
        if !self.link_resolved.load(Ordering::Acquire) {
            if !HOSTED.load(Ordering::Relaxed) {
                return None;
            }
            self.resolve_link();
        }
        // SAFETY: stored by `resolve_link` before `link_resolved` (Release, read with Acquire
        // above): a link of the host's, alive until this library is unloaded.
        unsafe { self.link.load(Ordering::Relaxed).as_ref() }
    }

    /// The `Module` this runtime is part of, opaque (see the field).
    pub(crate) fn module_ptr(&self) -> *const () {
        self.module
    }

    /// Looks up this copy's link among the host's (once).
    #[cold]
    #[inline(never)]
    fn resolve_link(&self) {
        // SAFETY: the descriptor is this copy's own static.
        let path = unsafe { self.descriptor.module_path.as_str() };
        if let Some(link) = abi::host_link(path) {
            // SAFETY: a slice the host built from data it keeps with the links, which outlive
            // this library (`abi::host_link`).
            let forward = unsafe { link.forward.as_slice() };
            self.forward
                .store(forward.as_ptr().cast_mut(), Ordering::Relaxed);
            self.forward_len.store(forward.len(), Ordering::Relaxed);
            self.link
                .store(ptr::from_ref(link).cast_mut(), Ordering::Relaxed);
        }
        self.link_resolved.store(true, Ordering::Release);
    }

    /// Starts what `#[hot_module(watch)]`, `#[hot_module(rebuild)]`, `HOTMOD_WATCH=1` or
    /// `HOTMOD_REBUILD=1` ask for, once, at the module's first use in the host.
    #[inline]
    pub(crate) fn first_use(&'static self) {
        if !self.started.load(Ordering::Relaxed) {
            self.first_use_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn first_use_slow(&'static self) {
        if self.started.swap(true, Ordering::AcqRel) || HOSTED.load(Ordering::Relaxed) {
            // Already done, or this is a module static inside a loaded generation: only the
            // host's statics may start background work.
            return;
        }
        // Where no static constructor enrolled it (a platform without one).
        register(self.this);
        (self.autostart)(self);
    }

    // ---- Queries and settings ----

    /// The current generation's number.
    pub(crate) fn generation(&self) -> u64 {
        self.registry().current().number
    }

    /// The newest generation's number and its private copy (`None` for generation 0): the
    /// staged one if any, else the current one.
    pub(crate) fn newest(&self) -> (u64, Option<PathBuf>) {
        let registry = self.registry();
        let newest = registry.staged().unwrap_or_else(|| registry.current());
        (newest.number, newest.copy_path().map(Path::to_path_buf))
    }

    pub(crate) fn staged_generation(&self) -> Option<u64> {
        self.registry().staged().map(|staged| staged.number)
    }

    pub(crate) fn staging(&self) -> bool {
        self.registry().staging
    }

    pub(crate) fn set_staging(&self, on: bool) {
        self.registry().staging = on;
    }

    pub(crate) fn set_rollback(&self, policy: Option<Rollback>) {
        self.registry().rollback = policy;
    }

    pub(crate) fn wait_for_generation(
        &self,
        generation: u64,
        timeout: Duration,
    ) -> Result<u64, Error> {
        let deadline = Instant::now() + timeout;
        let mut registry = self.registry();
        loop {
            let current = registry.current().number;
            if current >= generation {
                return Ok(current);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    module: self.name(),
                    what: format!("generation {generation} (current: {current})"),
                    after: timeout,
                });
            }
            registry.registry = self
                .changed
                .wait_timeout(registry.registry, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(crate) fn path(&self) -> PathBuf {
        let set = self.registry().path.clone();
        artifact_path::resolve(self.name(), set, self.info.default_path)
    }

    pub(crate) fn set_path(&self, path: PathBuf) {
        self.registry().path = Some(path);
    }

    pub(crate) fn env_var(&self) -> String {
        artifact_path::env_var(self.name())
    }

    pub(crate) fn crate_name(&self) -> &'static str {
        artifact_path::crate_name(self.name())
    }

    pub(crate) fn live_generations(&self) -> Vec<u64> {
        let registry = self.registry();
        std::iter::once(0)
            .chain(registry.live().map(|g| g.number))
            .collect()
    }

    pub(crate) fn unload_blocked(&self) -> Vec<u64> {
        self.registry().unload_blocked.clone()
    }
}

/// A module's loading lock. Not a `std::sync::Mutex`: a load holds it for long and runs module
/// code under it (`on_load`, the state hand-over), so the fork handlers do not wait for it; a
/// child forked while another thread held it must then tell that this load will never finish
/// there, which a mutex cannot say. The state (who holds it) is behind a mutex held only for a
/// few instructions, which the fork handlers do hold across the fork; in the child a lock held
/// by a thread that is gone is marked abandoned, and the module's loads are refused there.
struct LoadingLock {
    state: Mutex<LoadingState>,
    /// Signalled when the lock is released.
    released: Condvar,
}

struct LoadingState {
    /// The thread that holds the lock ([`this_thread`]), if any.
    holder: Option<usize>,
    /// Set in a child forked while a thread it does not have held the lock (see `fork.rs`).
    abandoned: bool,
}

impl LoadingLock {
    const fn new() -> LoadingLock {
        LoadingLock {
            state: Mutex::new(LoadingState {
                holder: None,
                abandoned: false,
            }),
            released: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, LoadingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the lock is free and takes it. Refused if it was abandoned, or if this
    /// thread holds it already: a load asked for from inside a load of the same module (its
    /// `on_load` function calling `module().load(..)`), which would wait for itself.
    fn lock(&self) -> Result<LoadingGuard<'_>, LockRefused> {
        let mut state = self.state();
        if state.holder == Some(this_thread()) {
            return Err(LockRefused::Reentered);
        }
        while state.holder.is_some() && !state.abandoned {
            state = self
                .released
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.abandoned {
            return Err(LockRefused::Abandoned);
        }
        state.holder = Some(this_thread());
        Ok(LoadingGuard(self))
    }

    /// Takes the lock if it is free.
    fn try_lock(&self) -> Option<LoadingGuard<'_>> {
        let mut state = self.state();
        if state.holder.is_some() || state.abandoned {
            return None;
        }
        state.holder = Some(this_thread());
        Some(LoadingGuard(self))
    }
}

/// Why [`LoadingLock::lock`] did not take the lock.
enum LockRefused {
    /// In a child forked while a thread it does not have held it.
    Abandoned,
    /// This thread holds it.
    Reentered,
}

/// A held [`LoadingLock`]; dropping it releases the lock.
struct LoadingGuard<'a>(&'a LoadingLock);

impl Drop for LoadingGuard<'_> {
    fn drop(&mut self) {
        self.0.state().holder = None;
        self.0.released.notify_one();
    }
}

/// This thread, as a number no other live thread has: the address of a thread-local of its own.
/// After `fork` the forking thread keeps its number in the child.
fn this_thread() -> usize {
    thread_local! {
        /// `const` and without a destructor: its address is there for the thread's whole life.
        static THIS: u8 = const { 0 };
    }
    THIS.with(|this| ptr::from_ref(this) as usize)
}

impl fork::Participant for Runtime {
    fn hold(&'static self, level: fork::Level) -> Box<dyn fork::Held> {
        // The fields' own locks, not `registry()` or `events()`, which would enrol.
        match level {
            fork::Level::Loading => Box::new(HeldLoading(self.loading.state())),
            fork::Level::Registry => Box::new(fork::Plain(
                self.registry.lock().unwrap_or_else(PoisonError::into_inner),
            )),
            fork::Level::Leaves => Box::new(fork::Plain(self.events.hold_for_fork())),
        }
    }
}

/// A loading lock's state, held across a fork.
struct HeldLoading(MutexGuard<'static, LoadingState>);

impl fork::Held for HeldLoading {
    fn in_child(&mut self) {
        // A load of another thread, which does not exist here: it never finishes. A load of
        // this thread goes on.
        if self.0.holder.is_some_and(|holder| holder != this_thread()) {
            self.0.holder = None;
            self.0.abandoned = true;
        }
    }
}

/// The registry, locked: generations borrowed from it stay alive (the collector takes the same
/// lock) and the current one stays current (`make_current` stores under it) while it is held.
struct Locked<'a> {
    runtime: &'a Runtime,
    registry: MutexGuard<'a, Registry>,
}

impl Locked<'_> {
    /// The current generation, generation 0 included.
    fn current(&self) -> &Generation {
        // SAFETY: see the type: under the registry lock the current generation can be neither
        // replaced nor freed, and generation 0 lives in the runtime.
        unsafe { &*self.runtime.current_ptr() }
    }

    /// The staged generation, if any.
    fn staged(&self) -> Option<&Generation> {
        // SAFETY: see the type: the staged generation is in `live`, and the collector never
        // frees a staged one.
        self.registry.staged.map(|g| unsafe { &*g.as_ptr() })
    }

    /// Every loaded generation that has not retired, in load order.
    /// Drops history no view needs: everything before the entry current at `oldest` (the
    /// oldest view's epoch), or before the last entry when no view reaches this module.
    fn prune_history(&mut self, oldest: Option<u64>) {
        let keep_from = match oldest {
            Some(epoch) => self.history.iter().rposition(|(since, _)| *since <= epoch),
            None => self.history.len().checked_sub(1),
        };
        if let Some(first) = keep_from {
            self.history.drain(..first);
        }
    }

    /// See `Runtime::at_epoch`.
    fn at_epoch(&self, epoch: u64) -> *const Generation {
        match self.history.iter().rev().find(|(since, _)| *since <= epoch) {
            Some((_, generation)) => *generation,
            None => &self.runtime.builtin,
        }
    }

    fn live(&self) -> impl Iterator<Item = &Generation> {
        // SAFETY: see the type: generations in `live` are freed only after the collector took
        // them out of it, under this lock.
        self.registry.live.iter().map(|g| unsafe { &*g.as_ptr() })
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = Registry;

    fn deref(&self) -> &Registry {
        &self.registry
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }
}

/// What [`Runtime::make_current`] makes current.
pub(crate) enum To {
    /// A prepared generation, not yet numbered.
    Fresh(Box<Generation>),
    /// A live generation of this runtime (in the registry, or generation 0), which the caller
    /// keeps alive (it is staged, pinned, or the builtin).
    Live(*const Generation),
}

/// A generation `collect` took out of the registry, on its way to `retire`.
struct Retiring(NonNull<Generation>);

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;
    use crate::fork::Held;

    /// What the fork handlers do to a loading lock, run in this process: its state held as
    /// across a fork, then the child handler's step.
    fn as_in_a_forked_child(lock: &'static LoadingLock) {
        let mut held = HeldLoading(lock.state());
        held.in_child();
    }

    #[test]
    fn a_loading_lock_another_thread_held_at_the_fork_is_refused_not_waited_for() {
        static LOCK: LoadingLock = LoadingLock::new();
        let (taken, done) = (Barrier::new(2), Barrier::new(2));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _guard = LOCK.lock().ok().expect("free");
                taken.wait();
                done.wait();
            });
            taken.wait();
            as_in_a_forked_child(&LOCK);
            assert!(LOCK.try_lock().is_none());
            assert!(
                matches!(LOCK.lock(), Err(LockRefused::Abandoned)),
                "refused at once"
            );
            done.wait();
        });
        assert!(
            matches!(LOCK.lock(), Err(LockRefused::Abandoned)),
            "for good"
        );
    }

    #[test]
    fn a_loading_lock_the_forking_thread_held_stays_its_own() {
        static LOCK: LoadingLock = LoadingLock::new();
        let guard = LOCK.lock().ok().expect("free");
        as_in_a_forked_child(&LOCK);
        assert!(LOCK.try_lock().is_none(), "still held");
        assert!(
            matches!(LOCK.lock(), Err(LockRefused::Reentered)),
            "this thread holds it"
        );
        drop(guard);
        assert!(LOCK.lock().is_ok(), "released as usual");
    }

    #[test]
    fn a_free_loading_lock_stays_free() {
        static LOCK: LoadingLock = LoadingLock::new();
        as_in_a_forked_child(&LOCK);
        assert!(LOCK.lock().is_ok());
    }
}
