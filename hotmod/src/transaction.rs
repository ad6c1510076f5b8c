//! The load pipeline, the only way a generation becomes current: **begin** (lock the modules
//! involved, in one global order), **prepare** (read, copy, open, verify, on_load), **commit**
//! (the trial hand-over of state, the swap inside `snapshot::publish`, the seal, then announce —
//! or put everything back).
//!
//! `load`, `reload`, the watcher and the rebuild ([`Intake::offer`]), `apply_staged`, a rollback
//! and [`load_all`] are each a begin, at most one prepare per module, and one commit.

use std::path::{Path, PathBuf};
use std::ptr;
use std::time::Instant;

use crate::abi::OnLoadResult;
use crate::error::Error;
use crate::events::Event;
use crate::generation::{Generation, Probation, Verdict};
use crate::invocation::invoke;
use crate::loader::{self, Artifact};
use crate::runtime::{CountPin, Loading, Runtime, To};
use crate::snapshot;
use crate::state::Handoff;

/// What became of one load.
pub(crate) enum Outcome {
    Live(u64),
    Staged(u64),
    Unchanged,
}

/// Why a commit happens: what it announces.
enum Kind {
    /// A load or `apply_staged`: `Event::Loaded`; a rollback policy watches the new generation.
    Load { started: Instant },
    /// A rollback from generation `from`: `Event::RolledBack`.
    RollBack { from: u64, reason: String },
}

/// What a commit makes current.
enum Incoming {
    /// A prepared library, numbered when it goes live.
    Fresh(Box<Generation>),
    /// The staged generation.
    Staged,
    /// A rollback's fallback, pinned by the probation that ended.
    Fallback(CountPin),
}

// ---- begin ----

/// Locks the loading locks of `runtimes` in one global order (by address), so concurrent
/// transactions over overlapping sets cannot deadlock; returns the guards in the order given.
fn begin(runtimes: &[&'static Runtime]) -> Result<Vec<Loading<'static>>, Error> {
    let mut order: Vec<usize> = (0..runtimes.len()).collect();
    order.sort_by_key(|&i| ptr::from_ref(runtimes[i]) as usize);
    if order
        .windows(2)
        .any(|w| ptr::eq(runtimes[w[0]], runtimes[w[1]]))
    {
        let module = runtimes.first().map_or("hotmod", |r| r.name());
        return Err(Error::DuplicateModule { module });
    }
    let mut guards: Vec<Option<Loading<'static>>> = runtimes.iter().map(|_| None).collect();
    for i in order {
        let runtime = runtimes[i];
        guards[i] = Some(runtime.lock_loading().inspect_err(|e| runtime.reject(e))?);
    }
    Ok(guards.into_iter().flatten().collect())
}

// ---- prepare ----

/// Reads `path` (checks it is a complete library a trusted user wrote).
fn read(loading: &Loading, path: &Path) -> Result<Artifact, Error> {
    loader::read(loading.runtime().name(), path)
}

/// Copies, opens and verifies the artifact and runs its on_load function: a generation in all
/// but number.
fn prepare(loading: &Loading, artifact: Artifact) -> Result<Box<Generation>, Error> {
    let runtime = loading.runtime();
    // Every generation but 0 starts here, before it can be staged or made current: register
    // the process-wide barrier now, so that whichever way a loaded generation becomes current
    // (a load, `apply_staged`, `load_all`), readers that can see it also see which fence they
    // must use — and the fast plain-call path is open to them.
    crate::os::prepare_barrier();
    // Before the library is linked to the host's modules and can reach a forwarding trampoline,
    // which reads the thread's slot at its static offset when there is one.
    crate::hazard::find_static_slot();
    let path = artifact.path.clone();
    // The host's other modules, which the library may embed copies of (`abi::HostLinks`).
    let host_modules: Vec<loader::HostModule> = crate::runtime::registered()
        .map(|other| loader::HostModule {
            name: other.name(),
            symbol: other.info().symbol,
            descriptor: other.host_descriptor(),
            reach_bit: other.reach_bit(),
            module: other.module_ptr(),
            runtime: std::ptr::from_ref(other).cast(),
        })
        .collect();
    let opened = loader::open_artifact(
        runtime.name(),
        runtime.info().symbol,
        runtime.host_descriptor(),
        &host_modules,
        artifact,
    )?;
    if let Some(on_load) = opened.on_load {
        // SAFETY: the trampoline comes from a verified descriptor of this ABI version, whose
        // on_load entry takes `()` and returns `OnLoadResult`; `opened` keeps the library
        // loaded during the call.
        let result = unsafe { invoke::<(), OnLoadResult>(on_load, ()) };
        let message = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("returned an error: {e}")),
            Err(panic) => Some(format!("panicked: {panic}")),
        };
        if let Some(message) = message {
            // Dropping `opened` unloads the library and removes its copy.
            return Err(Error::OnLoad {
                module: runtime.name(),
                path,
                message,
            });
        }
    }
    Ok(Box::new(Generation {
        number: 0,
        table: opened.table,
        pins: Default::default(),
        descriptor: opened.descriptor,
        origin: Some(path),
        probation: Probation::new(),
        reach: opened.reach | runtime.reach_bit(),
        imports: opened.reach & !runtime.reach_bit() != 0,
        library: Some(opened.library),
    }))
}

