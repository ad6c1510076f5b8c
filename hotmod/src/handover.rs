//! The kept-state restart's machinery (`restart.rs` is its public face): what the old process
//! hands over and how, and what the new one takes.
//!
//! # The old process
//!
//! A host opts in with `restart::on_incompatible(shape)`, which records how it was started (its
//! executable and arguments). When the built-in rebuild builds a library that is refused only
//! because it needs a restart (`Error::Incompatible`, `Error::EmbeddedIncompatible`), the builder
//! builds the host's executable with the same selection and calls [`launch`]:
//!
//! - **Overlap** (a server): the new executable starts at once, as a child, with the descriptors
//!   the host kept (`restart::keep_fd`) and two pipes. It writes one byte on the first pipe when
//!   it serves (`restart::ready()`); until then the old process serves alone, and a new process
//!   that exits or does not get ready within [`READY_LIMIT`] is reported and forgotten. Then the
//!   [`Pending`] hand-over is published: the host's `restart::wait()` returns it, the host stops
//!   accepting and drains, and `Handover::finish` takes every state (marking each copy moved, in
//!   the step that serializes it, so a late write is refused, never lost) and writes them on the
//!   second pipe.
//! - **In place** (a terminal program): the hand-over is published as soon as the executable is
//!   built; at its safe point the host's `restart::poll()` returns it, and `Handover::exec`
//!   takes the states, writes them into an anonymous file and `exec`s the new executable in this
//!   process (same pid, same terminal, same process group). If `exec` fails, the states are
//!   given back and the old code runs on.
//!
//! # The new process
//!
//! [`HOTMOD_RESTART`](ENV) tells it that it was handed over: which shape, the old pid, the
//! descriptors by name, and where its state comes from. It is read once, before `main`, when
//! the first hot module enrols ([`on_register`]), and removed from the environment so that
//! nothing the process starts (cargo) sees it. From then on every host module's state copies are
//! *pending*: their accesses wait. `restart::ready()` imports the states as they arrive
//! (migrating across versions with the new build's `migrate`) and marks the copies ready.
//!
//! The payload is hotmod's own framing (below), not JSON: a state's data is already its serde
//! JSON, and the host's values are too, so this needs no serde of its own.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use crate::abi::{StateEntry, StateMark};
use crate::error::Error;
use crate::os::restart as os;
use crate::runtime::{registered, Loading, Runtime};
use crate::state::{entry, RESTARTED};

/// The environment variable that tells a process it was handed over.
pub(crate) const ENV: &str = "HOTMOD_RESTART";

/// How long the old process waits for the new one's `restart::ready()`.
pub(crate) const READY_LIMIT: Duration = Duration::from_secs(300);

/// How long `restart::take_value` waits for the old process's values (an overlap hands them
/// over after its drain).
#[cfg(feature = "state")]
const VALUES_LIMIT: Duration = Duration::from_secs(120);

/// The two ways to hand over (`restart::Shape`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Overlap,
    InPlace,
}

impl Shape {
    fn word(self) -> &'static str {
        match self {
            Shape::Overlap => "overlap",
            Shape::InPlace => "in-place",
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The old process.

/// What `on_incompatible` recorded.
struct Config {
    shape: Shape,
    args: Vec<OsString>,
}

static CONFIG: Mutex<Option<Config>> = Mutex::new(None);
/// The descriptors to hand over, by name.
static KEPT_FDS: Mutex<Vec<(String, RawFd)>> = Mutex::new(Vec::new());

/// The hand-over under way: `Busy` from the build's start to `finish`/`exec` (or a failure),
/// `Published` while the host has not taken it.
enum Slot {
    Idle,
    Busy,
    Published(Pending),
    /// The states went to the new process: this one restarts no more (its states are gone, and
    /// the descriptors it kept may be closed by now).
    HandedOver,
}

static SLOT: Mutex<Slot> = Mutex::new(Slot::Idle);
static PUBLISHED: Condvar = Condvar::new();

/// Opts the process in (`restart::on_incompatible`).
pub(crate) fn enable(shape: Shape) {
    *lock(&CONFIG) = Some(Config {
        shape,
        args: std::env::args_os().skip(1).collect(),
    });
}

/// Whether `error`, a refused load, asks for a restart that this process opted into and that is
/// not under way yet; if so, marks one under way (the caller then builds, and ends it with
/// [`launch`] or [`failed`]).
pub(crate) fn wanted(error: &Error) -> bool {
    if !matches!(
        error,
        Error::Incompatible { .. } | Error::EmbeddedIncompatible { .. }
    ) || lock(&CONFIG).is_none()
    {
        return false;
    }
    let mut slot = lock(&SLOT);
    if !matches!(*slot, Slot::Idle) {
        return false;
    }
    *slot = Slot::Busy;
    true
}

/// The restart the builder started could not go on; another may start.
pub(crate) fn failed() {
    let mut slot = lock(&SLOT);
    if matches!(*slot, Slot::Busy) {
        *slot = Slot::Idle;
    }
}

/// Records a descriptor to hand over (`restart::keep_fd`).
pub(crate) fn keep_fd(name: &str, fd: RawFd) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(format!(
            "`{name}`: a kept descriptor's name is ASCII letters, digits, `_`, `-` and `.`"
        ));
    }
    let mut kept = lock(&KEPT_FDS);
    kept.retain(|(kept, _)| kept != name);
    kept.push((name.to_owned(), fd));
    Ok(())
}

