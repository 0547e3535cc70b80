"""Real label statistics that ship with the package, so a fresh clone has real data to look at.

Only one file: the MS-COCO 2014 training set's label co-occurrence counts (80 labels, 82,081
images; about 25 KB; CC BY 4.0, see ``files/ATTRIBUTION.md`` beside this module). Read it with
:meth:`workbench.method.cooccurrence.CooccurrenceCounts.load_json`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["coco2014_counts_path", "FILES"]

#: The folder of the bundled files.
FILES = Path(__file__).resolve().parent / "files"


def coco2014_counts_path() -> Path:
    """The bundled MS-COCO 2014 train co-occurrence counts (JSON layout of :class:`CooccurrenceCounts`)."""
    return FILES / "coco2014_train.json"
