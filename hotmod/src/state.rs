//! State that survives reloads.
//!
//! A hot module declares its state as a static:
//!
//! ```text
//! #[hotmod::state(version = 2, migrate = upgrade)]
//! static WORLD: hotmod::State<World> = hotmod::State::new();
//! ```
//!
//! # The model: one live copy, moved at the swap
//!
//! Every generation has its own copy of the static, but at any moment **only one copy holds the
//! value**: the current generation's. When a new generation becomes current (a load, at once or
//! at `apply_staged` in staged mode, `load_all`, or a rollback to the previous generation) the
//! value *moves*: the old copy is marked moved, and from then on an access to it — through a
//! `Handle` pinned before the swap, or a plain call still running in the old generation —
//! panics with a message that names the state, the generation it moved to, and what to do. No
//! write is ever made to a copy that is then thrown away: every write either lands in the value
//! that moves on, or is refused loudly.
//!
//! Each copy therefore has a status: *ready* (accesses run; generation 0, and a loaded library
//! until it goes live — its `on_load` may use it, and the hand-over then replaces the value),
//! *pending* (the value is on its way: accesses wait) or *moved* (accesses panic). A swap that
//! moves state, under the module's loading lock:
//!
//! 1. **Trial.** The new copies are marked pending, and each old value is copied across
//!    (serialized with serde, the old value stays). Same version: the new generation
//!    deserializes it as its own type. Another version: the new generation's `migrate` function
//!    gets the old version number and the old value (as a `serde_json::Value`) and returns the
//!    new value. If that fails, or the version changed and there is no `migrate`, the new
//!    generation is refused before it ever becomes current, and the old generation and its state
//!    are untouched.
//! 2. **Swap.** The new generation becomes current: new plain calls go there, and wait if they
//!    touch the state.
//! 3. **Drain.** Plain calls still running in the old generation are waited for (they publish
//!    the generation in their thread's hazard slot; the wait is bounded, 2 s). Handles cannot be
//!    waited for — a handle may live for hours — which is why the next step seals the old copy.
//! 4. **Seal.** Under each old copy's lock, its value is serialized and the copy marked moved,
//!    in one step: a write is either in what was serialized or refused. That final value is
//!    imported into the new copy (deserialized, or migrated across versions), which becomes
//!    ready; waiting accesses run. If this final import fails (the trial passed, but values may
//!    differ), the hand-over is undone: the old copies are ready again with their values, the
//!    old generation is current again, the new copies are marked moved (their waiting accesses
//!    panic), and the load fails with `Error::State` and an `Event::Rejected`.
//!
//! Why no write is lost. Outside a swap exactly one copy is ready and reachable with the value
//! that counts: the current generation's (the others are moved, or belong to a library no call
//! can reach yet). Every access runs under its copy's lock and checks the status there, and the
//! seal changes the status under that lock in the same step that serializes the value: an access
//! that ran before the seal is in the serialized value, one after it is refused. The new copy is
//! pending from before its generation can be reached until the final value is in it, so nothing
//! written to it can be overwritten by the import. A failed final import puts the old copy back
//! to ready with the value it kept (take does not drop it: a moved copy's value is dropped when
//! its generation retires, with no lock held, or at the commit for generation 0), so undoing
//! loses nothing either. The outgoing generation is pinned during the swap, so its library
//! cannot unload before its copies are sealed.
//!
//! A rollback runs the same steps from the failing generation back to its fallback (migrating
//! back if the versions differ); if the fallback cannot take the value, the rollback is refused
//! with an `Event::Rejected` and the failing generation stays current with its state. A state
//! the new generation no longer declares is discarded at the swap (the old copy is marked moved
//! all the same).
//!
//! What can still be refused — never lost — is an access from the old generation after the
//! seal: a handle pinned before the swap, a plain call that ran past the drain's bound, a call
//! of generation 0 (plain calls take no pin there, so they cannot be waited for), or a plain
//! call pinned by count rather than a hazard slot (nested more than two deep, or during thread
//! teardown). Pin a handle per request or frame and drop it before the next reload, or use staged
//! mode (`apply_staged()` at a safe point, e.g. between frames), and none happens.
//!
//! Why not keep one copy in the host and hand each library a pointer to it? That needs proof
//! that the state's type has the same layout in both builds, which the descriptor cannot give
//! for arbitrary types (std's and dependencies' types are compared by size only); moving the
//! value through serde needs none, and is the same path a version change takes.

