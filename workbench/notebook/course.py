"""The notebooks as a workshop course: exercises with hidden answers, and the student copy without them.

Conventions (checked by :func:`course_problems`, which the tests run on every notebook):

- the first code cell holds every parameter and is tagged ``parameters`` (papermill's convention);
- the header (first markdown cell) gives the title, a one-line description, the paper
  (arXiv 1607.05691), "Notebook N of M", the prerequisites, the learning goals and the
  measured time;
- at least three exercises at the end: a markdown cell tagged ``exercise``, then a code cell
  tagged ``answer`` whose source is hidden (``metadata.jupyter.source_hidden``) and whose
  answer is computed, not asserted in prose.

:func:`write_student_copy` removes the answers (an empty code cell takes each one's place) and
every output: ``make student`` writes ``results/student/NN_name.ipynb`` for every notebook.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from workbench._io import atomic_write_text

__all__ = ["ANSWER_TAG", "EXERCISE_TAG", "PARAMETERS_TAG", "HEADER_FIELDS", "course_problems", "student_copy",
           "write_student_copies"]

ANSWER_TAG = "answer"
EXERCISE_TAG = "exercise"
PARAMETERS_TAG = "parameters"
#: What every header says (matched case-insensitively in the first markdown cell).
HEADER_FIELDS = ("arxiv.org/abs/1607.05691", "notebook ", "prerequisites", "learning goals", "time on a 2-core")
#: The cell that replaces an answer in the student copy.
YOUR_ANSWER = "# Your answer here.\n"
#: Sentences of the teacher's notebook that point at hidden answer cells, and what the student copy says instead
#: (the copy has no answers: it says where they are).
ANSWER_POINTERS = (
    (re.compile(r"Each answer is computed in a hidden cell\."),
     "The answers are in the teacher's copy of this notebook ({name} in the repository's notebooks/ folder)."),
    (re.compile(r"\*The answer is in the hidden cell below[^*]*\*"),
     "*The answer is in the teacher's copy ({name}, the hidden cell after this question); try first.*"),
)


def _read(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _tags(cell: dict) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def course_problems(path: str | Path) -> list[str]:
    """What a notebook lacks as a course notebook (empty when nothing)."""
    notebook = _read(path)
    cells = notebook["cells"]
    problems = []
    markdown = [cell for cell in cells if cell["cell_type"] == "markdown"]
    header = "".join(markdown[0]["source"]).lower() if markdown else ""
    problems += [f"the header does not mention {field!r}" for field in HEADER_FIELDS if field not in header]
    if not header.startswith("# "):
        problems.append("the header does not start with a title")
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    if not code or PARAMETERS_TAG not in _tags(code[0]):
        problems.append("the first code cell is not tagged 'parameters'")
    exercises = 0
    for position, cell in enumerate(cells):
        if EXERCISE_TAG in _tags(cell):
            answer = cells[position + 1] if position + 1 < len(cells) else None
            if answer is None or ANSWER_TAG not in _tags(answer) or answer["cell_type"] != "code":
                problems.append(f"exercise at cell {position} has no answer cell after it")
            elif not answer.get("metadata", {}).get("jupyter", {}).get("source_hidden"):
                problems.append(f"the answer at cell {position + 1} is not hidden")
            elif "print(" not in "".join(answer["source"]) and "plot" not in "".join(answer["source"]):
                problems.append(f"the answer at cell {position + 1} computes nothing it shows")
            else:
                exercises += 1
    if exercises < 3:
        problems.append(f"{exercises} exercise(s) with a hidden computed answer; a course notebook has at least 3")
    return problems


def student_copy(notebook: dict, *, name: str = "the notebook") -> dict:
    """The notebook without answers (each replaced by an empty code cell) and without any output.

    Sentences that point at a hidden answer cell say instead where the answers are: the
    teacher's copy, ``name`` (the notebook's file name).
    """
    cells = []
    for cell in notebook["cells"]:
        cell = json.loads(json.dumps(cell))
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"])
            for pattern, replacement in ANSWER_POINTERS:
                text = pattern.sub(replacement.format(name=name), text)
            cell["source"] = text
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
            if ANSWER_TAG in _tags(cell):
                cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                        "source": [YOUR_ANSWER]}
                if "id" in notebook["cells"][0]:
                    cell["id"] = f"your-answer-{len(cells)}"
        cells.append(cell)
    return {**notebook, "cells": cells}


def write_student_copies(notebook_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """``out_dir/NN_name.ipynb`` for every numbered notebook of ``notebook_dir``: no answers, no outputs."""
    notebook_dir, out_dir = Path(notebook_dir), Path(out_dir)
    written = []
    for path in sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb")):
        target = out_dir / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(student_copy(_read(path), name=path.name), indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    if not written:
        raise FileNotFoundError(f"No numbered notebooks (NN_name.ipynb) in {notebook_dir}.")
    return written


def main(argv=None) -> int:
    """``python -m workbench.notebook.course [NOTEBOOK_DIR] [OUT_DIR]``: what ``make student`` runs."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    notebook_dir = argv[0] if argv else "notebooks"
    out_dir = argv[1] if len(argv) > 1 else "results/student"
    for path in write_student_copies(notebook_dir, out_dir):
        print(f"wrote {path} (no answers, no outputs)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
