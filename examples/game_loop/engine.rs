//! The game loop, shared by the example's `main` (terminal and headless) and the tests.
//!
//! A fixed-rate loop: [`FPS`] frames a second, one `update` and one `render` per frame, both
//! through a [`game::Handle`] pinned at the top of the frame. The host owns the
//! [`game::State`]; the hot module only gets it by reference, so a reload replaces the code and
//! keeps the state. The module runs in *staged* mode: a new generation, however it arrives
//! (`module().load`, the watcher or the rebuild, from any thread), waits until
//! [`apply_staged`](hotmod::Module::apply_staged) at the top of the next frame. A frame never
//! mixes generations.
//!
//! The screen is laid out by [`compose`]: the game's rows on top, then the host's status line,
//! then, after a refused build or a failed one, a panel with the whole message, wrapped at the
//! screen's width. The game gives up the rows the status and the panel need (as on a resize),
//! so every row the screen draws is exactly as wide as the screen and nothing is cut at its
//! edge.
//!
//! A change hotmod cannot reload (a signature of `update` or `render`, a field of the state)
//! restarts the game in place where the host opted in (`hotmod::restart`, the example's
//! `--rebuild`): at the top of a frame, where a staged generation would go live, [`run`] hands
//! its [`game::State`] and its frame count over and replaces the process with the rebuilt one
//! (`exec`: the same pid, the same terminal), whose [`run`] takes them back and goes on with the
//! next frame. The host calls `hotmod::restart::ready()` before [`run`].
#![allow(dead_code)]

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use game_logic::game;
use hotmod::restart;
use hotmod::{Event, Events};

/// Frames per second.
pub const FPS: u32 = 60;

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after this many frames (`None`: until the screen says stop).
    pub frames: Option<u64>,
    /// The screen's width in cells.
    pub width: u16,
    /// The screen's height in rows: the game's, the status line's and the panel's.
    pub height: u16,
    /// Sleep between frames to hold [`FPS`]; off, frames run back to back.
    pub paced: bool,
    /// At the end of this frame, load `library` (it goes live at the top of the next frame).
    pub reload_at: Option<u64>,
    /// The library `reload_at` loads.
    pub library: Option<PathBuf>,
    /// Print one line per frame on stdout (`frame=… pid=… ticks=… score=… bounces=… ball=x,y
    /// restarts=… generation=…`), one per event (`event: …`, on one line) and one at a restart
    /// in place (`restarting …`, then `resumed …` from the new process): for scripted headless
    /// runs.
    pub print_frames: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            frames: None,
            width: 60,
            height: 16,
            paced: true,
            reload_at: None,
            library: None,
            print_frames: false,
        }
    }
}

/// The fewest rows the game keeps when a long message needs the screen: a panel longer than the
/// rest is cut, and says so.
pub const MIN_GAME_ROWS: usize = 3;

/// Where frames go.
pub trait Screen {
    /// Shows one frame; returns `false` to stop the game.
    fn draw(&mut self, frame: &Frame) -> io::Result<bool>;

    /// The screen's size now, if it changed (`None`: unchanged).
    fn resized(&mut self) -> Option<(u16, u16)> {
        None
    }

