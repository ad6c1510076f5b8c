//! The control surface of one hot module, and the owner of its generations.
//!
//! Invariants:
//! - `current` is null while generation 0 (the compiled-in code) is current, else it points to
//!   a generation in `State::live`. It is only stored under the state lock.
//! - `State::live` owns every loaded generation that has not retired, current included.
//! - A generation leaves `live` only in `collect`, under the lock, when it is not current, its
//!   pin count is 0, and no thread's hazard slot holds it after a process-wide barrier (the
//!   protocol is described in `pin.rs`). It is unloaded afterwards by a thread that holds no
//!   lock of hotmod's (see `Hold`, which also gives the lock order).

use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::abi::{ModuleDescriptor, OnLoadResult, HOSTED};
use crate::builder::Rebuild;
use crate::error::Error;
use crate::events::{Event, Events, Hub};
use crate::generation::{Generation, Probation, Rollback, Verdict};
use crate::loader::{Artifact, LoadedLibrary};
use crate::state::Handoff;
use crate::watcher::Watcher;
use crate::{artifact_path, loader, pin};

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

/// The control surface of one hot module: which generation is current, loading new ones,
/// watching for new builds, events, and which generations are still alive. Obtained from the
/// generated `module()` function.
pub struct Module {
    info: ModuleInfo,
    descriptor: &'static ModuleDescriptor,
    current: AtomicPtr<Generation>,
    /// Whether the first-use check of `watch`/`rebuild` (attribute or environment) ran.
    started: AtomicBool,
    builtin: Generation,
    state: Mutex<State>,
    /// Signalled whenever the current or staged generation changes.
    changed: Condvar,
    /// Held for a whole load, so loads from the caller, the watcher and the rebuild take turns.
    loading: Mutex<()>,
    events: Hub,
    services: Mutex<Services>,
}

struct State {
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
}

/// Background work started for the module.
struct Services {
    watcher: Option<Watcher>,
    rebuild: Option<crate::builder::Running>,
}

/// A verified, initialised library that is not yet a generation (its number is not set).
/// Dropping it unloads the library.
pub(crate) struct Candidate(Box<Generation>);

/// A generation that just became current.
pub(crate) struct Live {
    number: u64,
    path: PathBuf,
    /// The generation itself (current, so alive while the loading lock is held).
    generation: *const Generation,
}

/// A swap made under the loading lock whose state hand-over (see `state.rs`) is not finished:
/// the incoming generation is current, the outgoing one is pinned (by count) until
/// [`done`](Swap::done) or [`undone`](Swap::undone). Every method runs with the loading lock
/// held.
pub(crate) struct Swap {
    module: &'static Module,
    from: *const Generation,
    to: *const Generation,
    /// The incoming generation's number.
    number: u64,
    handoff: Option<Handoff>,
}

impl Swap {
    /// Waits for plain calls still running in the outgoing generation (bounded), then seals its
    /// copies and imports their final values into the incoming ones (which stay pending).
    pub(crate) fn move_state(&self) -> Result<(), Error> {
        match &self.handoff {
            Some(handoff) => self.module.move_state(handoff, self.from, self.to),
            None => Ok(()),
        }
    }

    /// After `move_state` succeeded: the incoming copies become ready. The outgoing ones keep
    /// their moved values until their generation retires (`Module::retire` drops them with no
    /// lock held: a value's `Drop` is module code, which may call back into hotmod); generation
    /// 0, which never retires, drops them now.
    pub(crate) fn commit(&self) {
        if let Some(handoff) = &self.handoff {
            // SAFETY: both libraries are loaded: the outgoing generation is pinned, the incoming
            // one is current under the loading lock.
            unsafe { handoff.commit(self.number) };
            if ptr::eq(self.from, &self.module.builtin) {
                // SAFETY: as above.
                unsafe { handoff.drop_old(self.number) };
            }
        }
    }

    /// After `move_state` failed (here or in another module of the same `load_all`): the
    /// outgoing copies are ready again, the incoming ones moved back.
    pub(crate) fn revert_state(&self) {
        if let Some(handoff) = &self.handoff {
            // SAFETY: as in `commit`.
            unsafe { handoff.revert(self.module.number_of(self.from)) };
        }
    }

    /// Makes the outgoing generation current again; call inside `snapshot::publish`. Returns a
    /// fallback pin for [`undone`](Self::undone) to release.
    pub(crate) fn restore(&self) -> *const Generation {
        self.module.restore_current(self.from, self.to)
    }

    /// After `restore`: releases the pins and retires the generation that did not stay.
    pub(crate) fn undone(self, released: *const Generation) {
        self.module.release_fallback(released);
        self.module.changed.notify_all();
        pin::unpin(self.module, self.from);
        self.module.collect();
    }

    /// After `commit` (and the announcement): releases the outgoing generation, which retires
    /// if nothing else uses it.
    pub(crate) fn done(self) {
        pin::unpin(self.module, self.from);
    }
}

/// How long a swap that moves state waits for plain calls still running in the outgoing
/// generation before it seals the outgoing copies (see `state.rs`); an access to the state a
/// longer call makes afterwards is refused with a panic.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// What became of one load attempt.
pub(crate) enum Outcome {
    Live(u64),
    Staged(u64),
    Unchanged,
}

