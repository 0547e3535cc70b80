"""The main job: execute the ordered notebooks, export each to HTML, summarise.

``workbench run`` calls :func:`run_notebooks`. Each notebook runs in a fresh Jupyter
kernel with two environment variables set, which its first code cell reads:

* ``WORKBENCH_PROFILE`` — ``ci`` (tiny, used by the tests), ``workshop`` (the
  default: meaningful results on a laptop CPU in minutes) or ``full`` (GPU-sized);
* ``WORKBENCH_RESULTS`` — the folder where the notebooks read and write their
  artefacts (data set, counts, embedding, runs, comparison, store).

For each notebook the executed copy (``.ipynb``) and an HTML export are written
to ``<out>/notebooks/``, with the kernel process's own log (``NAME.kernel.log``:
TensorFlow's start-up lines and the like, not cell outputs) beside them. A notebook
that fails stops the job with a one-line error naming the notebook and the cell; its partially executed copy is still written
(under a ``.failed.ipynb`` name) so the traceback can be read. Where no kernel runs (the executed
copy opened later, the HTML export) a widget cannot draw itself: an output that offers a static
picture beside its widget (the label explorer, marked ``workbench_static_fallback``) keeps only
the picture (:func:`keep_static_pictures`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench._io import atomic_write_text, read_json

from workbench.notebook.profiles import PROFILE_NAMES

__all__ = ["NotebookRun", "JobResult", "find_notebooks", "run_notebooks", "format_summary", "keep_static_pictures"]

#: The widget's own mimetype in display data, and the metadata key of outputs that also carry a static picture.
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_STATIC_FALLBACK = "workbench_static_fallback"


@dataclass
class NotebookRun:
    """What happened to one notebook."""

    name: str
    seconds: float
    executed_path: Path
    html_path: Path | None
    error: str | None = None


@dataclass
class JobResult:
    """Everything :func:`run_notebooks` produced."""

    profile: str
    results_dir: Path
    notebooks: list[NotebookRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(run.error is None for run in self.notebooks)


def find_notebooks(directory: str | Path) -> list[Path]:
    """The numbered notebooks (``NN_*.ipynb``) of ``directory``, in order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"Notebook folder {directory} not found; run from the repository root or pass --notebooks.")
    notebooks = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb") if p.is_file())
    if not notebooks:
        raise FileNotFoundError(f"No numbered notebooks (NN_name.ipynb) in {directory}.")
    return notebooks