#[cfg(feature = "reload")]
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

#[cfg(feature = "reload")]
use crate::abi::{ModuleDescriptor, StateEntry, StateExport, StateImport, StateMark, StateTake};
#[cfg(feature = "reload")]
use crate::error::Error;
#[cfg(feature = "reload")]
use crate::invocation::invoke;

/// The generation a state "moved to" when it went to another process (`handover.rs`): its
/// accesses panic with their own message.
pub(crate) const RESTARTED: u64 = u64::MAX;

/// How long an access waits for a value on its way (a pending copy) before it gives up with a
/// panic. A swap moves the value within the drain's bound (2 s) plus the import, so only a
/// loading thread that died mid-swap leaves a copy pending this long.
const PENDING_LIMIT: Duration = Duration::from_secs(60);

/// Where one generation's copy of a state stands (see the module docs). Without the hand-over
/// glue (features `state` and `reload`) a copy is always ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(all(feature = "state", feature = "reload")), allow(dead_code))]
enum Status {
    /// Accesses run.
    Ready,
    /// Accesses wait for the value.
    Pending,
    /// The value went to generation `to`: accesses panic.
    Moved { to: u64 },
}

#[derive(Debug)]
struct Slot<T> {
    value: Option<T>,
    status: Status,
    /// The static's name, told by the hand-over (for the messages of refused accesses).
    name: &'static str,
}

/// A module's state, handed from generation to generation (needs the `state` feature for the
/// `#[hotmod::state]` attribute's serde glue). Initialised with `T::default()` on first use.
///
/// Every generation has its own copy of the static, and only the current generation's copy
/// holds the value: at each swap (a load, `apply_staged`, `load_all`, a rollback) the value
/// *moves*, migrated with the new generation's `migrate` function when its version changed.
/// During the swap, an access from the new generation waits until the value has arrived, and
/// plain calls still running in the old generation are waited for (up to 2 s). After it, an
/// access from the old generation — through a `Handle` pinned before the reload, or a call
/// still running — panics with a message naming the state and the generation it moved to,
/// instead of writing to a copy that is then thrown away: no write is lost silently. Pin a
/// `Handle` per request or frame and drop it before the next reload, or use staged mode, and no
/// access is refused. (The full argument: `hotmod/src/state.rs`; the tests:
/// `tests/state_conservation.rs`.)
#[derive(Debug)]
pub struct State<T> {
    slot: Mutex<Slot<T>>,
    /// Signalled whenever the status changes.
    changed: Condvar,
}

impl<T> State<T> {
    /// An empty state; the first access fills it with `T::default()` unless a previous
    /// generation handed its value over first.
    pub const fn new() -> State<T> {
        State {
            slot: Mutex::new(Slot {
                value: None,
                status: Status::Ready,
                name: "",
            }),
            changed: Condvar::new(),
        }
    }

