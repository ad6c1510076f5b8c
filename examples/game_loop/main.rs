//! The game-loop example: a 60 Hz loop whose `update` and `render` (`examples/game_logic`) can
//! be edited while it runs. The game state lives in the host, so it survives every reload, and
//! new code goes live only between frames. A build that fails or that hotmod refuses shows its
//! whole message in a panel under the game, wrapped at the terminal's width, while the running
//! generation goes on.
//!
//! With `--rebuild`, a change hotmod cannot reload — `update`'s or `render`'s signature, a field
//! of `State` or `Ball` — restarts the game in place instead of being refused
//! (`hotmod::restart`, `Shape::InPlace`): the rebuild builds this example again with the new
//! code, and at the top of the next frame the game hands its state and frame count over and
//! `exec`s the new build — the same process (pid), in the same terminal, in the foreground — which
//! goes on from the next frame with the new code. The terminal stays on the alternate screen
//! across the `exec`; raw mode is given back first and taken again by the new build, so that
//! quitting restores the terminal as it was before the game. If the host's build fails, the game
//! goes on and shows the compiler's errors; if the `exec` fails, it goes on and shows why. (For
//! a signature change, edit the call in `engine.rs` first, then the module: the module's save
//! starts the build, and the host must compile against it.) Always on with `--rebuild`;
//! `--no-restart` turns it off (such a build is refused, and the game goes on).
//!
//! ```sh
//! cargo run --example game_loop -- --rebuild     # draws in the terminal; q quits
//! $EDITOR examples/game_logic/src/lib.rs         # change BALL to '@', save: the ball changes,
//!                                                # the score and position carry on
//! cargo run --example game_loop -- --headless --frames 120
//! ```
//!
//! Options:
//!
//! - `--rebuild`: rebuild the game_logic crate whenever one of its sources is saved, and load
//!   it; without it, each new build of `target/<profile>/libgame_logic.so` is loaded as it lands
//!   (`cargo build -p game_logic` in another terminal);
//! - `--headless`: no terminal; print a summary at the end (with `--frames N`, default 120):
//!   the frames each generation ran, how many reloads happened, every hotmod event in full and
//!   the last frame;
//! - `--frames N`: stop after N frames;
//! - `--reload-at FRAME --library PATH`: load PATH at the end of frame FRAME (it goes live at
//!   the top of the next one) — for scripted runs and tests;
//! - `--unpaced`: run frames back to back instead of at 60 Hz;
//! - `--no-restart`: with `--rebuild`, refuse a change that needs a restart rather than restart
//!   in place;
//! - `--print-frames`: print one line per frame with the state (and one at a restart), for
//!   scripted headless runs (tests/game_restart.rs).

mod engine;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use crossterm::{cursor, execute, queue, style, terminal};
use game_logic::game;
use hotmod::restart::{self, Shape};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("game_loop: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    headless: bool,
    rebuild: bool,
    restart: bool,
    options: engine::Options,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        headless: false,
        rebuild: false,
        restart: true,
        options: engine::Options::default(),
    };
    let mut argv = std::env::args().skip(1);
    let number = |flag: &str, value: Option<String>| -> Result<u64, String> {
        let value = value.ok_or_else(|| format!("{flag} needs a number"))?;
        value
            .parse()
            .map_err(|_| format!("{flag} {value}: not a number"))
    };
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--headless" => args.headless = true,
            "--rebuild" => args.rebuild = true,
            "--unpaced" => args.options.paced = false,
            "--no-restart" => args.restart = false,
            "--print-frames" => args.options.print_frames = true,
            "--frames" => args.options.frames = Some(number("--frames", argv.next())?),
            "--reload-at" => args.options.reload_at = Some(number("--reload-at", argv.next())?),
            "--library" => {
                let path = argv.next().ok_or("--library needs a path")?;
                args.options.library = Some(PathBuf::from(path));
            }
            "-h" | "--help" => {
                println!(
                    "usage: game_loop [--rebuild [--no-restart]] [--headless] [--frames N] [--reload-at FRAME --library PATH] [--unpaced] [--print-frames]"
                );
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other}; try --help")),
        }
    }
    if args.options.reload_at.is_some() != args.options.library.is_some() {
        return Err("--reload-at and --library go together".into());
    }
    if args.headless && args.options.frames.is_none() {
        args.options.frames = Some(120);
    }
    Ok(Some(args))
}

