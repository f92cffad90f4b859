"""Browser check: `make lab` serves notebook 01, headless Chromium runs it, the explorer answers the slider.

JupyterLab is started through the README's own command (`make lab`, with LAB_DIR/LAB_ARGS pointing it at a
temporary copy of notebook 01 with ``INTERACTIVE = True``, cut after the explorer cell so the training
sections do not run). Playwright drives Debian's chromium (``make test`` installs it when run as root;
never ``playwright install``). The screenshot goes to ``build/browser/notebook01_explorer.png``.
Skipped, saying how to get it, when there is no Chromium or no playwright.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from camlib.tools.browser import CHROMIUM_FLAGS

from .conftest import REPO

NOTEBOOK = REPO / "notebooks" / "01_cam_basics.ipynb"
SCREENSHOT = REPO / "build" / "browser" / "notebook01_explorer.png"
FAILURE = SCREENSHOT.with_name("failure.png")
READOUT = ".camlib-readout"
SLIDER = ".camlib-threshold"


def expected_readouts() -> dict[float, str]:
    """What the explorer in notebook 01 must show for the first photo at thresholds 0.2 and 0.6."""
    from camlib.datasets.photos import load_photos
    from camlib.models import load_efficientnet_lite0
    from camlib.tools.explorer import CAMExplorer, ExplorerState

    ex = CAMExplorer(load_photos(), {"lite0": load_efficientnet_lite0})
    return {t: ex.compute(ExplorerState(ex.state.image, "lite0", threshold=t))["readout"] for t in (0.2, 0.6)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def explorer_notebook(folder: Path) -> Path:
    """Notebook 01 with INTERACTIVE = True (papermill's parameter cell), cut after the explorer cell."""
    import papermill as pm

    out = folder / NOTEBOOK.name
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        prepare_only=True,
        kernel_name="python3",
        progress_bar=False,
        parameters={
            "INTERACTIVE": True,
            "RESULTS_DIR": str(folder / "results"),
            "FIGURES_DIR": str(folder / "figures"),
        },
    )
    nb = nbformat.read(str(out), as_version=4)
    last = max(
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and ".show(interactive=INTERACTIVE)" in c.source
    )
    nb.cells = nb.cells[: last + 1]
    nbformat.write(nb, str(out))
    return out


#: JupyterLab user settings for the run: start the notebook's kernel without asking, no news toasts.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def start_lab(folder: Path, port: int, token: str, log: Path, state: Path) -> subprocess.Popen:
    """`make lab` serving ``folder``, in its own process group (so the whole tree can be stopped).

    Lab's settings, workspaces and runtime files go to ``state``, not to the user's ~/.jupyter.
    """
    for name, values in LAB_SETTINGS.items():
        (state / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (state / "settings" / name).write_text(json.dumps(values))
    env = os.environ | {
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
    }
    args = (
        f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token} "
        "--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"
    )
    if os.geteuid() == 0:  # CI containers run as root; Jupyter refuses that unless told
        args += " --allow-root"
    # -o: do not redo `make setup` here (make test has just done it; a stamp older than pyproject.toml
    # would otherwise reinstall the environment under the running test); GIT_HOOK=: nor install git hooks
    cmd = [
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.camlib-setup",
        "GIT_HOOK=",
        "lab",
        f"LAB_DIR={folder}",
        f"LAB_ARGS={args}",
    ]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for_server(proc: subprocess.Popen, url: str, log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`make lab` exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer at {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen, base: str, token: str) -> None:
    """Shut the kernels down through the REST API (they run in their own sessions), then SIGTERM the
    process group we started (make, jupyter), SIGKILL if it lingers."""
    try:
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=5) as r:
            kernels = json.load(r)
        for k in kernels:
            req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
            urllib.request.urlopen(req, timeout=20).close()
    except OSError:
        pass  # the server is gone already; nothing to shut down through it
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def accept_kernel_dialog(page, wait_ms: int = 3000) -> None:
    """Press "Select" if Lab still asks which kernel to start (older Lab versions ignore the setting)."""
    button = page.locator(".jp-Dialog .jp-mod-accept")
    try:
        button.wait_for(timeout=wait_ms)
    except Exception:  # no dialog: the kernel started by itself
        return
    button.click()