// ---- commit ----

/// One module's part of a commit, as it goes.
struct Step<'l> {
    loading: &'l mut Loading<'static>,
    runtime: &'static Runtime,
    incoming: Option<Incoming>,
    /// Where the incoming generation came from, for messages and events.
    path: PathBuf,
    handoff: Option<Handoff>,
    /// The generation current before, pinned until the swap is done or undone.
    outgoing: Option<CountPin>,
    /// The incoming generation's number, once it is current.
    made: Option<u64>,
}

impl<'l> Step<'l> {
    /// `Event::StaleItems` for the generation this step made current, if it changed items the
    /// host runs its own copy of.
    fn report_stale_items(&self, number: u64) {
        let current = self.loading.current();
        let Some(lib) = current.descriptor() else {
            return;
        };
        // SAFETY: both descriptors were verified; the current generation's library stays
        // loaded while our loading guard keeps it current.
        let items = unsafe { crate::verify::stale_items(self.runtime.host_descriptor(), lib) };
        if !items.is_empty() {
            self.runtime.emit(Event::StaleItems {
                module: self.runtime.name(),
                generation: number,
                items,
            });
        }
    }

    fn new(
        loading: &'l mut Loading<'static>,
        runtime: &'static Runtime,
        incoming: Incoming,
    ) -> Self {
        Step {
            loading,
            runtime,
            incoming: Some(incoming),
            path: PathBuf::new(),
            handoff: None,
            outgoing: None,
            made: None,
        }
    }

    /// The trial hand-over of the current generation's state to the incoming one (state.rs):
    /// from here on the incoming copies are pending. Nothing else changes; on an error the
    /// incoming copies are marked moved back.
    fn trial(&mut self) -> Result<(), Error> {
        let from = self.loading.current();
        let to: &Generation = match &self.incoming {
            Some(Incoming::Fresh(generation)) => generation,
            Some(Incoming::Fallback(pin)) => pin.get(),
            Some(Incoming::Staged) | None => match self.loading.staged() {
                Some(staged) => staged,
                None => return Ok(()),
            },
        };
        self.path = to
            .origin
            .clone()
            .unwrap_or_else(|| PathBuf::from("the built-in code (generation 0)"));
        // SAFETY: both descriptors are verified (or the host's own), and both libraries stay
        // loaded while the hand-over is used: the current one is pinned (`outgoing`) before it
        // stops being current, the incoming one is owned by this step until it is live.
        self.handoff = unsafe {
            Handoff::begin(
                self.runtime.name(),
                &self.path,
                self.runtime.descriptor_of(from),
                self.runtime.descriptor_of(to),
                from.number,
            )
        }?;
        Ok(())
    }

