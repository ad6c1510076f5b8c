//! `HOTMOD_WATCH=1` starts the watcher at the module's first use, on the path
//! `HOTMOD_<CRATE>_PATH` names. (Its own test binary: the environment is read once per process.)

mod support;

use std::time::Duration;

use hello_fixture::hello;

#[test]
fn the_environment_starts_watching_at_first_use() {
    let dir = support::TempDir::new("autostart");
    let artifact = dir.path().join("libhello_fixture.so");
    // The only test in this binary: nothing else reads the environment concurrently.
    std::env::set_var("HOTMOD_WATCH", "1");
    std::env::set_var(hello::module().env_var(), &artifact);
    assert_eq!(hello::module().path(), artifact);

    // First use: generation 0 answers, and the watcher starts.
    assert_eq!(hello::version(), 1);
    assert_eq!(hello::module().generation(), 0);

    let tmp = dir.path().join("incoming.tmp");
    std::fs::copy(support::library("v2"), &tmp).expect("copy v2");
    std::fs::rename(&tmp, &artifact).expect("publish v2");
    let generation = hello::module()
        .wait_for_generation(1, Duration::from_secs(60))
        .expect("the watcher loads the published library");
    assert_eq!(generation, 1);
    assert_eq!(hello::version(), 2);
    hello::module().unwatch();
}