def wait_text(page, selector: str, want: str, timeout_ms: int = 30_000) -> str:
    """Wait until ``selector``'s text is ``want``; fail showing the text it had instead."""
    try:
        page.wait_for_function(
            f"document.querySelector({selector!r})?.innerText.trim() === {want!r}", timeout=timeout_ms
        )
    except Exception:
        got = page.locator(selector).first.inner_text() if page.locator(selector).count() else None
        pytest.fail(f"{selector} shows {got!r}, expected {want!r}")
    return want


def run_all(page) -> None:
    """Run > Run All Cells, through the menu bar as a user would."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def test_ensure_chromium_respects_no_apt(monkeypatch, capsys):
    """Without a browser and with CAMLIB_NO_APT, `make test`'s helper installs nothing and says why."""
    import camlib.tools.browser as browser

    monkeypatch.setenv("CAMLIB_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CAMLIB_NO_APT", "1")
    monkeypatch.setattr(browser.subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
    assert browser.chromium_path() is None
    assert browser.ensure_chromium() is None
    assert browser.main(["ensure"]) == 0
    err = capsys.readouterr().err
    assert "CAMLIB_NO_APT is set" in err and "apt-get install" in err


def test_ensure_chromium_installs_when_allowed(monkeypatch):
    """Root + apt-get + no lists yet: apt-get update, then install; the browser appears afterwards."""
    import camlib.tools.browser as browser

    calls, present = [], []
    monkeypatch.delenv("CAMLIB_NO_APT", raising=False)
    monkeypatch.setattr(browser, "chromium_path", lambda: present[0] if present else None)
    monkeypatch.setattr(browser.os, "geteuid", lambda: 0)
    monkeypatch.setattr(browser.shutil, "which", lambda name: f"/usr/bin/{name}")

    def fake_run(cmd, **kwargs):
        calls.append(cmd[:2])
        if cmd[:2] == ["apt-get", "install"]:
            present.append("/usr/bin/chromium")
        stdout = "chromium:\n  Installed: (none)\n  Candidate: (none)\n" if cmd[0] == "apt-cache" else ""
        return subprocess.CompletedProcess(cmd, 0, stdout, "")

    monkeypatch.setattr(browser.subprocess, "run", fake_run)
    assert browser.ensure_chromium() == "/usr/bin/chromium"
    assert calls == [["apt-cache", "policy"], ["apt-get", "update"], ["apt-get", "install"]]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_notebook01_explorer_in_jupyterlab(tmp_path, chromium_playwright):
    chromium, sync_api = chromium_playwright
    started = time.time()
    expected = expected_readouts()
    served = tmp_path / "lab"
    served.mkdir()
    nb = explorer_notebook(served)
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "lab.log"
    lab = start_lab(served, port, token, log, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(lab, f"{base}/api/status?token={token}", log)
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=chromium,
                headless=True,
                args=list(CHROMIUM_FLAGS),
                viewport={"width": 1400, "height": 1100},
            )
            page = context.new_page()
            try:
                page.goto(f"{base}/lab/tree/{nb.name}?token={token}")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
                accept_kernel_dialog(page)
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
                run_all(page)
                readout = page.locator(READOUT)
                readout.wait_for(timeout=150_000)  # imports, Lite0, four photos
                before = wait_text(page, READOUT, expected[0.2])
                page.locator(f"{SLIDER} .noUi-handle").focus()
                for _ in range(8):  # 0.20 -> 0.60 in steps of 0.05, as a keyboard user would
                    page.keyboard.press("ArrowRight")
                wait_text(page, f"{SLIDER} .widget-readout", "0.60")
                after = wait_text(
                    page, READOUT, expected[0.6]
                )  # recomputed by the kernel from cached features
                widget = page.locator(".jp-OutputArea-output", has=page.locator(READOUT))
                widget.scroll_into_view_if_needed()
                page.wait_for_timeout(500)  # the new overlay image to paint
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                widget.screenshot(path=str(SCREENSHOT))
            except Exception:
                FAILURE.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(FAILURE), full_page=True)
                print(f"browser check failed: page at {FAILURE}; JupyterLab log:\n{log.read_text()[-3000:]}")
                raise
            finally:
                context.close()
    finally:
        stop(lab, base, token)
    print(f"browser check: {before!r} -> {after!r} in {time.time() - started:.0f} s; screenshot {SCREENSHOT}")
    assert before != after, "the threshold moved from 0.2 to 0.6 but the box readout did not change"
    assert SCREENSHOT.stat().st_size > 20_000