    /// The slot, whatever its status (the hand-over's own accesses).
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The slot once it is ready: waits while the value is on its way, panics if it moved.
    fn ready(&self) -> MutexGuard<'_, Slot<T>> {
        let mut slot = self.lock();
        let mut deadline = None;
        loop {
            match slot.status {
                Status::Ready => return slot,
                Status::Moved { to } => {
                    let name = slot.name;
                    drop(slot);
                    moved(name, to)
                }
                Status::Pending => {
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + PENDING_LIMIT);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        let name = slot.name;
                        drop(slot);
                        never_arrived(name)
                    }
                    slot = self
                        .changed
                        .wait_timeout(slot, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    /// Replaces the value (waits or panics as [`with`](Self::with) does).
    pub fn set(&self, value: T) {
        let old = self.ready().value.replace(value);
        drop(old);
    }
}

/// The panic of an access to a copy whose value moved to generation `to`.
#[cold]
#[inline(never)]
fn moved(name: &str, to: u64) -> ! {
    if to == RESTARTED {
        panic!(
            "hotmod: state `{name}` was handed to the restarted host process (`hotmod::restart`): \
             this process no longer holds it, so the access is refused rather than lost. Drain \
             the work that uses it before `Handover::finish` or `Handover::exec`"
        )
    }
    panic!(
        "hotmod: state `{name}` moved to generation {to}: the generation this call runs (through \
         a Handle pinned before the reload, or a call still running when it happened) no longer \
         holds it, so the access is refused rather than lost. Pin a Handle per request or frame \
         and drop it before the next reload, or use staged mode (`module().set_staged(true)`, \
         then `apply_staged()` at a safe point)"
    )
}

/// The panic of an access that waited for a value that never arrived.
#[cold]
#[inline(never)]
fn never_arrived(name: &str) -> ! {
    panic!(
        "hotmod: state `{name}` was not handed to this generation within {} s of its swap; the \
         access is refused",
        PENDING_LIMIT.as_secs()
    )
}

impl<T: Default> State<T> {
    /// Runs `f` with the value, holding the state's lock. Waits while the value is on its way to
    /// this generation; panics if it moved to another (see [`State`]).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(self.ready().value.get_or_insert_with(T::default))
    }

    /// A copy of the value.
    pub fn get(&self) -> T
    where
        T: Clone,
    {
        self.with(|value| value.clone())
    }
}

impl<T> Default for State<T> {
    fn default() -> Self {
        State::new()
    }
}

/// The serde glue the `#[hotmod::state]` attribute generates calls to (inside the library): one
/// function per trampoline of [`StateEntry`](crate::abi::StateEntry). None of them waits for the
/// copy's status.
#[cfg(all(feature = "state", feature = "reload"))]
#[doc(hidden)]
pub mod glue {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::{State, Status};
    use crate::abi::{StateExport, StateMark};

    /// A `migrate` function: the old version and value in, the new value out.
    pub type Migrate<T> = fn(u32, serde_json::Value) -> Result<T, String>;

    /// Serializes the value (the default if never used); leaves value and status in place.
    pub fn export<T: Serialize + Default>(state: &State<T>, name: &'static str) -> StateExport {
        let mut slot = state.lock();
        slot.name = name;
        if let Status::Moved { to } = slot.status {
            return Err(format!("its value moved to generation {to} already"));
        }
        let value = slot.value.get_or_insert_with(T::default);
        serde_json::to_string(value).map_err(|e| format!("serializing it failed: {e}"))
    }

    /// Serializes the value and marks the copy moved to generation `to`, in one step under the
    /// copy's lock; the value stays until `mark` says what becomes of it. On an error nothing
    /// changes.
    pub fn take<T: Serialize + Default>(
        state: &State<T>,
        name: &'static str,
        to: u64,
    ) -> StateExport {
        let mut slot = state.lock();
        slot.name = name;
        if let Status::Moved { to } = slot.status {
            return Err(format!("its value moved to generation {to} already"));
        }
        let value = slot.value.get_or_insert_with(T::default);
        let data =
            serde_json::to_string(value).map_err(|e| format!("serializing it failed: {e}"))?;
        slot.status = Status::Moved { to };
        drop(slot);
        state.changed.notify_all();
        Ok(data)
    }

    /// Sets the copy's status and wakes the accesses waiting on it; `Moved` drops the value
    /// (outside the lock: its `Drop` is module code).
    pub fn mark<T>(state: &State<T>, name: &'static str, mark: StateMark) {
        let mut slot = state.lock();
        slot.name = name;
        let dropped = match mark {
            StateMark::Ready => {
                slot.status = Status::Ready;
                None
            }
            StateMark::Pending => {
                slot.status = Status::Pending;
                None
            }
            StateMark::Moved { to } => {
                slot.status = Status::Moved { to };
                slot.value.take()
            }
        };
        drop(slot);
        state.changed.notify_all();
        drop(dropped);
    }