// SAFETY: the raw generation pointers in `State` are owned by the module and only dereferenced
// under the pinning protocol; everything else is `Sync` or behind a mutex.
unsafe impl Sync for Module {}
// SAFETY: as above.
unsafe impl Send for Module {}

impl Module {
    #[doc(hidden)]
    /// Used by the generated code.
    pub const fn __new(descriptor: &'static ModuleDescriptor, info: ModuleInfo) -> Module {
        Module {
            info,
            descriptor,
            current: AtomicPtr::new(ptr::null_mut()),
            started: AtomicBool::new(false),
            builtin: Generation::builtin(),
            state: Mutex::new(State {
                live: Vec::new(),
                next: 1,
                path: None,
                unload_blocked: Vec::new(),
                staging: false,
                staged: None,
                rollback: None,
            }),
            changed: Condvar::new(),
            loading: Mutex::new(()),
            events: Hub::new(),
            services: Mutex::new(Services {
                watcher: None,
                rebuild: None,
            }),
        }
    }

    /// The hot module's path, e.g. `greeter::hello`.
    pub fn name(&self) -> &'static str {
        self.info.name
    }

    /// The current generation's number: 0 until a library has been loaded.
    pub fn generation(&self) -> u64 {
        let _state = self.lock();
        // SAFETY: under the lock the collector cannot free the current generation (it never
        // frees the current one anyway).
        unsafe { &*self.current_ptr() }.number
    }

    /// Verifies the library at `path`, runs its `#[hotmod::on_load]` function if it has one, and
    /// makes it the next generation; returns its number. In staged mode (see
    /// [`set_staged`](Self::set_staged)) the new generation waits for
    /// [`apply_staged`](Self::apply_staged) instead of becoming current.
    ///
    /// On any error the current generation stays current, nothing is left behind, and
    /// subscribers get an [`Event::Rejected`].
    pub fn load(&'static self, path: impl AsRef<Path>) -> Result<u64, Error> {
        match self.install(path.as_ref(), Instant::now(), false) {
            Ok(Outcome::Live(n) | Outcome::Staged(n)) => Ok(n),
            Ok(Outcome::Unchanged) => Ok(self.newest()),
            Err(error) => {
                self.reject(&error);
                Err(error)
            }
        }
    }

    /// Loads `path` unless `skip_unchanged` and its bytes equal the newest generation's. Used
    /// by `load`, the watcher and the rebuild; the caller reports errors.
    pub(crate) fn install(
        &'static self,
        path: &Path,
        started: Instant,
        skip_unchanged: bool,
    ) -> Result<Outcome, Error> {
        let _loading = self.lock_loading();
        let artifact = loader::read(self.name(), path)?;
        let digest = artifact.digest();
        if skip_unchanged && self.newest_digest() == Some(digest) {
            self.events.emit(Event::Unchanged {
                module: self.name(),
                path: path.to_path_buf(),
            });
            return Ok(Outcome::Unchanged);
        }
        let candidate = self.prepare_artifact(artifact, digest)?;
        if self.lock().staging {
            return Ok(self.stage(candidate));
        }
        let (ready, handoff) = self.hand_over(candidate).map_err(|(_, error)| error)?;
        let Some(handoff) = handoff else {
            // No state: nothing to wait for at the swap.
            let live = crate::snapshot::publish(|| self.make_current(ready));
            return Ok(Outcome::Live(self.announce(live, started)));
        };
        let outgoing = self.pin_locked();
        let live = crate::snapshot::publish(|| self.make_current(ready));
        let swap = self.swap(outgoing, &live, Some(handoff));
        if let Err(error) = swap.move_state() {
            swap.revert_state();
            let released = crate::snapshot::publish(|| swap.restore());
            swap.undone(released);
            return Err(error);
        }
        swap.commit();
        let number = self.announce(live, started);
        swap.done();
        Ok(Outcome::Live(number))
    }

    /// A swap that just made `live` current in place of `outgoing` (pinned by the caller, with
    /// [`pin_locked`](Self::pin_locked) before the swap), with its state hand-over to finish.
    pub(crate) fn swap(
        &'static self,
        outgoing: *const Generation,
        live: &Live,
        handoff: Option<Handoff>,
    ) -> Swap {
        Swap {
            module: self,
            from: outgoing,
            to: live.generation,
            number: live.number,
            handoff,
        }
    }

    /// The number of a generation the caller keeps alive.
    fn number_of(&self, generation: *const Generation) -> u64 {
        // SAFETY: the caller keeps it alive (a pin, or the loading lock while it is current).
        unsafe { &*generation }.number
    }

    /// The rest of a swap that moves state, once `to` is current: waits for plain calls still
    /// running in `from` (bounded), then seals. The caller keeps both alive and commits or
    /// reverts the hand-over.
    fn move_state(
        &'static self,
        handoff: &Handoff,
        from: *const Generation,
        to: *const Generation,
    ) -> Result<(), Error> {
        self.drain(from);
        // SAFETY: both libraries stay loaded (the caller's pin and the loading lock).
        unsafe { handoff.seal(self.number_of(to)) }
    }

    /// Waits (at most `DRAIN_LIMIT`) until no other thread runs a plain call in `outgoing`, which
    /// is no longer current. Plain calls of generation 0 take no pin, so there is nothing to see.
    pub(crate) fn drain(&self, outgoing: *const Generation) {
        if ptr::eq(outgoing, &self.builtin) {
            return;
        }
        // After the swap and this barrier, a plain call either shows `outgoing` in its hazard
        // slot or re-reads `current` and goes to the new generation (pin.rs).
        if !crate::os::process_barrier() {
            return;
        }
        let deadline = Instant::now() + DRAIN_LIMIT;
        let mut pause = Duration::from_micros(20);
        while pin::running_elsewhere(outgoing) {
            if Instant::now() >= deadline {
                tracing::warn!(
                    target: "hotmod",
                    "{}: a plain call still runs in generation {} after {} s; its state moves \
                     now, and that call's accesses to it will be refused",
                    self.name(),
                    self.number_of(outgoing),
                    DRAIN_LIMIT.as_secs()
                );
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// Makes `from` current again in place of `to`, which failed to take the state (call inside
    /// `snapshot::publish`, with the loading lock held). Returns a fallback pin to release.
    pub(crate) fn restore_current(
        &self,
        from: *const Generation,
        to: *const Generation,
    ) -> *const Generation {
        let _state = self.lock();
        // SAFETY: `to` is current and the loading lock is held, so it is alive.
        let released = unsafe { &*to }.probation.end();
        let stored = if ptr::eq(from, &self.builtin) {
            ptr::null_mut()
        } else {
            from.cast_mut()
        };
        // SeqCst: as in `make_current`.
        self.current.store(stored, Ordering::SeqCst);
        released
    }

    /// Serialises loads of this module (from callers, the watcher, the rebuild, `load_all`).
    /// Generations retired meanwhile are unloaded once this thread holds no loading lock (see
    /// [`Hold`]).
    pub(crate) fn lock_loading(&self) -> Loading<'_> {
        Loading {
            _lock: self.loading.lock().unwrap_or_else(PoisonError::into_inner),
            _hold: Hold::new(),
        }
    }

    /// Reads, verifies and loads `path` and runs its on_load function: a generation in all but
    /// name. Call with the loading lock held.
    pub(crate) fn prepare(&'static self, path: &Path) -> Result<Candidate, Error> {
        let artifact = loader::read(self.name(), path)?;
        let digest = artifact.digest();
        self.prepare_artifact(artifact, digest)
    }

    /// `prepare` for a file already read (and digested): each load reads the file once.
    fn prepare_artifact(
        &'static self,
        artifact: Artifact,
        digest: u64,
    ) -> Result<Candidate, Error> {
        // Every generation but 0 starts here, before it can be staged or made current: register
        // the process-wide barrier now, so that whichever way a loaded generation becomes
        // current (a load, `apply_staged`, `load_all`), readers that can see it also see which
        // fence they must use — and the fast plain-call path is open to them.
        crate::os::prepare_barrier();
        let path = artifact.path.clone();
        let path = path.as_path();
        let opened =
            loader::open_artifact(self.name(), self.info.symbol, self.descriptor, artifact)?;
        if let Some(on_load) = opened.on_load {
            // SAFETY: the trampoline comes from a verified descriptor of this ABI version,
            // whose on_load entry takes `()` and returns `OnLoadResult`; `opened` keeps the
            // library loaded during the call.
            let result = unsafe { pin::invoke::<(), OnLoadResult>(on_load, ()) };
            let message = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("returned an error: {e}")),
                Err(panic) => Some(format!("panicked: {panic}")),
            };
            if let Some(message) = message {
                // Dropping `opened` unloads the library and removes its copy.
                return Err(Error::OnLoad {
                    module: self.name(),
                    path: path.to_path_buf(),
                    message,
                });
            }
        }
        let generation = Generation {
            number: 0,
            table: opened.table,
            pins: Default::default(),
            digest: Some(digest),
            descriptor: opened.descriptor,
            origin: Some(path.to_path_buf()),
            probation: Probation::new(),
            library: Some(opened.library),
        };
        Ok(Candidate(Box::new(generation)))
    }

    /// The trial hand-over of the current generation's state to the candidate (see
    /// `state.rs`): the candidate's copies are pending from here on, and the hand-over must be
    /// sealed and committed or reverted once the candidate is current. `None`: no state at all.
    /// Call with the loading lock held (the current generation cannot change or retire
    /// meanwhile).
    #[allow(clippy::result_large_err, clippy::type_complexity)]
    pub(crate) fn hand_over(
        &'static self,
        candidate: Candidate,
    ) -> Result<(Candidate, Option<Handoff>), (&'static Module, Error)> {
        let current = self.current_ptr();
        // SAFETY: under the loading lock the current generation stays current, hence alive.
        let current = unsafe { &*current };
        let from = self.descriptor_of(current);
        let to = self.descriptor_of(&candidate.0);
        let path = candidate.0.origin.clone().unwrap_or_default();
        // SAFETY: both descriptors are verified (or the host's own) and their libraries stay
        // loaded while the hand-over is used: the current one is pinned by the caller before it
        // stops being current, the candidate becomes a live generation.
        match unsafe { Handoff::begin(self.name(), &path, from, to, current.number) } {
            Ok(handoff) => Ok((candidate, handoff)),
            Err(error) => Err((self, error)),
        }
    }

    fn descriptor_of(&self, generation: &Generation) -> &ModuleDescriptor {
        if generation.descriptor.is_null() {
            self.descriptor
        } else {
            // SAFETY: a loaded generation's descriptor lives in its library, loaded while the
            // generation is; the caller borrows the generation.
            unsafe { &*generation.descriptor }
        }
    }

    /// Makes the candidate the current generation. Call inside `snapshot::publish`, with the
    /// loading lock held.
    pub(crate) fn make_current(&'static self, candidate: Candidate) -> Live {
        let mut state = self.lock();
        let generation = self.admit(&mut state, candidate);
        let released = self.watch_new(&state, generation);
        // SeqCst: the collector and `Pin::current` order their pin-count accesses against
        // this store (see pin.rs).
        self.current.store(generation.as_ptr(), Ordering::SeqCst);
        drop(state);
        self.release_fallback(released);
        // SAFETY: current now; under the loading lock it cannot be replaced or retired.
        let current = unsafe { generation.as_ref() };
        Live {
            number: current.number,
            path: current.origin.clone().unwrap_or_default(),
            generation: generation.as_ptr(),
        }
    }

    /// At a swap to `new` (under the state lock): ends the outgoing generation's probation and
    /// starts `new`'s if a rollback policy is set, pinning the outgoing generation as its
    /// fallback. Returns a fallback pin to release once the lock is dropped.
    fn watch_new(&self, state: &State, new: NonNull<Generation>) -> *const Generation {
        let outgoing = self.current_ptr();
        // SAFETY: the current generation is alive under the state lock.
        let released = unsafe { &*outgoing }.probation.end();
        if let Some(policy) = state.rollback {
            // SAFETY: as above; the count keeps it alive as the fallback from here on.
            unsafe { &*outgoing }.pins.fetch_add(1, Ordering::SeqCst);
            // SAFETY: `new` was just admitted and is alive under the lock.
            unsafe { new.as_ref() }.probation.start(policy, outgoing);
        }
        released
    }

    fn release_fallback(&'static self, fallback: *const Generation) {
        if !fallback.is_null() {
            pin::unpin(self, fallback);
        }
    }

    /// Rollback policy for generations that become current from now on (`None`: off, the
    /// default). See [`Rollback`].
    pub fn set_rollback(&self, policy: Option<Rollback>) {
        self.lock().rollback = policy;
    }

    /// Counts a call of a generation under probation; rolls back or ends the probation.
    #[cold]
    pub(crate) fn observe(&'static self, generation: &Generation, panicked: bool) {
        match generation.probation.observe(panicked) {
            Verdict::Watching => {}
            Verdict::Passed => {
                let fallback = generation.probation.end();
                self.release_fallback(fallback);
            }
            Verdict::RollBack { streak, calls } => self.roll_back(generation, streak, calls),
        }
    }

    /// Makes the fallback of `generation` current again, if `generation` is still current and
    /// under probation, and no load is in progress (that load decides what is current). The
    /// module's state goes back with it (see `state.rs`); if the fallback cannot take it,
    /// `generation` stays current with its state and an [`Event::Rejected`] says why.
    fn roll_back(&'static self, generation: &Generation, streak: u32, calls: u32) {
        let Ok(lock) = self.loading.try_lock() else {
            return;
        };
        let _loading = Loading {
            _lock: lock,
            _hold: Hold::new(),
        };
        let state = self.lock();
        if !ptr::eq(self.current_ptr(), generation) {
            return;
        }
        let fallback = generation.probation.end();
        if fallback.is_null() {
            return;
        }
        drop(state);
        let reason = format!("{streak} calls in a row panicked among its first {calls}");
        // SAFETY: the fallback is pinned by the probation we just ended (released below).
        let back = unsafe { &*fallback };
        let to = back.number;
        // The state goes back too, by the same steps as a load (state.rs), from the failing
        // generation to the fallback; the trial first, before anything changes.
        let path = back
            .origin
            .clone()
            .unwrap_or_else(|| PathBuf::from("the built-in code (generation 0)"));
        // SAFETY: both descriptors are verified (or the host's own), and both libraries stay
        // loaded while the hand-over is used: the caller runs a call of `generation` (it holds a
        // hazard slot or a pin), and the fallback is pinned until `release_fallback` below.
        let handed = unsafe {
            Handoff::begin(
                self.name(),
                &path,
                self.descriptor_of(generation),
                self.descriptor_of(back),
                generation.number,
            )
        };
        let not_rolled_back = |error: Error| match error {
            Error::State {
                module,
                path,
                message,
            } => Error::State {
                module,
                path,
                message: format!(
                    "rolling back from generation {} ({reason}) failed: {message}",
                    generation.number
                ),
            },
            other => other,
        };
        let handoff = match handed {
            Ok(handoff) => handoff,
            Err(error) => {
                // The failing generation keeps serving, with its state.
                self.release_fallback(fallback);
                self.reject(&not_rolled_back(error));
                return;
            }
        };
        let stored = if ptr::eq(fallback, &self.builtin) {
            ptr::null_mut()
        } else {
            fallback.cast_mut()
        };
        crate::snapshot::publish(|| {
            let _state = self.lock();
            // SeqCst: as in `make_current`.
            self.current.store(stored, Ordering::SeqCst);
        });
        self.changed.notify_all();
        if let Some(handoff) = handoff {
            if let Err(error) = self.move_state(&handoff, generation, fallback) {
                // SAFETY: both libraries are loaded (as for `begin` above).
                unsafe { handoff.revert(generation.number) };
                let released =
                    crate::snapshot::publish(|| self.restore_current(generation, fallback));
                self.release_fallback(released);
                self.release_fallback(fallback);
                self.changed.notify_all();
                self.reject(&not_rolled_back(error));
                self.collect();
                return;
            }
            // SAFETY: as above.
            unsafe { handoff.commit(to) };
        }
        self.release_fallback(fallback);
        self.events.emit(Event::RolledBack {
            module: self.name(),
            from: generation.number,
            to,
            reason,
        });
        self.collect();
    }

    /// Numbers the candidate and adds it to the live generations.
    fn admit(&self, state: &mut State, candidate: Candidate) -> NonNull<Generation> {
        let mut generation = candidate.0;
        generation.number = state.next;
        state.next += 1;
        let generation = NonNull::from(Box::leak(generation));
        state.live.push(generation);
        generation
    }

    /// Keeps the candidate as the staged generation.
    fn stage(&'static self, candidate: Candidate) -> Outcome {
        let path = candidate.0.origin.clone().unwrap_or_default();
        let mut state = self.lock();
        let generation = self.admit(&mut state, candidate);
        // SAFETY: just admitted; we hold the lock.
        let number = unsafe { generation.as_ref() }.number;
        let replaced = state.staged.replace(generation).is_some();
        drop(state);
        self.changed.notify_all();
        self.events.emit(Event::Staged {
            module: self.name(),
            generation: number,
            path,
        });
        if replaced {
            // The generation it replaced was never current; it retires now.
            self.collect();
        }
        Outcome::Staged(number)
    }

    /// Tells waiters and subscribers that `live` is current, and retires what that freed.
    pub(crate) fn announce(&'static self, live: Live, started: Instant) -> u64 {
        self.went_live(live.number, &live.path, started);
        live.number
    }

    fn went_live(&'static self, number: u64, path: &Path, started: Instant) {
        self.changed.notify_all();
        self.events.emit(Event::Loaded {
            module: self.name(),
            generation: number,
            path: path.to_path_buf(),
            took: started.elapsed(),
        });
        self.collect();
    }

    pub(crate) fn reject(&self, error: &Error) {
        self.events.emit(Event::Rejected {
            module: self.name(),
            error: error.clone(),
        });
    }

    pub(crate) fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    /// Says that watching or rebuilding started (`what`); see `progress.rs`.
    pub(crate) fn started(&self, what: &str) {
        self.events.started(self.name(), what);
    }

    /// The newest generation: the staged one if any, else the current one.
    fn newest(&self) -> u64 {
        let state = self.lock();
        match state.staged {
            // SAFETY: the staged generation is alive while it is staged; we hold the lock.
            Some(staged) => unsafe { staged.as_ref() }.number,
            // SAFETY: under the lock the current generation cannot be freed.
            None => unsafe { &*self.current_ptr() }.number,
        }
    }

    fn newest_digest(&self) -> Option<u64> {
        let state = self.lock();
        match state.staged {
            // SAFETY: as in `newest`.
            Some(staged) => unsafe { staged.as_ref() }.digest,
            // SAFETY: as in `newest`.
            None => unsafe { &*self.current_ptr() }.digest,
        }
    }

    /// Staged mode: when on, a verified new generation (from `load`, `reload`, the watcher or
    /// the rebuild) waits until [`apply_staged`](Self::apply_staged) — say at the top of a
    /// frame — while plain calls and `Handle::current()` keep the current generation. A newer
    /// generation replaces a staged one that was never applied. Turning it off applies the
    /// staged generation, if any.
    pub fn set_staged(&'static self, on: bool) {
        self.lock().staging = on;
        if !on {
            self.apply_staged();
        }
    }

    /// Makes the staged generation current; returns its number, or `None` if none waits.
    ///
    /// This is when the module's state is handed over (see [`State`](crate::State)); if that
    /// fails, the staged generation is dropped, an [`Event::Rejected`] says why, the current
    /// generation stays, and this returns `None`.
    pub fn apply_staged(&'static self) -> Option<u64> {
        let started = Instant::now();
        let _loading = self.lock_loading();
        let staged = self.lock().staged?;
        let current = self.current_ptr();
        // SAFETY: under the loading lock the current and staged generations stay alive (the
        // collector never retires either).
        let (from, to) = unsafe { (&*current, staged.as_ref()) };
        let path = to.origin.clone().unwrap_or_default();
        // SAFETY: both descriptors are verified (or the host's own), their libraries loaded
        // while the hand-over is used: the current one is pinned below before it stops being
        // current, the staged one stays live under the loading lock.
        let handed = unsafe {
            Handoff::begin(
                self.name(),
                &path,
                self.descriptor_of(from),
                self.descriptor_of(to),
                from.number,
            )
        };
        let handoff = match handed {
            Ok(handoff) => handoff,
            Err(error) => {
                self.lock().staged = None;
                self.reject(&error);
                self.collect();
                return None;
            }
        };
        let outgoing = handoff.as_ref().map(|_| self.pin_locked());
        let live = Live {
            number: to.number,
            path,
            generation: staged.as_ptr(),
        };
        let released = crate::snapshot::publish(|| {
            let mut state = self.lock();
            state.staged = None;
            let released = self.watch_new(&state, staged);
            // SeqCst: as in `make_current`.
            self.current.store(staged.as_ptr(), Ordering::SeqCst);
            released
        });
        self.release_fallback(released);
        let Some(outgoing) = outgoing else {
            return Some(self.announce(live, started));
        };
        let swap = self.swap(outgoing, &live, handoff);
        if let Err(error) = swap.move_state() {
            swap.revert_state();
            let released = crate::snapshot::publish(|| swap.restore());
            self.reject(&error);
            swap.undone(released);
            return None;
        }
        swap.commit();
        let number = self.announce(live, started);
        swap.done();
        Some(number)
    }

    /// The generation waiting for [`apply_staged`](Self::apply_staged), if any.
    pub fn staged_generation(&self) -> Option<u64> {
        // SAFETY: the staged generation is alive while it is staged; we hold the lock.
        self.lock()
            .staged
            .map(|staged| unsafe { staged.as_ref() }.number)
    }

    /// Events of this module from now on: builds, loads, rejections, retirements. While a
    /// subscription lives, the module's progress is not printed on stderr (see
    /// [`print_progress`](crate::print_progress)).
    pub fn subscribe(&self) -> Events {
        self.events.subscribe()
    }

    /// Waits until the current generation is at least `generation`; returns the current one.
    pub fn wait_for_generation(&self, generation: u64, timeout: Duration) -> Result<u64, Error> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            // SAFETY: under the lock the current generation cannot be freed.
            let current = unsafe { &*self.current_ptr() }.number;
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
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Watches [`path()`](Self::path) and loads each new build that lands there: when cargo
    /// links it into place, when a file is renamed over it, or when a writer closes it. A file
    /// that is not yet a complete library is skipped until the next change; a file whose bytes
    /// equal the newest generation's is not reloaded. Results arrive as [`Event`]s. Calling it
    /// again while watching does nothing.
    pub fn watch(&'static self) -> Result<(), Error> {
        let mut services = self.services();
        if services.watcher.is_none() {
            let path = self.path();
            services.watcher = Some(Watcher::start(self, path.clone())?);
            drop(services);
            self.started(&format!("watching {}", path.display()));
        }
        Ok(())
    }

    /// Stops watching (and rebuilding), and printing the module's progress.
    pub fn unwatch(&self) {
        let mut services = self.services();
        services.watcher = None;
        services.rebuild = None;
        self.events.stopped();
    }

    /// Rebuilds the module's crate whenever one of its sources is saved, with the host's
    /// profile and target directory, and loads the result. Same as
    /// `module().rebuild().start()`; see [`Rebuild`] to configure it.
    pub fn rebuild_on_save(&'static self) -> Result<(), Error> {
        self.rebuild().start()
    }

    /// A configurable built-in rebuild for this module.
    pub fn rebuild(&'static self) -> Rebuild {
        Rebuild::new(self, self.info.package, Path::new(self.info.manifest_dir))
    }

    pub(crate) fn set_rebuild(&self, running: crate::builder::Running) {
        self.services().rebuild = Some(running);
    }

    fn services(&self) -> MutexGuard<'_, Services> {
        self.services.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts what `#[hot_module(watch)]`, `#[hot_module(rebuild)]`, `HOTMOD_WATCH=1` or
    /// `HOTMOD_REBUILD=1` ask for, once, at the module's first use in the host.
    #[inline]
    pub(crate) fn first_use(&'static self) {
        if !self.started.load(Ordering::Relaxed) {
            self.autostart();
        }
    }

    #[cold]
    #[inline(never)]
    fn autostart(&'static self) {
        if self.started.swap(true, Ordering::AcqRel) || HOSTED.load(Ordering::Relaxed) {
            // Already done, or this is a module static inside a loaded generation: only the
            // host's statics may start background work.
            return;
        }
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
        let result = if self.info.rebuild || flag("HOTMOD_REBUILD") {
            self.rebuild_on_save()
        } else if self.info.watch || flag("HOTMOD_WATCH") {
            self.watch()
        } else {
            Ok(())
        };
        if let Err(error) = result {
            self.events.emit(Event::WatchFailed {
                module: self.name(),
                message: error.to_string(),
            });
        }
    }

    /// Loads [`path()`](Self::path) as the next generation.
    pub fn reload(&'static self) -> Result<u64, Error> {
        self.load(self.path())
    }

    /// The file `reload()` loads: the path given to [`set_path`](Self::set_path), else the
    /// `HOTMOD_<CRATE>_PATH` environment variable, else the attribute's `path = "…"`, else the
    /// standard cargo location of the crate's cdylib next to the running executable
    /// (`target/<profile>/lib<crate>.so`).
    pub fn path(&self) -> PathBuf {
        let set = self.lock().path.clone();
        artifact_path::resolve(self.name(), set, self.info.default_path)
    }

    /// Sets the file `reload()` (and the watcher) load from.
    pub fn set_path(&self, path: impl Into<PathBuf>) {
        self.lock().path = Some(path.into());
    }

    /// The environment variable that overrides [`path()`](Self::path): `HOTMOD_<CRATE>_PATH`.
    pub fn env_var(&self) -> String {
        artifact_path::env_var(self.name())
    }

    /// Numbers of the generations still mapped, oldest first: 0 (the built-in code, always
    /// there), then every loaded generation that has not retired, the current one included.
    pub fn live_generations(&self) -> Vec<u64> {
        let state = self.lock();
        // SAFETY: generations in `live` are only freed under the lock we hold.
        std::iter::once(0)
            .chain(state.live.iter().map(|g| unsafe { g.as_ref() }.number))
            .collect()
    }

    /// Retired generations whose library the platform kept mapped, oldest first; each one was
    /// also reported as [`Event::RetireBlocked`](crate::Event::RetireBlocked) with the reason.
    ///
    /// On Linux with glibc this stays empty for libraries whose code used thread-locals or
    /// thread-specific keys: hotmod redirects those registrations when it loads a library, so
    /// they do not pin it. It lists generations whose code registered thread-exit callbacks
    /// hotmod cannot see (C++ `thread_local` through libstdc++, `dlsym`, C11 `tss_create`):
    /// glibc keeps such a library mapped until those threads exit. On musl nothing is ever
    /// unmapped; elsewhere the platform decides.
    pub fn unload_blocked(&self) -> Vec<u64> {
        self.lock().unload_blocked.clone()
    }

    pub(crate) fn crate_name(&self) -> &'static str {
        artifact_path::crate_name(self.name())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

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

    /// Pins the current generation by count, under the lock (for threads without a hazard slot).
    pub(crate) fn pin_locked(&self) -> *const Generation {
        let _state = self.lock();
        let generation = self.current_ptr();
        // SAFETY: under the lock the collector cannot run, and the current generation is alive.
        unsafe { &*generation }.pins.fetch_add(1, Ordering::SeqCst);
        generation
    }

    /// Unloads every generation that is not current and that nothing uses any more.
    pub(crate) fn collect(&'static self) {
        let mut state = self.lock();
        let current = self.current_ptr_seqcst();
        let staged = state.staged;
        let idle = |g: &NonNull<Generation>| {
            if staged == Some(*g) {
                return false;
            }
            // SAFETY: generations in `live` are alive while we hold the lock.
            let pins = unsafe { g.as_ref() }.pins.load(Ordering::SeqCst);
            !ptr::eq(g.as_ptr(), current) && pins == 0
        };
        if !state.live.iter().any(idle) {
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
        let hazards = pin::hazards();
        let (retiring, live): (Vec<_>, Vec<_>) = state
            .live
            .iter()
            .copied()
            .partition(|g| idle(g) && !hazards.contains(&g.as_ptr().cast_const()));
        if retiring.is_empty() {
            return;
        }
        state.live = live;
        // Unload outside the state lock, and outside any loading lock this thread holds: module
        // code runs while a library unloads, and may call back into hotmod (see `Hold`).
        drop(state);
        let hold = Hold::new();
        for generation in retiring {
            hold.defer(Retiring {
                module: self,
                generation,
            });
        }
        drop(hold);
    }

    /// Unloads a generation `collect` took out of `live`, and says so. Module code runs here:
    /// call it only as [`Hold`] does, with no lock held.
    fn retire(&'static self, generation: NonNull<Generation>) {
        // SAFETY: `collect` took the generation out of `live` when it was not current or staged,
        // had no pins and no hazard: nothing can reach it any more. We own the allocation made
        // in `admit`, handed to exactly one `retire` (through one `Retiring`).
        let generation = unsafe { Box::from_raw(generation.as_ptr()) };
        self.drop_state_values(&generation);
        let Generation {
            number, library, ..
        } = *generation;
        let module = self.name();
        match library.map_or(Ok(()), LoadedLibrary::unload_or_reason) {
            Ok(()) => self.events.emit(Event::Retired {
                module,
                generation: number,
            }),
            Err(reason) => {
                // Listed first: a subscriber that sees the event finds it in `unload_blocked()`.
                self.lock().unload_blocked.push(number);
                self.events.emit(Event::RetireBlocked {
                    module,
                    generation: number,
                    reason,
                });
            }
        }
    }
}

