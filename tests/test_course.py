"""The notebooks as a course: headers, a parameters cell, exercises with hidden computed answers, the student copy."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.notebook.course import ANSWER_TAG, YOUR_ANSWER, course_problems, student_copy, write_student_copies

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_every_notebook_is_a_course_notebook(path):
    """Header fields, a ``parameters`` first code cell, at least three exercises with hidden computed answers."""
    assert course_problems(path) == []


def test_headers_count_the_notebooks_there_are():
    for number, path in enumerate(NOTEBOOKS, start=1):
        header = "".join(json.loads(path.read_text())["cells"][0]["source"])
        assert f"Notebook {number} of {len(NOTEBOOKS)}" in header, path.name


def test_course_problems_finds_what_is_missing(tmp_path):
    notebook = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["Some text"]},
        {"cell_type": "code", "metadata": {}, "source": ["x = 1"], "outputs": [], "execution_count": None},
        {"cell_type": "markdown", "metadata": {"tags": ["exercise"]}, "source": ["### Exercise"]},
        {"cell_type": "code", "metadata": {"tags": [ANSWER_TAG]}, "source": ["print(x)"], "outputs": [],
         "execution_count": None},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "01_bad.ipynb"
    path.write_text(json.dumps(notebook))
    problems = course_problems(path)
    assert "the header does not start with a title" in problems
    assert "the first code cell is not tagged 'parameters'" in problems
    assert "the answer at cell 3 is not hidden" in problems
    assert any("0 exercise(s)" in problem for problem in problems)


def test_the_student_copy_has_no_outputs_and_no_answers(tmp_path):
    written = write_student_copies(NOTEBOOKS[0].parent, tmp_path / "student")
    assert [path.name for path in written] == [path.name for path in NOTEBOOKS]
    for original, copy in zip(NOTEBOOKS, written):
        source = json.loads(original.read_text())
        student = json.loads(copy.read_text())
        answers = [cell for cell in source["cells"] if ANSWER_TAG in cell.get("metadata", {}).get("tags", [])]
        assert len(answers) >= 3
        assert len(student["cells"]) == len(source["cells"])
        assert not any(ANSWER_TAG in cell.get("metadata", {}).get("tags", []) for cell in student["cells"])
        assert all(cell.get("outputs", []) == [] and cell.get("execution_count") is None
                   for cell in student["cells"] if cell["cell_type"] == "code")
        assert sum("".join(cell["source"]) == YOUR_ANSWER for cell in student["cells"]) == len(answers)
        text = "".join("".join(cell["source"]) for cell in student["cells"] if cell["cell_type"] == "markdown")
        assert "hidden cell below" not in text and "computed in a hidden cell" not in text, "the copy has no hidden cells"
        assert f"teacher's copy ({original.name}" in text, "the copy says where the answers are"
        for answer in answers:  # no answer's code survives
            assert "".join(answer["source"]) not in {"".join(cell["source"]) for cell in student["cells"]}
        import nbformat

        nbformat.validate(nbformat.reads(copy.read_text(), as_version=4))


def test_student_copy_of_an_executed_notebook_drops_its_outputs():
    executed = {"cells": [{"cell_type": "code", "metadata": {}, "source": ["print(1)"], "execution_count": 3,
                           "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    copy = student_copy(executed)
    assert copy["cells"][0]["outputs"] == [] and copy["cells"][0]["execution_count"] is None
    assert executed["cells"][0]["outputs"], "the original is left as it was"


def test_make_student_writes_the_copies(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "workbench.notebook.course", str(NOTEBOOKS[0].parent),
                                str(tmp_path / "student")], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert len(list((tmp_path / "student").glob("*.ipynb"))) == len(NOTEBOOKS)
