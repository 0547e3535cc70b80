"""docs/study.md and README.md's study summary, written from the published study's data in docs/study/.

    .venv/bin/python docs/study/write_study.py                          # rewrite both from docs/study/
    .venv/bin/python docs/study/write_study.py --check                  # exit 1 where either differs from the data's
    .venv/bin/python docs/study/write_study.py --publish results/study  # first copy an experiment's results here
    .venv/bin/python docs/study/write_study.py --publish-large results/study-1870  # the C = 1,870 study, into large/

Every number and every claim comes from docs/study/results.csv, comparisons.csv and results.json
(workbench.experiments.study and .report); the rerun's description and time from docs/study/grid.toml.
The C >= 1,500 study (docs/study/grid-1870.toml, two-stage protocol) is a second section of docs/study.md
and one line of the README's block, written from docs/study/large/ (workbench.experiments.publication
publishes it there: its results, AP per frequency bin, ceilings, the run's record; .report_large writes
the text), or saying that it has not been run while that folder does not exist.
tests/test_study.py and tests/test_study_large.py fail when docs/study.md or the README's block differ
from what this writes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from workbench._io import atomic_write_json, atomic_write_text  # noqa: E402
from workbench.experiments import publication, report, report_large, study  # noqa: E402
from workbench.experiments.results import read_results  # noqa: E402

NOTE = ROOT / "docs" / "study.md"
README = ROOT / "README.md"
GRID = HERE / "grid.toml"
LARGE = HERE / "large"
LARGE_GRID = HERE / "grid-1870.toml"
LARGE_LABELS = 1870  # LARGE_GRID's label count, named while the study has not run (tests/test_study_large.py checks it)


def publish(source: Path, folder: Path = HERE) -> None:
    """Copy an experiment's ``results.csv`` and ``comparisons.csv`` into ``folder``, and its ``results.json`` without
    the per-label analyses (the figures are drawn from the experiment folder itself) and with the experiment's record
    (``run``: every invocation of ``workbench experiment`` from ``experiment.json``, their wall-clock seconds summed)."""
    results = read_results(source)
    if not results.get("comparisons"):
        raise ValueError(f"{source}/results.json has no comparisons; run 'workbench experiment' on it again first.")
    record = publication.run_record(source)
    for name in ("results.csv", "comparisons.csv"):
        shutil.copyfile(source / name, folder / name)
    atomic_write_json(folder / "results.json", {**{key: value for key, value in results.items() if key != "per_label"},
                                                "run": {"invocations": record["invocations"], "seconds": record["seconds"]}})


def texts(folder: Path = HERE, large: Path | None = None) -> dict[Path, str]:
    """What docs/study.md and README.md should hold, from the study in ``folder`` and the C >= 1,500 study in ``large``
    (default ``LARGE``; not run yet while it does not exist)."""
    large = LARGE if large is None else large
    published = study.load_study(folder)
    large_study = publication.load_published(large) if large.is_dir() else None
    line = report_large.large_readme_line(large_study, grid_path=LARGE_GRID, labels=LARGE_LABELS)
    readme = report.replace_block(README.read_text(encoding="utf-8"),
                                  report.readme_summary(published, rerun_grid=GRID, extra=[line]))
    note = (report.study_markdown(published, rerun_grid=GRID) + "\n"
            + report_large.large_study_markdown(large_study, grid_path=LARGE_GRID, labels=LARGE_LABELS))
    return {NOTE: note, README: readme}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publish", metavar="EXPERIMENT_DIR", type=Path,
                        help="first copy that experiment's results into docs/study/")
    parser.add_argument("--publish-large", "--publish-1870", metavar="EXPERIMENT_DIR", type=Path,
                        help="first publish that experiment (the C >= 1,500 study) into docs/study/large/")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file differs")
    options = parser.parse_args(argv)
    if options.publish:
        publish(options.publish)
    if options.publish_large:
        publication.publish_study(options.publish_large, LARGE)
    stale = []
    for path, text in texts().items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not options.check:
                atomic_write_text(path, text)
    verb = "differs from its data" if options.check else "rewritten"
    for path in stale:
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {verb}")
    if not stale:
        print("docs/study.md and README.md's study summary are what the data give")
    return 1 if options.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
