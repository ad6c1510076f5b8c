//! Where a generation's library is mapped (Linux x86_64, `hotmod/src/os/linux_near.rs`): within
//! 2 GiB of the host's own code, where a call into it costs what a call into the host's own
//! functions costs, rather than terabytes away, where `dlopen` maps libraries by itself. Load
//! after load, and with the program break moved so high that the room above the heap is gone;
//! what was reserved to steer `dlopen` is gone once the load returns; and when nothing can be
//! reserved (an address-space limit) the library loads where `dlopen` puts it.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod support;

use hello_fixture::hello;
use support::Footprint;

/// How far from the host's code a library may be mapped.
const REACH: usize = 2 << 30;

/// Loads run in a row.
const LOADS: usize = 20;

/// An address in this test binary's code.
fn host_code() -> usize {
    host_code as fn() -> usize as usize
}

/// The mappings of `copy` (a shadow copy's path, as `/proc/self/maps` shows it).
fn mappings_of(copy: &str) -> Vec<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter(|line| {
            line.trim_end().ends_with(copy)
                || line.trim_end().ends_with(&format!("{copy} (deleted)"))
        })
        .map(|line| {
            let range = line.split_ascii_whitespace().next().expect("a range");
            let (start, end) = range.split_once('-').expect("start-end");
            let hex = |s: &str| usize::from_str_radix(s, 16).expect("hex");
            (hex(start), hex(end))
        })
        .collect()
}

/// Asserts that the one mapped copy of `library` lies within [`REACH`] of the host's code, and
/// returns its lowest address.
fn assert_near(library: &std::path::Path) -> usize {
    let copies = Footprint::mapped_copies_of(library);
    assert_eq!(copies.len(), 1, "one generation mapped: {copies:?}");
    let copy = copies.first().expect("one copy");
    let ranges = mappings_of(copy);
    assert!(!ranges.is_empty(), "{copy} is mapped");
    let code = host_code();
    for &(start, end) in &ranges {
        for address in [start, end - 1] {
            assert!(
                address.abs_diff(code) < REACH,
                "{copy} is mapped at {start:#x}-{end:#x}, {} MiB from the host's code at {code:#x}",
                address.abs_diff(code) >> 20
            );
        }
    }
    ranges
        .iter()
        .map(|&(start, _)| start)
        .min()
        .expect("a mapping")
}

fn load_v1_near(library: &std::path::Path) -> usize {
    hello::module().load(library).expect("load v1");
    assert_eq!(hello::answer(), 42);
    assert_eq!(hello::greet("near"), "hello near");
    assert_near(library)
}

#[test]
fn each_generation_is_mapped_near_the_host_code_and_nothing_stays_reserved() {
    let _serial = support::serial();
    let library = support::library("v1");
    load_v1_near(library);
    let base = Footprint::now();
    for _ in 0..LOADS {
        load_v1_near(library);
    }
    let after = Footprint::now();
    // A reservation left behind would add terabytes of address space; a library left mapped,
    // four mappings.
    assert!(
        (after.size_kib - base.size_kib).abs() <= 1024,
        "mapped size {} -> {} KiB",
        base.size_kib,
        after.size_kib
    );
    assert!(
        after.mappings - base.mappings <= 2,
        "mappings {} -> {}",
        base.mappings,
        after.mappings
    );
    assert!(
        hello::module().unload_blocked().is_empty(),
        "{:?}",
        hello::module().unload_blocked()
    );
}

/// With the program break moved more than 1 GiB above the executable, the room left above the
/// heap for `brk` to grow into leaves no room within 2 GiB of the code above it: the library
/// goes below the executable, and `malloc` keeps working afterwards. In a child process of its
/// own (the break stays moved).
#[test]
fn a_heap_that_leaves_no_room_above_puts_the_library_below_the_executable() {
    const NAME: &str = "a_heap_that_leaves_no_room_above_puts_the_library_below_the_executable";
    if support::is_child() {
        let library = support::library("v1");
        // SAFETY: moves the break up by 1 GiB of address space, touching none of it; glibc's
        // malloc goes on above the new break.
        let old = unsafe { libc::sbrk(1 << 30) };
        assert_ne!(old as isize, -1, "sbrk");
        let start = load_v1_near(library);
        assert!(start < host_code(), "below the executable: {start:#x}");
        let again = load_v1_near(library);
        assert!(again < host_code(), "below the executable: {again:#x}");
        let boxes: Vec<Box<[u8; 4096]>> = (0..1000).map(|_| Box::new([7u8; 4096])).collect();
        assert!(boxes.iter().all(|b| b[4095] == 7));
        println!("placed below the executable");
        return;
    }
    run_child_saying(NAME, "placed below the executable");
}

/// With an address-space limit (`RLIMIT_AS`) the reservations are refused: the library is
/// loaded where `dlopen` puts it, and works. In a child process of its own (the limit stays).
#[test]
fn an_address_space_limit_falls_back_to_a_plain_dlopen() {
    const NAME: &str = "an_address_space_limit_falls_back_to_a_plain_dlopen";
    if support::is_child() {
        let library = support::library("v1");
        let limit = (Footprint::now().size_kib as u64 + (1 << 20)) * 1024;
        let rlimit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: sets this process's limit from a valid struct.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) }, 0);
        for _ in 0..3 {
            hello::module().load(library).expect("load v1");
            assert_eq!(hello::answer(), 42);
        }
        let copies = Footprint::mapped_copies_of(library);
        let copy = copies.first().expect("one copy");
        let far = mappings_of(copy)
            .iter()
            .all(|&(start, _)| start.abs_diff(host_code()) >= REACH);
        assert!(
            far,
            "{copy} was placed although no reservation could be made"
        );
        println!("loaded where dlopen puts it");
        return;
    }
    run_child_saying(NAME, "loaded where dlopen puts it");
}

/// Runs test `name` in a child process (after building v1 in this one, so the child finds it
/// built) and requires it to succeed and print `marker`.
fn run_child_saying(name: &str, marker: &str) {
    support::library("v1");
    let output = support::run_child(name, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(marker), "{stdout}\n{stderr}");
}
