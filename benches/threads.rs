//! Throughput on one and on two threads calling at once, for the same four ways of calling as
//! `calls`. Each iteration is `threads` calls, made by all threads at once (handed out in chunks,
//! see `support::parallel`), so criterion's time per iteration is the wall time of `threads`
//! calls and its throughput is calls per second in total: perfect scaling shows the same time
//! per iteration for 1 and 2 threads. Last, the one shared write by design: `Handle::current()`
//! and drop on 1 and 2 threads.
//!
//! `cargo bench -p hotmod-benches --bench threads`

mod support;

use std::hint::black_box;

use bench_module::ops;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use support::hlr;

fn add(c: &mut Criterion) {
    let generation = support::load_bench_module();
    let pointers = support::fn_pointers();
    let handle = ops::Handle::current();
    assert_eq!(handle.generation(), generation);
    assert_eq!(hlr::add(2, 3), 5);

    let mut group = c.benchmark_group("add_threads");
    // Each kind on 1 then 2 threads back to back, so both sides of a scaling ratio see the
    // same machine.
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("fn_ptr", threads), |b| {
            run(b, threads, |i| (pointers.add)(i, 1))
        });
    }
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("handle", threads), |b| {
            run(b, threads, |i| handle.add(i, 1))
        });
    }
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("plain", threads), |b| {
            run(b, threads, |i| ops::add(i, 1))
        });
    }
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("hot_lib_reloader", threads), |b| {
            run(b, threads, |i| hlr::add(i, 1))
        });
    }
    group.finish();
}

fn greet(c: &mut Criterion) {
    let generation = support::load_bench_module();
    let pointers = support::fn_pointers();
    let handle = ops::Handle::current();
    assert_eq!(handle.generation(), generation);
    assert_eq!(hlr::greet("x"), "hello x");

    let mut group = c.benchmark_group("greet_threads");
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        let name = |_: u64| black_box("world");
        group.bench_function(BenchmarkId::new("fn_ptr", threads), |b| {
            run(b, threads, |i| (pointers.greet)(name(i)))
        });
        group.bench_function(BenchmarkId::new("handle", threads), |b| {
            run(b, threads, |i| handle.greet(name(i)))
        });
        group.bench_function(BenchmarkId::new("plain", threads), |b| {
            run(b, threads, |i| ops::greet(name(i)))
        });
        group.bench_function(BenchmarkId::new("hot_lib_reloader", threads), |b| {
            run(b, threads, |i| hlr::greet(name(i)))
        });
    }
    group.finish();
}

/// Pinning is the one shared write by design (a handle counts itself in its generation): what
/// `Handle::current()` plus its drop costs when both threads pin the same generation at once.
fn handle_current(c: &mut Criterion) {
    support::load_bench_module();
    let mut group = c.benchmark_group("handle_current_threads");
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("current_and_drop", threads), |b| {
            run(b, threads, |_| drop(ops::Handle::current()))
        });
    }
    group.finish();
}

/// Times `call` on `threads` threads at once; each iteration is `threads` calls.
fn run<R>(b: &mut criterion::Bencher, threads: usize, call: impl Fn(u64) -> R + Sync) {
    b.iter_custom(|iters| {
        support::parallel(threads, iters, |n| {
            for i in 0..n {
                black_box(call(black_box(i)));
            }
        })
    })
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = add, greet, handle_current
}
criterion_main!(benches);
