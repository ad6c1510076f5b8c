//! Where `reload()` loads from: `Module::path()`, which is the path given to `set_path(..)`, else
//! the `HOTMOD_<CRATE>_PATH` environment variable, else `#[hot_module(path = "…")]`, else cargo's
//! location of the crate's cdylib for the running profile. Each level is checked to override
//! the next while the files of the lower levels exist, and `reload()` to load from the level
//! that wins. (Its own test binary: it sets an environment variable every module of the
//! fixture crate reads.)

mod support;

use std::path::{Path, PathBuf};

use attr_fixture::{pathed, plain};
use hotmod::{Event, Module};

/// `#[hot_module(path = "…")]` of `attr_fixture::pathed`, relative to the working directory
/// (the workspace root under `cargo test`).
const ATTRIBUTE_PATH: &str = "target/hotmod-attr-fixture/libattr_fixture.so";

/// Reloads `module` and checks that the new generation came from `expected`.
fn reloads_from(module: &'static Module, expected: &Path) {
    let events = module.subscribe();
    let before = module.generation();
    let generation = module
        .reload()
        .unwrap_or_else(|e| panic!("{}: reload failed: {e}", module.name()));
    assert_eq!(generation, before + 1, "{}", module.name());
    let event = events
        .wait_for(support::EVENT_TIMEOUT, |e| {
            matches!(e, Event::Loaded { .. })
        })
        .expect("a loaded event");
    let Event::Loaded {
        generation: loaded,
        path,
        ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(loaded, generation);
    assert_eq!(
        path,
        expected,
        "{} reloaded from the wrong file",
        module.name()
    );
    assert_eq!(module.generation(), generation);
}

#[test]
fn set_path_overrides_the_environment_which_overrides_the_attribute_and_the_default() {
    let env_var = plain::module().env_var();
    assert_eq!(env_var, "HOTMOD_ATTR_FIXTURE_PATH");
    assert_eq!(
        pathed::module().env_var(),
        env_var,
        "one variable per crate"
    );
    assert!(
        std::env::var_os(&env_var).is_none(),
        "run this test without {env_var} set"
    );
    let library = support::attr_library();

    // The default: where `cargo build -p attr_fixture` puts the cdylib for this profile.
    let default = support::build_at_default_location("attr_fixture");
    assert_eq!(plain::module().path(), default);
    reloads_from(plain::module(), &default);

    // The attribute overrides the default.
    let attribute = PathBuf::from(ATTRIBUTE_PATH);
    support::publish_library(library, &attribute);
    assert_eq!(pathed::module().path(), attribute);
    reloads_from(pathed::module(), &attribute);

    // The environment variable overrides both.
    let dir = support::TempDir::new("artifact-path");
    let from_env = dir.path().join("env").join("libattr_fixture.so");
    support::publish_library(library, &from_env);
    // The only test in this binary: nothing else reads the environment concurrently.
    std::env::set_var(&env_var, &from_env);
    assert_eq!(plain::module().path(), from_env);
    assert_eq!(pathed::module().path(), from_env);
    reloads_from(plain::module(), &from_env);
    reloads_from(pathed::module(), &from_env);

    // `set_path` overrides the environment variable, for its module only.
    let set = dir.path().join("set").join("libattr_fixture.so");
    support::publish_library(library, &set);
    pathed::module().set_path(&set);
    assert_eq!(pathed::module().path(), set);
    assert_eq!(plain::module().path(), from_env);
    reloads_from(pathed::module(), &set);
    reloads_from(plain::module(), &from_env);

    // Every lower level's file is still there: each win above was an override.
    for file in [&default, &attribute, &from_env] {
        assert!(file.is_file(), "{} is gone", file.display());
    }
    std::env::remove_var(&env_var);
    assert_eq!(pathed::module().path(), set);
    assert_eq!(plain::module().path(), default);
}