    /// Gives up before anything changed: a fresh library unloads, a staged one is dropped, a
    /// fallback's pin is released.
    fn abandon(self) {
        match self.incoming {
            Some(Incoming::Staged) => self.runtime.unstage(self.loading),
            Some(Incoming::Fresh(_) | Incoming::Fallback(_)) | None => {}
        }
    }

    /// Waits for plain calls still running in the outgoing generation (bounded), then seals its
    /// copies and imports their final values into the incoming ones (which stay pending).
    fn move_state(&self) -> Result<(), Error> {
        let (Some(handoff), Some(outgoing), Some(number)) =
            (&self.handoff, &self.outgoing, self.made)
        else {
            return Ok(());
        };
        self.runtime.drain(outgoing.get());
        // SAFETY: both libraries stay loaded: the outgoing one is pinned, the incoming one is
        // current under the loading lock.
        unsafe { handoff.seal(number) }
    }

    /// After `move_state` failed (here or in another module of the same commit): the outgoing
    /// copies are ready again, the incoming ones moved back.
    fn revert_state(&self) {
        if let (Some(handoff), Some(outgoing)) = (&self.handoff, &self.outgoing) {
            // SAFETY: as in `move_state`.
            unsafe { handoff.revert(outgoing.get().number) };
        }
    }

    /// After every `move_state` succeeded: the incoming copies become ready. The outgoing ones
    /// keep their moved values until their generation retires (`Runtime::retire` drops them
    /// with no lock held: a value's `Drop` is module code, which may call back into hotmod);
    /// generation 0, which never retires, drops them now.
    fn commit_state(&self) {
        let (Some(handoff), Some(outgoing), Some(number)) =
            (&self.handoff, &self.outgoing, self.made)
        else {
            return;
        };
        // SAFETY: as in `move_state`.
        unsafe { handoff.commit(number) };
        if self.runtime.is_builtin(outgoing.as_ptr()) {
            // SAFETY: as above.
            unsafe { handoff.drop_old(number) };
        }
    }
}

