"""Interactive apps (ipywidgets 8) built from injected callables, so tests drive them without a browser.

* :class:`ClassifyApp` — upload images, see each one beside its ranked labels drawn as
  similarity bars, switch between the top N labels and a similarity threshold, store
  the results. A file that cannot be classified (not an image, truncated, too large,
  a decompression bomb, or any error of the classifier) shows one message for that
  file; the app carries on. :meth:`ClassifyApp.for_run` wires it to a trained run and
  its SQLite store.
* :class:`LabelExplorer` — the label-space explorer on an interactive WebGL map; it lives in
  :mod:`workbench.apps.explorer` (imported from here on first use, so the upload app does
  not load jupyter-scatter).

``ClassifyApp`` is an ``ipywidgets.VBox`` subclass: display it as the last expression of a
cell (or in Voilà). All user-facing text is HTML-escaped (file names come from users).
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import ipywidgets as widgets
import numpy as np

from workbench import _checks

__all__ = ["ClassifyApp", "LabelExplorer", "similarity_bars_html", "image_thumbnail"]

_BAR_COLOUR = "#1f77b4"
_NEGATIVE_COLOUR = "#d62728"


def _escape(text) -> str:
    return html.escape(str(text), quote=True)


def _message_of(error: BaseException) -> str:
    """One line for a user: the exception's first line (its type name when empty)."""
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    if not isinstance(error, ValueError):
        text = f"{type(error).__name__}: {text}"
    return text


