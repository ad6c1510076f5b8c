//! Calls into the bench module from a user's crate (`benches/user_crate`), against functions of
//! the host itself. Each `add` row is a dependency chain: every call's result is the next call's
//! first argument, so the figure is a call's latency, not how many calls overlap.
//!
//! `cargo bench -p hotmod-user-bench`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hotmod_user_bench::{build_library, host_add, host_greet, ops};

/// Same settings as the workspace's other benches.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(100)
}

/// `iters` chained calls of `f`.
fn chain(iters: u64, mut f: impl FnMut(u64) -> u64) -> Duration {
    let mut x = black_box(1u64);
    let start = Instant::now();
    for _ in 0..iters {
        x = f(x);
    }
    let elapsed = start.elapsed();
    black_box(x);
    elapsed
}

/// The cdylib's own `extern "C"` exports, through pointers from `libloading`.
#[allow(improper_ctypes_definitions)]
struct Exports {
    add: extern "C" fn(u64, u64) -> u64,
    greet: extern "C" fn(&str) -> String,
}

fn exports(path: &std::path::Path) -> Exports {
    // SAFETY: the bench module's cdylib runs no code at load time; the library is leaked, so the
    // pointers stay valid for the whole process; the symbols have exactly these types (see
    // benches/fixtures/bench_module).
    unsafe {
        let library: &'static libloading::Library =
            Box::leak(Box::new(libloading::Library::new(path).expect("dlopen")));
        Exports {
            add: *library
                .get::<extern "C" fn(u64, u64) -> u64>(b"bench_module_add\0")
                .expect("add"),
            greet: *library
                .get::<extern "C" fn(&str) -> String>(b"bench_module_greet\0")
                .expect("greet"),
        }
    }
}

/// Prints where the mappings whose path contains `marker` start, and how far that is from the
/// host's own code (Linux: `/proc/self/maps`; elsewhere nothing).
fn report_placement(what: &str, marker: &str) {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let code = host_add as extern "C" fn(u64, u64) -> u64 as usize;
    let start = maps
        .lines()
        .filter(|line| line.contains(marker))
        .filter_map(|line| usize::from_str_radix(line.split('-').next()?, 16).ok())
        .min();
    if let Some(start) = start {
        eprintln!(
            "user_calls: {what} mapped at {start:#x}, {} MiB from the host's code at {code:#x}",
            start.abs_diff(code) >> 20
        );
    }
}

/// `Handle::current()` + `generation()` + drop, in `group`.
fn pin_and_drop(c: &mut Criterion, group: &str) {
    let mut group = c.benchmark_group(group);
    // What a request that pins once pays, reading the pinned generation as a user would.
    group.bench_function("current_generation_drop", |b| {
        b.iter(|| {
            let handle = ops::Handle::current();
            black_box(handle.generation());
        })
    });
    group.bench_function("current_and_drop", |b| {
        b.iter(|| drop(black_box(ops::Handle::current())))
    });
    group.finish();
}

fn calls(c: &mut Criterion) {
    let path = build_library();
    // Before any load: generation 0 is current (and the process has no library yet).
    assert_eq!(ops::Handle::current().generation(), 0);
    pin_and_drop(c, "user_handle_current_generation0");

    let generation = ops::module().load(&path).expect("load the bench module");
    assert!(generation > 0);
    let exports = exports(&path);
    report_placement(
        "the loaded generation's library",
        &format!("hotmod-{}-", std::process::id()),
    );
    report_placement("the export's library (libloading)", "libbench_module.so");
    let handle = ops::Handle::current();
    assert_eq!(
        handle.generation(),
        generation,
        "calls run the loaded library"
    );
    assert_eq!(handle.add(2, 3), 5);
    assert_eq!(ops::greet("x"), "hello x");

    let local: extern "C" fn(u64, u64) -> u64 = black_box(host_add);
    let mut group = c.benchmark_group("user_add");
    group.bench_function("host_fn_ptr", |b| {
        b.iter_custom(|iters| chain(iters, |x| local(x, 1)))
    });
    group.bench_function("cdylib_fn_ptr", |b| {
        b.iter_custom(|iters| chain(iters, |x| (exports.add)(x, 1)))
    });
    group.bench_function("handle", |b| {
        b.iter_custom(|iters| chain(iters, |x| handle.add(x, 1)))
    });
    group.bench_function("plain", |b| {
        b.iter_custom(|iters| chain(iters, |x| ops::add(x, 1)))
    });
    group.finish();

    let local: extern "C" fn(&str) -> String = black_box(host_greet);
    let mut group = c.benchmark_group("user_greet");
    group.bench_function("host_fn_ptr", |b| b.iter(|| local(black_box("world"))));
    group.bench_function("cdylib_fn_ptr", |b| {
        b.iter(|| (exports.greet)(black_box("world")))
    });
    group.bench_function("handle", |b| b.iter(|| handle.greet(black_box("world"))));
    group.bench_function("plain", |b| b.iter(|| ops::greet(black_box("world"))));
    group.finish();

    pin_and_drop(c, "user_handle_current");
}

criterion_group! {
    name = benches;
    config = config();
    targets = calls
}
criterion_main!(benches);