/// The hand-over to the new executable, built: published for the host to take, then `ready` is
/// told (with the new process's pid, for an overlap). An overlap's new process is
/// started here and must be ready first. `Err`: why not (the caller reports it, and this process
/// keeps serving).
pub(crate) fn launch(
    module: &'static str,
    exe: PathBuf,
    ready: impl FnOnce(Option<u32>),
) -> Result<(), String> {
    let (shape, args) = match &*lock(&CONFIG) {
        Some(config) => (config.shape, config.args.clone()),
        None => return Err("the host did not opt in".into()),
    };
    let pending = match shape {
        Shape::InPlace => Pending {
            module,
            exe,
            args,
            overlap: None,
        },
        Shape::Overlap => {
            let overlap = start_overlap(&exe, &args)?;
            Pending {
                module,
                exe,
                args,
                overlap: Some(overlap),
            }
        }
    };
    let pid = pending.overlap.as_ref().map(|o| o.pid);
    *lock(&SLOT) = Slot::Published(pending);
    PUBLISHED.notify_all();
    // Said once it is published, so that a `restart::poll()` after the event returns it. (A
    // host that polls every frame may `exec` before it shows the event: the line before it,
    // `RestartBuilding`, says what is coming.)
    ready(pid);
    Ok(())
}

/// Starts the new executable beside this process and waits for its `restart::ready()`; its pid
/// and the pipe its state goes down.
fn start_overlap(exe: &PathBuf, args: &[OsString]) -> Result<Overlap, String> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let (ready_read, ready_write) = os::pipe().map_err(|e| io("making a pipe", e))?;
    let (state_read, state_write) = os::pipe().map_err(|e| io("making a pipe", e))?;
    let kept = lock(&KEPT_FDS).clone();
    let mut inherit: Vec<RawFd> = vec![ready_write.as_raw_fd(), state_read.as_raw_fd()];
    inherit.extend(kept.iter().map(|(_, fd)| *fd));
    let value = describe(
        Shape::Overlap,
        &[
            ("ready", ready_write.as_raw_fd()),
            ("state", state_read.as_raw_fd()),
        ],
        &kept,
    );
    let mut command = Command::new(exe);
    command.args(args).env(ENV, value);
    // All of them stay open here until `spawn` returns.
    os::inherit_at_exec(&mut command, inherit);
    let mut child = command
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", exe.display()))?;
    // The child's ends: closed here, so that the ready pipe reads end-of-file if the child
    // exits without writing.
    drop(ready_write);
    drop(state_read);
    let pid = child.id();
    let mut ready_read = ready_read;
    let limit = i32::try_from(READY_LIMIT.as_millis()).unwrap_or(i32::MAX);
    // `Some(true)`: ready; `Some(false)`: the child closed its end (it exited) without; `None`:
    // the time ran out.
    let ready = match os::wait_readable(ready_read.as_raw_fd(), limit) {
        Ok(true) => {
            let mut byte = [0u8; 1];
            Some(matches!(ready_read.read(&mut byte), Ok(1)))
        }
        Ok(false) | Err(_) => None,
    };
    let ready = ready == Some(true) || {
        let status = match ready {
            // It closed the pipe: it exits (or exited), and `wait` returns soon.
            Some(_) => match child.wait() {
                Ok(status) => format!("exited ({status})"),
                Err(e) => format!("ended (waiting for it failed: {e})"),
            },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                format!(
                    "did not call hotmod::restart::ready() within {} s and was stopped",
                    READY_LIMIT.as_secs()
                )
            }
        };
        return Err(format!(
            "the new process (pid {pid}, {}) {status} before it was ready",
            exe.display()
        ));
    };
    debug_assert!(ready);
    // The child runs on by itself; `wait` it on a thread so that it leaves no zombie should this
    // process outlive it.
    let _ = std::thread::Builder::new()
        .name("hotmod restart child".into())
        .spawn(move || child.wait());
    Ok(Overlap {
        pid,
        state: state_write,
        answers: ready_read,
    })
}