    /// Replaces the value with `data`, exported by a generation whose state had version
    /// `from`; this generation's version is `version`. The status stays.
    pub fn import<T: DeserializeOwned>(
        state: &State<T>,
        name: &'static str,
        version: u32,
        from: u32,
        data: &str,
        migrate: Option<Migrate<T>>,
    ) -> Result<(), String> {
        let value = if from == version {
            serde_json::from_str(data).map_err(|e| {
                format!(
                    "version {version} could not read the value version {from} handed over: {e}"
                )
            })?
        } else {
            let Some(migrate) = migrate else {
                return Err(format!(
                    "changed from version {from} to {version} and the library has no migrate function; add `migrate = fn_name` to #[hotmod::state]"
                ));
            };
            let old = serde_json::from_str(data)
                .map_err(|e| format!("the value of version {from} is not valid JSON: {e}"))?;
            migrate(from, old)
                .map_err(|e| format!("migrating from version {from} to {version} failed: {e}"))?
        };
        let mut slot = state.lock();
        slot.name = name;
        let old = slot.value.replace(value);
        drop(slot);
        drop(old);
        Ok(())
    }
}

/// One hand-over of a module's states from one generation's library to another's (see the
/// module docs): made by the trial ([`begin`](Self::begin)), then sealed and committed, or
/// reverted. It points into both libraries' descriptors: every method requires both libraries
/// to be loaded still.
#[cfg(feature = "reload")]
pub(crate) struct Handoff {
    module: &'static str,
    path: PathBuf,
    /// States both generations declare: (old copy, new copy).
    pairs: Vec<(*const StateEntry, *const StateEntry)>,
    /// States only the outgoing generation declares: discarded at the seal.
    only_old: Vec<*const StateEntry>,
    /// States only the incoming generation declares: they start from their default.
    only_new: Vec<*const StateEntry>,
}

#[cfg(feature = "reload")]
impl Handoff {
    /// The trial: marks every copy of `to` pending (its accesses wait from now on), and copies
    /// each state of `from` into `to` (export, then import: migration happens here), leaving
    /// `from` untouched. `None` if neither declares a state: no hand-over at all. On an error,
    /// `to`'s copies are marked moved to generation `from_number` (the value stays there).
    ///
    /// # Safety
    /// Both descriptors must be verified descriptors of this ABI version whose libraries stay
    /// loaded while the returned `Handoff` is used.
    pub(crate) unsafe fn begin(
        module: &'static str,
        path: &Path,
        from: &ModuleDescriptor,
        to: &ModuleDescriptor,
        from_number: u64,
    ) -> Result<Option<Handoff>, Error> {
        // SAFETY: statics of loaded libraries (this function's contract).
        let (old_states, new_states) = unsafe { (from.states.as_slice(), to.states.as_slice()) };
        if old_states.is_empty() && new_states.is_empty() {
            return Ok(None);
        }
        // SAFETY: as above.
        let name_of = |entry: &StateEntry| unsafe { entry.name.as_str() };
        let find = |states: &[StateEntry], name: &str| {
            states
                .iter()
                .find(|entry| name_of(entry) == name)
                .map(std::ptr::from_ref)
        };
        let mut handoff = Handoff {
            module,
            path: path.to_path_buf(),
            pairs: Vec::new(),
            only_old: Vec::new(),
            only_new: Vec::new(),
        };
        for new in new_states {
            match find(old_states, name_of(new)) {
                Some(old) => handoff.pairs.push((old, new)),
                None => handoff.only_new.push(new),
            }
        }
        for old in old_states {
            if find(new_states, name_of(old)).is_none() {
                handoff.only_old.push(old);
            }
        }
        for &new in handoff.new_copies() {
            // SAFETY: an entry of `to`, loaded (this function's contract).
            unsafe { handoff.mark(new, StateMark::Pending) };
        }
        for &(old, new) in &handoff.pairs {
            // SAFETY: entries of `from` and `to`, loaded (this function's contract).
            let result = unsafe { handoff.copy(old, new) };
            if let Err(error) = result {
                for &new in handoff.new_copies() {
                    // SAFETY: as above.
                    unsafe { handoff.mark(new, StateMark::Moved { to: from_number }) };
                }
                return Err(error);
            }
        }
        Ok(Some(handoff))
    }

