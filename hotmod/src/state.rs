//! State that survives reloads.
//!
//! A hot module declares its state as a static:
//!
//! ```text
//! #[hotmod::state(version = 2, migrate = upgrade)]
//! static WORLD: hotmod::State<World> = hotmod::State::new();
//! ```
//!
//! Every generation has its own copy of the static. When a new generation is about to become
//! current (at once, or at `apply_staged` in staged mode), the host asks the current generation
//! to *export* each state (serialized with serde; the value stays where it is) and the new one
//! to *import* it. Same version: the new generation deserializes it as its own type. Another
//! version: the new generation's `migrate` function gets the old version number and the old
//! value (as a `serde_json::Value`) and returns the new value. If export, import or migration
//! fails, or the version changed and there is no `migrate`, the new generation is rejected: it
//! never becomes current, and the old generation and its state are untouched.
//!
//! Calls still running in the old generation after the swap keep working on the old
//! generation's copy: state is handed over at the swap, which is why staged mode (swap at a
//! safe point, e.g. between frames) is the natural partner of state.

use std::path::Path;

#[cfg(feature = "reload")]
use crate::abi::{ModuleDescriptor, StateExport, StateImport};
use crate::error::Error;
#[cfg(feature = "reload")]
use crate::pin;

/// A module's state, handed from generation to generation (needs the `state` feature for the
/// `#[hotmod::state]` attribute's serde glue). Initialised with `T::default()` on first use.
#[derive(Debug)]
pub struct State<T> {
    value: std::sync::Mutex<Option<T>>,
}

impl<T> State<T> {
    /// An empty state; the first access fills it with `T::default()` unless a previous
    /// generation handed its value over first.
    pub const fn new() -> State<T> {
        State {
            value: std::sync::Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        self.value
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the value.
    pub fn set(&self, value: T) {
        *self.lock() = Some(value);
    }
}

impl<T: Default> State<T> {
    /// Runs `f` with the value, holding the state's lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(self.lock().get_or_insert_with(T::default))
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

/// The serde glue the `#[hotmod::state]` attribute generates calls to (inside the library).
#[cfg(all(feature = "state", feature = "reload"))]
#[doc(hidden)]
pub mod glue {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::State;
    use crate::abi::StateExport;

    /// A `migrate` function: the old version and value in, the new value out.
    pub type Migrate<T> = fn(u32, serde_json::Value) -> Result<T, String>;

    /// Serializes the current value (the default if never used); leaves it in place.
    pub fn export<T: Serialize + Default>(state: &State<T>) -> StateExport {
        state
            .with(|value| serde_json::to_string(value))
            .map_err(|e| format!("serializing it failed: {e}"))
    }

    /// Replaces the value with `data`, exported by a generation whose state had version
    /// `from`; this generation's version is `version`.
    pub fn import<T: DeserializeOwned>(
        state: &State<T>,
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
        state.set(value);
        Ok(())
    }
}

/// Hands every state of the generation described by `from` to the one described by `to`.
///
/// # Safety
/// Both descriptors must be verified descriptors of this ABI version whose libraries stay
/// loaded during the call.
#[cfg(feature = "reload")]
pub(crate) unsafe fn hand_over(
    module: &'static str,
    path: &Path,
    from: &ModuleDescriptor,
    to: &ModuleDescriptor,
) -> Result<(), Error> {
    let failed = |message: String| Error::State {
        module,
        path: path.to_path_buf(),
        message,
    };
    // SAFETY: statics of loaded libraries (this function's contract).
    let (old_states, new_states) = unsafe { (from.states.as_slice(), to.states.as_slice()) };
    for new in new_states {
        // SAFETY: as above.
        let name = unsafe { new.name.as_str() };
        // SAFETY: as above.
        let Some(old) = old_states
            .iter()
            .find(|old| unsafe { old.name.as_str() } == name)
        else {
            // A new state starts from its default.
            continue;
        };
        // SAFETY: export trampolines take `()` and return `StateExport` (ABI contract); the
        // library is loaded (this function's contract).
        let exported = match unsafe { pin::invoke::<(), StateExport>(old.export, ()) } {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => return Err(failed(format!("state `{name}`: {e}"))),
            Err(panic) => return Err(failed(format!("state `{name}`: export panicked: {panic}"))),
        };
        let args: StateImport = (old.version, exported);
        // SAFETY: import trampolines take `StateImport` and return `Result<(), String>`.
        match unsafe { pin::invoke::<StateImport, Result<(), String>>(new.import, args) } {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed(format!("state `{name}` {e}"))),
            Err(panic) => return Err(failed(format!("state `{name}`: import panicked: {panic}"))),
        }
    }
    Ok(())
}
