//! The artifact watcher never loads a partly written file, however the writer goes about it:
//! a writer that sets the final size first and writes the ELF header first (so that the checks
//! of a complete library pass long before the last byte), a second writer that closes the file
//! while the first still writes, and a hard link made to a file still being written. Each ends
//! in exactly one load, of the complete file, and no `Rejected` event. (A writer that writes in
//! place without setting the size first: `tests/live_reload.rs`
//! `a_slow_in_place_writer_is_loaded_once_complete_and_never_half_written`.)
//!
//! The writers pause between chunks — their pace, not a wait for the watcher — and each pause is
//! well under the watcher's 2 s quiet period. After the header is in place the writer watches
//! the events for a while ([`LOOK`]): a watcher that loads the partial file has time to show it
//! (a `Rejected`, or a `Loaded` of garbage), and one that does not costs the test only that.

mod support;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use hello_fixture::hello;
use hotmod::{Event, Events};

/// Generous: a busy 2-core machine may take long, but a missing event still fails the test.
const EVENT_TIMEOUT: Duration = support::EVENT_TIMEOUT;
/// The writer's pause after each chunk.
const PAUSE: Duration = Duration::from_millis(20);
/// How long the writer stops with its partial file in place, watching for a load that must not
/// come.
const LOOK: Duration = Duration::from_millis(300);
/// The first chunk: the ELF header and the program headers, everything the checks of a complete
/// library read besides the size.
const HEADER: usize = 4096;
/// Chunks after the header.
const CHUNKS: usize = 16;

/// v2's bytes, whose headers lie within the first chunk: once that chunk is written at the
/// final size, the file passes every check of a complete library.
fn v2_bytes() -> Vec<u8> {
    let bytes = fs::read(support::library("v2")).expect("read v2");
    assert_eq!(&bytes[..4], b"\x7fELF");
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    let program_headers_end = u64_at(32) + u16_at(54) * u16_at(56);
    assert!(
        program_headers_end <= HEADER as u64,
        "v2's program headers end at {program_headers_end}, past the first chunk"
    );
    bytes
}

/// Opens `artifact` for writing (creating it), sets its final size, and writes the first chunk
/// (the headers), flushed and synced.
fn create_at_final_size(artifact: &Path, bytes: &[u8]) -> File {
    let mut file = File::create(artifact).expect("create the artifact");
    file.set_len(bytes.len() as u64)
        .expect("set the final size");
    file.write_all(&bytes[..HEADER]).expect("write the headers");
    file.flush().expect("flush");
    file.sync_data().expect("sync");
    file
}

/// Writes the rest of `bytes` after the headers, in order, in slow chunks, each flushed and
/// synced.
fn write_the_rest(file: &mut File, bytes: &[u8]) {
    for chunk in bytes[HEADER..].chunks(bytes.len() / CHUNKS + 1) {
        file.write_all(chunk).expect("write a chunk");
        file.flush().expect("flush");
        file.sync_data().expect("sync");
        std::thread::sleep(PAUSE);
    }
}

fn refused_or_loaded(event: &Event) -> bool {
    matches!(event, Event::Rejected { .. } | Event::Loaded { .. })
}

/// The writer's look at the events while its partial file is in place: nothing may be loaded
/// or refused.
fn nothing_happens_meanwhile(events: &Events, what: &str) {
    if let Some(event) = events.wait_for(LOOK, refused_or_loaded) {
        panic!("{what}: the watcher acted on a partly written file: {event}");
    }
}