    /// The seal: takes each old copy's final value, marking it moved to generation `to` in the
    /// same step (from now on its accesses panic), and imports it into the new copy, which stays
    /// pending until [`commit`](Self::commit). On an error the caller must
    /// [`revert`](Self::revert).
    ///
    /// # Safety
    /// Both libraries are still loaded.
    pub(crate) unsafe fn seal(&self, to: u64) -> Result<(), Error> {
        for &(old, new) in &self.pairs {
            // SAFETY: entries of loaded libraries (this function's contract).
            let (old, new) = unsafe { (&*old, &*new) };
            let data = self.take(old, to)?;
            // SAFETY: as above.
            unsafe { Self::import(old, new, data) }.map_err(|message| {
                self.failed(format!(
                    "{message} (at the swap, with its final value; the trial with an earlier \
                     value had passed)"
                ))
            })?;
        }
        for &old in &self.only_old {
            // SAFETY: as above.
            self.take(unsafe { &*old }, to)?;
        }
        Ok(())
    }

    /// After a successful seal: the new copies become ready (their waiting accesses run). The
    /// old copies, moved since the seal, keep their values: a loaded generation's are dropped
    /// when it retires, with no lock held (`Runtime::retire`), generation 0's by
    /// [`drop_old`](Self::drop_old).
    ///
    /// # Safety
    /// Both libraries are still loaded.
    pub(crate) unsafe fn commit(&self, _to: u64) {
        for &new in self.new_copies() {
            // SAFETY: entries of loaded libraries (this function's contract).
            unsafe { self.mark(new, StateMark::Ready) };
        }
    }

    /// After `commit`: drops the old copies' values (they stay moved to `to`).
    ///
    /// # Safety
    /// Both libraries are still loaded.
    pub(crate) unsafe fn drop_old(&self, to: u64) {
        for &old in self.old_copies() {
            // SAFETY: entries of loaded libraries (this function's contract).
            unsafe { self.mark(old, StateMark::Moved { to }) };
        }
    }

    /// Undoes a hand-over that could not complete: the old copies are ready again with the
    /// values they kept, the new copies are marked moved to generation `from` (their waiting
    /// accesses panic).
    ///
    /// # Safety
    /// Both libraries are still loaded.
    pub(crate) unsafe fn revert(&self, from: u64) {
        for &old in self.old_copies() {
            // SAFETY: entries of loaded libraries (this function's contract).
            unsafe { self.mark(old, StateMark::Ready) };
        }
        for &new in self.new_copies() {
            // SAFETY: as above.
            unsafe { self.mark(new, StateMark::Moved { to: from }) };
        }
    }

    fn new_copies(&self) -> impl Iterator<Item = &*const StateEntry> {
        self.pairs.iter().map(|(_, new)| new).chain(&self.only_new)
    }

    fn old_copies(&self) -> impl Iterator<Item = &*const StateEntry> {
        self.pairs.iter().map(|(old, _)| old).chain(&self.only_old)
    }

    fn failed(&self, message: String) -> Error {
        Error::State {
            module: self.module,
            path: self.path.clone(),
            message,
        }
    }

    /// The trial copy of one state: export from `old` (which keeps its value), import into `new`.
    ///
    /// # Safety
    /// Both entries belong to loaded libraries.
    unsafe fn copy(&self, old: *const StateEntry, new: *const StateEntry) -> Result<(), Error> {
        // SAFETY: entries of loaded libraries (this function's contract).
        let (old, new) = unsafe { (&*old, &*new) };
        // SAFETY: as above.
        let name = unsafe { old.name.as_str() };
        // SAFETY: export trampolines take `()` and return `StateExport` (ABI contract); the
        // library is loaded (this function's contract).
        let data = match unsafe { invoke::<(), StateExport>(old.export, ()) } {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => return Err(self.failed(format!("state `{name}`: {e}"))),
            Err(panic) => {
                return Err(self.failed(format!("state `{name}`: export panicked: {panic}")))
            }
        };
        // SAFETY: as above.
        unsafe { Self::import(old, new, data) }.map_err(|message| self.failed(message))
    }