def run_notebooks(
    *,
    notebook_dir: str | Path = "notebooks",
    out_dir: str | Path | None = None,
    profile: str = "workshop",
    only: list[str] | None = None,
    timeout_per_cell: int = 1800,
    html: bool = True,
    progress: bool = True,
    stream=None,
) -> JobResult:
    """Execute the numbered notebooks of ``notebook_dir`` in order.

    Parameters
    ----------
    notebook_dir : path
        Folder holding ``NN_name.ipynb`` notebooks.
    out_dir : path, optional
        Results folder; defaults to ``results/<profile>``. Notebooks write their
        artefacts there, executed notebooks and HTML go to ``out_dir/notebooks``.
    profile : {"ci", "workshop", "full"}
        Size of every notebook's run.
    only : list of str, optional
        Run only notebooks whose file name starts with one of these prefixes (``["01", "02"]``).
    timeout_per_cell : int
        Seconds one cell may run before the job fails.
    html : bool
        Also export each executed notebook to HTML.
    progress : bool
        Show a progress bar per notebook (cells executed).
    stream : file, optional
        Where progress lines go (default ``sys.stderr``).

    Returns
    -------
    JobResult
        One :class:`NotebookRun` per notebook; stops at the first failing notebook.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    if profile not in PROFILE_NAMES:
        raise ValueError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}.")
    stream = stream or sys.stderr
    notebook_dir = Path(notebook_dir).resolve()
    notebooks = find_notebooks(notebook_dir)
    if only:
        notebooks = [p for p in notebooks if any(p.name.startswith(prefix) for prefix in only)]
        if not notebooks:
            raise ValueError(f"No notebook name starts with {', '.join(only)}.")
    results_dir = Path(out_dir or Path("results") / profile).resolve()
    executed_dir = results_dir / "notebooks"
    executed_dir.mkdir(parents=True, exist_ok=True)

    saved_environment = {
        key: os.environ.get(key) for key in ("WORKBENCH_PROFILE", "WORKBENCH_RESULTS", "TF_CPP_MIN_LOG_LEVEL", "MPLBACKEND", "PATH")
    }
    # The kernel spec runs "python" from PATH: make it this environment's Python.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    os.environ["WORKBENCH_PROFILE"] = profile
    os.environ["WORKBENCH_RESULTS"] = str(results_dir)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    job = JobResult(profile=profile, results_dir=results_dir)
    try:
        for position, path in enumerate(notebooks, start=1):
            notebook = nbformat.read(path, as_version=4)
            code_cells = sum(cell.cell_type == "code" for cell in notebook.cells)
            bar = _progress_bar(total=code_cells, description=f"[{position}/{len(notebooks)}] {path.stem}", enabled=progress, stream=stream)
            client = NotebookClient(
                notebook,
                timeout=timeout_per_cell,
                kernel_name="python3",
                resources={"metadata": {"path": str(notebook_dir)}},
                on_cell_executed=lambda **_: bar.update(1),
            )
            started = time.perf_counter()
            error = None
            # The kernel process's own stdout/stderr (TensorFlow's C++ start-up lines, kernel
            # warnings; not cell outputs, which travel over Jupyter's protocol) go to a log file.
            kernel_log_path = executed_dir / f"{path.stem}.kernel.log"
            try:
                with open(kernel_log_path, "w", encoding="utf-8") as kernel_log:
                    client.execute(stdout=kernel_log, stderr=kernel_log)
            except CellExecutionError as failure:
                error = _first_line_of_failure(failure)
            finally:
                bar.close()
            seconds = time.perf_counter() - started
            keep_static_pictures(notebook)
            suffix = ".failed.ipynb" if error else ".ipynb"
            executed_path = executed_dir / f"{path.stem}{suffix}"
            atomic_write_text(executed_path, nbformat.writes(notebook))
            html_path = None
            if html:
                html_path = executed_dir / f"{path.stem}.html"
                atomic_write_text(html_path, _to_html(notebook))
            job.notebooks.append(NotebookRun(path.name, seconds, executed_path, html_path, error))
            print(f"{path.name}: {'FAILED' if error else 'done'} in {seconds:.0f} s", file=stream)
            if error:
                break
    finally:
        for key, value in saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return job


def keep_static_pictures(notebook) -> int:
    """Drop the widget view of every output marked ``workbench_static_fallback`` (it carries a static picture too).

    Without a kernel the widget view is an empty box, or "model not found"; the picture beside
    it shows the same map. Returns the number of outputs changed.
    """
    changed = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", ()):
            data = output.get("data", {})
            if output.get("metadata", {}).get(_STATIC_FALLBACK) and _WIDGET_VIEW in data and len(data) > 1:
                del data[_WIDGET_VIEW]
                changed += 1
    return changed


def format_summary(job: JobResult) -> str:
    """A one-screen summary: where the outputs are, run times, and the MAP table."""
    lines = [f"Profile: {job.profile}", f"Results: {job.results_dir}", ""]
    lines.append("Notebooks (executed copy and HTML in results/…/notebooks):")
    for run in job.notebooks:
        status = f"FAILED: {run.error}" if run.error else "ok"
        lines.append(f"  {run.name:<40} {run.seconds:7.1f} s  {status}")
    results_files = sorted(job.results_dir.glob("**/results.json"))
    if results_files:
        from workbench.experiments.results import comparison_table

        path = results_files[0]
        lines += ["", f"Comparison ({path.relative_to(job.results_dir)}), validation split:"]
        lines += ["  " + line for line in comparison_table(read_json(path)).splitlines()]
    return "\n".join(lines)


def _to_html(notebook) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    return body


def _first_line_of_failure(failure) -> str:
    """The exception line of a failed cell (nbclient's message holds the whole traceback)."""
    name = getattr(failure, "ename", "") or "Error"
    value = (getattr(failure, "evalue", "") or "").strip().splitlines()
    return f"{name}: {value[0] if value else ''}".strip()


class _NoBar:
    def update(self, _):
        pass

    def close(self):
        pass


def _progress_bar(*, total: int, description: str, enabled: bool, stream):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="cell", file=stream, leave=True)
