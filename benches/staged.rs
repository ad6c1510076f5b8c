//! Plain and handle calls in a process that only ever uses staged mode (a game loop's shape):
//! the library is staged with `set_staged(true)` + `load`, made current with `apply_staged()`,
//! and never loaded any other way. This process must reach the same fast plain-call path as one
//! that loads directly (the process-wide barrier is registered when a library is prepared,
//! whichever way it then becomes current); compare with `calls`' `add/plain` and `add/handle`.
//!
//! `cargo bench -p hotmod-benches --bench staged`

mod support;

use std::hint::black_box;

use bench_module::ops;
use criterion::{criterion_group, criterion_main, Criterion};

fn staged(c: &mut Criterion) {
    let module = ops::module();
    module.set_staged(true);
    let staged = module
        .load(support::bench_module_library())
        .expect("stage the bench module");
    assert_eq!(module.staged_generation(), Some(staged));
    assert_eq!(module.apply_staged(), Some(staged));
    let handle = ops::Handle::current();
    assert_eq!(
        handle.generation(),
        staged,
        "calls must go through the loaded library"
    );

    let mut group = c.benchmark_group("staged");
    group.bench_function("add/plain", |b| {
        b.iter(|| ops::add(black_box(1), black_box(2)))
    });
    group.bench_function("add/handle", |b| {
        b.iter(|| handle.add(black_box(1), black_box(2)))
    });
    group.bench_function("greet/plain", |b| b.iter(|| ops::greet(black_box("world"))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = staged
}
criterion_main!(benches);