/// After the writer is done: exactly one load, of the complete file, and no `Rejected`.
fn loaded_once_complete(events: &Events, artifact: &Path, bytes: &[u8], before: u64) {
    let mut until_loaded = Vec::new();
    events
        .wait_for(EVENT_TIMEOUT, |event| {
            until_loaded.push(event.clone());
            matches!(event, Event::Loaded { .. })
        })
        .unwrap_or_else(|| panic!("no load within {EVENT_TIMEOUT:?}: {until_loaded:?}"));
    assert!(
        !until_loaded
            .iter()
            .any(|e| matches!(e, Event::Rejected { .. })),
        "a partly written file was reported: {until_loaded:?}"
    );
    // Publish the same bytes again: the watcher reports them unchanged, and since events arrive
    // in order, everything it did for the writer has been seen by then.
    let copy = artifact.with_extension("same.tmp");
    fs::write(&copy, bytes).expect("write copy");
    fs::rename(&copy, artifact).expect("rename over");
    let mut seen = Vec::new();
    events
        .wait_for(EVENT_TIMEOUT, |event| {
            seen.push(event.clone());
            matches!(event, Event::Unchanged { .. })
        })
        .unwrap_or_else(|| panic!("no unchanged event within {EVENT_TIMEOUT:?}: {seen:?}"));
    assert!(
        !seen.iter().any(refused_or_loaded),
        "unexpected events after the load: {seen:?}"
    );
    assert_eq!(
        hello::module().generation(),
        before + 1,
        "loaded exactly once"
    );
    assert_eq!(hello::version(), 2, "the complete file");
}

/// Size first, header first: the partial file passes the checks of a complete library from the
/// first chunk on. Only the writer's close tells the watcher it is done.
#[test]
fn a_writer_that_sets_the_final_size_first_is_loaded_once_complete() {
    let _serial = support::serial();
    let dir = support::TempDir::new("final-size");
    let artifact = support::watch_hello_from_v1(dir.path());
    let events = hello::module().subscribe();
    let before = hello::module().generation();
    let bytes = v2_bytes();

    let mut file = create_at_final_size(&artifact, &bytes);
    nothing_happens_meanwhile(&events, "headers written at the final size");
    write_the_rest(&mut file, &bytes);
    drop(file);

    loaded_once_complete(&events, &artifact, &bytes, before);
    hello::module().unwatch();
}

/// A second writer opens the file and closes it while the first is still at work: a close after
/// writing, but not the end of the writing. The file is loaded only once no one has it open for
/// writing.
#[test]
fn a_file_still_open_for_writing_is_not_loaded_when_another_writer_closes_it() {
    let _serial = support::serial();
    let dir = support::TempDir::new("second-writer");
    let artifact = support::watch_hello_from_v1(dir.path());
    let events = hello::module().subscribe();
    let before = hello::module().generation();
    let bytes = v2_bytes();

    let mut file = create_at_final_size(&artifact, &bytes);
    let other = OpenOptions::new()
        .write(true)
        .open(&artifact)
        .expect("open it a second time");
    drop(other);
    nothing_happens_meanwhile(&events, "a second writer closed it");
    write_the_rest(&mut file, &bytes);
    drop(file);

    loaded_once_complete(&events, &artifact, &bytes, before);
    hello::module().unwatch();
}

/// A hard link made to the watched name while the file is still being written under its other
/// name (where the watcher sees no close): it is loaded once that writer is done, found by the
/// watcher's second look, and never before.
#[test]
fn a_link_to_a_file_still_being_written_is_loaded_once_its_writer_is_done() {
    let _serial = support::serial();
    let dir = support::TempDir::new("linked-early");
    let artifact = support::watch_hello_from_v1(dir.path());
    let events = hello::module().subscribe();
    let before = hello::module().generation();
    let bytes = v2_bytes();
    let deps = dir.path().join("deps");
    fs::create_dir_all(&deps).expect("create deps");
    let written = deps.join(format!("{}-linked", support::hello_artifact_name()));

    let mut file = create_at_final_size(&written, &bytes);
    fs::hard_link(&written, &artifact).expect("link the final name");
    nothing_happens_meanwhile(&events, "linked while still written");
    write_the_rest(&mut file, &bytes);
    drop(file);

    loaded_once_complete(&events, &artifact, &bytes, before);
    hello::module().unwatch();
}
