"""Console script ``abide-pipeline``.

* ``abide-pipeline --input-dir D --output-dir O [flags]`` -- the pipeline,
  flag-compatible with the original ``abide-site-adaptation-demo``;
* ``abide-pipeline synth --out DIR --seed N ...`` -- a synthetic dataset;
* ``abide-pipeline report OUTPUT_DIR [--top K]`` -- summarise a run;
* ``abide-pipeline summarise OUTPUT_DIR...`` -- write each run's refit scores
  to ``OUTPUT_DIR/metrics.json`` (what ``envgen sweep collect`` gathers).

The subcommand is the first argument; anything else is the main command.
Bad input gives one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from .data import ATLAS_ROIS, InputError
from .features import FEATURE_KINDS
from .model import CLASSIFIERS, SCORINGS

PROG = "abide-site-adaptation-demo"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG,
        description="Multi-site ABIDE autism classification from rs-fMRI connectivity, "
        "with optional MIDA site adaptation.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--input-dir", type=str, required=True, help="directory holding ABIDE_pcp/ (nilearn layout)")
    p.add_argument("--output-dir", type=str, required=True, help="where outputs go (created if missing)")
    p.add_argument("--atlas", type=str, default="cc200", choices=list(ATLAS_ROIS), help="ROI atlas")
    p.add_argument(
        "--band-pass-filtering", action=argparse.BooleanOptionalAction, default=False, help="band-pass filtered data"
    )
    p.add_argument(
        "--global-signal-regression",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="global-signal-regressed data",
    )
    p.add_argument(
        "--quality-checked", action=argparse.BooleanOptionalAction, default=True, help="keep only subjects passing QC"
    )
    p.add_argument("--classifier", type=str, default="logistic", choices=list(CLASSIFIERS), help="classifier")
    p.add_argument("--mida", action=argparse.BooleanOptionalAction, default=False, help="MIDA site adaptation")
    p.add_argument(
        "--feature-extraction",
        type=str,
        nargs="+",
        default=["pearson"],
        choices=list(FEATURE_KINDS),
        help="connectivity measures, applied in reverse order",
    )
    p.add_argument("--search-strategy", type=str, default="random", choices=["grid", "random"], help="search")
    p.add_argument("--num-search-iterations", type=int, default=10, help="candidates of the random search")
    p.add_argument("--num-solver-iterations", type=int, default=100, help="max_iter of the classifier")
    p.add_argument(
        "--scoring", type=str, nargs="+", default=["accuracy"], choices=list(SCORINGS), help="metrics; first refits"
    )
    p.add_argument("--split", type=str, default="skf", choices=["skf", "lpgo"], help="CV split")
    p.add_argument("--num-folds", type=int, default=5, help="folds (skf) or sites left out (lpgo)")
    p.add_argument("--num-cv-repeats", type=int, default=1, help="repeats of the stratified k-fold")
    p.add_argument("--num-jobs", type=int, default=1, help="parallel jobs of the search")
    p.add_argument("--random-state", type=int, default=None, help="seed of the shared RandomState")
    p.add_argument("--verbose", type=int, default=0, help="verbosity of the search")
    p.add_argument(
        "--write-metrics",
        action="store_true",
        help="also write metrics.json (the refit candidate's scores, as `summarise` does), for envgen sweep collect",
    )
    return p


def build_synth_parser() -> argparse.ArgumentParser:
    from . import synth

    p = OneLineParser(
        prog="abide-pipeline synth",
        description="Write a synthetic ABIDE PCP dataset in the real on-disk layout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", type=str, required=True, help="dataset root (use it as --input-dir)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    p.add_argument(
        "--n-subjects", type=int, default=None, help="QC-passing subjects (default: 871, the QC'd ABIDE size)"
    )
    p.add_argument("--sites", type=str, default=None, help="comma-separated SITE_IDs (default: all 20)")
    p.add_argument(
        "--n-excluded",
        type=int,
        default=synth.DEFAULT_EXCLUDED,
        help="extra rows that fail QC or have no files, to exercise the filters",
    )
    p.add_argument("--atlases", type=str, default="cc200", help="comma-separated atlases to write")
    p.add_argument(
        "--strategies",
        type=str,
        default="nofilt_noglobal",
        help="comma-separated {no}filt_{no}global strategies, or 'all'",
    )
    return p


def build_report_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="abide-pipeline report",
        description="Summarise the candidates of a pipeline run (text, PNG, HTML).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("output_dir", type=str, help="--output-dir of a finished run")
    p.add_argument("--top", type=int, default=5, help="candidates to list")
    return p


def build_summarise_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="abide-pipeline summarise",
        description="Write each run's refit-candidate scores (mean_test_<metric>, std_test_<metric>) "
        "to OUTPUT_DIR/metrics.json, the file envgen sweep collect gathers.",
    )
    p.add_argument("output_dir", nargs="+", type=str, help="--output-dir of a finished run")
    return p


def _fail(prog: str, exc: Exception) -> int:
    message = " ".join(str(exc).split())
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "synth":
        from . import synth

        args = build_synth_parser().parse_args(argv[1:])
        try:
            synth.main(args)
        except InputError as exc:
            return _fail("abide-pipeline synth", exc)
        return 0
    if argv and argv[0] == "report":
        from . import report

        args = build_report_parser().parse_args(argv[1:])
        try:
            report.main(args)
        except InputError as exc:
            return _fail("abide-pipeline report", exc)
        return 0

    if argv and argv[0] in ("summarise", "summarize"):
        from . import summary

        args = build_summarise_parser().parse_args(argv[1:])
        try:
            summary.main(args)
        except InputError as exc:
            return _fail("abide-pipeline summarise", exc)
        return 0

    args = build_parser().parse_args(argv)
    from .pipeline import run

    try:
        run(args)
    except InputError as exc:
        return _fail(PROG, exc)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
