//! The game-loop example, headless: a reload in the middle of a run goes live exactly at a
//! frame boundary and the host-owned state carries on; a refused build changes nothing, and its
//! whole message is on the screen, wrapped at the screen's width; a build error's lines do not
//! break the layout; the summary claims only what happened.

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

/// The playfield rows without the game's score line or the host's footer (which contain letters
/// such as `o`).
fn playfield(summary: &engine::Summary) -> String {
    let rows = summary.last_frame.game_rows();
    rows[..rows.len().saturating_sub(1)].concat()
}

/// `text` without whitespace: what must survive wrapping, in order.
fn letters(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// `frame` fills a `width` × `height` screen exactly: every row as wide as the screen, no line
/// breaks or other control characters that would move the cursor.
fn assert_fills_the_screen(frame: &engine::Frame, width: usize, height: usize) {
    assert_eq!(frame.rows.len(), height, "{frame:#?}");
    for row in &frame.rows {
        assert_eq!(row.chars().count(), width, "row {row:?} in {frame:#?}");
        assert!(!row.chars().any(char::is_control), "row {row:?}");
    }
}

/// The panel of `frame` shows `message` in full: every character but whitespace, in order, and
/// nothing else but the panel's blank first row.
fn assert_panel_shows_in_full(frame: &engine::Frame, message: &str) {
    let panel = frame.panel_rows().concat();
    assert_eq!(
        letters(&panel),
        letters(message),
        "the panel must show the whole message; it shows\n{}",
        frame.panel_rows().join("\n")
    );
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
        print_frames: false,
    };
    let summary = engine::run(&options, &mut engine::Headless).expect("the game runs");
    println!("{summary}");

    assert_eq!(summary.frames, 120);
    // The loaded generation's number: after `start`, though not always `start + 1` (another
    // test of this binary may have used a number for a staged generation it refused).
    let loaded = game::module().generation();
    assert!(loaded > start, "{loaded} after {start}");
    assert_eq!(
        summary.generations,
        [
            engine::Span {
                generation: start,
                first: 1,
                last: 60
            },
            engine::Span {
                generation: loaded,
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
    assert_eq!(summary.reloads(), 1);
    let text = summary.to_string();
    assert!(text.contains("\nreloads: 1\n"), "{text}");
    assert!(text.contains("state kept across reloads: yes"), "{text}");
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
    let (width, height) = (40, 40);
    let options = engine::Options {
        frames: Some(40),
        width,
        height,
        paced: false,
        reload_at: Some(20),
        library: Some(bad),
        print_frames: false,
    };
    let summary = engine::run(&options, &mut engine::Headless).expect("the game runs");
    println!("{summary}");
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

    // The refusal is far longer than a row, and the screen shows all of it, wrapped.
    let frame = &summary.last_frame;
    assert!(
        refusal.chars().count() > 4 * usize::from(width),
        "a long message: {refusal}"
    );
    assert_fills_the_screen(frame, usize::from(width), usize::from(height));
    assert_panel_shows_in_full(frame, refusal);
    assert_eq!(summary.last_problem.as_deref(), Some(refusal.as_str()));
    // The game gave up the rows the panel needs and still draws its own rows.
    assert_eq!(usize::from(summary.state.height), frame.game);
    assert!(frame.game >= engine::MIN_GAME_ROWS, "{frame:#?}");
    assert!(frame.status_rows()[0].starts_with("frame 40 · generation "));

    // Nothing was reloaded, so the summary says so and claims nothing about reloads.
    let text = summary.to_string();
    assert_eq!(summary.reloads(), 0);
    assert!(text.contains("\nreloads: 0\n"), "{text}");
    assert!(!text.contains("kept"), "{text}");
}

/// A failed build's message as cargo shows it: several lines, indented ones, a path longer than
/// a row, a tab.
const BUILD_ERROR: &str = "building game_logic failed; the current generation keeps serving:
error[E0308]: mismatched types
   --> /home/someone/projects/a-rather-long-directory-name/game_logic/src/lib.rs:142:34
    |
142 |         state.score += POINTS_PER_FRAME * \"2\";
    |                                            ^^^ expected `u64`, found `&str`
\thelp: the trait `Mul<&str>` is not implemented for `u64`
error: could not compile `game_logic` (lib) due to 1 previous error";

#[test]
fn a_build_error_is_shown_whole_and_keeps_every_row_in_place() {
    let game_rows: Vec<String> = (0..30).map(|i| format!("game row {i}")).collect();
    let footer = engine::Footer {
        status: "frame 12 · generation 3 · q quits · building game_logic …".to_owned(),
        problem: Some(BUILD_ERROR.to_owned()),
    };
    for (width, height) in [(80, 24), (40, 30), (23, 40)] {
        let frame = engine::compose(&game_rows, &footer, width, height);
        assert_fills_the_screen(&frame, usize::from(width), usize::from(height));
        assert_panel_shows_in_full(&frame, BUILD_ERROR);
        assert_eq!(
            letters(&frame.status_rows().concat()),
            letters(&footer.status)
        );
        // The game's rows come first, in order, each cut to the width.
        assert_eq!(frame.game_rows()[0].trim_end(), "game row 0");
        assert!(frame.game >= engine::MIN_GAME_ROWS);
        // Each of the message's lines starts a row of its own.
        for line in BUILD_ERROR.lines() {
            let start = line.split_whitespace().next().unwrap_or_default();
            assert!(
                frame
                    .panel_rows()
                    .iter()
                    .any(|row| row.trim_start().starts_with(start)),
                "no row starts with {start:?}:\n{}",
                frame.panel_rows().join("\n")
            );
        }
    }

    // A screen too small for the whole message: the game keeps its rows and the panel says what
    // it left out (the example prints the message in full when the game ends).
    let frame = engine::compose(&game_rows, &footer, 40, 10);
    assert_fills_the_screen(&frame, 40, 10);
    assert_eq!(frame.game, engine::MIN_GAME_ROWS);
    let last = frame.panel_rows().last().expect("a panel");
    assert!(
        last.starts_with("… ") && last.contains("more lines"),
        "{last}"
    );
}

#[test]
fn a_run_without_reloads_claims_none() {
    let _serial = support::serial();
    let start = game::module().generation();
    let options = engine::Options {
        frames: Some(10),
        paced: false,
        ..engine::Options::default()
    };
    let summary = engine::run(&options, &mut engine::Headless).expect("the game runs");
    assert_eq!(summary.reloads(), 0);
    assert_eq!(
        summary.generations,
        [engine::Span {
            generation: start,
            first: 1,
            last: 10
        }]
    );
    let text = summary.to_string();
    assert!(text.contains("\nreloads: 0\n"), "{text}");
    assert!(!text.contains("kept"), "{text}");
    assert!(text.contains("state: ticks 10, score 10"), "{text}");
    assert_eq!(summary.last_problem, None);
    assert!(summary.last_frame.panel_rows().is_empty());
    assert_fills_the_screen(&summary.last_frame, 60, 16);
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
        print_frames: false,
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
    let loaded = game::module().generation();
    assert!(loaded > start, "{loaded} after {start}");
    assert_eq!(
        summary.generations.last().map(|span| span.generation),
        Some(loaded),
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