    /// The process is about to be replaced in place (`exec`): leave the screen as the new
    /// process expects to find it.
    fn suspend(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// The restart in place failed after [`suspend`](Self::suspend): take the screen back.
    fn resume(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A screen that draws nothing: `--headless`.
#[derive(Debug, Default)]
pub struct Headless;

impl Screen for Headless {
    fn draw(&mut self, _frame: &Frame) -> io::Result<bool> {
        Ok(true)
    }
}

/// One frame as the screen shows it: `height` rows of exactly `width` characters, no line
/// breaks, no control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Every row, top to bottom: the game's, the status line's, the panel's.
    pub rows: Vec<String>,
    /// How many of `rows` the game drew (its own score line included).
    pub game: usize,
    /// How many rows after those hold the host's status line.
    pub status: usize,
}

impl Frame {
    /// The game's rows.
    pub fn game_rows(&self) -> &[String] {
        &self.rows[..self.game]
    }

    /// The host's status rows.
    pub fn status_rows(&self) -> &[String] {
        &self.rows[self.game..self.game + self.status]
    }

    /// The panel's rows: the last refusal or build error, wrapped (empty when there is none).
    pub fn panel_rows(&self) -> &[String] {
        &self.rows[self.game + self.status..]
    }
}

/// The host's part of the screen: a status line, and the message of the last problem.
#[derive(Debug, Clone, Default)]
pub struct Footer {
    /// `frame N · generation G · q quits`, and the last event that was not a problem.
    pub status: String,
    /// The last refusal, build error or watcher problem, in full (lines included); shown until a
    /// generation goes live or a new build starts.
    pub problem: Option<String>,
}

impl Footer {
    /// The footer's rows for a screen `width` wide and `height` high: the status line wrapped,
    /// then the problem wrapped; the problem is cut, with a last row that says so, where it
    /// would leave the game fewer than [`MIN_GAME_ROWS`].
    pub fn rows(&self, width: usize, height: usize) -> (Vec<String>, usize) {
        let mut status = wrap(&self.status, width);
        status.truncate(height);
        let mut panel = self.problem.as_deref().map_or_else(Vec::new, |problem| {
            let mut panel = vec![fit("", width)];
            panel.extend(wrap(problem, width));
            panel
        });
        let room = height
            .saturating_sub(MIN_GAME_ROWS)
            .saturating_sub(status.len());
        if panel.len() > room {
            if room == 0 {
                panel.clear();
            } else {
                let hidden = panel.len() - (room - 1);
                panel.truncate(room - 1);
                panel.push(fit(
                    &format!("… {hidden} more lines (printed at exit)"),
                    width,
                ));
            }
        }
        let status_rows = status.len();
        status.extend(panel);
        (status, status_rows)
    }
}

/// Lays out one frame `width` × `height`: the game's `rows` (cut or padded to fit), then the
/// footer's rows.
pub fn compose(rows: &[String], footer: &Footer, width: u16, height: u16) -> Frame {
    let (width, height) = (usize::from(width), usize::from(height));
    let (footer_rows, status) = footer.rows(width, height);
    let game = height - footer_rows.len();
    let mut frame: Vec<String> = rows.iter().take(game).map(|row| fit(row, width)).collect();
    frame.resize(game, fit("", width));
    frame.extend(footer_rows);
    Frame {
        rows: frame,
        game,
        status,
    }
}

/// `text` broken into rows of exactly `width` characters: each of its lines on rows of its own,
/// broken at the last space that fits (a word longer than a row is split), continuation rows
/// indented like the line; tabs become spaces and other control characters are dropped, so
/// nothing can move the cursor. Every character other than a space that breaks a line is kept.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rows = Vec::new();
    for line in text.lines() {
        let line: Vec<char> = line
            .replace('\t', "    ")
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let indent = line.iter().take_while(|c| **c == ' ').count();
        // Continuation rows keep the line's indent while it leaves room for text.
        let indent = if indent * 2 < width { indent } else { 0 };
        let mut rest: &[char] = &line;
        let mut first = true;
        loop {
            let lead = if first { 0 } else { indent };
            let room = width - lead;
            if rest.len() <= room {
                let row: String = std::iter::repeat_n(' ', lead)
                    .chain(rest.iter().copied())
                    .collect();
                rows.push(fit(&row, width));
                break;
            }
            // The last space within the row, not counting the indent of the line's first row.
            let floor = if first { indent } else { 0 };
            let cut = match rest[..=room].iter().rposition(|c| *c == ' ') {
                Some(at) if at > floor => at,
                _ => room,
            };
            let row: String = std::iter::repeat_n(' ', lead)
                .chain(rest[..cut].iter().copied())
                .collect();
            rows.push(fit(&row, width));
            rest = &rest[cut..];
            if rest.first() == Some(&' ') {
                rest = &rest[1..];
            }
            first = false;
        }
    }
    rows
}

/// `text` cut or padded to exactly `width` characters.
pub fn fit(text: &str, width: usize) -> String {
    let mut row: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(width)
        .collect();
    let len = row.chars().count();
    row.extend(std::iter::repeat_n(' ', width - len));
    row
}

/// Frames `first..=last` ran generation `generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The generation.
    pub generation: u64,
    /// The first frame it ran (frames count from 1).
    pub first: u64,
    /// The last frame it ran.
    pub last: u64,
}

/// What a run did.
#[derive(Debug)]
pub struct Summary {
    /// Frames run.
    pub frames: u64,
    /// Which generation ran which frames, in order.
    pub generations: Vec<Span>,
    /// The game state at the end: it lived in the host the whole time.
    pub state: game::State,
    /// The last frame, as the screen showed it.
    pub last_frame: Frame,
    /// Every hotmod event of the run, as its `Display`.
    pub events: Vec<String>,
    /// The last refusal or build error of the run, in full.
    pub last_problem: Option<String>,
    /// How long the run took.
    pub took: Duration,
    /// Whether frames were paced at [`FPS`].
    pub paced: bool,
    /// How many restarts in place the game went through to this process (0: a cold start).
    pub restarts: u64,
}

