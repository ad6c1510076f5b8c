//! Placing a module library near the host's code (Linux, x86_64).
//!
//! # Why
//!
//! `dlopen` maps every library where `mmap` puts memory it was not told where to put: top-down
//! from below the main thread's stack (`0x7f…`), about 40 TiB from a position-independent
//! executable's code (`0x55…`). On the machine hotmod is measured on (AMD Zen 3) a call from the
//! host into code that far away costs about 0.8 ns more than the same call into code within a
//! few GiB of the caller (`BENCHMARKS.md`, "From a user's crate"): the two instructions of a
//! trivial module function cost 1.4 ns near and 2.2 ns far. So hotmod asks the kernel, without
//! any help from `dlopen`, to put each generation's library within 2 GiB of the host's code.
//!
//! # How
//!
//! glibc's `dlopen` first maps a library's whole span with one `mmap` *without an address hint*
//! (`_dl_map_segment`: with segments aligned beyond a page, room to align it: the span plus
//! the alignment, at least twice the alignment), then maps the segments `MAP_FIXED` inside
//! that span. Without a hint the
//! kernel's top-down search takes the highest free gap below `mmap_base` that fits. So, just
//! before the `dlopen` ([`open`]):
//!
//! 1. read `/proc/self/maps`; find the image that holds hotmod's code (the host's executable),
//!    the program break (`brk(0)`) and the main thread's `[stack]`;
//! 2. the *window* ([`Maps::window`]): above the image, from [`HEADROOM`] above the break up to
//!    2 GiB above the image's start; or, when that is too small (the kernel puts the break up
//!    to 1 GiB above the image, at random), the 2 GiB below the image's start;
//! 3. *reserve* every free gap above the window, up to the end of the highest mapping below the
//!    stack, in which the library would fit: anonymous `PROT_NONE` mappings with
//!    `MAP_NORESERVE | MAP_FIXED_NOREPLACE` (no memory, no commit charge);
//! 4. *probe*: an `mmap` without a hint as large as that first mapping plus 2 MiB (what the
//!    kernel may add to align a mapping for huge pages) must land inside the window; it is
//!    unmapped at once;
//! 5. `dlopen`: its span lands in the highest gap of the window that fits it, at or above the
//!    probe;
//! 6. unmap the reservations.
//!
//! Whenever a step cannot be done or its result is not the expected one (no window: a heap or
//! an executable of about 1 GiB; `/proc` unreadable; no `[stack]`; more than
//! [`MAX_RESERVATIONS`] gaps; a reservation refused: `RLIMIT_AS`, `vm.max_map_count`, a
//! concurrent mapping, a kernel older than 4.17; the probe elsewhere: the legacy bottom-up
//! layout of `ulimit -s unlimited`), the reservations made so far are unmapped and `dlopen` runs
//! as usual, where it always did. A debug event (`tracing`, target `hotmod`) says why. The only
//! thing that changes for anyone is where a library lands. Each attempt costs a read of
//! `/proc/self/maps` and a few `mmap`s (tens of microseconds), next to a load's copy, `dlopen`
//! and checks.
//!
//! # Invariants
//!
//! 1. *Only memory this code mapped is unmapped.* Reservations are made with
//!    `MAP_FIXED_NOREPLACE` (never `MAP_FIXED`): the kernel refuses one that would overlap any
//!    existing mapping. One placed elsewhere than asked (a kernel before 4.17 reads the flag as
//!    a hint) is unmapped where it was put and the attempt abandoned. Each reservation is
//!    unmapped exactly once, as the range the kernel returned. (A thread that mapped
//!    `MAP_FIXED` over a reservation would be writing over memory it does not own: its bug.)
//! 2. *Other threads are not disturbed.* Their `mmap`s during the window land in free space,
//!    possibly in the window (harmless: they take room a library could have had); their
//!    `munmap`s of their own mappings are theirs. Nothing is reserved directly below the main
//!    thread's stack, whose growth room that is. The window above the image leaves
//!    [`HEADROOM`] above the break free, so `brk` keeps growing (when a library placed earlier
//!    stops it, after `HEADROOM`, glibc's and musl's `malloc` go on with `mmap`). With the
//!    window below the image the room above the break is reserved too, for the time of the
//!    `dlopen` only: a `brk` in that time fails, and `malloc` maps memory instead, as it does
//!    whenever the break cannot grow.
//! 3. *One placement at a time.* A second placement while one is running (another module's load
//!    on another thread, or a load from a library initialiser inside the `dlopen`) does a plain
//!    `dlopen` instead of waiting.
//! 4. *Fork.* A child forked by another thread while a placement is running would keep its
//!    reservations forever (their owner does not exist in the child): [`in_child`], run by the
//!    fork child handler (`fork.rs`), unmaps those recorded. A reservation is recorded only after
//!    it is made and forgotten before it is unmapped, so the child never unmaps a range that is
//!    not a reservation (at worst, forked between the two, it keeps one). A fork from inside
//!    the `dlopen` on the placing thread leaves them to that thread, which goes on in the child.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::elf;

