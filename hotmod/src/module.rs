//! The control surface of one hot module, and the owner of its generations.
//!
//! Invariants:
//! - `current` is null while generation 0 (the compiled-in code) is current, else it points to
//!   a generation in `State::live`. It is only stored under the state lock.
//! - `State::live` owns every loaded generation that has not retired, current included.
//! - A generation leaves `live` (and is unloaded) only in `collect`, under the lock, when it is
//!   not current, its pin count is 0, and no thread's hazard slot holds it after a process-wide
//!   barrier (the protocol is described in `pin.rs`).

use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::abi::ModuleDescriptor;
use crate::error::Error;
use crate::generation::Generation;
use crate::{loader, pin};

/// The control surface of one hot module: which generation is current, loading new ones,
/// and which are still alive. Obtained from the generated `module()` function.
pub struct Module {
    name: &'static str,
    symbol: &'static str,
    descriptor: &'static ModuleDescriptor,
    default_path: Option<&'static str>,
    current: AtomicPtr<Generation>,
    builtin: Generation,
    state: Mutex<State>,
}

struct State {
    /// Loaded generations that have not retired, in load order.
    live: Vec<NonNull<Generation>>,
    /// The number the next loaded generation gets.
    next: u64,
    /// Set by `set_path`.
    path: Option<PathBuf>,
    /// Retired generations whose library the platform refused to unmap.
    unload_blocked: Vec<u64>,
}

// SAFETY: the raw generation pointers in `State` are owned by the module and only dereferenced
// under the pinning protocol; everything else is `Sync` or behind the mutex.
unsafe impl Sync for Module {}
// SAFETY: as above.
unsafe impl Send for Module {}

impl Module {
    #[doc(hidden)]
    /// Used by the generated code: `name` is `module_path!()`, `symbol` the exported
    /// descriptor's name, `default_path` the attribute's `path = "…"`, if any.
    pub const fn __new(
        name: &'static str,
        symbol: &'static str,
        descriptor: &'static ModuleDescriptor,
        default_path: Option<&'static str>,
    ) -> Module {
        Module {
            name,
            symbol,
            descriptor,
            default_path,
            current: AtomicPtr::new(ptr::null_mut()),
            builtin: Generation::builtin(),
            state: Mutex::new(State {
                live: Vec::new(),
                next: 1,
                path: None,
                unload_blocked: Vec::new(),
            }),
        }
    }

    /// The hot module's path, e.g. `greeter::hello`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The current generation's number: 0 until a library has been loaded.
    pub fn generation(&self) -> u64 {
        let _state = self.lock();
        // SAFETY: under the lock the collector cannot free the current generation (it never
        // frees the current one anyway).
        unsafe { &*self.current_ptr() }.number
    }

    /// Verifies the library at `path` and makes it the next generation; returns its number.
    ///
    /// On any error the current generation stays current and nothing is left behind.
    pub fn load(&'static self, path: impl AsRef<Path>) -> Result<u64, Error> {
        let opened = loader::open(self.name, self.symbol, self.descriptor, path.as_ref())?;
        crate::os::prepare_barrier();
        let number = {
            let mut state = self.lock();
            let number = state.next;
            state.next += 1;
            let generation = NonNull::from(Box::leak(Box::new(Generation {
                number,
                table: opened.table,
                pins: Default::default(),
                library: Some(opened.library),
            })));
            state.live.push(generation);
            // SeqCst: the collector and `Pin::current` order their pin-count accesses against
            // this store (see pin.rs).
            self.current.store(generation.as_ptr(), Ordering::SeqCst);
            number
        };
        self.collect();
        Ok(number)
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
        if let Some(path) = &self.lock().path {
            return path.clone();
        }
        if let Some(path) = std::env::var_os(self.env_var()) {
            return PathBuf::from(path);
        }
        if let Some(path) = self.default_path {
            return PathBuf::from(path);
        }
        let file = format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            self.crate_name(),
            std::env::consts::DLL_SUFFIX
        );
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        match exe_dir {
            // Tests run from target/<profile>/deps, examples from target/<profile>/examples.
            Some(dir) if dir.ends_with("deps") || dir.ends_with("examples") => {
                dir.parent().unwrap_or(&dir).join(file)
            }
            Some(dir) => dir.join(file),
            None => PathBuf::from(file),
        }
    }

    /// Sets the file `reload()` (and the watcher) load from.
    pub fn set_path(&self, path: impl Into<PathBuf>) {
        self.lock().path = Some(path.into());
    }

    /// The environment variable that overrides [`path()`](Self::path): `HOTMOD_<CRATE>_PATH`.
    pub fn env_var(&self) -> String {
        format!("HOTMOD_{}_PATH", self.crate_name().to_ascii_uppercase())
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

    /// Retired generations whose library the platform kept mapped (on Linux: a library that
    /// registered thread-local destructors stays until those threads exit).
    pub fn unload_blocked(&self) -> Vec<u64> {
        self.lock().unload_blocked.clone()
    }

    fn crate_name(&self) -> &'static str {
        self.name.split("::").next().unwrap_or(self.name)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current generation, generation 0 included (never null).
    #[inline]
    pub(crate) fn current_ptr(&self) -> *const Generation {
        // Acquire: pairs with the SeqCst store in `load`, so the generation's fields are visible.
        let current = self.current.load(Ordering::Acquire);
        if current.is_null() {
            &self.builtin
        } else {
            current
        }
    }

    /// As `current_ptr`, for the count-pin protocol that needs a total order with the store.
    #[inline]
    pub(crate) fn current_ptr_seqcst(&self) -> *const Generation {
        let current = self.current.load(Ordering::SeqCst);
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
    pub(crate) fn collect(&self) {
        let mut state = self.lock();
        let current = self.current_ptr_seqcst();
        let idle = |g: &NonNull<Generation>| {
            // SAFETY: generations in `live` are alive while we hold the lock.
            let pins = unsafe { g.as_ref() }.pins.load(Ordering::SeqCst);
            !ptr::eq(g.as_ptr(), current) && pins == 0
        };
        if !state.live.iter().any(idle) {
            return;
        }
        crate::os::process_barrier();
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
        // Unload outside the lock: a library's destructors are module code and may call back
        // into hotmod.
        drop(state);
        let mut blocked = Vec::new();
        for generation in retiring {
            // SAFETY: the generation left `live`, is not current, has no pins and no hazard:
            // nothing can reach it any more, and we own the allocation made in `load`.
            let generation = unsafe { Box::from_raw(generation.as_ptr()) };
            let Generation {
                number, library, ..
            } = *generation;
            if !library.map_or(true, |library| library.unload()) {
                blocked.push(number);
            }
        }
        if !blocked.is_empty() {
            self.lock().unload_blocked.extend(blocked);
        }
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name)
            .field("generation", &self.generation())
            .field("live_generations", &self.live_generations())
            .finish()
    }
}
