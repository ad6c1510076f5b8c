//! Artifact landed → new generation serving: how long after a build of a debug-profile module
//! appears at the watched path its code answers calls.
//!
//! Two builds of `fixtures/hello_fixture` (variants v1 and v2, debug profile, ~4 MB each) are
//! published alternately at the watched path the way cargo does (written under `deps/`, then
//! hard-linked to the final name). Each sample is the time from the link to the `Loaded` event
//! (inotify, reading and checking the file, the private copy, `dlopen`, verification, the swap).
//! Criterion reports the mean; the p50 and p99 of a longer pass are printed after the group.
//!
//! `cargo bench -p hotmod-benches --bench watch_latency`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hello_fixture::hello;
use hotmod::{Event, Events};

const SAMPLES: usize = 200;

/// The workspace's root: the benches' package is its `benches/` directory.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the benches' package is inside the workspace")
        .to_path_buf()
}

/// `cargo build` of one hello_fixture variant in the debug profile; returns a copy of it.
fn build_variant(variant: &str) -> PathBuf {
    let target = workspace().join("target").join("hotmod-bench-watch");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--quiet",
            "--lib",
            "-p",
            "hello_fixture",
            "--target-dir",
        ])
        .arg(&target)
        .env("HOTMOD_FIXTURE", variant)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building hello_fixture {variant} failed");
    let copy = target.join(format!("{variant}.so"));
    std::fs::copy(target.join("debug").join("libhello_fixture.so"), &copy).expect("copy");
    copy
}

/// The watched directory and the two builds to alternate.
struct Setup {
    dir: PathBuf,
    artifact: PathBuf,
    builds: [PathBuf; 2],
    events: Events,
    published: usize,
}

impl Setup {
    fn new() -> Setup {
        let builds = [build_variant("v1"), build_variant("v2")];
        let dir = workspace()
            .join("target")
            .join("hotmod-bench-watch")
            .join(format!("watched-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("deps")).expect("create watched dir");
        let artifact = dir.join("libhello_fixture.so");
        hello::module().set_path(&artifact);
        hello::module().watch().expect("watch");
        let events = hello::module().subscribe();
        Setup {
            dir,
            artifact,
            builds,
            events,
            published: 0,
        }
    }

    /// Publishes the other build like cargo and returns the time until it serves.
    fn land_one(&mut self) -> Duration {
        let source = &self.builds[self.published % 2];
        self.published += 1;
        let staged = self
            .dir
            .join("deps")
            .join(format!("libhello_fixture-{}.so", self.published));
        std::fs::copy(source, &staged).expect("write deps copy");
        let _ = std::fs::remove_file(&self.artifact);
        let landed = Instant::now();
        std::fs::hard_link(&staged, &self.artifact).expect("link the final name");
        let event = self
            .events
            .wait_for(Duration::from_secs(60), |e| {
                matches!(e, Event::Loaded { .. } | Event::Rejected { .. })
            })
            .expect("the watcher loads the build");
        let took = landed.elapsed();
        assert!(matches!(event, Event::Loaded { .. }), "{event}");
        let _ = std::fs::remove_file(&staged);
        // The new code answers.
        assert_eq!(
            hello::version(),
            if self.published % 2 == 1 { 1 } else { 2 }
        );
        took
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

fn watch_latency(c: &mut Criterion) {
    let mut setup = Setup::new();
    // Warm up: the first loads touch cold pages.
    for _ in 0..4 {
        setup.land_one();
    }
    let mut group = c.benchmark_group("watch");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("artifact_landed_to_serving", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| setup.land_one()).sum())
    });
    group.finish();

    let mut samples: Vec<Duration> = (0..SAMPLES).map(|_| setup.land_one()).collect();
    samples.sort();
    println!(
        "watch/artifact_landed_to_serving over {SAMPLES} debug builds: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
    hello::module().unwatch();
    let _ = std::fs::remove_dir_all(&setup.dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500));
    targets = watch_latency
}
criterion_main!(benches);