impl Module {
    /// Drops the values a retiring generation's `#[hotmod::state]` copies still hold (a copy
    /// keeps its value after it moved, see `Swap::commit`), before its library unloads. Their
    /// `Drop` is module code, run here with no lock held.
    fn drop_state_values(&self, generation: &Generation) {
        if generation.descriptor.is_null() {
            return;
        }
        // SAFETY: a loaded generation's descriptor lives in its library, which is still loaded
        // (the caller unloads it afterwards); verified, so its states slice is whole.
        let states = unsafe { (*generation.descriptor).states.as_slice() };
        if states.is_empty() {
            return;
        }
        // Named in the message of an access to a moved copy; none can come any more.
        let to = self.generation();
        for entry in states {
            // SAFETY: mark trampolines take `StateMark` and return `()` (ABI contract); the
            // library is loaded (above).
            let marked = unsafe {
                pin::invoke::<crate::abi::StateMark, ()>(
                    entry.mark,
                    crate::abi::StateMark::Moved { to },
                )
            };
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
}

/// A module's loading lock, held (from [`Module::lock_loading`]). Dropping it releases the lock,
/// then unloads what this thread retired meanwhile if it holds no other loading lock.
pub(crate) struct Loading<'a> {
    // Fields drop in order: the lock is released before `_hold` unloads anything.
    _lock: MutexGuard<'a, ()>,
    _hold: Hold,
}

/// A generation `collect` retired, waiting to be unloaded by this thread.
struct Retiring {
    module: &'static Module,
    generation: NonNull<Generation>,
}

thread_local! {
    /// How many [`Hold`]s this thread has.
    static HOLDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// What this thread retired while it had a `Hold`: a boxed list, or null. A raw pointer
    /// rather than a `Vec` so that the thread-local has no destructor and stays usable while the
    /// thread exits (thread-exit destructors may load and retire too).
    static DEFERRED: std::cell::Cell<*mut Vec<Retiring>> =
        const { std::cell::Cell::new(ptr::null_mut()) };
}

/// While a thread has a `Hold`, the generations it retires wait; when its last `Hold` ends, it
/// unloads them, and keeps a hold while it does.
///
/// # Lock order
///
/// hotmod's locks, outermost first: the loading locks (one per module, held for a whole load;
/// `load_all` takes several, in address order) → the snapshot writer lock
/// (`snapshot::publish`) → a module's state lock → locks that each guard one structure and are
/// released before another is taken (the events hub, the hazard slot registry, a library's
/// thread-exit gate, the redirected keys). Module code never runs under the state lock or the
/// writer lock, and under a loading lock only in the steps of that load itself (`on_load`, the
/// state hand-over), never in an unload.
///
/// # Why unloading waits for the locks to go
///
/// Unloading a library runs module code: its ELF finalisers, on the unloading thread inside
/// `dlclose`; and its thread-exit destructors already running on other threads, which unloading
/// waits for (`os/linux_tls.rs`). That code may call back into hotmod — `load`, `reload`,
/// `apply_staged` take the loading lock, `live_generations` the state lock — so a thread unloads
/// only when it holds neither: `collect` takes generations out of `live` under the state lock,
/// releases it, and hands them to its `Hold`. A thread without a loading lock unloads them
/// there and then; one inside a load (a `Loading` guard holds a `Hold`) unloads them once it has
/// released its last loading lock, still inside `load` or `apply_staged`, before they return.
/// While it unloads it keeps a hold, so module code that loads and retires again (a finaliser
/// that loads retires the generation it replaced) adds to the list: that library unloads after
/// the `dlclose` in progress has returned, never inside it.
struct Hold {
    /// A `Hold` counts on its own thread's thread-locals: not `Send`.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Hold {
    fn new() -> Hold {
        HOLDS.set(HOLDS.get() + 1);
        Hold {
            _thread: std::marker::PhantomData,
        }
    }