/// The commit of one transaction: trial hand-overs for every module first (a failure changes
/// nothing); then every module's swap in one `snapshot::publish`; then every state moves, and
/// if any cannot, every module goes back, state and all. The error names the module it is
/// about; the caller reports it.
fn commit(mut steps: Vec<Step<'_>>, kind: &Kind) -> Result<Vec<u64>, (&'static Runtime, Error)> {
    let refused = steps
        .iter_mut()
        .find_map(|step| step.trial().err().map(|error| (step.runtime, error)));
    if let Some((runtime, error)) = refused {
        for step in steps {
            step.abandon();
        }
        return Err((runtime, error));
    }
    // Every outgoing generation stays loaded until its swap is done: its state sealed, or it
    // current again.
    for step in &mut steps {
        step.outgoing = Some(step.runtime.pin_locked());
    }
    let watch = matches!(kind, Kind::Load { .. });
    let released = snapshot::publish(|publishing| {
        let mut released = Vec::new();
        for step in &mut steps {
            let Some(incoming) = step.incoming.take() else {
                continue;
            };
            let (to, keep) = match incoming {
                Incoming::Fresh(generation) => (To::Fresh(generation), None),
                Incoming::Staged => match step.loading.staged() {
                    Some(staged) => (To::Live(ptr::from_ref(staged)), None),
                    None => continue,
                },
                Incoming::Fallback(pin) => (To::Live(pin.as_ptr()), Some(pin)),
            };
            let (_, ended) = step
                .runtime
                .make_current(step.loading, publishing, to, watch);
            released.push(ended);
            released.push(keep);
            step.made = Some(step.loading.current().number);
        }
        released
    });
    drop(released);
    // Each module's state moves; if any cannot, every module goes back, state and all.
    let failed = steps
        .iter()
        .find_map(|step| step.move_state().err().map(|e| (step.runtime, e)));
    if let Some((runtime, error)) = failed {
        for step in &steps {
            step.revert_state();
        }
        let released = snapshot::publish(|publishing| {
            steps
                .iter_mut()
                .filter(|step| step.made.is_some())
                .filter_map(|step| {
                    let outgoing = step.outgoing.as_ref()?.as_ptr();
                    let (_, ended) = step.runtime.make_current(
                        step.loading,
                        publishing,
                        To::Live(outgoing),
                        false,
                    );
                    Some(ended)
                })
                .collect::<Vec<_>>()
        });
        drop(released);
        for step in &mut steps {
            step.runtime.notify_changed();
            // The incoming generation retires if nothing else uses it.
            drop(step.outgoing.take());
            step.runtime.collect();
        }
        return Err((runtime, error));
    }
    for step in &steps {
        step.commit_state();
    }
    let numbers = steps
        .iter()
        .filter_map(|step| {
            let number = step.made?;
            step.runtime.notify_changed();
            Some(match kind {
                Kind::Load { started } => {
                    let number = step.runtime.announce(number, &step.path, *started);
                    step.report_stale_items(number);
                    number
                }
                Kind::RollBack { from, reason } => {
                    step.runtime.emit(Event::RolledBack {
                        module: step.runtime.name(),
                        from: *from,
                        to: number,
                        reason: reason.clone(),
                    });
                    step.runtime.collect();
                    number
                }
            })
        })
        .collect();
    // The outgoing generations retire if nothing else uses them.
    for step in &mut steps {
        drop(step.outgoing.take());
    }
    Ok(numbers)
}

// ---- the transactions ----

/// Loads `path` unless `skip_unchanged` and its bytes equal the newest generation's. The caller
/// reports errors.
pub(crate) fn load(
    runtime: &'static Runtime,
    path: &Path,
    started: Instant,
    skip_unchanged: bool,
) -> Result<Outcome, Error> {
    let mut loading = runtime.lock_loading()?;
    let artifact = read(&loading, path)?;
    // The newest generation cannot change meanwhile: `loading` holds the module's loading lock.
    if skip_unchanged
        && runtime
            .newest()
            .1
            .is_some_and(|copy| artifact.same_as(&copy))
    {
        runtime.emit(Event::Unchanged {
            module: runtime.name(),
            path: path.to_path_buf(),
        });
        return Ok(Outcome::Unchanged);
    }
    let generation = prepare(&loading, artifact)?;
    if runtime.staging() {
        return Ok(Outcome::Staged(runtime.stage(&mut loading, generation)));
    }
    let step = Step::new(&mut loading, runtime, Incoming::Fresh(generation));
    let numbers = commit(vec![step], &Kind::Load { started }).map_err(|(_, error)| error)?;
    Ok(numbers
        .first()
        .map_or(Outcome::Unchanged, |&n| Outcome::Live(n)))
}

/// Makes the staged generation current; `None` if none waits, its state could not move, or the
/// module cannot load in this process (the error is reported).
pub(crate) fn apply_staged(runtime: &'static Runtime) -> Option<u64> {
    let started = Instant::now();
    let mut loading = match runtime.lock_loading() {
        Ok(loading) => loading,
        Err(error) => {
            runtime.reject(&error);
            return None;
        }
    };
    loading.staged()?;
    let step = Step::new(&mut loading, runtime, Incoming::Staged);
    match commit(vec![step], &Kind::Load { started }) {
        Ok(numbers) => numbers.first().copied(),
        Err((runtime, error)) => {
            runtime.reject(&error);
            // The staged generation, dropped, retires now.
            runtime.collect();
            None
        }
    }
}

