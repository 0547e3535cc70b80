"""docs/study.md and README.md's study summary, written from the published study's data in docs/study/.

    .venv/bin/python docs/study/write_study.py                          # rewrite both from docs/study/
    .venv/bin/python docs/study/write_study.py --check                  # exit 1 where either differs from the data's
    .venv/bin/python docs/study/write_study.py --publish results/study  # first copy an experiment's results here

Every number and every claim comes from docs/study/results.csv, comparisons.csv and results.json
(workbench.experiments.study and .report); the rerun's description and time from docs/study/grid.toml.
tests/test_study.py fails when docs/study.md or the README's block differ from what this writes.
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
from workbench.experiments import report, study  # noqa: E402
from workbench.experiments.results import read_results  # noqa: E402

NOTE = ROOT / "docs" / "study.md"
README = ROOT / "README.md"
GRID = HERE / "grid.toml"


def publish(source: Path, folder: Path = HERE) -> None:
    """Copy an experiment's ``results.csv`` and ``comparisons.csv`` into ``folder``, and its ``results.json`` without
    the per-label analyses (the figures are drawn from the experiment folder itself)."""
    results = read_results(source)
    if not results.get("comparisons"):
        raise ValueError(f"{source}/results.json has no comparisons; run 'workbench experiment' on it again first.")
    for name in ("results.csv", "comparisons.csv"):
        shutil.copyfile(source / name, folder / name)
    atomic_write_json(folder / "results.json", {key: value for key, value in results.items() if key != "per_label"})


def texts(folder: Path = HERE) -> dict[Path, str]:
    """What docs/study.md and README.md should hold, from the study in ``folder``."""
    published = study.load_study(folder)
    readme = report.replace_block(README.read_text(encoding="utf-8"), report.readme_summary(published, rerun_grid=GRID))
    return {NOTE: report.study_markdown(published, rerun_grid=GRID), README: readme}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publish", metavar="EXPERIMENT_DIR", type=Path,
                        help="first copy that experiment's results into docs/study/")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file differs")
    options = parser.parse_args(argv)
    if options.publish:
        publish(options.publish)
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
