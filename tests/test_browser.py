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


def _skip_without_a_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}; install Debian's chromium package to run the browser test")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    pytest.importorskip("voila", reason="voila is not installed")


@contextlib.contextmanager
def serve_notebook(folder: Path, name: str, source: str, *, environment: dict | None = None, timeout: float = 60):
    """Voilà serving a one-cell notebook (``source``) from ``folder`` on 127.0.0.1: yields ``(url, log path)``.

    The notebook, Jupyter's config and runtime folders and Voilà's log go under ``folder``;
    Voilà and its kernels are stopped afterwards. Also used by ``benchmarks/bench_labelmap.py``.
    """
    page_dir = folder / "page"
    page_dir.mkdir(parents=True, exist_ok=True)
    (page_dir / name).write_text(json.dumps(_notebook(source)))
    jupyter_dir = folder / "jupyter"
    for part in ("config", "runtime"):
        (jupyter_dir / part).mkdir(parents=True, exist_ok=True)
    port = _free_port()
    environment = dict(
        os.environ,
        **(environment or {}),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPOSITORY_ROOT), os.environ.get("PYTHONPATH")])),
        JUPYTER_CONFIG_DIR=str(jupyter_dir / "config"),
        JUPYTER_RUNTIME_DIR=str(jupyter_dir / "runtime"),
        TF_CPP_MIN_LOG_LEVEL="3",
        MPLBACKEND="Agg",
    )
    log = folder / "voila.log"
    with log.open("w") as log_stream:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "voila", name,
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
        _wait_for_port(port, process, log, timeout=timeout)
        yield f"http://127.0.0.1:{port}/", log
    finally:
        _stop(process)


@pytest.fixture()
def voila_page(tmp_path):
    """URL of a Voilà page showing ``ClassifyApp.for_run`` on a freshly trained run; stops Voilà afterwards."""
    _skip_without_a_browser()
    pytest.importorskip("keras")
    from tests.conftest import train_tiny_run

    run_dir = train_tiny_run(tmp_path / "run")
    environment = {"WORKBENCH_RUN_DIR": str(run_dir), "WORKBENCH_STORE": str(tmp_path / "results.sqlite")}
    with serve_notebook(tmp_path, "classify_app.ipynb", PAGE_SOURCE, environment=environment) as (url, log):
        yield url, tmp_path, log


def _upload(page, path: Path) -> None:
    """ipywidgets 8's FileUpload has no <input type=file> in the DOM: click it and answer the file chooser."""
    with page.expect_file_chooser(timeout=10_000) as chooser:
        page.locator(".widget-upload").click()
    chooser.value.set_files(str(path))


def test_classify_app_in_a_real_browser(voila_page):
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    from tests.conftest import COLOURS, colour_bands

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


# ---------------------------------------------------------------------------------
# the label explorer at the paper's scale: 17,000 labels on a WebGL map
# ---------------------------------------------------------------------------------
#: WebGL in headless Chromium without a GPU: ANGLE on SwiftShader (software Vulkan).
WEBGL_ARGS = [arg for arg in CHROMIUM_ARGS if arg != "--disable-gpu"] + [
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
]
EXPLORER_LABELS = 17_000

EXPLORER_SOURCE = """\
import os, time
began = time.perf_counter()
from workbench.apps.explorer import LabelExplorer
from workbench.method.embedding import LabelEmbedding

explorer = LabelExplorer(embedding=LabelEmbedding.load(os.environ["WORKBENCH_EMBEDDING"]),
                         map_method=os.environ.get("WORKBENCH_MAP_METHOD", "pca"), cache=os.environ.get("WORKBENCH_MAP_CACHE", True))
explorer.selection_path.value = os.environ["WORKBENCH_SELECTION_CSV"]
print(f"explorer ready in {time.perf_counter() - began:.2f} s")
explorer
"""


def drawn_share(png: bytes) -> float:
    """Share of a screenshot's pixels that are not its background (its most common colour): 0 for a blank canvas."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    return float(np.mean(np.abs(pixels - background).sum(axis=1) > 30))


def wait_until_drawn(page, locator, *, timeout: float, share: float = 0.02) -> float:
    """Poll screenshots of ``locator`` until at least ``share`` of its pixels are drawn; the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if locator.count() and drawn_share(locator.screenshot()) >= share:
            return time.monotonic() - began
        page.wait_for_timeout(100)
    raise AssertionError(f"the map stayed blank for {timeout:.0f} s")