/// Left free above the program break for `brk` to grow into.
const HEADROOM: usize = 1 << 30;

/// How far from the start of the host's code a library may end.
const REACH: usize = 2 << 30;

/// At most this many gaps are reserved; more, and the library is loaded where `dlopen` puts it.
const MAX_RESERVATIONS: usize = 128;

/// What the kernel may add to a mapping to align it (the probe's margin): file and anonymous
/// mappings of 2 MiB or more are aligned to 2 MiB for transparent huge pages.
const ALIGNMENT_MARGIN: usize = 2 << 20;

const PAGE: usize = 4096;

/// The lowest address the kernel maps anything at (`vm.mmap_min_addr`'s usual 64 KiB).
const MMAP_MIN: usize = 64 << 10;

/// Whether a placement is running (try-lock: see invariant 3).
static BUSY: AtomicBool = AtomicBool::new(false);

/// A reservation of the running placement: `len` is 0 when the slot is empty.
struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
}

/// The running placement's reservations, for [`in_child`].
static RESERVED: [Slot; MAX_RESERVATIONS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
    }
}; MAX_RESERVATIONS];

thread_local! {
    /// Whether this thread runs the placement (so a fork from it leaves the reservations to it).
    /// `const` and without a destructor: readable in a fork handler.
    static PLACING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `dlopen` (which loads the library whose contents are `bytes`) with the library's span
/// steered within 2 GiB of the host's code when that can be done; otherwise just runs it.
pub(crate) fn open<T>(bytes: &[u8], dlopen: impl FnOnce() -> T) -> T {
    let placement = match Placement::prepare(bytes) {
        Ok(placement) => Some(placement),
        Err(why) => {
            tracing::debug!(
                target: "hotmod",
                "loading a library where dlopen puts it, not near the host's code: {why}"
            );
            None
        }
    };
    let result = dlopen();
    drop(placement);
    result
}

/// In a forked child: unmaps the reservations of a placement that another thread of the parent
/// was running (see invariant 4). Call from the fork child handler only.
pub(crate) fn in_child() {
    if !BUSY.load(Ordering::Acquire) || PLACING.get() {
        return;
    }
    for slot in &RESERVED {
        let len = slot.len.swap(0, Ordering::Acquire);
        if len != 0 {
            let start = slot.start.load(Ordering::Relaxed);
            // SAFETY: a non-zero `len` is written (Release) only after the `mmap` of exactly
            // this range returned it, and cleared before it is unmapped (invariant 4); the
            // child has one thread, so nothing changed it since.
            unsafe { libc::munmap(start as *mut libc::c_void, len) };
        }
    }
    BUSY.store(false, Ordering::Release);
}

/// A running placement: its reservations, unmapped (and `BUSY` released) on drop.
struct Placement {
    count: usize,
}

impl Placement {
    /// Steps 1–4 of the module docs. `Err` says why the library will land where `dlopen`
    /// puts it; nothing is left reserved then.
    fn prepare(bytes: &[u8]) -> Result<Placement, String> {
        let image = elf::Image::parse(bytes).map_err(|e| e.to_string())?;
        let span = image
            .span()
            .and_then(|(low, high)| {
                let low = usize::try_from(low).ok()? & !(PAGE - 1);
                let high = usize::try_from(high).ok()?.checked_next_multiple_of(PAGE)?;
                high.checked_sub(low)
            })
            .filter(|&span| span > 0)
            .ok_or("its segments overflow the address space")?;
        // What glibc maps first (`_dl_map_segment`): the span, or with segments aligned beyond
        // a page, room to align it.
        let align = image.loads.iter().map(|s| s.align).max().unwrap_or(0);
        let span = match usize::try_from(align) {
            Ok(align) if align <= PAGE => Some(span),
            Ok(align) if span >= align => span.checked_add(align),
            Ok(align) => align.checked_mul(2),
            Err(_) => None,
        }
        .ok_or("its segments' alignment overflows the address space")?;
        if BUSY
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err("another placement is running".into());
        }
        PLACING.set(true);
        let mut placement = Placement { count: 0 };
        // On error `placement` drops here: what was reserved is unmapped.
        placement.reserve(span)?;
        Ok(placement)
    }

    fn reserve(&mut self, span: usize) -> Result<(), String> {
        let maps = std::fs::read_to_string("/proc/self/maps")
            .map_err(|e| format!("/proc/self/maps: {e}"))?;
        let maps = Maps::parse(&maps, host_code()).ok_or("/proc/self/maps is not as expected")?;
        let probe_len = span
            .checked_add(ALIGNMENT_MARGIN)
            .ok_or("the library is too large")?;
        // SAFETY: brk(0) asks the kernel for the program break and changes nothing (the kernel
        // refuses a break below the heap's start and returns the current one); unlike libc's
        // sbrk it touches no variable malloc shares.
        let brk = unsafe { libc::syscall(libc::SYS_brk, 0usize) } as usize;
        let window = maps.window(brk, probe_len)?;
        for (start, end) in maps.gaps_above(window.1) {
            if end - start < span {
                // Too small for the library: the kernel cannot put it there.
                continue;
            }
            if self.count == MAX_RESERVATIONS {
                return Err(format!("more than {MAX_RESERVATIONS} gaps to reserve"));
            }
            self.add(start, end - start)?;
        }
        let probe = map_anywhere(probe_len)?;
        if probe < window.0 || probe + probe_len > window.1 {
            return Err(format!(
                "the kernel would map it at {probe:#x}, outside {:#x}-{:#x}",
                window.0, window.1
            ));
        }
        Ok(())
    }

    /// Reserves `len` bytes at `start` and records them.
    fn add(&mut self, start: usize, len: usize) -> Result<(), String> {
        let flags = libc::MAP_PRIVATE
            | libc::MAP_ANONYMOUS
            | libc::MAP_NORESERVE
            | libc::MAP_FIXED_NOREPLACE;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping (EEXIST instead), so
        // this creates a new inaccessible mapping or nothing; no memory of anyone's changes.
        let at = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_NONE,
                flags,
                -1,
                0,
            )
        };
        if at == libc::MAP_FAILED {
            let error = std::io::Error::last_os_error();
            return Err(format!("reserving {len:#x} bytes at {start:#x}: {error}"));
        }
        if at as usize != start {
            // A kernel without MAP_FIXED_NOREPLACE took the address as a hint.
            // SAFETY: the kernel just returned this new mapping of `len` bytes to us.
            unsafe { libc::munmap(at, len) };
            return Err("the kernel does not know MAP_FIXED_NOREPLACE".into());
        }
        let slot = &RESERVED[self.count];
        slot.start.store(start, Ordering::Relaxed);
        slot.len.store(len, Ordering::Release);
        self.count += 1;
        Ok(())
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        for slot in &RESERVED[..self.count] {
            // Forgotten before unmapped (invariant 4).
            let len = slot.len.swap(0, Ordering::Acquire);
            let start = slot.start.load(Ordering::Relaxed);
            if len != 0 {
                // SAFETY: recorded by `add` right after the kernel returned exactly this new
                // mapping; unmapped once, here (the slot is empty now).
                unsafe { libc::munmap(start as *mut libc::c_void, len) };
            }
        }
        PLACING.set(false);
        BUSY.store(false, Ordering::Release);
    }
}

