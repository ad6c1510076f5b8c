//! The process-wide barrier of the pinning protocol (`membarrier(2)` on Linux), checked from
//! outside hotmod: whether the process is registered is the kernel's answer, not hotmod's word.
//! Registration lasts for the life of a process, so each case runs in a child process of its own.

mod support;

use hello_fixture::hello;

const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;

fn membarrier(cmd: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    }
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

/// A process registers the barrier before `main`, when its hot modules enrol: every plain call
/// announces a view whose reader side is a compiler fence only once the process is registered.
/// So one that only ever stages generations and applies them (a game loop's way) is registered
/// too; before, only an immediate load registered it, and every plain call of such a process
/// took the fenced slow path.
#[test]
fn the_barrier_is_registered_before_main_and_staged_generations_use_it() {
    if !support::is_child() {
        return in_child("the_barrier_is_registered_before_main_and_staged_generations_use_it");
    }
    if !expedited_supported() {
        println!("child: done (this kernel has no private expedited membarrier: nothing to check)");
        return;
    }
    assert!(
        registered(),
        "a process with hot modules is registered before its first call"
    );
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

/// Installs a seccomp filter that makes every later `membarrier` fail with `EPERM`, on every
/// thread of the process.
fn make_membarrier_fail() {
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    const SECCOMP_FILTER_FLAG_TSYNC: libc::c_uint = 1;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // Load the system call number (`seccomp_data.nr`, offset 0).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        // membarrier? Then the next instruction, else skip it.
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_membarrier as u32,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl/seccomp calls; `program` and `filter` outlive them (the kernel copies
    // the filter).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                SECCOMP_FILTER_FLAG_TSYNC,
                &program as *const libc::sock_fprog,
            ),
            0,
            "install the seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// If the barrier fails once readers rely on it (they only use compiler fences then), no
/// generation may be unloaded on the strength of a hazard scan alone: it stays loaded and
/// serving whoever still runs it.
#[test]
fn a_failed_barrier_retires_nothing() {
    if !support::is_child() {
        return in_child("a_failed_barrier_retires_nothing");
    }
    if !expedited_supported() {
        println!("child: done (this kernel has no private expedited membarrier: nothing to check)");
        return;
    }
    let module = hello::module();
    let v1 = module.load(support::library("v1")).expect("v1 loads");
    assert!(registered());
    let mapped = support::Footprint::mapped_copies_of(support::library("v1"));
    assert_eq!(mapped.len(), 1);

    // Resolved (and built, if need be) before the filter: cargo is a child of this process.
    let v2_path = support::library("v2");
    make_membarrier_fail();
    assert!(!registered(), "membarrier now fails");
    let v2 = module.load(v2_path).expect("v2 loads");
    assert_eq!(hello::version(), 2);
    assert!(
        module.live_generations().contains(&v1),
        "v1 was retired although the barrier failed: {:?}",
        module.live_generations()
    );
    assert_eq!(
        support::Footprint::mapped_copies_of(support::library("v1")),
        mapped,
        "v1's library stays mapped"
    );
    assert_eq!(module.generation(), v2);
    println!("child: done");
}
