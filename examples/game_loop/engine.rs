//! The game loop, shared by the example's `main` (terminal and headless) and the tests.
//!
//! A fixed-rate loop: [`FPS`] frames a second, one `update` and one `render` per frame, both
//! through a [`game::Handle`] pinned at the top of the frame. The host owns the
//! [`game::State`]; the hot module only gets it by reference, so a reload replaces the code and
//! keeps the state. The module runs in *staged* mode: a new generation, however it arrives
//! (`module().load`, the watcher or the rebuild, from any thread), waits until
//! [`apply_staged`](hotmod::Module::apply_staged) at the top of the next frame. A frame never
//! mixes generations.
#![allow(dead_code)]

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use game_logic::game;
use hotmod::Events;

/// Frames per second.
pub const FPS: u32 = 60;

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after this many frames (`None`: until the screen says stop).
    pub frames: Option<u64>,
    /// The playfield's size in cells, status line included.
    pub width: u16,
    /// The playfield's height, status line included.
    pub height: u16,
    /// Sleep between frames to hold [`FPS`]; off, frames run back to back.
    pub paced: bool,
    /// At the end of this frame, load `library` (it goes live at the top of the next frame).
    pub reload_at: Option<u64>,
    /// The library `reload_at` loads.
    pub library: Option<PathBuf>,
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
        }
    }
}

/// Where frames go.
pub trait Screen {
    /// Shows one frame; returns `false` to stop the game. `status` is the host's line: frame,
    /// generation, the last hotmod event.
    fn draw(&mut self, rows: &[String], status: &str) -> io::Result<bool>;

    /// The playfield size the screen has now (`None`: unchanged).
    fn resized(&mut self) -> Option<(u16, u16)> {
        None
    }
}

/// A screen that draws nothing: `--headless`.
#[derive(Debug, Default)]
pub struct Headless;

impl Screen for Headless {
    fn draw(&mut self, _rows: &[String], _status: &str) -> io::Result<bool> {
        Ok(true)
    }
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
    /// The last frame's rows.
    pub last_frame: Vec<String>,
    /// Every hotmod event of the run, as its one-line `Display`.
    pub events: Vec<String>,
    /// How long the run took.
    pub took: Duration,
    /// Whether frames were paced at [`FPS`].
    pub paced: bool,
}

/// Runs the game until `options.frames` or until `screen` says stop.
pub fn run(options: &Options, screen: &mut impl Screen) -> Result<Summary, hotmod::Error> {
    let module = game::module();
    let events = module.subscribe();
    // From now on, new generations wait for the top of a frame.
    module.set_staged(true);
    let started = Instant::now();
    let frame_time = Duration::from_secs(1) / FPS;
    let mut state = game::new_state(options.width, options.height);
    let mut summary_events = Vec::new();
    let mut generations: Vec<Span> = Vec::new();
    let mut last_frame = Vec::new();
    let mut last_event = String::from("waiting for a new build");
    let mut next = Instant::now();
    let mut frame = 0;
    let result = loop {
        if options.frames.is_some_and(|limit| frame >= limit) {
            break Ok(());
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
        if let Some((width, height)) = screen.resized() {
            state.width = width;
            state.height = height;
        }
        handle.update(&mut state, 1.0 / FPS as f32);
        last_frame = handle.render(&state);
        drop(handle);

        collect(&events, &mut summary_events, &mut last_event);
        let status = format!(
            "frame {frame} · generation {} · {last_event} · q quits",
            module.generation()
        );
        match screen.draw(&last_frame, &status) {
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
    collect(&events, &mut summary_events, &mut last_event);
    if let Err(e) = result {
        summary_events.push(format!("the screen failed: {e}"));
    }
    Ok(Summary {
        frames: frame,
        generations,
        state,
        last_frame,
        events: summary_events,
        took: started.elapsed(),
        paced: options.paced,
    })
}

/// Moves the queued events into the run's log.
fn collect(events: &Events, log: &mut Vec<String>, last: &mut String) {
    while let Some(event) = events.try_recv() {
        *last = event.to_string();
        log.push(last.clone());
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
        let kept = if self.state.ticks == self.frames {
            "yes"
        } else {
            "NO"
        };
        writeln!(
            f,
            "state kept across reloads: {kept} (ticks {}, score {}, bounces {}, ball at {:.1},{:.1})",
            self.state.ticks, self.state.score, self.state.bounces, self.state.ball.x, self.state.ball.y
        )?;
        for event in &self.events {
            writeln!(f, "event: {event}")?;
        }
        writeln!(f, "last frame:")?;
        for row in &self.last_frame {
            writeln!(f, "|{row}|")?;
        }
        Ok(())
    }
}