/// Runs the game until `options.frames` or until `screen` says stop.
pub fn run(options: &Options, screen: &mut impl Screen) -> Result<Summary, hotmod::Error> {
    let module = game::module();
    let events = module.subscribe();
    // From now on, new generations wait for the top of a frame.
    module.set_staged(true);
    let started = Instant::now();
    let frame_time = Duration::from_secs(1) / FPS;
    let (mut width, mut height) = (options.width, options.height);
    let mut log = Log::default();
    // After a restart in place, the game goes on where the previous process left it.
    let (mut state, mut frame, restarts) = match resume(&mut log) {
        Some((state, frame, restarts)) => (state, frame, restarts),
        None => (game::new_state(width, height.saturating_sub(1)), 0, 0),
    };
    if options.print_frames && restarts > 0 {
        println!("resumed {}", state_line(frame, restarts, &state));
    }
    let mut generations: Vec<Span> = Vec::new();
    let mut last_frame = Frame::default();
    let mut next = Instant::now();
    // How many of the log's events `print_frames` printed.
    let mut printed = 0;
    let result = loop {
        if options.frames.is_some_and(|limit| frame >= limit) {
            break Ok(());
        }

        // The top of the frame, the safe point: a rebuilt host that is ready takes over here.
        if let Some(handover) = restart::poll() {
            let error = restart_in_place(handover, &state, frame, restarts, screen, options);
            log.problem(format!(
                "the restart in place failed, the game goes on: {error}"
            ));
        }
        frame += 1;

        // The top of the frame: the only place a new generation goes live.
        module.apply_staged();
        let handle = game::Handle::current();
        match generations.last_mut() {
            Some(span) if span.generation == handle.generation() => span.last = frame,
            _ => generations.push(Span {
                generation: handle.generation(),
                first: frame,
                last: frame,
            }),
        }
        if let Some(size) = screen.resized() {
            (width, height) = size;
        }
        log.collect(&events);
        if options.print_frames {
            for event in &log.all[printed..] {
                println!("event: {}", event.replace('\n', " | "));
            }
            printed = log.all.len();
        }
        let footer = Footer {
            status: format!(
                "frame {frame} · generation {} · q quits · {}",
                handle.generation(),
                log.note
            ),
            problem: log.problem.clone(),
        };
        // The game gets the rows the footer leaves, like a resize: nothing is drawn over it.
        let footer_rows = footer.rows(usize::from(width), usize::from(height)).0.len();
        state.width = width;
        state.height = u16::try_from(usize::from(height) - footer_rows).unwrap_or(height);
        handle.update(&mut state, 1.0 / FPS as f32);
        let rows = handle.render(&state);
        if options.print_frames {
            println!(
                "{} generation={}",
                state_line(frame, restarts, &state),
                handle.generation()
            );
        }
        drop(handle);

        last_frame = compose(&rows, &footer, width, height);
        match screen.draw(&last_frame) {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }

        if options.reload_at == Some(frame) {
            if let Some(library) = &options.library {
                // Staged: verified and loaded now, current at the top of the next frame. A
                // refused library is an event like any other; the game goes on.
                let _ = module.load(library);
            }
        }

        if options.paced {
            next += frame_time;
            let now = Instant::now();
            match next.checked_duration_since(now) {
                Some(wait) => std::thread::sleep(wait),
                // Late (a slow frame): start the next one now rather than run to catch up.
                None => next = now,
            }
        }
    };
    module.set_staged(false);
    log.collect(&events);
    if let Err(e) = result {
        log.all.push(format!("the screen failed: {e}"));
    }
    Ok(Summary {
        frames: frame,
        generations,
        state,
        last_frame,
        events: log.all,
        last_problem: log.last_problem,
        took: started.elapsed(),
        paced: options.paced,
        restarts,
    })
}

/// `frame=… pid=… ticks=… score=… bounces=… ball=x,y restarts=…`: what a restart must keep
/// (the ball's position exactly, as `{:?}` writes an `f32`).
fn state_line(frame: u64, restarts: u64, state: &game::State) -> String {
    format!(
        "frame={frame} pid={} ticks={} score={} bounces={} ball={:?},{:?} restarts={restarts}",
        std::process::id(),
        state.ticks,
        state.score,
        state.bounces,
        state.ball.x,
        state.ball.y
    )
}

/// What the previous process handed over at a restart in place: the state, the frames run and
/// the restarts so far. `None` after a cold start, or (with the reason in the panel) if the
/// state cannot be read: then a new game starts.
fn resume(log: &mut Log) -> Option<(game::State, u64, u64)> {
    let state = match restart::take_value::<game::State>("state")? {
        Ok(state) => state,
        Err(e) => {
            log.problem(format!(
                "the state handed over by the restart cannot be read; a new game starts: {e}"
            ));
            return None;
        }
    };
    let (frame, restarts) = match restart::take_value::<(u64, u64)>("run") {
        Some(Ok(run)) => run,
        _ => (state.ticks, 0),
    };
    Some((state, frame, restarts + 1))
}

