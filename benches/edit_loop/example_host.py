#!/usr/bin/env python3
"""Save -> new code serving with the HTTP example itself, as a user runs it (issue 17).

The harness (`cargo run -p hotmod-edit-loop`) rebuilds a copy of the module crate in a
workspace of its own, so cargo builds the module alone. A user's `cargo run --example
http_server -- --rebuild` differs: the host's package is in the module's workspace, so the
rebuild selects it too and cargo relinks the host's executable after the module. This script
times that case:

1. `cargo build --example http_server` at the workspace root (as `cargo run` does);
2. starts `target/debug/examples/http_server --port 0 --quiet --rebuild` in the workspace root
   (where `cargo run` would start it);
3. after 2 untimed warm-up edits, makes N edits to `examples/handler/src/lib.rs` (the
   greeting's text), notes the time just before each write, and polls `GET /hello` every 2 ms
   until the body has the new text; between edits it waits until cargo has exited (no `cargo`
   child of the host left), so every edit starts from an idle build, as a user's does;
4. restores the file however the script ends (exit, exception, Ctrl-C, SIGTERM). It refuses to
   start if the file has changes of its own (`git diff`), so it never overwrites work.

    python3 benches/edit_loop/example_host.py [N]      # N timed edits, default 10

p50 is the nearest-rank median, p99 the maximum of the N samples.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "examples", "handler", "src", "lib.rs")
LINE = 'format!("Hello, {name}!\\n")'
GENEROUS = 600.0


def cargo_children(pid):
    """Whether a `cargo` process runs under `pid` (the host)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid and name == "cargo":
            return True
    return False


def wait(what, condition, every=0.002):
    deadline = time.monotonic() + GENEROUS
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if subprocess.run(["git", "diff", "--quiet", "--", SOURCE], cwd=ROOT).returncode != 0:
        raise SystemExit(f"{SOURCE} has changes of its own; commit or stash them first")
    original = open(SOURCE).read()
    if LINE not in original:
        raise SystemExit(f"{SOURCE} no longer contains {LINE}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    subprocess.run(["cargo", "build", "-q", "--example", "http_server"], cwd=ROOT, check=True)
    host = subprocess.Popen(
        [os.path.join(ROOT, "target", "debug", "examples", "http_server"),
         "--port", "0", "--quiet", "--rebuild"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(l.rstrip() for l in host.stdout),
                     daemon=True).start()
    try:
        port = []

        def listening():
            for line in lines:
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    port.append(m.group(1))
                    return True
            return False

        wait("the server", listening, 0.05)
        url = f"http://127.0.0.1:{port[0]}/hello?name=e2e"
        print(f"load average before: {open('/proc/loadavg').read().strip()}")
        samples = []
        for i in range(n + 2):
            word = f"Edit{i}x{time.monotonic_ns() % 100000}"
            edited = original.replace(LINE, f'format!("{word}, {{name}}!\\n")')
            start = time.monotonic()
            with open(SOURCE, "w") as f:
                f.write(edited)

            def served():
                try:
                    return word in urllib.request.urlopen(url, timeout=5).read().decode()
                except OSError:
                    return False

            wait("the new text", served)
            took = (time.monotonic() - start) * 1000
            built = [l for l in lines if "built handler" in l]
            label = "warm-up" if i < 2 else "edit   "
            print(f"{label} {i + 1:2}: save -> serving {took:7.1f} ms ({built[-1] if built else ''})")
            if i >= 2:
                samples.append(took)
            wait("cargo to exit", lambda: not cargo_children(host.pid), 0.02)
        samples.sort()
        p50 = samples[(len(samples) + 1) // 2 - 1]
        print(f"load average after: {open('/proc/loadavg').read().strip()}")
        print(f"RESULT http_server example host: save -> serving over {n} edits: "
              f"p50 {p50:.1f} ms, p99 {samples[-1]:.1f} ms (nearest rank; max), "
              f"min {samples[0]:.1f} ms")
    finally:
        with open(SOURCE, "w") as f:
            f.write(original)
        host.kill()
        host.wait()


if __name__ == "__main__":
    main()