    /// Unloads `retiring` when this thread's last `Hold` ends.
    fn defer(&self, retiring: Retiring) {
        let mut list = DEFERRED.get();
        if list.is_null() {
            list = Box::into_raw(Box::<Vec<Retiring>>::default());
            DEFERRED.set(list);
        }
        // SAFETY: `list` came from `Box::into_raw` (here or in an earlier `defer` on this
        // thread) and is owned through `DEFERRED` until `Drop` takes it back; only this thread
        // reaches it, and no reference to it lives across a call.
        unsafe { (*list).push(retiring) };
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        /// Puts the count back even if an unload panics.
        struct Count(usize);
        impl Drop for Count {
            fn drop(&mut self) {
                HOLDS.set(self.0);
            }
        }
        let holds = HOLDS.get();
        let _count = Count(holds.saturating_sub(1));
        if holds > 1 {
            return;
        }
        // The last hold: unload, still holding (see the type's docs).
        loop {
            let list = DEFERRED.replace(ptr::null_mut());
            if list.is_null() {
                break;
            }
            // SAFETY: made by `Box::into_raw` in `defer` and just taken out of `DEFERRED`:
            // owned here.
            let list = unsafe { Box::from_raw(list) };
            for retiring in *list {
                retiring.module.retire(retiring.generation);
            }
        }
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name())
            .field("generation", &self.generation())
            .field("live_generations", &self.live_generations())
            .finish()
    }
}
