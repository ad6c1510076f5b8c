//! `HOTMOD_REBUILD=1` starts the built-in rebuild at the module's first use, for a module whose
//! attribute asks for nothing. (Its own test binary: the environment is read once per process.)

mod support;

use attr_fixture::plain;

#[test]
fn the_environment_starts_rebuilding_at_first_use() {
    if !support::rebuilds_allowed_here("the_environment_starts_rebuilding_at_first_use") {
        return;
    }
    // The only test in this binary: nothing else reads the environment concurrently.
    std::env::remove_var("HOTMOD_WATCH");
    std::env::set_var("HOTMOD_REBUILD", "1");
    support::first_use_starts_the_attr_rebuild(plain::module(), || {
        assert_eq!(plain::answer(), 1);
    });
    assert_eq!(plain::answer(), 1);
}
