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
