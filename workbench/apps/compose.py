"""The "compose a scene" app: pick labels, get a generated scene of exactly them, see how the run classifies it.

For hands-on work in a workshop: a learner chooses the labels (say a fork and a knife, or two
labels that never meet), the emoji-scenes generator draws them
(:meth:`workbench.data.scenes.SceneGenerator.compose`), and the trained run ranks its labels
for that image. Built from injected callables, as the other apps
(:mod:`workbench.apps.widgets`), so tests drive it without a browser; any error (no label
picked, too many, a failing classifier) becomes one message in the app, which carries on.
"""

from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as widgets
import numpy as np

from workbench import _checks
from workbench.apps.widgets import _escape, _message_of, _png_of_pixels, similarity_bars_html

__all__ = ["ComposeSceneApp"]


class ComposeSceneApp(widgets.VBox):
    """Pick labels → a generated scene of exactly them → the run's ranked labels.

    Parameters
    ----------
    labels : sequence of str
        The labels a learner can pick (the scenes' vocabulary).
    compose : callable
        ``compose(labels, random_state) -> ndarray (S, S, 3) uint8``, for example
        ``SceneGenerator(...).compose``.
    classify : callable
        ``classify(image) -> [(label, score), …]`` ranked, for example a run's top labels.
    top : int, default=5
        Labels shown.
    picked : sequence of str, optional
        Labels picked at the start.
    """

    def __init__(self, *, labels: Sequence[str], compose: Callable, classify: Callable, top: int = 5,
                 picked: Sequence[str] = (), title: str = "Compose a scene"):
        self.labels = [str(label) for label in labels]
        self.compose_function = compose
        self.classify_function = classify
        self.top = _checks.integer(top, "top")
        self.picker = widgets.SelectMultiple(options=self.labels, value=tuple(p for p in picked if p in self.labels),
                                             rows=10, description="labels")
        self.seed = widgets.BoundedIntText(value=0, min=0, max=2**31 - 1, description="layout seed")
        self.button = widgets.Button(description="Compose", button_style="primary", icon="paint-brush")
        self.image = widgets.Image(format="png", width=192, height=192)
        self.ranked = widgets.HTML()
        self.message = widgets.HTML()
        self.last_labels: list[tuple[str, float]] = []
        self.button.on_click(lambda _button: self.compose_now())
        super().__init__([widgets.HTML(f"<h3>{_escape(title)}</h3>"), widgets.HBox([self.picker, self.seed]),
                          self.button, self.message, widgets.HBox([self.image, self.ranked])])

    def compose_now(self, labels: Sequence[str] | None = None, *, seed: int | None = None) -> list[tuple[str, float]]:
        """Compose and classify (the button calls this); returns the ranked labels, ``[]`` after an error."""
        if labels is not None:
            self.picker.value = tuple(label for label in labels if label in self.labels)
        if seed is not None:
            self.seed.value = int(seed)
        picked = list(self.picker.value)
        try:
            image = np.asarray(self.compose_function(picked, random_state=int(self.seed.value)))
            ranked = list(self.classify_function(image))[: self.top]
        except Exception as error:  # noqa: BLE001 - the app never dies; the learner reads what went wrong
            self.message.value = f'<div class="workbench-error" style="color:#b00">{_escape(_message_of(error))}</div>'
            self.last_labels = []
            self.ranked.value = ""
            return []
        self.image.value = _png_of_pixels(image) or b""
        marked = [(name + (" ✓" if name in picked else ""), score) for name, score in ranked]
        self.ranked.value = similarity_bars_html(marked)
        hits = sum(name in picked for name, _ in ranked)
        self.message.value = (f"<div>{hits} of the {len(picked)} picked label(s) among the top {self.top} "
                              "(✓ marks them).</div>")
        self.last_labels = ranked
        return ranked
