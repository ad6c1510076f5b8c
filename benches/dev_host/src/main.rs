//! Artifact landed → new generation serving, from a host in the dev profile (see Cargo.toml).
//!
//! Two builds of `fixtures/hello_fixture` (variants v1 and v2, debug profile) are published
//! alternately at the watched path the way cargo does (written under `deps/`, then hard-linked
//! to the final name); each sample is the time from the link to the `Loaded` event. The same
//! pair is measured at several file sizes:
//!
//! - `as built`: the debug cdylib as cargo wrote it;
//! - `N MB`: the same code with its debug sections removed (`strip --strip-debug`), then padded
//!   to N MB with a non-loaded section (`objcopy --add-section`). Debug info is what makes a
//!   debug cdylib large and it is not mapped by `dlopen` either, so the padding stands for a
//!   crate with more of it: what grows is the bytes hotmod reads, compares and copies, not the
//!   code the dynamic loader relocates.
//!
//! `cargo run -p hotmod-dev-host -- [samples] [sizes in MB…]` (defaults: 30; 4 12 40).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hello_fixture::hello;
use hotmod::{Event, Events};

type Failure = Box<dyn std::error::Error>;

/// The workspace's root: this package is `benches/dev_host`.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .to_path_buf()
}

fn target() -> PathBuf {
    workspace().join("target").join("hotmod-dev-host")
}

fn run(command: &mut Command) -> Result<(), Failure> {
    let status = command.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {status}").into())
    }
}

/// `cargo build` of one hello_fixture variant in the debug profile; returns a copy of it.
fn build_variant(variant: &str) -> Result<PathBuf, Failure> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--quiet",
            "--lib",
            "-p",
            "hello_fixture",
            "--target-dir",
        ])
        .arg(target())
        .env("HOTMOD_FIXTURE", variant))?;
    let copy = target().join(format!("{variant}.so"));
    std::fs::copy(target().join("debug").join("libhello_fixture.so"), &copy)?;
    Ok(copy)
}

/// `build` without debug sections, padded to `megabytes` with a section `dlopen` does not map.
fn sized(build: &Path, megabytes: u64) -> Result<PathBuf, Failure> {
    let stem = build
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("build");
    let out = target().join(format!("{stem}-{megabytes}mb.so"));
    run(Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(build))?;
    let want = megabytes * 1_000_000;
    let have = std::fs::metadata(&out)?.len();
    if have < want {
        let pad = target().join(format!("pad-{megabytes}"));
        // Not zeros: a run of zeros is the one content a filesystem might store sparsely.
        let bytes: Vec<u8> = (0..want - have).map(|i| (i * 131 % 251) as u8).collect();
        std::fs::write(&pad, bytes)?;
        let section = format!(".hotmod_pad={}", pad.display());
        run(Command::new("objcopy")
            .args(["--add-section", &section])
            .args(["--set-section-flags", ".hotmod_pad=noload,readonly"])
            .arg(&out))?;
    }
    Ok(out)
}

struct Watched {
    dir: PathBuf,
    artifact: PathBuf,
    events: Events,
    published: usize,
}

impl Watched {
    fn new() -> Result<Watched, Failure> {
        let dir = target().join(format!("watched-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("deps"))?;
        let artifact = dir.join("libhello_fixture.so");
        hello::module().set_path(&artifact);
        hello::module().watch()?;
        let events = hello::module().subscribe();
        Ok(Watched {
            dir,
            artifact,
            events,
            published: 0,
        })
    }

    /// Publishes `source` like cargo and returns the time until its generation serves.
    fn land(&mut self, source: &Path, version: u32) -> Result<Duration, Failure> {
        self.published += 1;
        let staged = self
            .dir
            .join("deps")
            .join(format!("libhello_fixture-{}.so", self.published));
        std::fs::copy(source, &staged)?;
        let _ = std::fs::remove_file(&self.artifact);
        let landed = Instant::now();
        std::fs::hard_link(&staged, &self.artifact)?;
        let event = self
            .events
            .wait_for(Duration::from_secs(60), |e| {
                matches!(e, Event::Loaded { .. } | Event::Rejected { .. })
            })
            .ok_or("no event within 60 s")?;
        let took = landed.elapsed();
        if !matches!(event, Event::Loaded { .. }) {
            return Err(format!("{event}").into());
        }
        let _ = std::fs::remove_file(&staged);
        if hello::version() != version {
            return Err(format!("serving version {}, not {version}", hello::version()).into());
        }
        Ok(took)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank].as_secs_f64() * 1e3
}

fn measure(
    watched: &mut Watched,
    label: &str,
    pair: [&Path; 2],
    samples: usize,
) -> Result<(), Failure> {
    let size = std::fs::metadata(pair[0])?.len();
    // Warm up: the first loads touch cold pages.
    for i in 0..4 {
        watched.land(pair[i % 2], 1 + (i % 2) as u32)?;
    }
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        times.push(watched.land(pair[i % 2], 1 + (i % 2) as u32)?);
    }
    times.sort();
    println!(
        "{label:>9} ({:5.1} MB): p50 {:6.2} ms, p90 {:6.2} ms, max {:6.2} ms over {samples} landings",
        size as f64 / 1e6,
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 1.0),
    );
    Ok(())
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let samples: usize = args.next().map_or(Ok(30), |s| s.parse())?;
    let sizes: Vec<u64> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![4, 12, 40]
    } else {
        sizes
    };
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    println!("host profile: {profile}; load average: {}", loadavg());
    let builds = [build_variant("v1")?, build_variant("v2")?];
    let mut watched = Watched::new()?;
    measure(&mut watched, "as built", [&builds[0], &builds[1]], samples)?;
    for megabytes in sizes {
        let pair = [sized(&builds[0], megabytes)?, sized(&builds[1], megabytes)?];
        measure(
            &mut watched,
            &format!("{megabytes} MB"),
            [&pair[0], &pair[1]],
            samples,
        )?;
    }
    println!("load average after: {}", loadavg());
    hello::module().unwatch();
    let _ = std::fs::remove_dir_all(&watched.dir);
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "?".into(), |s| s.trim().into())
}