/// Loads a new generation of several modules at once, all or nothing (see the public
/// `load_all`).
pub(crate) fn load_all(loads: Vec<(&'static Runtime, PathBuf)>) -> Result<Vec<u64>, Error> {
    let started = Instant::now();
    let runtimes: Vec<&'static Runtime> = loads.iter().map(|(runtime, _)| *runtime).collect();
    let mut guards = begin(&runtimes)?;
    let mut prepared = Vec::new();
    for ((runtime, path), loading) in loads.iter().zip(&guards) {
        match read(loading, path).and_then(|artifact| prepare(loading, artifact)) {
            Ok(generation) => prepared.push(generation),
            Err(error) => {
                runtime.reject(&error);
                // Dropping `prepared` unloads every library prepared so far.
                return Err(error);
            }
        }
    }
    let steps = guards
        .iter_mut()
        .zip(runtimes)
        .zip(prepared)
        .map(|((loading, runtime), generation)| {
            Step::new(loading, runtime, Incoming::Fresh(generation))
        })
        .collect();
    commit(steps, &Kind::Load { started }).map_err(|(runtime, error)| {
        runtime.reject(&error);
        error
    })
}

/// Counts a call of a generation under probation: ends the probation, or rolls back.
#[cold]
pub(crate) fn observe(runtime: &'static Runtime, generation: &Generation, panicked: bool) {
    match generation.probation.observe(panicked) {
        Verdict::Watching => {}
        Verdict::Passed => drop(runtime.end_probation(generation)),
        Verdict::RollBack { streak, calls } => roll_back(runtime, generation, streak, calls),
    }
}

/// Makes the fallback of `generation` current again, if `generation` is still current and
/// under probation, and no load is in progress (that load decides what is current). The
/// module's state goes back with it (state.rs); if the fallback cannot take it, `generation`
/// stays current with its state and an [`Event::Rejected`] says why.
fn roll_back(runtime: &'static Runtime, generation: &Generation, streak: u32, calls: u32) {
    let Some(mut loading) = runtime.try_lock_loading() else {
        return;
    };
    if !ptr::eq(loading.current(), generation) {
        return;
    }
    let Some(fallback) = runtime.end_probation(generation) else {
        return;
    };
    let reason = format!("{streak} calls in a row panicked among its first {calls}");
    let from = generation.number;
    let step = Step::new(&mut loading, runtime, Incoming::Fallback(fallback));
    let kind = Kind::RollBack { from, reason };
    if let Err((runtime, error)) = commit(vec![step], &kind) {
        let Kind::RollBack { reason, .. } = kind else {
            return;
        };
        runtime.reject(&match error {
            Error::State {
                module,
                path,
                message,
            } => Error::State {
                module,
                path,
                message: format!(
                    "rolling back from generation {from} ({reason}) failed: {message}"
                ),
            },
            other => other,
        });
    }
}

/// What the watcher and the rebuild may do with a module: offer it a file, and report.
#[derive(Clone, Copy)]
pub(crate) struct Intake(&'static Runtime);

impl Intake {
    pub(crate) fn new(runtime: &'static Runtime) -> Intake {
        Intake(runtime)
    }

    pub(crate) fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Loads `path` (changed at `since`) unless its bytes equal the newest generation's. Errors
    /// are returned, not reported: the watcher retries some of them.
    pub(crate) fn offer(&self, path: &Path, since: Instant) -> Result<(), Error> {
        load(self.0, path, since, true).map(drop)
    }

    /// Reports a refused load (`Event::Rejected`).
    pub(crate) fn report(&self, error: &Error) {
        self.0.reject(error);
    }

    pub(crate) fn emit(&self, event: Event) {
        self.0.emit(event);
    }

    /// `HOTMOD_<CRATE>_PATH`.
    pub(crate) fn env_var(&self) -> String {
        self.0.env_var()
    }

    /// The module crate's name as cargo names its library.
    pub(crate) fn crate_name(&self) -> &'static str {
        self.0.crate_name()
    }
}