/// `HOTMOD_RESTART`'s value: `1;shape=…;pid=…;<key>=<fd>…;fd=<name>:<fd>…`.
fn describe(shape: Shape, own: &[(&str, RawFd)], kept: &[(String, RawFd)]) -> String {
    let mut value = format!("1;shape={};pid={}", shape.word(), std::process::id());
    for (key, fd) in own {
        value.push_str(&format!(";{key}={fd}"));
    }
    for (name, fd) in kept {
        value.push_str(&format!(";fd={name}:{fd}"));
    }
    value
}

/// A built new executable, waiting for the host (`restart::Handover`'s inside).
pub(crate) struct Pending {
    pub(crate) module: &'static str,
    exe: PathBuf,
    args: Vec<OsString>,
    overlap: Option<Overlap>,
}

struct Overlap {
    pid: u32,
    /// Where the state goes.
    state: File,
    /// What the new process says: one byte when it is ready, then whether it took the state
    /// (`1`; or `0` and why, after which it exits).
    answers: File,
}

/// The published hand-over, once: `block` waits for one.
pub(crate) fn take_published(block: bool) -> Option<Pending> {
    let mut slot = lock(&SLOT);
    loop {
        if matches!(*slot, Slot::Published(_)) {
            let Slot::Published(pending) = std::mem::replace(&mut *slot, Slot::Busy) else {
                unreachable!("matched just above")
            };
            return Some(pending);
        }
        if !block {
            return None;
        }
        slot = PUBLISHED.wait(slot).unwrap_or_else(PoisonError::into_inner);
    }
}

impl Pending {
    pub(crate) fn new_pid(&self) -> Option<u32> {
        self.overlap.as_ref().map(|o| o.pid)
    }

    pub(crate) fn is_in_place(&self) -> bool {
        self.overlap.is_none()
    }

    fn error(&self, message: String) -> Error {
        Error::Restart {
            module: self.module,
            path: self.exe.clone(),
            message,
        }
    }

    /// Overlap: hands the states and `values` to the new process. On an error the states are
    /// given back (this process holds them again) and the new process starts without them.
    pub(crate) fn finish(mut self, values: &[(String, String)]) -> Result<(), Error> {
        let Some(overlap) = self.overlap.take() else {
            return Err(self.error(
                "this is an in-place restart: call Handover::exec(), which replaces this process"
                    .into(),
            ));
        };
        let taken = Taken::all().map_err(|e| self.error(e))?;
        let mut payload = taken.payload();
        for (name, data) in values {
            push_record(&mut payload, VALUE, "", name, 0, data);
        }
        let Overlap {
            pid,
            state: mut pipe,
            answers,
        } = overlap;
        if let Err(e) = pipe.write_all(&payload).and_then(|()| pipe.flush()) {
            taken.give_back();
            return Err(self.error(format!(
                "writing the state to the new process (pid {pid}) failed: {e}"
            )));
        }
        drop(pipe);
        // Only once the new process says it took every state are they its own; until then this
        // process keeps them (moved, not dropped), to take them back.
        match took_state(answers) {
            Ok(()) => {
                taken.handed_over();
                *lock(&SLOT) = Slot::HandedOver;
                wait_for_successor_at_exit(pid);
                Ok(())
            }
            Err(why) => {
                taken.give_back();
                Err(self.error(format!(
                    "the new process (pid {pid}) did not take the state: {why}; it exits"
                )))
            }
        }
    }