fn run() -> Result<(), String> {
    let Some(mut args) = parse_args()? else {
        return Ok(());
    };
    if args.rebuild && args.restart {
        // A build that needs a restart restarts this process in place (`engine::run` hands over
        // at the top of a frame) instead of being refused.
        restart::on_incompatible(Shape::InPlace);
    }
    // After a restart in place: the module's own state comes in now, and `engine::run` takes
    // the game's (a cold start: nothing to do).
    restart::ready();
    let module = game::module();
    if args.rebuild {
        module
            .rebuild_on_save()
            .map_err(|e| format!("starting the rebuild: {e}"))?;
    } else if args.options.library.is_none() {
        module
            .watch()
            .map_err(|e| format!("watching the game logic: {e}"))?;
    }

    if args.headless {
        let summary =
            engine::run(&args.options, &mut engine::Headless).map_err(|e| e.to_string())?;
        print!("{summary}");
        return Ok(());
    }

    let mut screen = Terminal::open().map_err(|e| format!("opening the terminal: {e}"))?;
    (args.options.width, args.options.height) = screen.size;
    let summary = engine::run(&args.options, &mut screen).map_err(|e| e.to_string())?;
    drop(screen);
    println!(
        "{} frames; reloads: {}; restarts in place: {}; generations: {}",
        summary.frames,
        summary.reloads(),
        summary.restarts,
        summary
            .generations
            .iter()
            .map(|s| format!("{} (frames {}-{})", s.generation, s.first, s.last))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The screen may have had to cut a long message: here it is in full.
    if let Some(problem) = &summary.last_problem {
        println!("the last refusal or build error:\n{problem}");
    }
    Ok(())
}

/// The terminal: raw mode and the alternate screen while the game runs, restored on drop.
///
/// Across a restart in place both are the terminal's settings, not the process's, so they
/// persist through the `exec`. Raw mode is given back before it ([`engine::Screen::suspend`]):
/// the new build's `enable_raw_mode` records the mode it finds as the one to restore at the
/// end, which must be the user's, not raw. The alternate screen stays; the new build, started by
/// a hand-over in place, does not enter it again, and leaves it once when the game ends.
struct Terminal {
    out: io::Stdout,
    /// The terminal's size in cells.
    size: (u16, u16),
    resized: Option<(u16, u16)>,
}

impl Terminal {
    fn open() -> io::Result<Terminal> {
        let size = terminal::size()?;
        terminal::enable_raw_mode()?;
        let mut out = io::stdout();
        // The previous process of a restart in place left the alternate screen on.
        let restarted = restart::inherited().is_some_and(|i| i.shape == Shape::InPlace);
        if !restarted {
            execute!(out, terminal::EnterAlternateScreen)?;
        }
        execute!(
            out,
            terminal::Clear(terminal::ClearType::All),
            terminal::DisableLineWrap,
            cursor::Hide
        )?;
        Ok(Terminal {
            out,
            size,
            resized: None,
        })
    }

    /// Handles pending input; returns `false` when the player quits.
    fn input(&mut self) -> io::Result<bool> {
        while event::poll(Duration::ZERO)? {
            match event::read()? {
                TermEvent::Key(KeyEvent {
                    code: KeyCode::Char('q') | KeyCode::Esc,
                    ..
                }) => return Ok(false),
                TermEvent::Key(KeyEvent {
                    code: KeyCode::Char('c'),
                    modifiers,
                    ..
                }) if modifiers.contains(KeyModifiers::CONTROL) => return Ok(false),
                TermEvent::Resize(cols, rows) => {
                    self.size = (cols, rows);
                    self.resized = Some(self.size);
                    queue!(self.out, terminal::Clear(terminal::ClearType::All))?;
                }
                _ => {}
            }
        }
        Ok(true)
    }
}

impl engine::Screen for Terminal {
    /// Every row of `frame` is exactly as wide as the terminal and holds no line break, so each
    /// one overwrites its own line: the game plain, the status line in reverse video, the panel
    /// (a refusal or a build error) in bold.
    fn draw(&mut self, frame: &engine::Frame) -> io::Result<bool> {
        for (y, row) in frame.rows.iter().enumerate() {
            let style = if y < frame.game {
                style::Attribute::Reset
            } else if y < frame.game + frame.status {
                style::Attribute::Reverse
            } else {
                style::Attribute::Bold
            };
            let y = u16::try_from(y).unwrap_or(u16::MAX);
            queue!(
                self.out,
                cursor::MoveTo(0, y),
                style::SetAttribute(style),
                style::Print(row),
                style::SetAttribute(style::Attribute::Reset)
            )?;
        }
        self.out.flush()?;
        self.input()
    }

    fn resized(&mut self) -> Option<(u16, u16)> {
        self.resized.take()
    }

    /// The user's terminal mode back before the `exec` (the alternate screen stays).
    fn suspend(&mut self) -> io::Result<()> {
        self.out.flush()?;
        terminal::disable_raw_mode()
    }

    fn resume(&mut self) -> io::Result<()> {
        terminal::enable_raw_mode()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = execute!(
            self.out,
            terminal::EnableLineWrap,
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}