/// Where the kernel puts `len` bytes without a hint: maps them, unmaps them, returns the address.
fn map_anywhere(len: usize) -> Result<usize, String> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: without MAP_FIXED the kernel picks free space: a new inaccessible mapping or none.
    let at = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_NONE, flags, -1, 0) };
    if at == libc::MAP_FAILED {
        let error = std::io::Error::last_os_error();
        return Err(format!("probing with {len:#x} bytes: {error}"));
    }
    // SAFETY: the kernel just returned this new mapping of `len` bytes to us.
    unsafe { libc::munmap(at, len) };
    Ok(at as usize)
}

/// An address in hotmod's code, which is in the host's executable (or whichever image links
/// hotmod).
fn host_code() -> usize {
    host_code as fn() -> usize as usize
}

/// The process's mappings, as `/proc/self/maps` lists them (sorted by address).
#[derive(Debug)]
struct Maps {
    /// `(start, end)` of each mapping.
    ranges: Vec<(usize, usize)>,
    /// The image holding the host's code: its lowest start and highest end.
    image: (usize, usize),
    /// The end of the highest mapping below the main thread's stack.
    ceiling: usize,
}

impl Maps {
    /// Reads `text` (the contents of `/proc/self/maps`); `code` is an address in the host's code.
    fn parse(text: &str, code: usize) -> Option<Maps> {
        let mut ranges = Vec::new();
        let mut files = Vec::new();
        let mut stack = None;
        let mut file_of_code = None;
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            let (_perms, _offset) = (fields.next()?, fields.next()?);
            let (device, inode) = (fields.next()?, fields.next()?);
            if fields.next() == Some("[stack]") {
                stack = Some(start);
            }
            let file = (inode != "0").then_some((device, inode));
            if (start..end).contains(&code) {
                file_of_code = file;
            }
            if start >= end || ranges.last().is_some_and(|&(_, last)| start < last) {
                return None;
            }
            ranges.push((start, end));
            files.push(file);
        }
        let file_of_code = file_of_code?;
        let mut image: Option<(usize, usize)> = None;
        for (range, file) in ranges.iter().zip(&files) {
            if *file == Some(file_of_code) {
                let (start, end) = image.unwrap_or(*range);
                image = Some((start.min(range.0), end.max(range.1)));
            }
        }
        let stack = stack?;
        let ceiling = ranges
            .iter()
            .map(|&(_, end)| end)
            .filter(|&end| end <= stack)
            .max()?;
        Some(Maps {
            ranges,
            image: image?,
            ceiling,
        })
    }

    /// Where a library whose mapping takes up to `len` bytes should land, `(low, high)`, given
    /// the program break `brk`; or why there is no such place.
    ///
    /// Above the image: from [`HEADROOM`] above the break (when the break is above the image,
    /// within reach; else above the image's end) to [`REACH`] above the image's start. Reserving
    /// what lies above that never stops `brk` from growing. If that is too small (the break
    /// lies up to 1 GiB above the image, randomly), below the image: within [`REACH`] below its
    /// start. Reserving what lies above that includes the room above the break: while the
    /// reservations last, `brk` cannot grow (and glibc's or musl's `malloc` maps memory
    /// instead); afterwards it can, as before.
    fn window(&self, brk: usize, len: usize) -> Result<(usize, usize), String> {
        let (start, end) = self.image;
        // Room for `len` at the kernel's alignment of a mapping of 2 MiB or more (it looks for
        // `len` plus that alignment): a window just big enough for `len` sent the kernel to the
        // next gap down, below the window, about once in 40 loads.
        let fits = |(low, high): (usize, usize)| {
            high <= self.ceiling && high.saturating_sub(low) >= len.saturating_add(ALIGNMENT_MARGIN)
        };
        let above = start.checked_add(REACH).and_then(|high| {
            let base = if brk > end && brk < high { brk } else { end };
            let low = base.checked_add(HEADROOM)?.checked_next_multiple_of(PAGE)?;
            Some((low, high))
        });
        if let Some(above) = above.filter(|&window| fits(window)) {
            return Ok(above);
        }
        let below = (start.saturating_sub(REACH).max(MMAP_MIN), start);
        if fits(below) {
            return Ok(below);
        }
        Err(format!(
            "no room within reach of the host's code ({start:#x}-{end:#x}, break at {brk:#x})"
        ))
    }

    /// The free gaps between `low` and the ceiling, clipped to that range.
    fn gaps_above(&self, low: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let ceiling = self.ceiling;
        self.ranges
            .windows(2)
            .map(|pair| (pair[0].1, pair[1].0))
            .map(move |(start, end)| (start.max(low), end.min(ceiling)))
            .filter(|(start, end)| start < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: usize = 1 << 30;

    /// The tests that run a placement (one at a time, as `BUSY` allows).
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A layout like a PIE host's: the executable at `0x5555_0000_0000`, a one-page heap whose
    /// break lies `heap` bytes above the executable's end, libraries at `0x7f00_0000_0000`, the stack on top.
    fn layout(heap: usize) -> (String, usize) {
        let exe = 0x5555_0000_0000usize;
        let brk = exe + 0x10_0000 + heap;
        let text = format!(
            "{:x}-{:x} r--p 00000000 fe:00 42 /host\n\
             {:x}-{:x} r-xp 00001000 fe:00 42 /host\n\
             {:x}-{:x} rw-p 00000000 00:00 0 [heap]\n\
             7f0000000000-7f0000100000 r-xp 00000000 fe:00 7 /libc.so\n\
             7f0000200000-7f0000300000 rw-p 00000000 00:00 0\n\
             7f0000300000-7f0000340000 r-xp 00000000 fe:00 9 /ld.so\n\
             7ffff0000000-7ffff0021000 rw-p 00000000 00:00 0 [stack]\n",
            exe,
            exe + 0x1000,
            exe + 0x1000,
            exe + 0x10_0000,
            exe + 0x10_0000 + heap - 0x1000,
            brk,
        );
        (text, brk)
    }

    #[test]
    fn the_window_lies_above_the_heap_with_headroom() {
        let (text, brk) = layout(0x10_0000);
        let maps = Maps::parse(&text, 0x5555_0000_1234).expect("parses");
        assert_eq!(maps.image, (0x5555_0000_0000, 0x5555_0010_0000));
        assert_eq!(maps.ceiling, 0x7f00_0034_0000);
        let (low, high) = maps.window(brk, 0x40_0000).expect("a window");
        assert_eq!((low, high), (brk + GIB, 0x5555_0000_0000 + 2 * GIB));
        // Reserved: everything free from the window's top to ld.so's end, not the stack's room.
        let gaps: Vec<_> = maps.gaps_above(high).collect();
        assert_eq!(
            gaps,
            [
                (high, 0x7f00_0000_0000),
                (0x7f00_0010_0000, 0x7f00_0020_0000)
            ]
        );
    }

    #[test]
    fn a_heap_too_high_for_the_headroom_moves_the_window_below_the_image() {
        let (text, brk) = layout(GIB - 0x10_0000);
        let maps = Maps::parse(&text, 0x5555_0000_1234).expect("parses");
        let (low, high) = maps.window(brk, 0x40_0000).expect("a window");
        assert_eq!((low, high), (0x5555_0000_0000 - 2 * GIB, 0x5555_0000_0000));
        // Between the image and the heap (the break's random offset), and the room above the
        // break (for the time of the dlopen).
        let gaps: Vec<_> = maps.gaps_above(high).take(2).collect();
        assert_eq!(
            gaps,
            [(0x5555_0010_0000, brk - 0x1000), (brk, 0x7f00_0000_0000)]
        );
    }

    /// The kernel looks for a 2 MiB-aligned place for a mapping of 2 MiB or more: a window with
    /// room for the library and no more sends it to the next gap down (seen: about one load in
    /// 40 landed just below such a window), so such a window is not taken.
    #[test]
    fn a_window_only_as_big_as_the_library_is_not_taken() {
        let len = 0x40_0000;
        let (text, brk) = layout(GIB - 0x10_0000 - len);
        let maps = Maps::parse(&text, 0x5555_0000_1234).expect("parses");
        let (low, high) = maps.window(brk, len).expect("a window");
        assert_eq!((low, high), (0x5555_0000_0000 - 2 * GIB, 0x5555_0000_0000));
    }

    #[test]
    fn no_window_when_nothing_fits() {
        // A non-PIE executable low in memory, with a huge heap.
        let text = "400000-600000 r-xp 00000000 fe:00 42 /host\n\
                    600000-50600000 rw-p 00000000 00:00 0 [heap]\n\
                    7ffff0000000-7ffff0021000 rw-p 00000000 00:00 0 [stack]\n";
        let maps = Maps::parse(text, 0x40_1000).expect("parses");
        assert!(maps.window(0x5060_0000, 0x40_0000).is_err());
    }

    #[test]
    fn unexpected_maps_are_refused() {
        // No stack, code outside every mapping, unsorted or malformed lines.
        let no_stack = "400000-600000 r-xp 00000000 fe:00 42 /host\n";
        assert!(Maps::parse(no_stack, 0x40_1000).is_none());
        let (text, _) = layout(0x10_0000);
        assert!(Maps::parse(&text, 0x1000).is_none());
        let unsorted = "7ffff0000000-7ffff0021000 rw-p 00000000 00:00 0 [stack]\n\
                        400000-600000 r-xp 00000000 fe:00 42 /host\n";
        assert!(Maps::parse(unsorted, 0x40_1000).is_none());
        assert!(Maps::parse("garbage\n", 0x40_1000).is_none());
    }

    /// Whether the `len` bytes at `at` are free (maps them there, then unmaps them).
    fn is_free(at: usize, len: usize) -> bool {
        let flags = libc::MAP_PRIVATE
            | libc::MAP_ANONYMOUS
            | libc::MAP_NORESERVE
            | libc::MAP_FIXED_NOREPLACE;
        // SAFETY: MAP_FIXED_NOREPLACE replaces nothing; what it maps is unmapped at once.
        unsafe {
            let p = libc::mmap(at as *mut libc::c_void, len, libc::PROT_NONE, flags, -1, 0);
            if p != libc::MAP_FAILED {
                libc::munmap(p, len);
            }
            p as usize == at
        }
    }

    #[test]
    fn a_child_forked_by_another_thread_during_a_placement_unmaps_its_reservations() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        use std::sync::mpsc::channel;
        let len = 1 << 20;
        let (reserved, ready) = channel();
        let (finish, done) = channel::<()>();
        let placer = std::thread::spawn(move || {
            assert!(BUSY
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok());
            PLACING.set(true);
            let mut placement = Placement { count: 0 };
            let at = map_anywhere(len).expect("a free place");
            placement.add(at, len).expect("reserved");
            reserved.send(at).expect("send");
            done.recv().expect("told to finish");
            drop(placement);
        });
        let at = ready.recv().expect("reserved");
        assert!(!is_free(at, len), "reserved in the parent");
        // SAFETY: the child runs only `in_child`, `mmap`/`munmap` and `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            in_child();
            let ok = is_free(at, len) && !BUSY.load(Ordering::Acquire);
            // SAFETY: ends the child at once, running nothing of the parent's.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child still had the reservation ({status:#x})"
        );
        assert!(
            !is_free(at, len),
            "the parent's reservation is its placer's"
        );
        finish.send(()).expect("send");
        placer.join().expect("placer");
        assert!(!BUSY.load(Ordering::Acquire));
        assert!(RESERVED
            .iter()
            .all(|slot| slot.len.load(Ordering::Acquire) == 0));
    }

    #[test]
    fn a_fork_from_the_placing_thread_leaves_its_reservations_to_it() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(BUSY
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok());
        PLACING.set(true);
        let mut placement = Placement { count: 0 };
        let len = 1 << 20;
        let at = map_anywhere(len).expect("a free place");
        placement.add(at, len).expect("reserved");
        // What a child forked from inside the dlopen runs: the placement goes on there.
        in_child();
        assert!(!is_free(at, len), "still reserved");
        assert!(BUSY.load(Ordering::Acquire));
        drop(placement);
        assert!(!BUSY.load(Ordering::Acquire));
        assert!(!PLACING.get());
    }
}
