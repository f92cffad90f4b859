"""Headless Chromium for the browser check (``tests/test_browser.py``): find it, or install it.

    python -m camlib.browser ensure     # install Debian's chromium when missing (root + apt only)
    python -m camlib.browser where      # print the executable, or why there is none

``make test`` runs ``ensure`` first and ignores its outcome: without Chromium the browser test skips
and says how to get it. ``ensure`` installs only when all hold: no Chromium yet, running as root,
``apt-get`` exists, and ``CAMLIB_NO_APT`` is unset. It never raises and always exits 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

__all__ = ["CHROMIUM_FLAGS", "HOW_TO_GET", "chromium_path", "ensure_chromium"]

#: Debian's chromium and the usual alternatives, in order of preference.
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
#: Flags for a headless run on a closed network (without the background-networking ones Chromium
#: waits on connections that never come) and in containers (root: no sandbox; a small /dev/shm).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
HOW_TO_GET = (
    "install Debian's chromium (`sudo apt-get install --no-install-recommends chromium`, or run "
    "`make test` as root, which does it), or point CAMLIB_CHROMIUM at a Chromium/Chrome executable"
)


def chromium_path() -> str | None:
    """The Chromium executable to use: ``$CAMLIB_CHROMIUM``, else the first of :data:`CANDIDATES`."""
    env = os.environ.get("CAMLIB_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    return next((c for c in CANDIDATES if os.access(c, os.X_OK)), None)


def _apt(*args: str, timeout: float) -> bool:
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", *args],
            env=env,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"camlib.tools.browser: apt-get {args[0]} failed: {exc}", file=sys.stderr)
        return False
    if done.returncode:
        print(
            f"camlib.tools.browser: apt-get {args[0]} exited {done.returncode}: {done.stderr.strip()[-400:]}",
            file=sys.stderr,
        )
    return done.returncode == 0


def _has_candidate() -> bool:
    """Whether apt's package lists know a chromium to install (fresh containers have no lists)."""
    try:
        out = subprocess.run(
            ["apt-cache", "policy", "chromium"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Candidate:" in out and "Candidate: (none)" not in out


def ensure_chromium(timeout: float = 900) -> str | None:
    """Return a Chromium executable, installing Debian's ``chromium`` with apt when allowed; never raises.

    Why it did not install is printed (to stderr), not raised: the caller decides whether a missing
    browser is an error (``make test``: no, the test skips).
    """
    found = chromium_path()
    if found:
        return found
    reasons = [
        why
        for cond, why in [
            (os.environ.get("CAMLIB_NO_APT"), "CAMLIB_NO_APT is set"),
            (not hasattr(os, "geteuid") or os.geteuid() != 0, "not running as root"),
            (shutil.which("apt-get") is None, "no apt-get on this system"),
        ]
        if cond
    ]
    if reasons:
        print(
            f"camlib.tools.browser: no Chromium and not installing it ({'; '.join(reasons)}); to get it: {HOW_TO_GET}",
            file=sys.stderr,
        )
        return None
    t0 = time.time()
    install = ("install", "-y", "-q", "--no-install-recommends", "chromium")
    if not _has_candidate():
        _apt("update", "-q", timeout=timeout)
    if not _apt(*install, timeout=timeout) and _apt("update", "-q", timeout=timeout):
        _apt(*install, timeout=timeout)  # the lists were stale (404s): refreshed, try once more
    found = chromium_path()
    print(
        f"camlib.tools.browser: apt-get install chromium {'succeeded' if found else 'did not give a Chromium'} "
        f"in {time.time() - t0:.0f} s",
        file=sys.stderr,
    )
    return found


def main(argv: list[str] | None = None) -> int:
    cmd = (argv if argv is not None else sys.argv[1:]) or ["where"]
    path = ensure_chromium() if cmd[0] == "ensure" else chromium_path()
    print(path or f"no Chromium: {HOW_TO_GET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
