//! Single-thread call cost into the same library function, four ways: a plain `extern "C"`
//! function pointer (the floor), a `Handle` method, a plain call (current generation each call)
//! and hot-lib-reloader 0.8. Plus the cost of pinning: `Handle::current()`.
//!
//! `cargo bench -p hotmod-benches --bench calls`

mod support;

use std::hint::black_box;

use bench_module::ops;
use criterion::{criterion_group, criterion_main, Criterion};
use support::hlr;

fn add(c: &mut Criterion) {
    let generation = support::load_bench_module();
    let pointers = support::fn_pointers();
    let handle = ops::Handle::current();
    assert_eq!(
        handle.generation(),
        generation,
        "calls must go through the loaded library"
    );
    assert_eq!(hlr::add(2, 3), 5);

    let mut group = c.benchmark_group("add");
    group.bench_function("fn_ptr", |b| {
        b.iter(|| (pointers.add)(black_box(1), black_box(2)))
    });
    group.bench_function("handle", |b| {
        b.iter(|| handle.add(black_box(1), black_box(2)))
    });
    group.bench_function("plain", |b| b.iter(|| ops::add(black_box(1), black_box(2))));
    group.bench_function("hot_lib_reloader", |b| {
        b.iter(|| hlr::add(black_box(1), black_box(2)))
    });
    group.finish();
}

fn greet(c: &mut Criterion) {
    let generation = support::load_bench_module();
    let pointers = support::fn_pointers();
    let handle = ops::Handle::current();
    assert_eq!(handle.generation(), generation);
    assert_eq!(hlr::greet("x"), "hello x");
    assert_eq!((pointers.greet)("x"), "hello x");

    let mut group = c.benchmark_group("greet");
    group.bench_function("fn_ptr", |b| {
        b.iter(|| (pointers.greet)(black_box("world")))
    });
    group.bench_function("handle", |b| b.iter(|| handle.greet(black_box("world"))));
    group.bench_function("plain", |b| b.iter(|| ops::greet(black_box("world"))));
    group.bench_function("hot_lib_reloader", |b| {
        b.iter(|| hlr::greet(black_box("world")))
    });
    group.finish();
}

fn handle_current(c: &mut Criterion) {
    let generation = support::load_bench_module();
    assert_eq!(ops::Handle::current().generation(), generation);

    let mut group = c.benchmark_group("handle_current");
    // `Handle::current()` alone: the handles are forgotten, not dropped (their generation's
    // count just stays up; this is the last group of the binary).
    group.bench_function("current", |b| {
        b.iter(|| std::mem::forget(black_box(ops::Handle::current())))
    });
    // Pin and unpin: what a request that pins once pays in total.
    group.bench_function("current_and_drop", |b| {
        b.iter(|| drop(black_box(ops::Handle::current())))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = add, greet, handle_current
}
criterion_main!(benches);
