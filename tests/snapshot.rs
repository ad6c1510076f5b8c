//! Consistent views across modules: `snapshot!` never sees a mixed pair while `load_all` swaps
//! two modules together, and `load_all` changes all modules or none.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use hello_fixture::{hello, other};
use hotmod::Error;

#[test]
fn snapshots_never_mix_generations_of_a_joint_reload() {
    let _serial = support::serial();
    let (v1, v2) = (support::library("v1"), support::library("v2"));
    hotmod::load_all([(hello::module(), v1), (other::module(), v1)]).expect("v1 pair loads");
    let done = AtomicBool::new(false);
    // Stops the reloader however the checker ends, so a failed assertion fails fast.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    thread::scope(|scope| {
        let reloader = scope.spawn(|| {
            let mut loads = 0u32;
            while !done.load(Ordering::Relaxed) {
                let library = if loads.is_multiple_of(2) { v2 } else { v1 };
                let numbers =
                    hotmod::load_all([(hello::module(), library), (other::module(), library)])
                        .expect("pair loads");
                assert_eq!(numbers.len(), 2);
                loads += 1;
                assert!(loads < 100_000, "the checker never saw both versions");
            }
            loads
        });

        let _stop = Stop(&done);
        // Take snapshots until the versions changed under us many times; every one must be a
        // matching pair.
        let (mut last, mut changes) = (0, 0u32);
        while changes < 20 {
            let (h, o) = hotmod::snapshot!(hello_fixture::hello, hello_fixture::other);
            let version = h.version();
            assert_eq!(
                (version, h.generation() > 0),
                (o.version(), o.generation() > 0),
                "a snapshot mixed hello generation {} with other generation {}",
                h.generation(),
                o.generation()
            );
            if version != last {
                (last, changes) = (version, changes + 1);
            }
        }
        done.store(true, Ordering::Relaxed);
        let loads = reloader.join().expect("reloader");
        assert!(
            loads >= changes - 1,
            "{loads} joint loads for {changes} changes seen"
        );
    });
}

#[test]
fn load_all_changes_every_module_or_none() {
    let _serial = support::serial();
    let v1 = support::library("v1");
    hotmod::load_all([(hello::module(), v1), (other::module(), v1)]).expect("v1 pair loads");
    let before = (hello::module().generation(), other::module().generation());
    let live_before = hello::module().live_generations();

    // hello's library is fine; other's is not a hotmod library: neither changes.
    let error = hotmod::load_all([
        (hello::module(), support::library("v2")),
        (other::module(), support::library("plain")),
    ])
    .expect_err("other's library has no descriptor");
    assert!(matches!(error, Error::NoDescriptor { .. }), "{error:?}");
    assert_eq!(
        (hello::module().generation(), other::module().generation()),
        before
    );
    assert_eq!(hello::version(), 1);
    assert_eq!(hello::module().live_generations(), live_before);

    // A rejected first library stops before the second is even tried.
    let error = hotmod::load_all([
        (hello::module(), support::library("sig")),
        (other::module(), support::library("v2")),
    ])
    .expect_err("hello's signature changed");
    assert!(matches!(error, Error::Incompatible { .. }), "{error:?}");
    assert_eq!(other::version(), 1);

    let error = hotmod::load_all([(hello::module(), v1), (hello::module(), v1)])
        .expect_err("same module twice");
    assert!(matches!(error, Error::DuplicateModule { .. }), "{error:?}");

    let numbers = hotmod::load_all([
        (hello::module(), support::library("v2")),
        (other::module(), support::library("v2")),
    ])
    .expect("both load");
    assert_eq!(numbers, [before.0 + 1, before.1 + 1]);
    assert_eq!((hello::version(), other::version()), (2, 2));
}