    /// Imports `data`, exported from `old`, into `new`.
    ///
    /// # Safety
    /// Both entries belong to loaded libraries.
    unsafe fn import(old: &StateEntry, new: &StateEntry, data: String) -> Result<(), String> {
        // SAFETY: an entry of a loaded library (this function's contract).
        let name = unsafe { new.name.as_str() };
        let args: StateImport = (old.version, data);
        // SAFETY: import trampolines take `StateImport` and return `Result<(), String>` (ABI
        // contract); the library is loaded (this function's contract).
        match unsafe { invoke::<StateImport, Result<(), String>>(new.import, args) } {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("state `{name}` {e}")),
            Err(panic) => Err(format!("state `{name}`: import panicked: {panic}")),
        }
    }

    /// Takes `old`'s final value, marking the copy moved to generation `to`.
    fn take(&self, old: &StateEntry, to: u64) -> Result<String, Error> {
        // SAFETY: `old` is an entry of a loaded library (every caller's contract).
        let name = unsafe { old.name.as_str() };
        // SAFETY: take trampolines take `StateTake` and return `StateExport` (ABI contract); the
        // library is loaded (callers' contract).
        match unsafe { invoke::<StateTake, StateExport>(old.take, to) } {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(e)) => Err(self.failed(format!("state `{name}` at the swap: {e}"))),
            Err(panic) => Err(self.failed(format!("state `{name}`: take panicked: {panic}"))),
        }
    }

    /// Sets one copy's status. Marking cannot fail; a panic (from a value's `Drop` in module
    /// code, dropped after the status changed) is reported and otherwise ignored.
    ///
    /// # Safety
    /// `entry` belongs to a loaded library.
    unsafe fn mark(&self, entry: *const StateEntry, mark: StateMark) {
        // SAFETY: this function's contract.
        let entry = unsafe { &*entry };
        // SAFETY: mark trampolines take `StateMark` and return `()` (ABI contract); the library
        // is loaded (this function's contract).
        if let Err(panic) = unsafe { invoke::<StateMark, ()>(entry.mark, mark) } {
            // SAFETY: as above.
            let name = unsafe { entry.name.as_str() };
            tracing::warn!(
                target: "hotmod",
                "{}: state `{name}`: dropping its moved value panicked: {panic}",
                self.module
            );
        }
    }
}

/// One copy's trampolines, one at a time: what the hand-over to another process
/// (`handover.rs`) drives, where there is no second library to pair copies with.
#[cfg(feature = "reload")]
pub(crate) mod entry {
    use crate::abi::{StateEntry, StateExport, StateImport, StateMark, StateTake};
    use crate::invocation::invoke;

    /// Serializes the copy's value and marks it moved to generation `to`, in one step.
    ///
    /// # Safety
    /// `entry` belongs to a library (or the host) that stays loaded during the call.
    pub(crate) unsafe fn take(entry: &StateEntry, to: u64) -> Result<String, String> {
        // SAFETY: take trampolines take `StateTake` and return `StateExport` (ABI contract); the
        // library is loaded (this function's contract).
        match unsafe { invoke::<StateTake, StateExport>(entry.take, to) } {
            Ok(result) => result,
            Err(panic) => Err(format!("take panicked: {panic}")),
        }
    }

    /// Replaces the copy's value with `data`, exported by a copy of version `from`.
    ///
    /// # Safety
    /// As for [`take`].
    pub(crate) unsafe fn import(entry: &StateEntry, from: u32, data: String) -> Result<(), String> {
        let args: StateImport = (from, data);
        // SAFETY: import trampolines take `StateImport` and return `Result<(), String>` (ABI
        // contract); the library is loaded (this function's contract).
        match unsafe { invoke::<StateImport, Result<(), String>>(entry.import, args) } {
            Ok(result) => result,
            Err(panic) => Err(format!("import panicked: {panic}")),
        }
    }

    /// Sets the copy's status (see [`StateMark`]).
    ///
    /// # Safety
    /// As for [`take`].
    pub(crate) unsafe fn mark(entry: &StateEntry, mark: StateMark) -> Result<(), String> {
        // SAFETY: mark trampolines take `StateMark` and return `()` (ABI contract); the library
        // is loaded (this function's contract).
        unsafe { invoke::<StateMark, ()>(entry.mark, mark) }
            .map_err(|panic| format!("dropping its value panicked: {panic}"))
    }
}
