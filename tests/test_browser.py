"""End to end in a real browser: Voilà serves the classification app, Chromium drives it.

A real run is trained first (:func:`tests.conftest.train_tiny_run`, a few seconds), a
notebook that shows ``ClassifyApp.for_run(run)`` is written to a temporary folder,
Voilà serves it on 127.0.0.1, and Playwright (Debian's ``/usr/bin/chromium``) uploads a
real image, a corrupt file and a second image through the FileUpload button, checking
the ranked labels, the error message and that the page keeps working. The screenshot
goes to the pytest tmp dir and, when ``WORKBENCH_SCREENSHOT_DIR`` is set, to
``$WORKBENCH_SCREENSHOT_DIR/classify_app.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_PHOTO = REPOSITORY_ROOT.parent / "shared" / "data" / "coco128" / "images" / "000000000009.jpg"

PAGE_SOURCE = """\
import os
from workbench.apps.widgets import ClassifyApp

app = ClassifyApp.for_run(os.environ["WORKBENCH_RUN_DIR"], store_path=os.environ["WORKBENCH_STORE"], top=3)
app
"""


def _notebook(source: str) -> dict:
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "app", "metadata": {}, "outputs": [], "source": source}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, *, timeout: float) -> None:
    """Wait until Voilà listens (a GET of its page would already start a kernel)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"Voilà exited with status {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.3)
    raise AssertionError(f"Voilà did not listen on port {port} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop Voilà and its kernels (its own process group), politely then firmly."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # kernels left behind, if any
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


@pytest.fixture()
def voila_page(tmp_path):
    """URL of a Voilà page showing ``ClassifyApp.for_run`` on a freshly trained run; stops Voilà afterwards."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}; install Debian's chromium package to run the browser test")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    pytest.importorskip("voila", reason="voila is not installed")
    pytest.importorskip("keras")
    from tests.conftest import train_tiny_run

    run_dir = train_tiny_run(tmp_path / "run")
    page_dir = tmp_path / "page"
    page_dir.mkdir()
    (page_dir / "classify_app.ipynb").write_text(json.dumps(_notebook(PAGE_SOURCE)))
    jupyter_dir = tmp_path / "jupyter"
    for name in ("config", "runtime"):
        (jupyter_dir / name).mkdir(parents=True)
    port = _free_port()
    environment = dict(
        os.environ,
        WORKBENCH_RUN_DIR=str(run_dir),
        WORKBENCH_STORE=str(tmp_path / "results.sqlite"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPOSITORY_ROOT), os.environ.get("PYTHONPATH")])),
        JUPYTER_CONFIG_DIR=str(jupyter_dir / "config"),
        JUPYTER_RUNTIME_DIR=str(jupyter_dir / "runtime"),
        TF_CPP_MIN_LOG_LEVEL="3",
        MPLBACKEND="Agg",
    )
    log = tmp_path / "voila.log"
    with log.open("w") as log_stream:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "voila", "classify_app.ipynb",
                f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1",
                "--VoilaConfiguration.show_tracebacks=True",
            ],
            cwd=page_dir,
            env=environment,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(port, process, log, timeout=60)
        yield f"http://127.0.0.1:{port}/", tmp_path, log
    finally:
        _stop(process)


def _upload(page, path: Path) -> None:
    """ipywidgets 8's FileUpload has no <input type=file> in the DOM: click it and answer the file chooser."""
    with page.expect_file_chooser(timeout=10_000) as chooser:
        page.locator(".widget-upload").click()
    chooser.value.set_files(str(path))


def test_classify_app_in_a_real_browser(voila_page):
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    helpers = _classify_helpers()
    COLOURS, colour_bands = helpers.COLOURS, helpers.colour_bands
    url, tmp_path, log = voila_page
    images = tmp_path / "uploads"
    images.mkdir()
    photo = images / "photo.jpg"
    if SHARED_PHOTO.is_file():
        shutil.copyfile(SHARED_PHOTO, photo)
    else:
        Image.fromarray(colour_bands("blue", "green", size=96)).save(photo, format="JPEG")
    corrupt = images / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(40))
    bands = images / "yellow-and-black.png"  # a pair the tiny run was trained on
    Image.fromarray(colour_bands("yellow", "black", size=64, seed=11)).save(bands)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page_errors = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(url, timeout=60_000)
            # the kernel imports Keras and loads the model before the app appears
            try:
                page.wait_for_selector(".widget-upload", timeout=90_000)
            except Exception:
                page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
                raise AssertionError(f"the app did not appear; Voilà log:\n{log.read_text()[-3000:]}") from None
            results = page.locator(".workbench-result")
            errors = page.locator(".workbench-upload-error")

            _upload(page, photo)
            expect(results).to_have_count(1, timeout=30_000)
            first = results.nth(0)
            expect(first.locator(".workbench-file-name")).to_have_text("photo.jpg")
            expect(first.locator(".workbench-label-row")).to_have_count(3)
            names = first.locator(".workbench-label").all_inner_texts()
            assert set(names) <= set(COLOURS) and len(set(names)) == 3
            similarities = [float(text) for text in first.locator(".workbench-similarity").all_inner_texts()]
            assert similarities == sorted(similarities, reverse=True) and all(-1 <= s <= 1 for s in similarities)
            expect(first.locator(".workbench-preview img, img.workbench-preview")).to_have_count(1)

            _upload(page, corrupt)
            expect(errors).to_have_count(1, timeout=30_000)
            expect(errors.nth(0)).to_contain_text("corrupt.png")
            message = errors.nth(0).locator(".workbench-error-message").inner_text()
            assert "corrupt" in message or "not an image" in message or "truncated" in message, message

            _upload(page, bands)  # the page keeps working after the bad file
            expect(results).to_have_count(2, timeout=30_000)
            second = results.nth(1)
            expect(second.locator(".workbench-file-name")).to_have_text("yellow-and-black.png")
            expect(second.locator(".workbench-label-row")).to_have_count(3)
            assert set(second.locator(".workbench-label").all_inner_texts()[:2]) == {"yellow", "black"}
            expect(page.locator(".workbench-status")).to_contain_text("Classified 1 of 1")

            page.get_by_role("button", name="Store results").click()
            expect(page.locator(".workbench-status")).to_contain_text("Stored 2 classification(s)", timeout=20_000)

            screenshot = tmp_path / "classify_app.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            if os.environ.get("WORKBENCH_SCREENSHOT_DIR"):
                target = Path(os.environ["WORKBENCH_SCREENSHOT_DIR"]) / "classify_app.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(screenshot, target)
            assert not page_errors, page_errors
        finally:
            browser.close()

    from workbench.apps.store import ResultStore

    store = ResultStore(tmp_path / "results.sqlite")
    assert store.count_classifications() == 2
    assert {entry["image"] for entry in store.images_classified_as(names[0])} >= {"photo.jpg"}
