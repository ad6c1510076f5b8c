//! The game-loop example: a 60 Hz loop whose `update` and `render` (`examples/game_logic`) can
//! be edited while it runs. The game state lives in the host, so it survives every reload, and
//! new code goes live only between frames. A build that fails or that hotmod refuses shows its
//! whole message in a panel under the game, wrapped at the terminal's width, while the running
//! generation goes on.
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
//! - `--unpaced`: run frames back to back instead of at 60 Hz.

mod engine;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use crossterm::{cursor, execute, queue, style, terminal};
use game_logic::game;

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
    options: engine::Options,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        headless: false,
        rebuild: false,
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
            "--frames" => args.options.frames = Some(number("--frames", argv.next())?),
            "--reload-at" => args.options.reload_at = Some(number("--reload-at", argv.next())?),
            "--library" => {
                let path = argv.next().ok_or("--library needs a path")?;
                args.options.library = Some(PathBuf::from(path));
            }
            "-h" | "--help" => {
                println!(
                    "usage: game_loop [--rebuild] [--headless] [--frames N] [--reload-at FRAME --library PATH] [--unpaced]"
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
        "{} frames; reloads: {}; generations: {}",
        summary.frames,
        summary.reloads(),
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
        execute!(
            out,
            terminal::EnterAlternateScreen,
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
