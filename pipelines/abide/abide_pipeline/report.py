"""``abide-pipeline report OUTPUT_DIR``: top candidates, a PNG and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import os
import re

import pandas as pd
import yaml

from .data import InputError

PNG_NAME = "report.png"
HTML_NAME = "report.html"


def load_results(output_dir: str):
    path = os.path.join(output_dir, "cv_results.csv")
    if not os.path.isfile(path):
        raise InputError(f"no cv_results.csv in {output_dir} (run the pipeline with --output-dir {output_dir} first)")
    results = pd.read_csv(path)
    metric = None
    args_path = os.path.join(output_dir, "args.yaml")
    if os.path.isfile(args_path):
        with open(args_path, encoding="utf-8") as fh:
            args = yaml.safe_load(fh) or {}
        scoring = args.get("scoring") or []
        metric = scoring[0] if scoring else None
    if metric is None or f"mean_test_{metric}" not in results:
        metrics = [c[len("rank_test_"):] for c in results.columns if c.startswith("rank_test_")]
        if not metrics:
            raise InputError(f"{path} has no rank_test_<metric> column")
        metric = metrics[0]
    splits = sorted(
        (c for c in results.columns if re.fullmatch(rf"split\d+_test_{re.escape(metric)}", c)),
        key=lambda c: int(c[5:].split("_", 1)[0]),
    )
    return results, metric, splits


def top_candidates(results: pd.DataFrame, metric: str, k: int) -> pd.DataFrame:
    order = results.sort_values([f"rank_test_{metric}", f"mean_test_{metric}"], ascending=[True, False], kind="stable")
    return order.head(k)


def plot(results, metric, splits, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = top_candidates(results, metric, len(results))
    data = [order.loc[i, splits].to_numpy(dtype=float) for i in order.index]
    labels = [str(int(r)) for r in order[f"rank_test_{metric}"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(data) + 2.0), 4.0), dpi=100)
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(data) + 1), labels, rotation=90 if len(data) > 30 else 0)
    ax.set_xlabel("candidate (by rank)")
    ax.set_ylabel(f"{metric} per CV split")
    ax.set_title(f"{len(results)} candidates x {len(splits)} splits")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def _describe(row, metric) -> str:
    return f"{row[f'mean_test_{metric}']:.4f} ± {row[f'std_test_{metric}']:.4f}"


def write_html(results, metric, splits, top, png_path, path) -> None:
    with open(png_path, "rb") as fh:
        png = base64.b64encode(fh.read()).decode("ascii")
    rows = "\n".join(
        f"<tr><td>{int(r[f'rank_test_{metric}'])}</td><td>{html.escape(_describe(r, metric))}</td>"
        f"<td><code>{html.escape(str(r['params']))}</code></td></tr>"
        for _, r in top.iterrows()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ABIDE pipeline report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head>
<body><h1>ABIDE pipeline report</h1>
<p>{len(results)} candidates, {len(splits)} CV splits, refit metric <b>{html.escape(metric)}</b>.</p>
<table><tr><th>rank</th><th>{html.escape(metric)} (mean ± std)</th><th>params</th></tr>
{rows}
</table>
<p><img alt="per-candidate score distribution" src="data:image/png;base64,{png}"></p>
</body></html>
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)


def main(args) -> None:
    if args.top < 1:
        raise InputError(f"--top must be at least 1, got {args.top}")
    results, metric, splits = load_results(args.output_dir)
    top = top_candidates(results, metric, args.top)
    print(f"top {len(top)} of {len(results)} candidates by {metric} (mean ± std over {len(splits)} splits):")
    for _, r in top.iterrows():
        print(f"  {int(r[f'rank_test_{metric}']):>3}  {_describe(r, metric)}  {r['params']}")
    png_path = os.path.join(args.output_dir, PNG_NAME)
    html_path = os.path.join(args.output_dir, HTML_NAME)
    plot(results, metric, splits, png_path)
    write_html(results, metric, splits, top, png_path, html_path)
    print(f"wrote {png_path} and {html_path}")
