//! The process-wide barrier of the pinning protocol (`membarrier(2)` on Linux), checked from
//! outside hotmod: whether the process is registered is the kernel's answer, not hotmod's word.
//! Registration lasts for the life of a process, so each case runs in a child process of its own.

mod support;

use hello_fixture::hello;

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint, 0 as libc::c_int) }
}

/// Whether this kernel offers private expedited membarrier (else hotmod fences for real and
/// there is nothing to register).
fn expedited_supported() -> bool {
    let supported = membarrier(MEMBARRIER_CMD_QUERY);
    supported >= 0 && supported & libc::c_long::from(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0
}

/// Whether this process is registered for private expedited membarrier: unregistered, the
/// command fails with `EPERM`.
fn registered() -> bool {
    membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0
}

/// Runs `name` in a child process (after building what it loads: children do not run cargo) and
/// checks that it passed.
fn in_child(name: &str) {
    support::library("v1");
    support::library("v2");
    let output = support::run_child(name, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("child: done"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprint!("{stdout}");
}

/// A process that only ever stages generations and applies them (a game loop's way) registers
/// the barrier too; before, only an immediate load did, and every plain call of such a process
/// took the fenced slow path.
#[test]
fn a_process_that_only_applies_staged_generations_registers_the_barrier() {
    if !support::is_child() {
        return in_child("a_process_that_only_applies_staged_generations_registers_the_barrier");
    }
    if !expedited_supported() {
        println!("child: done (this kernel has no private expedited membarrier: nothing to check)");
        return;
    }
    assert!(!registered(), "a fresh process is not registered");
    let module = hello::module();
    module.set_staged(true);
    let staged = module.load(support::library("v2")).expect("v2 is staged");
    assert_eq!(module.staged_generation(), Some(staged));
    assert_eq!(module.apply_staged(), Some(staged));
    assert_eq!(hello::version(), 2);
    assert!(
        registered(),
        "the process is registered once a staged generation is current"
    );
    println!("child: done");
}