def clustered_label_embedding(path: Path, *, num_labels: int = EXPLORER_LABELS, dim: int = 16, clusters: int = 40):
    """A saved embedding of ``num_labels`` labels in ``clusters`` Gaussian clusters (groups ``g<cluster>``), with counts."""
    import numpy as np

    from workbench.data.labels import Vocabulary
    from workbench.method.embedding import LabelEmbedding

    rng = np.random.default_rng(0)
    cluster = np.arange(num_labels) % clusters
    vectors = (rng.normal(size=(clusters, dim)) * 3)[cluster] + rng.normal(size=(num_labels, dim))
    vocabulary = Vocabulary(tuple(f"label-{i:05d}" for i in range(num_labels)), groups=tuple(f"g{c}" for c in cluster))
    LabelEmbedding(vocabulary=vocabulary, vectors=vectors.astype(np.float32), eigenvalues=np.ones(dim),
                   label_counts=rng.integers(1, 5000, size=num_labels), settings={}).save(path)
    return path


@pytest.mark.slow
def test_label_explorer_at_17000_labels_in_a_real_browser(tmp_path):
    """Voilà shows the explorer for 17,000 labels; the WebGL canvas is drawn; search selects; a lasso comes back as a frame."""
    _skip_without_a_browser()
    import pandas as pd
    from playwright.sync_api import expect, sync_playwright

    embedding = clustered_label_embedding(tmp_path / "embedding")
    selection_csv = tmp_path / "selection.csv"
    environment = {"WORKBENCH_EMBEDDING": str(embedding), "WORKBENCH_SELECTION_CSV": str(selection_csv)}
    with serve_notebook(tmp_path, "explorer.ipynb", EXPLORER_SOURCE, environment=environment) as (url, log), \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=WEBGL_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page_errors = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(url, timeout=60_000)
            try:
                page.wait_for_selector(".workbench-label-explorer canvas", timeout=90_000)
            except Exception:
                page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
                raise AssertionError(f"the explorer did not appear; Voilà log:\n{log.read_text()[-3000:]}") from None
            canvas = page.locator(".workbench-label-explorer canvas").first
            wait_until_drawn(page, canvas, timeout=30)  # WebGL through SwiftShader: not blank
            before = canvas.screenshot()
            expect(page.locator(".workbench-selection")).to_contain_text("Nothing selected")

            # search: type a name, the map selects it (with its neighbours) and zooms there
            search = page.locator(".workbench-search input")
            search.fill("label-01234")
            search.press("Enter")
            expect(page.locator(".workbench-chosen")).to_have_text("label-01234", timeout=20_000)
            expect(page.locator(".workbench-selection")).to_contain_text("label-01234 and its neighbours", timeout=20_000)
            page.wait_for_timeout(1500)  # the zoom animation (500 ms)
            after = canvas.screenshot()
            assert after != before and drawn_share(after) > 0.005

            # a lasso around the middle of the map (the toolbar's lasso mode), read back in Python as a frame
            page.get_by_title("Reset View").first.click()
            page.wait_for_timeout(1200)
            page.get_by_title("Activate lasso selection").first.click()
            box = canvas.bounding_box()
            cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, min(box["width"], box["height"]) / 8
            page.mouse.move(cx - r, cy - r)
            page.mouse.down()
            corners = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r)]
            for step in range(36):  # most of a square, a point every 25 ms (the lasso keeps points 10 ms and 3 px apart);
                side, t = divmod(step, 10)  # it closes itself, and a release where it began would be a click on one point
                (x0, y0), (x1, y1) = corners[side], corners[side + 1]
                page.mouse.move(x0 + (x1 - x0) * t / 10, y0 + (y1 - y0) * t / 10)
                page.wait_for_timeout(25)
            page.mouse.up()
            selected = page.locator(".workbench-selection")
            expect(selected).to_contain_text("Selected:", timeout=20_000)
            expect(selected).not_to_contain_text("neighbours")
            count = int(selected.inner_text().split("Selected:")[1].split()[0])
            assert 20 <= count < EXPLORER_LABELS  # a region of the map, not a click on one point
            page.get_by_role("button", name="Export selection").click()
            expect(page.locator(".workbench-status")).to_contain_text(f"Wrote {count} selected points", timeout=20_000)
            page.screenshot(path=str(tmp_path / "label_explorer.png"), full_page=True)
            if os.environ.get("WORKBENCH_SCREENSHOT_DIR"):
                target = Path(os.environ["WORKBENCH_SCREENSHOT_DIR"]) / "label_explorer.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(tmp_path / "label_explorer.png", target)
            assert not page_errors, page_errors
        finally:
            browser.close()

    frame = pd.read_csv(selection_csv, keep_default_na=False)
    assert list(frame.columns) == ["label", "group", "count", "x", "y"] and len(frame) == count
    assert frame.label.str.fullmatch(r"label-\d{5}").all() and frame.label.is_unique
    # a lasso's points lie together: their box is a small part of the map's
    from workbench.apps.labelmap import label_coordinates
    from workbench.method.embedding import LabelEmbedding

    everything = label_coordinates(LabelEmbedding.load(embedding).vectors, method="pca")
    extent = everything.max(axis=0) - everything.min(axis=0)
    spread = frame[["x", "y"]].to_numpy().max(axis=0) - frame[["x", "y"]].to_numpy().min(axis=0)
    assert (spread < 0.6 * extent).all(), (spread, extent)
