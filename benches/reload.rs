//! What a reload costs the callers, and what live handles cost a reload.
//!
//! - `plain_latency`: the p99 latency of single plain calls, idle and while another thread
//!   reloads the module back to back. Each call is timed on its own with `Instant` (so the
//!   figure includes the clock read); `iter_custom` returns p99 × iterations, so the time
//!   criterion reports per iteration *is* the p99 of that sample. The full distribution of one
//!   longer pass is printed after the group.
//! - `reload`: the time of one `load` of the bench module with 1 and with 10,000 live handles
//!   pinning a generation.
//!
//! `cargo bench -p hotmod-benches --bench reload`

mod support;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bench_module::ops;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// Reloads the bench module back to back on its own thread until dropped.
struct Reloader {
    stop: Arc<AtomicBool>,
    loads: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Reloader {
    fn start(path: PathBuf) -> Reloader {
        let stop = Arc::new(AtomicBool::new(false));
        let loads = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, loads) = (stop.clone(), loads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    ops::module().load(&path).expect("reload the bench module");
                    loads.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let reloader = Reloader {
            stop,
            loads,
            thread: Some(thread),
        };
        // Measure only once reloading is under way.
        let deadline = Instant::now() + Duration::from_secs(60);
        while reloader.loads() < 2 {
            assert!(
                Instant::now() < deadline,
                "the reloader thread made no progress"
            );
            std::thread::yield_now();
        }
        reloader
    }

    fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("reloader thread");
        }
    }
}

/// Times `iters` plain calls one by one into `latencies` (nanoseconds).
fn time_calls(iters: u64, latencies: &mut Vec<u64>) {
    latencies.clear();
    for i in 0..iters {
        let start = Instant::now();
        black_box(ops::add(black_box(i), 1));
        latencies.push(start.elapsed().as_nanos() as u64);
    }
}

fn percentile(latencies: &mut [u64], per_mille: usize) -> u64 {
    let k = ((latencies.len() * per_mille) / 1000).min(latencies.len() - 1);
    *latencies.select_nth_unstable(k).1
}

/// Criterion's sample: p99 × iters, so that the reported time per iteration is the p99.
fn p99_sample(iters: u64, latencies: &mut Vec<u64>) -> Duration {
    time_calls(iters, latencies);
    Duration::from_nanos(percentile(latencies, 990).saturating_mul(iters))
}

/// One long pass, printed: the shape of the distribution behind the p99 rows.
fn report(label: &str, reloader: Option<&Reloader>) {
    let mut latencies = Vec::with_capacity(2_000_000);
    let before = reloader.map_or(0, Reloader::loads);
    let started = Instant::now();
    time_calls(2_000_000, &mut latencies);
    let elapsed = started.elapsed();
    let loads = reloader.map_or(0, Reloader::loads) - before;
    let max = latencies.iter().copied().max().unwrap_or(0);
    eprintln!(
        "plain_latency/{label}: 2,000,000 calls in {elapsed:.2?}, {loads} reloads meanwhile: \
         p50 {} ns, p99 {} ns, p99.9 {} ns, p99.99 {} ns, max {max} ns",
        percentile(&mut latencies, 500),
        percentile(&mut latencies, 990),
        percentile(&mut latencies, 999),
        {
            let k = (latencies.len() * 9999 / 10000).min(latencies.len() - 1);
            *latencies.select_nth_unstable(k).1
        },
    );
}

fn plain_latency(c: &mut Criterion) {
    support::load_bench_module();
    let path = support::bench_module_library();
    let mut latencies = Vec::new();

    let mut group = c.benchmark_group("plain_latency");
    group.bench_function("p99_idle", |b| {
        b.iter_custom(|iters| p99_sample(iters, &mut latencies))
    });
    let reloader = Reloader::start(path.clone());
    let before = reloader.loads();
    group.bench_function("p99_during_reload", |b| {
        b.iter_custom(|iters| p99_sample(iters, &mut latencies))
    });
    eprintln!(
        "plain_latency/p99_during_reload: {} reloads during the measurement",
        reloader.loads() - before
    );
    group.finish();

    report("idle", None);
    report("during_reload", Some(&reloader));
    drop(reloader);
    assert!(
        ops::module().unload_blocked().is_empty(),
        "every replaced generation was unloaded"
    );
}

fn reload(c: &mut Criterion) {
    support::load_bench_module();
    let path = support::bench_module_library();

    let mut group = c.benchmark_group("reload");
    for handles in [1usize, 10_000] {
        // Live handles pinning the generation current now; every reload below replaces the
        // current generation while they stay alive.
        let pinned: Vec<ops::Handle> = (0..handles).map(|_| ops::Handle::current()).collect();
        let before = ops::module().generation();
        group.bench_function(BenchmarkId::new("live_handles", handles), |b| {
            b.iter(|| ops::module().load(&path).expect("reload the bench module"))
        });
        assert!(
            ops::module().generation() > before,
            "every iteration loaded a new generation"
        );
        assert!(pinned
            .iter()
            .all(|h| h.generation() == pinned[0].generation() && !h.is_current()));
        assert!(
            ops::module().live_generations().len() <= 4,
            "only pinned and current generations stay"
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = plain_latency, reload
}
criterion_main!(benches);
