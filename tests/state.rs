//! State that survives reloads: handed over at the swap, migrated when its version changes, and
//! left untouched when a new generation cannot take it.

mod support;

use hotmod::{Error, Event};
use state_fixture::world;

/// Loads variant s1 as a fresh generation and returns its frame count.
fn on_s1() -> u64 {
    world::module().set_staged(false);
    world::module()
        .load(support::library("s1"))
        .expect("s1 loads");
    assert!(
        world::describe().starts_with("v1 "),
        "{}",
        world::describe()
    );
    world::frame()
}

/// The state's `frame` and `score`, read from `describe()` (`v1 frame=3 score=6`, or
/// `v2 frame=3 score=6 name=…`).
fn frame_and_score() -> (u64, u64) {
    let description = world::describe();
    let field = |name: &str| -> u64 {
        description
            .split(' ')
            .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {description:?}"))
    };
    (field("frame"), field("score"))
}

#[test]
fn state_is_carried_to_each_new_generation_and_migrated_when_its_version_changes() {
    let _serial = support::serial();
    // Generation 0 (or whichever is current) builds up some state …
    let (start, start_score) = frame_and_score();
    world::tick(2);
    world::tick(3);
    let (frame, score) = (start + 2, start_score + 5);
    assert_eq!(frame_and_score(), (frame, score));

    // … a new generation of the same version takes it as it is …
    let carried = on_s1();
    assert_eq!(carried, frame);
    assert_eq!(
        world::describe(),
        format!("v1 frame={frame} score={score}"),
        "carried as it was"
    );
    assert_eq!(world::tick(1), frame + 1);
    let (frame, score) = (frame + 1, score + 1);

    // … and version 2 gets it through its migrate function: exactly version 1's frame and
    // score, and the name the migration gives.
    let generation = world::module()
        .load(support::library("s2"))
        .expect("s2 migrates version 1");
    assert_eq!(world::module().generation(), generation);
    assert_eq!(
        world::describe(),
        format!("v2 frame={frame} score={score} name=migrated from v1"),
        "migrated from version 1's frame={frame} score={score}"
    );
    assert_eq!(world::tick(4), frame + 1);
    let (frame, score) = (frame + 1, score + 4);

    // Same version 2 again: carried without migration, every field as it was.
    world::module()
        .load(support::library("s2nomigrate"))
        .expect("same version needs no migrate");
    assert_eq!(
        world::describe(),
        format!("v2 frame={frame} score={score} name=migrated from v1")
    );
}

#[test]
fn a_failing_migration_rejects_the_generation_and_keeps_the_old_state() {
    let _serial = support::serial();
    let frame = on_s1();
    world::tick(5);
    let before = world::describe();
    let generation = world::module().generation();
    let events = world::module().subscribe();

    let error = world::module()
        .load(support::library("s2badmigrate"))
        .expect_err("its migrate function fails");
    assert!(matches!(error, Error::State { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("state `WORLD` migrating from version 1 to 2 failed: refusing to migrate from version 1"),
        "{message}"
    );
    assert!(
        message.contains("s2badmigrate"),
        "names the file: {message}"
    );
    assert!(events
        .wait_for(support::EVENT_TIMEOUT, |e| matches!(
            e,
            Event::Rejected { .. }
        ))
        .is_some());

    assert_eq!(world::module().generation(), generation);
    assert_eq!(world::describe(), before, "the old state is untouched");
    assert_eq!(world::tick(0), frame + 2, "and still in use");
}

#[test]
fn a_changed_state_without_a_migrate_function_is_refused_clearly() {
    let _serial = support::serial();
    on_s1();
    let before = world::describe();
    let error = world::module()
        .load(support::library("s2nomigrate"))
        .expect_err("version changed, nothing to migrate it");
    let message = error.to_string();
    assert!(
        message.contains(
            "state `WORLD` changed from version 1 to 2 and the library has no migrate function"
        ),
        "{message}"
    );
    assert_eq!(world::describe(), before);
}

#[test]
fn in_staged_mode_state_is_handed_over_at_the_safe_point() {
    let _serial = support::serial();
    on_s1();
    let (frame, score) = frame_and_score();
    let module = world::module();
    module.set_staged(true);
    let staged = module.load(support::library("s2")).expect("s2 stages");
    // Frames keep running on the current generation while the new one waits …
    world::tick(1);
    world::tick(2);
    let (frame, score) = (frame + 2, score + 3);
    assert_eq!(world::describe(), format!("v1 frame={frame} score={score}"));
    // … and the state it receives is the state at the swap, not at staging.
    assert_eq!(module.apply_staged(), Some(staged));
    assert_eq!(
        world::describe(),
        format!("v2 frame={frame} score={score} name=migrated from v1")
    );

    // A staged generation that cannot take the state is dropped at apply time.
    on_s1_staged_failure();
    module.set_staged(false);
}

fn on_s1_staged_failure() {
    let module = world::module();
    module.set_staged(false);
    on_s1();
    module.set_staged(true);
    let events = module.subscribe();
    let staged = module
        .load(support::library("s2badmigrate"))
        .expect("verification passes; state is handed over only at apply");
    let before = world::describe();
    let current = module.generation();
    assert_eq!(module.apply_staged(), None);
    let rejected = events
        .wait_for(support::EVENT_TIMEOUT, |e| {
            matches!(e, Event::Rejected { .. })
        })
        .expect("a rejected event");
    assert!(
        rejected.to_string().contains("refusing to migrate"),
        "{rejected}"
    );
    assert_eq!(module.generation(), current);
    assert_eq!(module.staged_generation(), None);
    assert!(!module.live_generations().contains(&staged));
    assert_eq!(world::describe(), before);
}