    /// In place: `exec`s the new executable in this process with the states and `values`.
    /// Returns only if that failed; then the states are back and this process runs on.
    pub(crate) fn exec(self, values: &[(String, String)]) -> Error {
        if self.overlap.is_some() {
            return self.error(
                "this is an overlapping restart: its new process already runs; call \
                 Handover::finish() after draining"
                    .into(),
            );
        }
        let taken = match Taken::all() {
            Ok(taken) => taken,
            Err(e) => return self.error(e),
        };
        let mut payload = taken.payload();
        for (name, data) in values {
            push_record(&mut payload, VALUE, "", name, 0, data);
        }
        let file = match os::file_holding(&payload) {
            Ok(file) => file,
            Err(e) => {
                taken.give_back();
                return self.error(format!("writing the state to hand over failed: {e}"));
            }
        };
        let kept = lock(&KEPT_FDS).clone();
        let mut inherit: Vec<RawFd> = vec![file.as_raw_fd()];
        inherit.extend(kept.iter().map(|(_, fd)| *fd));
        let mut own = vec![("state", file.as_raw_fd())];
        // The executable this process runs, for the new one to go back to should it end before
        // it is ready (see `Incoming::fall_back`): open here, because a build may have replaced
        // the file at its path already.
        let running = os::running_executable().ok();
        if let Some(running) = &running {
            inherit.push(running.as_raw_fd());
            own.push(("fallback", running.as_raw_fd()));
        }
        let value = describe(Shape::InPlace, &own, &kept);
        let mut command = Command::new(&self.exe);
        command.args(&self.args).env(ENV, value);
        os::inherit_at_exec(&mut command, inherit.clone());
        let error = {
            use std::os::unix::process::CommandExt;
            command.exec()
        };
        // Still here: `execve` failed. Close the descriptors on exec again and run on.
        for fd in inherit {
            let _ = os::close_on_exec(fd);
        }
        drop(file);
        drop(running);
        taken.give_back();
        self.error(format!("exec failed: {error}"))
    }
}

/// The new process an overlap handed over to, once it took the state: at exit this process
/// waits for it (see [`wait_for_successor_at_exit`]).
static SUCCESSOR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// After a finished overlap: when the host exits (returns from `main`, or calls
/// `process::exit`), this process does not end but becomes a waiter for its successor — the
/// same pid, running the executable afresh with `HOTMOD_RESTART=1;shape=wait;child=<pid>`, which
/// waits before `main` ([`read_env`]) and exits as the successor does. So `cargo run`, the shell
/// (and Ctrl-C, through the terminal's process group) and a supervisor keep the server they
/// started; without it the successor would run on unseen in the background.
fn wait_for_successor_at_exit(pid: u32) {
    extern "C" fn at_exit() {
        let pid = SUCCESSOR.load(std::sync::atomic::Ordering::Acquire);
        if pid == 0 {
            return;
        }
        let value = format!("1;shape=wait;pid={};child={pid}", std::process::id());
        let error = os::exec_self((ENV, &value));
        tracing::debug!(target: "hotmod", "restart: waiting in this image for the new process ({error})");
        os::wait_for_child(pid);
    }
    if SUCCESSOR.swap(pid, std::sync::atomic::Ordering::AcqRel) == 0 {
        // SAFETY: registers a function without arguments that lives as long as the program
        // (this image is the main executable or a library that stays loaded: hotmod in a host).
        unsafe { libc::atexit(at_exit) };
    }
}

/// How long `finish` waits for the new process to say it took the state.
const TAKEN_LIMIT: Duration = Duration::from_secs(120);

