"""Gather a sweep's results into one table (and, for search results, a plot).

Per point, the score columns come from:

* ``cv_results.csv`` (a scikit-learn search, as the ABIDE pipeline writes): the
  candidate ranked first by the first ``rank_test_<metric>`` column, giving
  ``mean_test_<metric>`` and ``std_test_<metric>`` for every metric;
* else ``scores.json``: a flat JSON object of numbers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..fsutil import atomic_write


def point_scores(pdir: Path) -> dict[str, float]:
    cv = pdir / "cv_results.csv"
    if cv.is_file():
        with open(cv, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            return {}
        ranks = [c for c in rows[0] if c.startswith("rank_test_")]
        if not ranks:
            return {}
        refit = ranks[0]
        best = min(rows, key=lambda r: (int(float(r[refit])), rows.index(r)))
        out = {}
        for c in rows[0]:
            if c.startswith(("mean_test_", "std_test_")):
                out[c] = float(best[c])
        return out
    sj = pdir / "scores.json"
    if sj.is_file():
        data = json.loads(sj.read_text())
        return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {}


def collect(doc: dict, rows: list[dict]) -> dict:
    param_names = list(doc["points"][0]["params"]) if doc["points"] else []
    table = []
    for r in rows:
        scores = point_scores(Path(r["dir"])) if r["state"] == "completed" else {}
        table.append({"point": r["index"], **r["params"], "state": r["state"], "run_id": r["run_id"] or "", **scores})
    score_cols = sorted({k for row in table for k in row if k.startswith(("mean_test_", "std_test_"))} |
                        {k for row in table for k in row if k not in param_names and k not in
                         ("point", "state", "run_id") and not k.startswith(("mean_test_", "std_test_"))})
    columns = ["point", *param_names, *score_cols, "state", "run_id"]
    d = Path(doc["dir"])
    lines = [",".join(columns)]
    for row in table:
        lines.append(",".join(_cell(row.get(c, "")) for c in columns))
    atomic_write(d / "collected.csv", "\n".join(lines) + "\n")
    plot = _plot(d, table, param_names, score_cols)
    return {"columns": columns, "rows": table, "csv": str(d / "collected.csv"), "plot": plot}


def _cell(v) -> str:
    if isinstance(v, float):
        return repr(v)
    s = str(v)
    return f'"{s}"' if "," in s else s


def _plot(d: Path, table: list[dict], params: list[str], score_cols: list[str]) -> str | None:
    means = [c for c in score_cols if c.startswith("mean_test_")]
    done = [r for r in table if means and means[0] in r]
    if not done or not params:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = means[0]
    std = "std_test_" + metric[len("mean_test_"):]
    x_name = params[0]
    groups: dict[tuple, list[dict]] = {}
    for r in done:
        groups.setdefault(tuple((p, r[p]) for p in params[1:]), []).append(r)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key, rs in sorted(groups.items()):
        xs = [r[x_name] for r in rs]
        ax.errorbar(range(len(xs)), [r[metric] for r in rs], yerr=[r.get(std, 0.0) for r in rs], marker="o",
                    capsize=3, label=", ".join(f"{k}={v}" for k, v in key) or None)
        ax.set_xticks(range(len(xs)), xs)
    ax.set_xlabel(x_name)
    ax.set_ylabel(metric.replace("mean_test_", "") + " (refit candidate, mean ± std over CV)")
    ax.set_title("score against " + ", ".join(params))
    if any(k for k in groups):
        ax.legend(fontsize="small")
    fig.tight_layout()
    out = d / "collected.png"
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return str(out)
