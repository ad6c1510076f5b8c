//! A call from module code into another hot module (issue 14, item 4): `bench_caller`'s loaded
//! generation calls `bench_module::ops::add` (linked to the host's `ops`, itself a loaded
//! generation), 1,000 times in a chain inside one plain call, against the same chain through a
//! function pointer to a function of `bench_caller`'s own library. Per-call figure: the
//! iteration's time ÷ 1,000 (the outer plain call is amortised over the chain).
//!
//! `cargo bench -p hotmod-benches --bench graph_calls`

mod support;

use std::hint::black_box;

use bench_caller::caller;
use criterion::{criterion_group, criterion_main, Criterion};

const CHAIN: u64 = 1000;

fn module_to_module(c: &mut Criterion) {
    support::load_bench_module();
    let loaded = support::load_bench_caller();
    assert_eq!(caller::module().generation(), loaded);
    let expected = (0..CHAIN).fold(0u64, |x, i| x.wrapping_add(i));
    assert_eq!(caller::chain_hot(CHAIN), expected);
    assert_eq!(caller::chain_ptr(CHAIN), expected);

    let mut group = c.benchmark_group("module_to_module_x1000");
    group.bench_function("fn_ptr", |b| b.iter(|| caller::chain_ptr(black_box(CHAIN))));
    group.bench_function("hot", |b| b.iter(|| caller::chain_hot(black_box(CHAIN))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = module_to_module
}
criterion_main!(benches);
