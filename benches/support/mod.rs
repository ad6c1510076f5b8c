//! Shared by the benches: the fixture libraries (built once per run by cargo, in release, into
//! `target/hotmod-bench`), the bench module loaded as a real generation, the fn-pointer baseline,
//! hot-lib-reloader driving the equivalent library, and a two-thread timing helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use bench_module::ops;
use criterion::Criterion;

/// Short runs: the whole suite stays within a few minutes on two cores. 100 samples over 3 s,
/// so that a burst of other work on this shared machine spoils a minority of samples (the
/// report uses the median). Command-line flags (`--warm-up-time`, `--measurement-time`,
/// `--sample-size`) still override these.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(100)
}

/// The workspace's root: the benches' package is its `benches/` directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the benches' package is inside the workspace")
        .to_path_buf()
}

fn bench_target() -> PathBuf {
    workspace().join("target").join("hotmod-bench")
}

fn dylib(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Builds the bench module's cdylib and hot-lib-reloader's library, in release, once per
/// process. A separate target directory: the one `cargo bench` uses stays locked while it runs.
fn build() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(workspace())
            .args([
                "build",
                "--quiet",
                "--release",
                "--lib",
                "-p",
                "bench_module",
                "-p",
                "hlr_lib",
                "-p",
                "bench_caller",
                "--target-dir",
            ])
            .arg(bench_target())
            .output()
            .expect("run cargo");
        assert!(
            output.status.success(),
            "building the bench fixtures failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        bench_target().join("release")
    })
}

/// The bench module's cdylib.
pub fn bench_module_library() -> PathBuf {
    build().join(dylib("bench_module"))
}

/// Where hot-lib-reloader finds `libhlr_lib.so`.
pub fn hlr_dir() -> PathBuf {
    build().to_path_buf()
}

/// Loads the bench module's cdylib as a generation (once), so plain and handle calls run library
/// code and not the compiled-in generation 0. Returns the generation's number.
pub fn load_bench_module() -> u64 {
    static LOADED: OnceLock<u64> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let generation = ops::module()
            .load(bench_module_library())
            .expect("load the bench module");
        assert!(generation > 0);
        generation
    })
}

/// Loads `bench_caller`'s cdylib (a hot module calling `ops`) as a generation, once; returns its
/// number.
pub fn load_bench_caller() -> u64 {
    static LOADED: OnceLock<u64> = OnceLock::new();
    *LOADED.get_or_init(|| {
        bench_caller::caller::module()
            .load(build().join(dylib("bench_caller")))
            .expect("load the caller module")
    })
}

/// The baseline: the cdylib's `extern "C"` exports, called through plain function pointers.
#[allow(improper_ctypes_definitions)]
pub struct FnPointers {
    pub add: extern "C" fn(u64, u64) -> u64,
    pub greet: extern "C" fn(&str) -> String,
}

pub fn fn_pointers() -> &'static FnPointers {
    static POINTERS: OnceLock<FnPointers> = OnceLock::new();
    POINTERS.get_or_init(|| {
        // SAFETY: the bench module's cdylib runs no code at load time; the library is leaked, so
        // the pointers stay valid for the whole process; the symbols have exactly these types
        // (see benches/fixtures/bench_module).
        unsafe {
            let library: &'static libloading::Library = Box::leak(Box::new(
                libloading::Library::new(bench_module_library()).expect("dlopen"),
            ));
            FnPointers {
                add: *library
                    .get::<extern "C" fn(u64, u64) -> u64>(b"bench_module_add\0")
                    .expect("add"),
                greet: *library
                    .get::<extern "C" fn(&str) -> String>(b"bench_module_greet\0")
                    .expect("greet"),
            }
        }
    })
}

/// hot-lib-reloader 0.8 driving `benches/fixtures/hlr_lib`, set up as its documentation shows.
#[allow(static_mut_refs, clippy::all)]
pub mod hlr_host {
    #[hot_lib_reloader::hot_module(dylib = "hlr_lib", lib_dir = crate::support::hlr_dir())]
    pub mod hlr {
        #[hot_functions]
        extern "Rust" {
            pub fn add(a: u64, b: u64) -> u64;
            pub fn greet(name: &str) -> String;
        }
    }
}
#[allow(unused_imports)]
pub use hlr_host::hlr;

/// Makes `threads × iters` calls on `threads` threads at once and returns the wall time from the
/// moment the first of them starts to the moment the last one ends (thread start-up is not
/// counted). `work(n)` makes `n` calls.
///
/// The calls are handed out in chunks from a shared counter rather than split in equal parts up
/// front: on a machine with as many cores as threads, whatever else runs (the kernel, the
/// hypervisor, another process) takes turns on every core, and with fixed parts the wall time
/// would be that of the unluckiest thread while the others sit idle. With chunks the others take
/// up its calls, so the figure is the threads' combined throughput. One shared write per chunk
/// (up to thousands of calls) is far below anything the calls themselves do.
pub fn parallel(threads: usize, iters: u64, work: impl Fn(u64) + Sync) -> Duration {
    let total = iters.saturating_mul(threads as u64);
    // At least 64 chunks per thread, so small samples are shared out too; at most 4096 calls.
    let chunk = (total / (threads as u64 * 64)).clamp(1, 4096);
    let claimed = AtomicU64::new(0);
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    loop {
                        let first = claimed.fetch_add(chunk, Ordering::Relaxed);
                        if first >= total {
                            break;
                        }
                        work(chunk.min(total - first));
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("bench thread"))
            .collect()
    });
    let start = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("at least one thread");
    let end = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("at least one thread");
    end - start
}
