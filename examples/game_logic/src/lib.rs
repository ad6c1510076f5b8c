//! The game-loop example's logic: a hot module with `update` and `render`.
//!
//! The host (`examples/game_loop`) owns the [`game::State`] and passes it in every frame:
//! `update(&mut state, dt)` then `render(&state)`. A reload swaps the code, never the state,
//! so the ball keeps its place and the score keeps counting. The host runs in staged mode, so a
//! new generation goes live only at the top of a frame, never between `update` and `render`.
//!
//! Things to edit while the game runs: `BALL` (the ball's character),
//! `POINTS_PER_FRAME`, the `bounce` rule, the status line in `render`. Changing a field of
//! `State` or `Ball`, or a function's signature, cannot be reloaded: the host was compiled
//! against the old ones. Run with `--rebuild`, the game then restarts in place
//! (`hotmod::restart`): the host is rebuilt with the new code and replaces itself, the same
//! process in the same terminal, and takes its `State` back (serialized with serde; a field the
//! old state lacks starts from its type's default). A signature change needs the host's call
//! site changed too: edit `examples/game_loop/engine.rs` first, then this file (its save starts
//! the build). Without `--rebuild` (or with `--no-restart`) hotmod refuses such a build and the
//! running generation keeps going.
//!
//! The logic also keeps state of its own, [`game::Records`], which the host never sees: hotmod
//! hands it from generation to generation at the swap (`#[hotmod::state]`), so *its* type may
//! change while the game runs. Add a field, bump `version`, and `migrate_records` carries the
//! old value over; a version change without a migrate function is refused with a message that
//! says so, and the running generation keeps its records.
//!
//! ```
//! use game_logic::game;
//!
//! let mut state = game::new_state(20, 6);
//! for _ in 0..10 {
//!     game::update(&mut state, 1.0 / 60.0);
//! }
//! assert_eq!(state.ticks, 10);
//! assert_eq!(state.score, 10);
//! let rows = game::render(&state);
//! assert_eq!(rows.len(), 6);
//! assert!(rows.iter().all(|row| row.chars().count() == 20));
//! ```

#![warn(missing_docs)]

/// Update and render.
#[hotmod::hot_module]
pub mod game {
    /// The character drawn for the ball.
    const BALL: char = 'o';
    /// Score added per simulated frame.
    const POINTS_PER_FRAME: u64 = 1;
    /// The ball's speed at the start, in cells per second.
    const SPEED: f32 = 18.0;

    /// What the logic itself remembers, kept by hotmod across reloads (never by the host). Its
    /// type may change while the game runs: bump the version and let `migrate_records` map the
    /// old value.
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    pub struct Records {
        /// Frames this logic has simulated, across every generation.
        pub frames: u64,
    }

    #[hotmod::state(version = 1, migrate = migrate_records)]
    static RECORDS: hotmod::State<Records> = hotmod::State::new();

    /// Takes records of another version: keeps the fields this version knows, defaults the
    /// rest (the struct update stays for fields added later).
    #[allow(clippy::needless_update)]
    fn migrate_records(from: u32, old: hotmod::serde_json::Value) -> Result<Records, String> {
        let frames = old["frames"]
            .as_u64()
            .ok_or(format!("records version {from} have no `frames`"))?;
        Ok(Records {
            frames,
            ..Records::default()
        })
    }

    /// The records, one line: what survives a reload inside the module.
    pub fn records() -> String {
        RECORDS.with(|records| format!("{records:?}"))
    }

    /// Everything the game remembers. Owned by the host, so it survives every reload; the host
    /// hands it to its restarted self too (serde), where a field it did not have starts from
    /// its default.
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    #[serde(default)]
    pub struct State {
        /// Playfield width in cells.
        pub width: u16,
        /// Playfield height in cells (the bottom row is the status line).
        pub height: u16,
        /// Frames simulated so far.
        pub ticks: u64,
        /// The score.
        pub score: u64,
        /// Wall bounces so far.
        pub bounces: u64,
        /// The ball.
        pub ball: Ball,
    }

    /// A ball with a position and a velocity, in cells and cells per second.
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    #[serde(default)]
    pub struct Ball {
        /// Column.
        pub x: f32,
        /// Row.
        pub y: f32,
        /// Horizontal velocity.
        pub dx: f32,
        /// Vertical velocity.
        pub dy: f32,
    }

    /// A fresh game on a `width` × `height` playfield.
    pub fn new_state(width: u16, height: u16) -> State {
        State {
            width,
            height,
            ticks: 0,
            score: 0,
            bounces: 0,
            ball: Ball {
                x: 1.0,
                y: 1.0,
                dx: SPEED,
                dy: SPEED / 2.0,
            },
        }
    }

    /// Advances the game by one frame of `dt` seconds.
    pub fn update(state: &mut State, dt: f32) {
        RECORDS.with(|records| records.frames += 1);
        state.ticks += 1;
        state.score += POINTS_PER_FRAME;
        let (w, h) = field(state);
        let ball = &mut state.ball;
        ball.x += ball.dx * dt;
        ball.y += ball.dy * dt;
        if bounce(&mut ball.x, &mut ball.dx, w) | bounce(&mut ball.y, &mut ball.dy, h) {
            state.bounces += 1;
        }
    }

    /// Draws the playfield: `height` rows of exactly `width` characters each, the last one a
    /// status line.
    pub fn render(state: &State) -> Vec<String> {
        let (bx, by) = (state.ball.x as usize, state.ball.y as usize);
        let mut rows = Vec::with_capacity(usize::from(state.height));
        for y in 0..usize::from(state.height.saturating_sub(1)) {
            let row: String = (0..usize::from(state.width))
                .map(|x| if (x, y) == (bx, by) { BALL } else { ' ' })
                .collect();
            rows.push(row);
        }
        if state.height > 0 {
            let status = format!(
                " score {}  bounces {}  frame {} ",
                state.score, state.bounces, state.ticks
            );
            rows.push(fit(&status, usize::from(state.width)));
        }
        rows
    }

    /// The playfield's size without the status line, at least 1 × 1.
    fn field(state: &State) -> (f32, f32) {
        (
            f32::from(state.width.max(1)),
            f32::from(state.height.saturating_sub(1).max(1)),
        )
    }

    /// Keeps `pos` in `0..limit`, reversing `vel` at a wall; returns whether it bounced.
    fn bounce(pos: &mut f32, vel: &mut f32, limit: f32) -> bool {
        let max = (limit - 1.0).max(0.0);
        if *pos < 0.0 {
            *pos = -*pos;
            *vel = vel.abs();
        } else if *pos > max {
            *pos = (2.0 * max - *pos).max(0.0);
            *vel = -vel.abs();
        } else {
            return false;
        }
        *pos = pos.clamp(0.0, max);
        true
    }

    /// `text` cut or padded to exactly `width` characters.
    fn fit(text: &str, width: usize) -> String {
        let mut row: String = text.chars().take(width).collect();
        let len = row.chars().count();
        row.extend(std::iter::repeat_n(' ', width - len));
        row
    }
}
