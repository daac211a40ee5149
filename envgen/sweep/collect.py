"""Gather a sweep's results into one table, and plot one of its columns.

Generic: envgen knows nothing of what a point computed.  Per completed point,
the metric columns come from the first of :data:`METRICS_FILES` found in the
point's output directory: a flat JSON object whose number values become
columns (other values are left out).  A workload writes that file itself (the
ABIDE pipeline does with ``--write-metrics``, or ``abide-pipeline summarise``).

The table is ``DIR/collected.csv``: one row per point, the parameters, the
metric columns (sorted), the state and the run id.  The plot
(``DIR/collected.png``) shows one named column against the first parameter,
one line per combination of the others; a ``mean_X`` column gets ``std_X`` as
its error bars when there is one.  It needs matplotlib (the ``plot`` extra);
without it the table is still written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import EnvgenError
from ..fsutil import atomic_write

METRICS_FILES = ("metrics.json", "scores.json")
PLOT_HINT = 'no plot: matplotlib is not installed (pip install "envgen[plot]"); the table is complete'


def point_metrics(pdir: Path) -> dict[str, float]:
    """The number values of the first metrics file in a point's output directory ({} when there is none)."""
    for name in METRICS_FILES:
        f = pdir / name
        if f.is_file():
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError) as exc:
                raise EnvgenError(f"{f}: not a JSON object of metrics ({exc})") from None
            if not isinstance(data, dict):
                raise EnvgenError(f"{f}: not a JSON object of metrics")
            return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {}


def gather(doc: dict, rows: list[dict], plot_column: str | None = None) -> dict:
    """The table of a sweep, written nowhere: ``{params, columns, metric_cols, rows, plot_column}``.

    ``plot_column``: the column to plot (checked), else the default one (None when no point wrote metrics).
    """
    param_names = list(doc["points"][0]["params"]) if doc["points"] else []
    table = []
    for r in rows:
        metrics = point_metrics(Path(r["dir"])) if r["state"] == "completed" else {}
        table.append({"point": r["index"], **r["params"], "state": r["state"], "run_id": r["run_id"] or "",
                      **{k: v for k, v in metrics.items() if k not in param_names}})
    fixed = {"point", "state", "run_id", *param_names}
    metric_cols = sorted({k for row in table for k in row if k not in fixed})
    if plot_column is not None and plot_column not in metric_cols:
        raise EnvgenError(f"no column {plot_column!r} to plot",
                          hint="columns: " + (", ".join(metric_cols) or f"none (no point wrote {METRICS_FILES[0]})"))
    column = plot_column or _default_column(metric_cols)
    if not (column and param_names and any(column in r for r in table)):
        column = None
    return {"params": param_names, "columns": ["point", *param_names, *metric_cols, "state", "run_id"],
            "metric_cols": metric_cols, "rows": table, "plot_column": column}


def collect(doc: dict, rows: list[dict], plot_column: str | None = None) -> dict:
    """Write DIR/collected.csv (and DIR/collected.png when matplotlib is there); return the table."""
    g = gather(doc, rows, plot_column)
    columns, table = g["columns"], g["rows"]
    d = Path(doc["dir"])
    lines = [",".join(columns)]
    for row in table:
        lines.append(",".join(_cell(row.get(c, "")) for c in columns))
    atomic_write(d / "collected.csv", "\n".join(lines) + "\n")
    column = g["plot_column"] or plot_column or _default_column(g["metric_cols"])
    plot, hint = None, None
    if g["plot_column"]:
        try:
            plot = _plot(d / "collected.png", table, g["params"], g["plot_column"], g["metric_cols"])
        except ImportError:
            hint = PLOT_HINT
    return {"columns": columns, "rows": table, "csv": str(d / "collected.csv"), "plot": plot,
            "plot_column": column, "plot_hint": hint}


def plot_svg(out: Path, g: dict) -> Path:
    """Draw :func:`gather`'s plot column against the first parameter as SVG, the same bytes each time
    (no date, a fixed id salt, glyphs as paths).  ImportError when matplotlib is missing."""
    assert g["plot_column"] is not None
    return Path(_plot(out, g["rows"], g["params"], g["plot_column"], g["metric_cols"]))


def _default_column(metric_cols: list[str]) -> str | None:
    """The first ``mean_*`` column, else the first column."""
    means = [c for c in metric_cols if c.startswith("mean_")]
    candidates = means or metric_cols
    return candidates[0] if candidates else None


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    s = str(v)
    return f'"{s}"' if "," in s else s


def _plot(out: Path, table: list[dict], params: list[str], column: str, metric_cols: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    err = "std_" + column[len("mean_"):] if column.startswith("mean_") else None
    if err not in metric_cols:
        err = None
    done = [r for r in table if column in r]
    x_name = params[0]
    groups: dict[tuple, list[dict]] = {}
    for r in done:
        groups.setdefault(tuple((p, r[p]) for p in params[1:]), []).append(r)
    svg = out.suffix == ".svg"
    with matplotlib.rc_context({"svg.hashsalt": "envgen", "svg.fonttype": "path"} if svg else {}):
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        for key, rs in sorted(groups.items()):
            xs = [r[x_name] for r in rs]
            ax.errorbar(range(len(xs)), [r[column] for r in rs], yerr=[r.get(err, 0.0) for r in rs] if err else None,
                        marker="o", capsize=3, label=", ".join(f"{k}={v}" for k, v in key) or None)
            ax.set_xticks(range(len(xs)), xs)
        ax.set_xlabel(x_name)
        ax.set_ylabel(column + (f" (± {err})" if err else ""))
        ax.set_title(f"{column} against " + ", ".join(params))
        if any(k for k in groups):
            ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(out, metadata={"Date": None, "Creator": None} if svg else {"Software": None})
    plt.close(fig)
    return str(out)