/// Hands the game over to the rebuilt host and `exec`s it; returns only if that failed (then
/// this process, its screen taken back, runs on).
fn restart_in_place(
    mut handover: restart::Handover,
    state: &game::State,
    frame: u64,
    restarts: u64,
    screen: &mut impl Screen,
    options: &Options,
) -> String {
    if let Err(e) = handover
        .keep_value("state", state)
        .and_then(|()| handover.keep_value("run", &(frame, restarts)))
    {
        // Dropped, the hand-over is abandoned: the next save may try again.
        return e.to_string();
    }
    if options.print_frames {
        println!("restarting {}", state_line(frame, restarts, state));
    }
    let _ = io::Write::flush(&mut io::stdout());
    if let Err(e) = screen.suspend() {
        let _ = screen.resume();
        return format!("leaving the terminal to the new process failed: {e}");
    }
    let error = handover.exec();
    let _ = screen.resume();
    error.to_string()
}

/// The run's events: all of them, and what the footer shows.
#[derive(Debug)]
struct Log {
    /// Every event, as its `Display`.
    all: Vec<String>,
    /// The last event that was not a problem.
    note: String,
    /// The problem the panel shows, until a new generation arrives or a new build starts.
    problem: Option<String>,
    /// The run's last problem, kept for the summary.
    last_problem: Option<String>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            all: Vec::new(),
            note: "waiting for a new build".to_owned(),
            problem: None,
            last_problem: None,
        }
    }
}

impl Log {
    /// Takes the queued events.
    fn collect(&mut self, events: &Events) {
        while let Some(event) = events.try_recv() {
            let text = event.to_string();
            match event {
                Event::Rejected { .. }
                | Event::BuildFailed { .. }
                | Event::WatchFailed { .. }
                | Event::RolledBack { .. }
                | Event::RestartFailed { .. } => {
                    self.problem = Some(text.clone());
                    self.last_problem = Some(text.clone());
                }
                Event::BuildStarted { .. } | Event::Staged { .. } | Event::Loaded { .. } => {
                    self.problem = None;
                    self.note = text.clone();
                }
                _ => self.note = text.clone(),
            }
            self.all.push(text);
        }
    }
}

impl Log {
    /// A problem of the host's own, shown and kept like an event's.
    fn problem(&mut self, text: String) {
        self.problem = Some(text.clone());
        self.last_problem = Some(text.clone());
        self.all.push(text);
    }
}

impl Summary {
    /// How many times a new generation took over during the run.
    pub fn reloads(&self) -> usize {
        self.generations.len().saturating_sub(1)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pace = if self.paced {
            format!("{FPS} Hz")
        } else {
            "unpaced".to_owned()
        };
        writeln!(
            f,
            "frames: {} in {:.1} s ({pace})",
            self.frames,
            self.took.as_secs_f64()
        )?;
        let spans: Vec<String> = self
            .generations
            .iter()
            .map(|s| {
                format!(
                    "generation {} ran frames {}-{}",
                    s.generation, s.first, s.last
                )
            })
            .collect();
        writeln!(f, "generations: {}", spans.join(", "))?;
        // A reload is a new generation running frames; say that the state carried over only
        // when one happened.
        let reloads = self.reloads();
        writeln!(f, "reloads: {reloads}")?;
        if self.restarts > 0 {
            writeln!(f, "restarts in place: {}", self.restarts)?;
        }
        let state = format!(
            "ticks {}, score {}, bounces {}, ball at {:.1},{:.1}",
            self.state.ticks,
            self.state.score,
            self.state.bounces,
            self.state.ball.x,
            self.state.ball.y
        );
        if reloads > 0 || self.restarts > 0 {
            let kept = if self.state.ticks == self.frames {
                "yes"
            } else {
                "NO"
            };
            let across = match (reloads > 0, self.restarts > 0) {
                (true, true) => "reloads and restarts",
                (true, false) => "reloads",
                _ => "restarts",
            };
            writeln!(f, "state kept across {across}: {kept} ({state})")?;
        } else {
            writeln!(f, "state: {state}")?;
        }
        for event in &self.events {
            // A build error spans lines: its later lines are indented under the first.
            writeln!(f, "event: {}", event.replace('\n', "\n       "))?;
        }
        writeln!(f, "last frame:")?;
        for row in &self.last_frame.rows {
            writeln!(f, "|{row}|")?;
        }
        Ok(())
    }
}