/// The new process's answer after the state went down the pipe (see [`Overlap::answers`]).
fn took_state(mut answers: File) -> Result<(), String> {
    let limit = i32::try_from(TAKEN_LIMIT.as_millis()).unwrap_or(i32::MAX);
    match os::wait_readable(answers.as_raw_fd(), limit) {
        Ok(true) => {}
        Ok(false) => return Err(format!("no answer within {} s", TAKEN_LIMIT.as_secs())),
        Err(e) => return Err(format!("waiting for its answer failed: {e}")),
    }
    let mut answer = Vec::new();
    let _ = answers.read_to_end(&mut answer);
    match answer.split_first() {
        Some((1, _)) => Ok(()),
        Some((_, why)) => Err(String::from_utf8_lossy(why).into_owned()),
        None => Err("it ended before it answered".into()),
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Dropped without a hand-over: another may start (an overlap's new process reads
        // end-of-file and starts with its states fresh).
        let mut slot = lock(&SLOT);
        if matches!(*slot, Slot::Busy) {
            *slot = Slot::Idle;
        }
    }
}

/// Every host module's states, taken: serialized and marked moved to the restarted process,
/// under every module's loading lock (no load can swap a generation meanwhile).
struct Taken {
    /// (module, state name, version, data, the copy).
    states: Vec<(&'static str, String, u32, String, *const StateEntry)>,
    _locks: Vec<Loading<'static>>,
}

impl Taken {
    fn all() -> Result<Taken, String> {
        let mut taken = Taken {
            states: Vec::new(),
            _locks: Vec::new(),
        };
        for runtime in registered() {
            let loading = runtime.lock_loading().map_err(|e| e.to_string())?;
            let descriptor = runtime.descriptor_of(loading.current());
            // SAFETY: the current generation's descriptor, which stays loaded while its loading
            // lock is held (it cannot be replaced, and is never retired while current); the
            // lock is kept in `taken` for as long as its entries are used.
            let states = unsafe { descriptor.states.as_slice() };
            for state in states {
                // SAFETY: as above.
                let name = unsafe { state.name.as_str() }.to_owned();
                // SAFETY: as above.
                match unsafe { entry::take(state, RESTARTED) } {
                    Ok(data) => taken.states.push((
                        runtime.name(),
                        name,
                        state.version,
                        data,
                        std::ptr::from_ref(state),
                    )),
                    Err(e) => {
                        taken.give_back();
                        return Err(format!(
                            "{}: state `{name}` could not be handed over: {e}",
                            runtime.name()
                        ));
                    }
                }
            }
            taken._locks.push(loading);
        }
        Ok(taken)
    }

    fn payload(&self) -> Vec<u8> {
        let mut payload = MAGIC.to_vec();
        for (module, name, version, data, _) in &self.states {
            push_record(&mut payload, STATE, module, name, *version, data);
        }
        payload
    }

    /// The hand-over failed: the copies are ready again with the values they kept.
    fn give_back(&self) {
        for (module, name, _, _, state) in &self.states {
            // SAFETY: an entry of a current generation whose loading lock `self` holds.
            if let Err(e) = unsafe { entry::mark(&**state, StateMark::Ready) } {
                tracing::warn!(target: "hotmod", "{module}: state `{name}`: {e}");
            }
        }
    }

    /// The states went to the new process: the loading locks are released, and the copies stay
    /// moved (their accesses panic with `state::moved`'s restart message).
    fn handed_over(self) {}
}

// SAFETY: the raw entry pointers are only used by the thread holding the `Taken`, under the
// loading locks it holds; entries are `Sync` (`abi.rs`).
unsafe impl Send for Taken {}

// ---------------------------------------------------------------------------------------------
// The payload: `MAGIC`, then records of
// kind (1 byte), module, name (u32 length + UTF-8 each), version (u32), data (u64 length + bytes),
// integers little-endian.

const MAGIC: &[u8; 8] = b"HOTMODR1";
const STATE: u8 = 1;
const VALUE: u8 = 2;

fn push_record(out: &mut Vec<u8>, kind: u8, module: &str, name: &str, version: u32, data: &str) {
    out.push(kind);
    for text in [module, name] {
        out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data.as_bytes());
}

struct Record {
    kind: u8,
    module: String,
    name: String,
    version: u32,
    data: String,
}

fn parse(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let mut rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or("it does not start with hotmod's restart header")?;
    let mut records = Vec::new();
    while !rest.is_empty() {
        let kind = take_bytes(&mut rest, 1)?[0];
        let module = take_text(&mut rest)?;
        let name = take_text(&mut rest)?;
        let version = u32::from_le_bytes(take_array(&mut rest)?);
        let len = usize::try_from(u64::from_le_bytes(take_array(&mut rest)?))
            .map_err(|_| "a record too long for this machine")?;
        let data = String::from_utf8(take_bytes(&mut rest, len)?.to_vec())
            .map_err(|_| "a value is not UTF-8")?;
        records.push(Record {
            kind,
            module,
            name,
            version,
            data,
        });
    }
    Ok(records)
}

fn take_bytes<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if rest.len() < n {
        return Err("it ends in the middle of a record".into());
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], String> {
    let mut array = [0u8; N];
    array.copy_from_slice(take_bytes(rest, N)?);
    Ok(array)
}

fn take_text(rest: &mut &[u8]) -> Result<String, String> {
    let len = u32::from_le_bytes(take_array(rest)?) as usize;
    String::from_utf8(take_bytes(rest, len)?.to_vec()).map_err(|_| "a name is not UTF-8".into())
}

// ---------------------------------------------------------------------------------------------
// The new process.

/// What `HOTMOD_RESTART` said, and what arrived since.
pub(crate) struct Incoming {
    pub(crate) shape: Shape,
    pub(crate) previous_pid: u32,
    fds: Mutex<HashMap<String, OwnedFd>>,
    /// The kept descriptors by number, as handed over (for a fall-back, which hands them on).
    kept: Vec<(String, RawFd)>,
    ready: Mutex<Option<File>>,
    state: Mutex<Option<File>>,
    /// In place: the state as handed over, read before `main` (the file is read once; a
    /// fall-back hands these bytes on).
    payload: Mutex<Option<Vec<u8>>>,
    /// In place: the executable of the process before the `exec`, to go back to if this one
    /// ends before it is ready.
    fallback: Mutex<Option<File>>,
    /// Started by a fall-back: why the build it fell back from did not start.
    pub(crate) fell_back: bool,
    arrival: Mutex<Arrival>,
    arrived: Condvar,
}

#[derive(Default)]
struct Arrival {
    /// `ready()` ran (the import started, or is done).
    started: bool,
    /// The import is done: the states are in, or what went wrong is said.
    done: bool,
    values: HashMap<String, String>,
    /// Why the hand-over brought nothing, if it did not.
    problem: Option<String>,
}

static INCOMING: OnceLock<Option<Incoming>> = OnceLock::new();

/// The hand-over this process was started by, if any (read once: see the module docs).
pub(crate) fn incoming() -> Option<&'static Incoming> {
    INCOMING.get_or_init(read_env).as_ref()
}

fn read_env() -> Option<Incoming> {
    let value = std::env::var(ENV).ok()?;
    // Nothing this process starts (cargo, a restart of its own) may see it. This runs when the
    // first hot module enrols, before `main` where the platform has static constructors.
    std::env::remove_var(ENV);
    let mut incoming = Incoming {
        shape: Shape::Overlap,
        previous_pid: 0,
        fds: Mutex::new(HashMap::new()),
        kept: Vec::new(),
        ready: Mutex::new(None),
        state: Mutex::new(None),
        payload: Mutex::new(None),
        fallback: Mutex::new(None),
        fell_back: false,
        arrival: Mutex::new(Arrival::default()),
        arrived: Condvar::new(),
    };
    let mut fields = value.split(';');
    if fields.next() != Some("1") {
        tracing::warn!(target: "hotmod", "{ENV}={value}: not a hand-over this hotmod reads; ignored");
        return None;
    }
    // An old server process after its hand-over (`wait_for_successor_at_exit`): wait for the
    // successor and end as it ends, before `main` runs.
    if value.split(';').any(|field| field == "shape=wait") {
        let child = value
            .split(';')
            .find_map(|field| field.strip_prefix("child="))
            .and_then(|pid| pid.parse().ok())
            .unwrap_or(0);
        os::wait_for_child(child);
    }
    let own = |fd: &str| -> Option<OwnedFd> {
        let fd: RawFd = fd.parse().ok()?;
        // An open descriptor, or not one at all (then nothing is owned).
        os::close_on_exec(fd).ok()?;
        // SAFETY: the old process made this descriptor inheritable for this process alone and
        // names each once, and this runs once (`INCOMING`): nothing else in this process owns
        // it (the check above: it is open).
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    for field in fields {
        let Some((key, rest)) = field.split_once('=') else {
            continue;
        };
        match key {
            "shape" if rest == "in-place" => incoming.shape = Shape::InPlace,
            "pid" => incoming.previous_pid = rest.parse().unwrap_or(0),
            "ready" => *lock(&incoming.ready) = own(rest).map(File::from),
            "state" => *lock(&incoming.state) = own(rest).map(File::from),
            "fallback" => *lock(&incoming.fallback) = own(rest).map(File::from),
            "fell-back" => incoming.fell_back = true,
            "fd" => {
                if let Some((name, fd)) = rest.rsplit_once(':') {
                    if let Some(fd) = own(fd) {
                        incoming.kept.push((name.to_owned(), fd.as_raw_fd()));
                        lock(&incoming.fds).insert(name.to_owned(), fd);
                    }
                }
            }
            _ => {}
        }
    }
    if incoming.shape == Shape::InPlace {
        // Read now: a fall-back needs the bytes, and `ready` may never come.
        if let Some(state) = lock(&incoming.state).take() {
            *lock(&incoming.payload) = Some(read_all(state).unwrap_or_default());
        }
        if lock(&incoming.fallback).is_some() {
            extern "C" fn at_exit() {
                if let Some(incoming) = INCOMING.get().and_then(Option::as_ref) {
                    incoming.fall_back();
                }
            }
            // SAFETY: registers a function without arguments that lives as long as the program
            // (hotmod in the main executable).
            unsafe { libc::atexit(at_exit) };
        }
    }
    Some(incoming)
}

/// A host module enrolled: in a handed-over process, its states wait for their values.
pub(crate) fn on_register(runtime: &'static Runtime) {
    let Some(incoming) = incoming() else { return };
    if lock(&incoming.arrival).done {
        return;
    }
    mark_all(runtime, StateMark::Pending);
}

fn mark_all(runtime: &Runtime, mark: StateMark) {
    let descriptor = runtime.host_descriptor();
    // SAFETY: the host's own descriptor, a static of this executable.
    for state in unsafe { descriptor.states.as_slice() } {
        // SAFETY: as above.
        if let Err(e) = unsafe { entry::mark(state, mark) } {
            tracing::warn!(target: "hotmod", "{}: {e}", runtime.name());
        }
    }
}

impl Incoming {
    pub(crate) fn take_fd(&self, name: &str) -> Option<OwnedFd> {
        lock(&self.fds).remove(name)
    }

    /// `restart::ready()`: tells the old process (overlap), and imports the states — at once
    /// in place, on a thread as they arrive in an overlap.
    pub(crate) fn ready(&'static self) {
        {
            let mut arrival = lock(&self.arrival);
            if arrival.started {
                return;
            }
            arrival.started = true;
        }
        if let Some(pipe) = lock(&self.ready).as_mut() {
            if let Err(e) = pipe.write_all(&[1]) {
                tracing::warn!(target: "hotmod", "telling the old process this one is ready failed: {e}");
            }
        }
        if self.fell_back {
            eprintln!(
                "hotmod: restart: the rebuilt host ended before it was ready \
                 (hotmod::restart::ready()); the previous build runs again, with its state"
            );
        }
        if self.shape == Shape::InPlace {
            // Ready: from now on this build ends as it likes, with no fall-back.
            drop(lock(&self.fallback).take());
            let payload = lock(&self.payload).take();
            self.import(payload.ok_or_else(|| "no state was handed over".to_owned()));
            return;
        }
        let Some(state) = lock(&self.state).take() else {
            self.import(Err("no state was handed over".into()));
            return;
        };
        // An overlap: the state comes once the old process drained; read it on a thread.
        let spawned = std::thread::Builder::new()
            .name("hotmod restart state".into())
            .spawn(move || self.import(read_all(state)));
        if let Err(e) = spawned {
            self.import(Err(format!("starting a thread to read it: {e}")));
        }
    }

    fn import(&self, payload: Result<Vec<u8>, String>) {
        let records = payload.and_then(|bytes| {
            if bytes.is_empty() {
                Err(format!(
                    "the old process (pid {}) ended without handing its state over",
                    self.previous_pid
                ))
            } else {
                parse(&bytes).map_err(|e| format!("the hand-over cannot be read: {e}"))
            }
        });
        let mut values = HashMap::new();
        let problem = match records {
            Ok(records) => {
                let mut refused = Vec::new();
                for record in records {
                    match record.kind {
                        STATE => {
                            if let Err(why) = import_state(&record) {
                                refused.push((why, record));
                            }
                        }
                        VALUE => {
                            values.insert(record.name, record.data);
                        }
                        _ => {}
                    }
                }
                if !refused.is_empty() {
                    self.refused(refused);
                }
                None
            }
            Err(e) => {
                tracing::error!(target: "hotmod", "restart: {e}; every state starts from its default");
                Some(e)
            }
        };
        // Took everything: the old process may let go.
        if let Some(mut pipe) = lock(&self.ready).take() {
            let _ = pipe.write_all(&[1]);
        }
        let mut arrival = lock(&self.arrival);
        for runtime in registered() {
            mark_all(runtime, StateMark::Ready);
        }
        arrival.done = true;
        arrival.values = values;
        arrival.problem = problem;
        drop(arrival);
        self.arrived.notify_all();
    }

    /// States this build cannot take (its import failed: no `migrate` across versions, or one
    /// that failed). An overlap's old process still holds them: it is told why and takes them
    /// back, and this process exits before its accesses to a state ever run on a default. In
    /// place there is no one to give them back to: each value is written to a file beside the
    /// temporary directory's, named in the error, and the state starts from its default.
    fn refused(&self, refused: Vec<(String, Record)>) {
        let why = refused
            .iter()
            .map(|(why, _)| why.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        if let Some(mut pipe) = lock(&self.ready).take() {
            eprintln!("hotmod: restart: this build cannot take the state it was handed ({why}); the previous process keeps it and serves on; exiting");
            let mut answer = vec![0u8];
            answer.extend_from_slice(why.as_bytes());
            let _ = pipe.write_all(&answer);
            // The pipe stays open until this process is gone: the old process reads the answer
            // to its end, so it serves on only once no thread of this one can still accept a
            // connection on the listener both share (`exit` never returns; nothing drops it).
            std::process::exit(70);
        }
        for (why, record) in refused {
            let path = std::env::temp_dir().join(format!(
                "hotmod-restart-{}-{}-{}.json",
                std::process::id(),
                record.module.replace("::", "-"),
                record.name
            ));
            let kept = std::fs::write(&path, &record.data)
                .map(|()| {
                    format!(
                        "its value (version {}) is kept in {}",
                        record.version,
                        path.display()
                    )
                })
                .unwrap_or_else(|e| {
                    format!("writing its value to {} failed too: {e}", path.display())
                });
            tracing::error!(target: "hotmod", "restart: {why}; it starts from its default; {kept}");
            eprintln!("hotmod: restart: {why}; it starts from its default; {kept}");
        }
    }

    /// In place, at exit before `ready()` (the new build panicked in `main`, returned an error,
    /// called `process::exit`): instead of ending, run the previous build again in this process
    /// (the executable the old image ran, kept open across the `exec`) with the same state and
    /// descriptors, marked as a fall-back. The old code then serves on, as after any failed
    /// restart, and the next save tries again. Not covered: an abort or a signal, which run no
    /// exit handlers.
    fn fall_back(&self) {
        if lock(&self.arrival).started {
            return;
        }
        let Some(fallback) = lock(&self.fallback).take() else {
            return;
        };
        let payload = lock(&self.payload).take().unwrap_or_default();
        let file = match os::file_holding(&payload) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("hotmod: restart: the rebuilt host ended before it was ready, and writing its state to go back failed: {e}");
                return;
            }
        };
        let mut inherit: Vec<RawFd> = vec![file.as_raw_fd()];
        inherit.extend(self.kept.iter().map(|(_, fd)| *fd));
        let value = format!(
            "{};fell-back=1",
            describe(Shape::InPlace, &[("state", file.as_raw_fd())], &self.kept)
        );
        eprintln!(
            "hotmod: restart: the rebuilt host ended before it was ready; going back to the \
             previous build with the state"
        );
        let mut command = Command::new(format!("/proc/self/fd/{}", fallback.as_raw_fd()));
        {
            use std::os::unix::process::CommandExt;
            if let Some(arg0) = std::env::args_os().next() {
                command.arg0(arg0);
            }
            command.args(std::env::args_os().skip(1)).env(ENV, value);
            os::inherit_at_exec(&mut command, inherit);
            let error = command.exec();
            eprintln!("hotmod: restart: going back to the previous build failed: {error}");
        }
    }

    /// The host value `name` handed over (serde JSON); waits until the hand-over arrived.
    /// `Err`: it never did, or brought no such value.
    #[cfg(feature = "state")]
    pub(crate) fn value(&self, name: &str) -> Result<Option<String>, String> {
        let deadline = std::time::Instant::now() + VALUES_LIMIT;
        let mut arrival = lock(&self.arrival);
        while !arrival.done {
            if !arrival.started {
                return Err(
                    "call hotmod::restart::ready() first: it starts taking the hand-over in".into(),
                );
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "the old process's values did not arrive within {} s",
                    VALUES_LIMIT.as_secs()
                ));
            }
            arrival = self
                .arrived
                .wait_timeout(arrival, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if let Some(problem) = &arrival.problem {
            return Err(problem.clone());
        }
        Ok(arrival.values.remove(name))
    }
}

fn read_all(mut file: File) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("reading the hand-over failed: {e}"))?;
    Ok(bytes)
}

/// Imports one state into the host's copy. A state the new build no longer declares (or whose
/// module it no longer has) is dropped, as a reload drops it; `Err`: this build cannot read the
/// value.
fn import_state(record: &Record) -> Result<(), String> {
    let Some(runtime) = registered().find(|r| r.name() == record.module) else {
        tracing::warn!(
            target: "hotmod",
            "restart: the new build has no hot module {}; its state `{}` is dropped",
            record.module,
            record.name
        );
        return Ok(());
    };
    let descriptor = runtime.host_descriptor();
    // SAFETY: the host's own descriptor, a static of this executable.
    let states = unsafe { descriptor.states.as_slice() };
    // SAFETY: as above.
    let Some(state) = states
        .iter()
        .find(|s| unsafe { s.name.as_str() } == record.name)
    else {
        tracing::warn!(
            target: "hotmod",
            "restart: {} no longer declares state `{}`; its value is dropped",
            record.module,
            record.name
        );
        return Ok(());
    };
    // SAFETY: as above.
    unsafe { entry::import(state, record.version, record.data.clone()) }
        .map_err(|e| format!("{}: state `{}` {e}", record.module, record.name))
}
