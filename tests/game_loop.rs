//! The game-loop example, headless: a reload in the middle of a run goes live exactly at a
//! frame boundary and the host-owned state carries on; a refused build changes nothing.

mod support;

#[path = "../examples/game_loop/engine.rs"]
mod engine;

use game_logic::game;

/// The reloaded build: a different ball and ten points a frame instead of one.
const EDITS: [(&str, &str); 2] = [
    ("const BALL: char = 'o';", "const BALL: char = '@';"),
    (
        "const POINTS_PER_FRAME: u64 = 1;",
        "const POINTS_PER_FRAME: u64 = 10;",
    ),
];

/// A build whose `State` has a new field: it needs a restart, so hotmod refuses it.
const NEW_FIELD: [(&str, &str); 2] = [
    (
        "        /// Wall bounces so far.\n        pub bounces: u64,\n",
        "        /// Wall bounces so far.\n        pub bounces: u64,\n        /// Lives left.\n        pub lives: u8,\n",
    ),
    ("            bounces: 0,\n", "            bounces: 0,\n            lives: 3,\n"),
];

/// The playfield rows without the status line (which contains letters such as `o`).
fn playfield(summary: &engine::Summary) -> String {
    let rows = &summary.last_frame;
    rows[..rows.len().saturating_sub(1)].concat()
}

#[test]
fn a_reload_mid_run_goes_live_at_the_next_frame_and_keeps_the_state() {
    let _serial = support::serial();
    let v2 = support::edited_library("examples/game_logic", "game_logic", "game-v2", &EDITS);
    let start = game::module().generation();
    let options = engine::Options {
        frames: Some(120),
        width: 40,
        height: 12,
        paced: true,
        reload_at: Some(60),
        library: Some(v2),
    };
    let summary = engine::run(&options, &mut engine::Headless).expect("the game runs");
    println!("{summary}");

    assert_eq!(summary.frames, 120);
    assert_eq!(
        summary.generations,
        [
            engine::Span {
                generation: start,
                first: 1,
                last: 60
            },
            engine::Span {
                generation: start + 1,
                first: 61,
                last: 120
            },
        ],
        "the new generation takes over exactly at the top of frame 61"
    );
    // The state lived in the host through the reload: nothing was reset.
    assert_eq!(summary.state.ticks, 120);
    assert_eq!(
        summary.state.score,
        60 + 60 * 10,
        "60 frames at 1, 60 at 10"
    );
    assert!(playfield(&summary).contains('@'), "the new render draws");
    assert!(!playfield(&summary).contains('o'));
    assert!(summary
        .to_string()
        .contains("state kept across reloads: yes"));
    assert!(
        summary.events.iter().any(|e| e.contains("staged")),
        "{:?}",
        summary.events
    );
    assert!(
        summary.events.iter().any(|e| e.contains("live")),
        "{:?}",
        summary.events
    );
    assert_eq!(game::module().generation(), start + 1);
    assert_eq!(game::module().staged_generation(), None);
}

#[test]
fn a_build_that_changes_the_state_layout_is_refused_and_the_game_goes_on() {
    let _serial = support::serial();
    let bad = support::edited_library(
        "examples/game_logic",
        "game_logic",
        "game-new-field",
        &NEW_FIELD,
    );
    let start = game::module().generation();
    let options = engine::Options {
        frames: Some(40),
        width: 30,
        height: 8,
        paced: false,
        reload_at: Some(20),
        library: Some(bad),
    };
    let summary = engine::run(&options, &mut engine::Headless).expect("the game runs");
    assert_eq!(
        summary.generations,
        [engine::Span {
            generation: start,
            first: 1,
            last: 40
        }]
    );
    assert_eq!(summary.state.ticks, 40);
    let refusal = summary
        .events
        .iter()
        .find(|e| e.contains("was not loaded"))
        .unwrap_or_else(|| panic!("no refusal among {:?}", summary.events));
    assert!(refusal.contains("State"), "{refusal}");
    assert_eq!(game::module().generation(), start);
}

/// The module's own records gain a field mid-run: version 2, with a migrate function.
const RECORDS_V2: [(&str, &str); 3] = [
    (
        "        pub frames: u64,\n    }",
        "        pub frames: u64,\n        /// Added while the game ran.\n        pub reloads: u64,\n    }",
    ),
    (
        "#[hotmod::state(version = 1, migrate = migrate_records)]",
        "#[hotmod::state(version = 2, migrate = migrate_records)]",
    ),
    (
        "            frames,\n            ..Records::default()",
        "            frames,\n            reloads: 1,",
    ),
];

/// The same change without a migrate function: hotmod cannot carry the records over.
const RECORDS_V2_WITHOUT_MIGRATE: [(&str, &str); 2] = [
    (
        "        pub frames: u64,\n    }",
        "        pub frames: u64,\n        /// Added while the game ran.\n        pub reloads: u64,\n    }",
    ),
    (
        "#[hotmod::state(version = 1, migrate = migrate_records)]",
        "#[hotmod::state(version = 2)]",
    ),
];

/// Runs 60 frames with a reload of `library` at frame 30.
fn run_with_reload_at_30(library: std::path::PathBuf) -> engine::Summary {
    let options = engine::Options {
        frames: Some(60),
        width: 30,
        height: 8,
        paced: false,
        reload_at: Some(30),
        library: Some(library),
    };
    engine::run(&options, &mut engine::Headless).expect("the game runs")
}

/// The number in `Records { frames: N, … }`.
fn recorded_frames() -> u64 {
    let records = game::records();
    let digits: String = records["Records { frames: ".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no frame count in {records}"))
}

#[test]
fn a_field_added_to_the_module_state_mid_run_is_migrated() {
    let _serial = support::serial();
    let v2 = support::edited_library(
        "examples/game_logic",
        "game_logic",
        "game-records-v2",
        &RECORDS_V2,
    );
    let frames_before = recorded_frames();
    let start = game::module().generation();
    let summary = run_with_reload_at_30(v2);
    assert_eq!(
        summary.generations.last().map(|span| span.generation),
        Some(start + 1),
        "{:?}",
        summary.events
    );
    // The records lived in the module: generation 1 counted 30 frames, handed them over at the
    // frame boundary, and version 2 went on counting with its new field set by the migration.
    assert_eq!(
        game::records(),
        format!("Records {{ frames: {}, reloads: 1 }}", frames_before + 60)
    );
}

#[test]
fn a_state_change_without_a_migrate_function_is_refused_and_the_records_stay() {
    let _serial = support::serial();
    let bad = support::edited_library(
        "examples/game_logic",
        "game_logic",
        "game-records-no-migrate",
        &RECORDS_V2_WITHOUT_MIGRATE,
    );
    // Start from a version-1 generation (another test may have left version 2 current).
    let v1 = support::edited_library("examples/game_logic", "game_logic", "game-v2", &EDITS);
    game::module().load(v1).expect("version 1 records load");
    let frames_before = recorded_frames();
    let start = game::module().generation();
    let summary = run_with_reload_at_30(bad);
    assert_eq!(
        summary.generations,
        [engine::Span {
            generation: start,
            first: 1,
            last: 60
        }]
    );
    let refusal = summary
        .events
        .iter()
        .find(|e| e.contains("no migrate function"))
        .unwrap_or_else(|| panic!("no refusal among {:?}", summary.events));
    assert!(
        refusal.contains("state `RECORDS` changed from version 1 to 2"),
        "{refusal}"
    );
    assert_eq!(
        recorded_frames(),
        frames_before + 60,
        "the records carried on"
    );
}