def _png_of_pixels(pixels) -> bytes | None:
    """PNG bytes of an ``(H, W, 3)`` uint8 array, or None."""
    if pixels is None:
        return None
    from PIL import Image

    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        return None
    buffer = io.BytesIO()
    Image.fromarray(array, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def image_thumbnail(content: bytes, *, size: int = 256) -> bytes:
    """A PNG thumbnail (longest side ``size``, aspect kept) of image bytes, decoded safely.

    Decoding goes through :func:`workbench.data.images.load_image` (size, pixel and format
    limits), so a hostile upload is refused here as it is by the classifier.
    """
    from PIL import Image

    from workbench.data.images import load_image

    picture = Image.fromarray(load_image(content, size=None))
    picture.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def similarity_bars_html(labels: Sequence[tuple[str, float]], *, width_px: int = 220) -> str:
    """Ranked ``(label, similarity)`` pairs as an HTML table of bars.

    A bar's length is the similarity clipped to ``[0, 1]`` (negative values get a red
    marker and their number); names are escaped.
    """
    if not labels:
        return '<div class="workbench-no-labels"><i>No label reaches the threshold.</i></div>'
    rows = []
    for rank, (name, value) in enumerate(labels, start=1):
        value = float(value)
        fraction = min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.0
        colour = _BAR_COLOUR if value >= 0 else _NEGATIVE_COLOUR
        rows.append(
            '<tr class="workbench-label-row">'
            f'<td style="text-align:right;padding-right:4px;color:#666">{rank}.</td>'
            f'<td class="workbench-label" style="padding-right:8px;white-space:nowrap">{_escape(name)}</td>'
            f'<td><div style="width:{width_px}px;height:12px;background:#eee;border-radius:2px">'
            f'<div class="workbench-bar" style="width:{100 * fraction:.1f}%;min-width:{2 if value < 0 else 0}px;'
            f'height:100%;background:{colour};border-radius:2px"></div></div></td>'
            f'<td class="workbench-similarity" style="padding-left:6px;font-family:monospace">{value:.3f}</td>'
            "</tr>"
        )
    return '<table class="workbench-labels" style="border-collapse:collapse">' + "".join(rows) + "</table>"


# ---------------------------------------------------------------------------------
# classification app
# ---------------------------------------------------------------------------------
@dataclass
class _Upload:
    """One uploaded file, its result (or error) and whether that result is stored."""

    name: str
    content: bytes | None
    result: object | None = None
    error: str | None = None
    stored: bool = False
    preview: bytes | None = None


class ClassifyApp(widgets.VBox):
    """Upload images and see their ranked labels.

    Parameters
    ----------
    classify : callable
        ``classify(content: bytes, name: str, *, top=None, threshold=None)`` returning
        a result with ``labels`` (``(name, similarity)`` pairs, best first), ``error``
        (None or a sentence) and optionally ``pixels`` (the decoded image, for the
        preview) — a :class:`workbench.apps.classify.ClassificationResult`, as from
        :meth:`workbench.apps.classify.Classifier.classify_bytes`. Exceptions it raises are
        shown for that file.
    store : callable, optional
        ``store(results: list) -> object`` saving classification results (for example
        :meth:`workbench.apps.store.ResultStore.add_classifications` with a run id). Without
        it there is no store button.
    thumbnail : callable, optional
        ``thumbnail(content: bytes) -> PNG bytes`` for the preview of a classified
        image (default :func:`image_thumbnail`); when it fails or is None the preview
        shows the result's ``pixels`` (the image the model saw).
    top : int
        Initial number of labels in top-N mode.
    max_top : int
        Largest N on the slider.
    threshold : float
        Initial similarity threshold in threshold mode.
    threshold_range : (float, float)
        Slider range of the threshold (cosine similarities lie in [-1, 1]).
    max_upload_bytes : int
        Larger uploads are refused with a message (before ``classify`` is called).
    preview_px : int
        Displayed width and height of each preview.
    title : str
        Heading of the app.
    decoders : sequence of str, optional
        Decoder names offered in a drop-down (for example ``("cosine", "greedy",
        "nnls")``); choosing one calls ``set_decoder(name)`` and re-ranks every upload.
    set_decoder : callable, optional
        ``set_decoder(name)``; required with ``decoders``.
    auto_threshold : callable, optional
        ``auto_threshold() -> float``: the calibrated threshold of the decoder in use
        (raising ``ValueError`` when there is none). With it a button moves the
        threshold slider there.
    """

    def __init__(
        self,
        *,
        classify: Callable,
        store: Callable | None = None,
        thumbnail: Callable | None = image_thumbnail,
        top: int = 5,
        max_top: int = 20,
        threshold: float = 0.5,
        threshold_range: tuple[float, float] = (-1.0, 1.0),
        max_upload_bytes: int | None = None,
        preview_px: int = 128,
        title: str = "Classify images",
        decoders: Sequence[str] | None = None,
        set_decoder: Callable | None = None,
        auto_threshold: Callable | None = None,
    ):
        if not callable(classify):
            raise ValueError("classify must be a callable (content: bytes, name: str, *, top, threshold) -> result.")
        if store is not None and not callable(store):
            raise ValueError("store must be a callable (results) -> object, or None.")
        if decoders is not None and not callable(set_decoder):
            raise ValueError("decoders need set_decoder, a callable (name) -> None.")
        if auto_threshold is not None and not callable(auto_threshold):
            raise ValueError("auto_threshold must be a callable () -> float, or None.")
        max_top = _checks.integer(max_top, "max_top")
        top = _checks.integer(top, "top", maximum=max_top)
        low, high = (float(v) for v in threshold_range)
        if not low < high or not low <= float(threshold) <= high:
            raise ValueError(f"threshold {threshold!r} must lie inside threshold_range {threshold_range!r} (low < high).")
        if max_upload_bytes is None:
            from workbench.data.images import DEFAULT_MAX_BYTES

            max_upload_bytes = DEFAULT_MAX_BYTES
        self._classify = classify
        self._store = store
        self._thumbnail = thumbnail
        self.max_upload_bytes = int(max_upload_bytes)
        self.preview_px = int(preview_px)
        self.uploads: list[_Upload] = []

        self.upload = widgets.FileUpload(accept="image/*", multiple=True, description="Upload images", button_style="primary")
        self.mode = widgets.ToggleButtons(
            options=[("top N", "top"), ("threshold", "threshold")], value="top", style={"button_width": "90px"},
            tooltips=["the N most similar labels", "every label at least this similar"],
        )
        self.top_slider = widgets.IntSlider(value=top, min=1, max=max_top, description="N", continuous_update=False)
        self.threshold_slider = widgets.FloatSlider(
            value=float(threshold), min=low, max=high, step=0.01, description="similarity ≥", continuous_update=False,
            readout_format=".2f", style={"description_width": "initial"},
        )
        self.threshold_slider.layout.display = "none"
        self._set_decoder = set_decoder
        self._auto_threshold = auto_threshold
        self.decoder = widgets.Dropdown(options=list(decoders or ["cosine"]), description="decoder",
                                        layout=widgets.Layout(width="180px"), style={"description_width": "initial"})
        self.decoder.layout.display = None if decoders else "none"
        self.auto_button = widgets.Button(description="calibrated threshold", icon="bullseye",
                                          tooltip="the threshold 'workbench calibrate' fitted for this decoder")
        self.auto_button.layout.display = None if auto_threshold is not None else "none"
        self.store_button = widgets.Button(description="Store results", icon="database", disabled=True)
        self.store_button.layout.display = None if store is not None else "none"
        self.clear_button = widgets.Button(description="Clear", icon="trash", disabled=True)
        self.status = widgets.HTML(value="<i>Upload one or more images.</i>")
        self.status.add_class("workbench-status")
        self.results_box = widgets.VBox()
        self.results_box.add_class("workbench-results")

        self.upload.observe(self._on_upload, names="value")
        self.mode.observe(self._on_setting, names="value")
        self.top_slider.observe(self._on_setting, names="value")
        self.threshold_slider.observe(self._on_setting, names="value")
        self.decoder.observe(self._on_decoder, names="value")
        self.auto_button.on_click(self._on_auto_threshold)
        self.store_button.on_click(self._on_store)
        self.clear_button.on_click(self._on_clear)

        super().__init__(
            children=[
                widgets.HTML(f"<h3>{_escape(title)}</h3>"),
                widgets.HBox([self.upload, self.store_button, self.clear_button]),
                widgets.HBox([self.mode, self.top_slider, self.threshold_slider, self.decoder, self.auto_button]),
                self.status,
                self.results_box,
            ]
        )
        self.add_class("workbench-classify-app")

    @classmethod
    def for_run(cls, run_dir: str | Path, *, store_path: str | Path | None = None, use_store: bool = True, **options) -> "ClassifyApp":
        """An app classifying with a trained run (loads Keras) and storing into its SQLite store.

        Parameters
        ----------
        run_dir : path-like
            Written by ``workbench train``.
        store_path : path-like, optional
            Default ``RUN_DIR/results.sqlite``.
        use_store : bool
            False: no store button.
        **options
            Passed to :class:`ClassifyApp`.
        """
        from workbench.apps.classify import Classifier
        from workbench.method.decoders import DECODERS

        classifier = Classifier.from_run_dir(run_dir)
        if classifier.run.embedding is not None:
            options.setdefault("decoders", DECODERS)
            options.setdefault("set_decoder", lambda name: setattr(classifier, "decoder", name))
        options.setdefault("auto_threshold", lambda: classifier.resolve_threshold("auto"))
        store_results = None
        if use_store:
            from workbench.apps.store import ResultStore, default_store_path

            result_store = ResultStore(store_path if store_path is not None else default_store_path(run_dir))
            store_results = lambda results: result_store.add_classifications(  # noqa: E731
                results, run_id=result_store.add_trained_run(classifier.run, path=run_dir)
            )
        app = cls(classify=classifier.classify_bytes, store=store_results, **options)
        app.classifier = classifier
        return app

    # -- state ------------------------------------------------------------------------
    @property
    def setting(self) -> dict:
        """``{"top": N}`` or ``{"threshold": T}``, as passed to ``classify``."""
        if self.mode.value == "top":
            return {"top": int(self.top_slider.value)}
        return {"threshold": float(self.threshold_slider.value)}

    @property
    def results(self) -> list:
        """Results of the images classified so far (errors excluded), in upload order."""
        return [item.result for item in self.uploads if item.error is None and item.result is not None]

    @property
    def errors(self) -> list[tuple[str, str]]:
        """``(file name, message)`` of every upload that could not be classified."""
        return [(item.name, item.error) for item in self.uploads if item.error is not None]

    # -- events -----------------------------------------------------------------------
    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        try:
            files = list(files)
            self.status.value = f"<i>Classifying {len(files)} file(s)…</i>"
            for item in files:
                self.uploads.append(self._classify_upload(item))
            failed = sum(1 for item in self.uploads[-len(files) :] if item.error is not None)
            self.status.value = _escape(
                f"Classified {len(files) - failed} of {len(files)} file(s)"
                + (f"; {failed} could not be classified (see below)." if failed else ".")
            )
        except Exception as error:  # noqa: BLE001 -- the app must survive any upload
            self.status.value = f'<span style="color:#b00">{_escape("Upload failed: " + _message_of(error))}</span>'
        finally:
            self._render()
            try:
                self.upload.value = ()  # the same file can be uploaded again
            except Exception:  # noqa: BLE001
                pass

    def _classify_upload(self, item) -> _Upload:
        """Classify one ``FileUpload`` entry; every failure becomes a message for that file."""
        try:
            name = str(item.get("name") or "upload") if isinstance(item, dict) else "upload"
        except Exception:  # noqa: BLE001
            name = "upload"
        try:
            content = item["content"]
            size = int(item.get("size") or 0)
            nbytes = getattr(content, "nbytes", None) or len(content)
            if max(size, nbytes) > self.max_upload_bytes:
                return _Upload(
                    name,
                    None,
                    error=f"The file is {max(size, nbytes) / 2**20:.1f} MB, above the "
                    f"{self.max_upload_bytes / 2**20:.0f} MB limit; upload a smaller image.",
                )
            data = bytes(content)
            if not data:
                return _Upload(name, None, error="The file is empty (0 bytes).")
        except Exception as error:  # noqa: BLE001
            return _Upload(name, None, error=f"The upload could not be read ({_message_of(error)}).")
        upload = _Upload(name, data)
        self._run_classify(upload)
        if upload.error is None and self._thumbnail is not None:
            try:
                upload.preview = self._thumbnail(data)
            except Exception:  # noqa: BLE001 -- the preview falls back to the model's input
                upload.preview = None
        return upload

    def _run_classify(self, upload: _Upload) -> None:
        try:
            result = self._classify(upload.content, upload.name, **self.setting)
        except Exception as error:  # noqa: BLE001 -- shown for this file, the app carries on
            upload.result, upload.error = None, _message_of(error)
            return
        error = getattr(result, "error", None)
        upload.result, upload.error, upload.stored = (None, str(error), False) if error else (result, None, False)

    def _on_setting(self, change) -> None:
        try:
            top_mode = self.mode.value == "top"
            self.top_slider.layout.display = None if top_mode else "none"
            self.threshold_slider.layout.display = "none" if top_mode else None
            for upload in self.uploads:
                if upload.content is not None and upload.error is None:  # a bad file stays bad
                    self._run_classify(upload)
            if self.uploads:
                self.status.value = _escape(f"Re-ranked {len(self.results)} image(s) with {self._setting_text()}.")
        except Exception as error:  # noqa: BLE001
            self.status.value = f'<span style="color:#b00">{_escape(_message_of(error))}</span>'
        finally:
            self._render()

    def _on_decoder(self, change) -> None:
        try:
            self._set_decoder(change["new"])
        except Exception as error:  # noqa: BLE001 -- the app carries on with the decoder it had
            self.status.value = f'<span style="color:#b00">{_escape(_message_of(error))}</span>'
            return
        self._on_setting(change)

    def _on_auto_threshold(self, _button=None) -> None:
        try:
            value = float(self._auto_threshold())
        except Exception as error:  # noqa: BLE001 -- an uncalibrated run says so, the app carries on
            self.status.value = f'<span style="color:#b00">{_escape(_message_of(error))}</span>'
            return
        slider = self.threshold_slider
        slider.value = min(max(value, slider.min), slider.max)
        self.mode.value = "threshold"  # re-ranks through _on_setting
        self._on_setting({"new": value})

    def _on_store(self, _button=None) -> None:
        pending = [item for item in self.uploads if item.error is None and item.result is not None and not item.stored]
        if self._store is None or not pending:
            self.status.value = "<i>Nothing new to store.</i>"
            return
        try:
            self._store([item.result for item in pending])
        except Exception as error:  # noqa: BLE001
            self.status.value = f'<span style="color:#b00">{_escape("Storing failed: " + _message_of(error))}</span>'
            return
        for item in pending:
            item.stored = True
        self.status.value = _escape(f"Stored {len(pending)} classification(s).")
        self._render()

    def _on_clear(self, _button=None) -> None:
        self.uploads.clear()
        self.status.value = "<i>Upload one or more images.</i>"
        self._render()

    # -- drawing ----------------------------------------------------------------------
    def _setting_text(self) -> str:
        setting = self.setting
        text = f"the top {setting['top']} labels" if "top" in setting else f"score ≥ {setting['threshold']:.2f}"
        return text if self.decoder.value == "cosine" else f"{text} ({self.decoder.value} decoder)"

    def _render(self) -> None:
        rows = []
        for upload in self.uploads:
            try:
                rows.append(self._row(upload))
            except Exception as error:  # noqa: BLE001
                rows.append(self._error_row(upload.name, f"Could not draw the result ({_message_of(error)})."))
        self.results_box.children = rows
        self.store_button.disabled = self._store is None or not any(
            item.error is None and item.result is not None and not item.stored for item in self.uploads
        )
        self.clear_button.disabled = not self.uploads

    def _error_row(self, name: str, message: str):
        row = widgets.HTML(
            '<div style="color:#b00;padding:4px 0">'
            f'⚠ <b class="workbench-file-name">{_escape(name)}</b>: '
            f'<span class="workbench-error-message">{_escape(message)}</span></div>'
        )
        row.add_class("workbench-upload-error")
        return row

    def _row(self, upload: _Upload):
        if upload.error is not None:
            return self._error_row(upload.name, upload.error)
        result = upload.result
        png = upload.preview if upload.preview is not None else _png_of_pixels(getattr(result, "pixels", None))
        size = f"{self.preview_px}px"
        if png is not None:
            preview = widgets.Image(value=png, format="png", width=self.preview_px, height=self.preview_px)
            preview.layout = widgets.Layout(width=size, height=size, object_fit="contain")
        else:
            preview = widgets.HTML(f'<div style="width:{size};height:{size};background:#f3f3f3"></div>')
        preview.add_class("workbench-preview")
        sha = getattr(result, "sha256", None)
        stored = " · stored" if upload.stored else ""
        heading = (
            f'<div><b class="workbench-file-name">{_escape(upload.name)}</b>'
            f'<span style="color:#888;font-size:85%"> {_escape((sha or "")[:12])}{stored} · {_escape(self._setting_text())}</span></div>'
        )
        labels = widgets.HTML(heading + similarity_bars_html(list(getattr(result, "labels", ()))))
        row = widgets.HBox([preview, labels], layout=widgets.Layout(align_items="flex-start", margin="6px 0"))
        row.add_class("workbench-result")
        return row


def __getattr__(name: str):
    """``LabelExplorer`` lives in :mod:`workbench.apps.explorer` (jupyter-scatter is imported only when it is used)."""
    if name == "LabelExplorer":
        from workbench.apps.explorer import LabelExplorer

        return LabelExplorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
