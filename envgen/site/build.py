"""``envgen runs --html DIR``: the provenance records as a static site, to browse and compare runs.

In the spirit of Sumatra's ``smtweb``, without a server: plain files that any
browser opens from disk, with no network (no CDN, no web fonts; one local
stylesheet and one local script, ``site.css`` and ``site.js``, package data)::

    index.html                    every run: sortable, filterable by label, tag and env (#tag=…&sort=…)
    runs/<id>.html                one run: command, env, code, inputs/outputs summarised, reruns, images
    compare/<a>_<b>.html          two runs: parameters, env digests, lock diff, output differences
    sweeps/<sweep id>.html, .svg  a sweep's table, and its plot of one result column against the parameter
    files/<sha256>.<ext>          the images the runs wrote (copied from the store: the site stands alone)

Which pairs get a compare page: every rerun with its original, and the pairs
given with ``--compare A B``.  Sweeps come from their directories
(``--sweep DIR``: sweep.json and each point's metrics, as `envgen sweep
collect` reads them).

The same records give the same bytes: nothing from the clock, the host or the
output path enters a page, every list is sorted, and the SVG plot is written
without a date and with a fixed id salt.  The site is built in a temporary
directory next to DIR and renamed into place (:func:`envgen.fsutil.atomic_dir`).
"""

from __future__ import annotations

import html
import json
import os
import posixpath
import shlex
import tempfile
from importlib import resources
from pathlib import Path

from ..errors import EnvgenError
from ..fsutil import atomic_dir
from ..run.compare import compare_outputs
from ..run.records import Record, status
from ..run.rerun import compare_runs
from ..run.summary import human_size, summarise_files, summary_line
from ..snapshot.store import Store

MARKER = ".envgen-site"   # in every site: DIR may be replaced only when it is one (or is empty)
IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp"}
MAX_IMAGE = 20_000_000    # larger output images are listed, not copied


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{e(title)}</title>\n<link rel=\"stylesheet\" href=\"{up}site.css\">\n</head>\n<body>\n"
        f"<nav><a href=\"{up}index.html\">envgen runs</a></nav>\n{body}\n"
        f"<script src=\"{up}site.js\"></script>\n</body>\n</html>\n"
    )


def _facts(items: list[tuple[str, str]]) -> str:
    """A definition list; values are HTML already (escape them with :func:`e`)."""
    return "<dl class=\"facts\">\n" + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>\n" for k, v in items) + "</dl>\n"


def _table(headers: list[str], rows: list[list[str]], attrs: str = "") -> str:
    """A table; cells are HTML already."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>\n" for r in rows)
    return f"<table{attrs}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def _code(value: object) -> str:
    return f"<code>{e(value)}</code>"


def _state(rec: Record, prefix: str = "exit ") -> str:
    st = status(rec)
    if st == "finished":
        return f"<span class=\"{'ok' if rec.exit_status == 0 else 'bad'}\">{prefix}{rec.exit_status}</span>"
    return f"<span class=\"bad\">{e(st)}</span>"


class Site:
    """What one site is built from: the store, its records, the sweeps and the pairs to compare."""

    def __init__(self, store: Store, records: list[Record], sweeps: list[dict] | None = None,
                 compares: list[tuple[str, str]] | None = None, plot_column: str | None = None):
        self.store = store
        self.records = sorted(records, key=lambda r: (r.started, r.id), reverse=True)
        self.by_id = {r.id: r for r in self.records}
        self.sweeps = sorted(sweeps or [], key=lambda d: d["id"])
        self.plot_column = plot_column
        pairs = {(r.rerun_of, r.id) for r in self.records if r.rerun_of in self.by_id}
        for a, b in compares or []:
            if a not in self.by_id or b not in self.by_id:
                missing = a if a not in self.by_id else b
                raise EnvgenError(f"--compare: run {missing} is not among the runs of the site",
                                  hint="`envgen runs` lists them; --tag/--limit may have left it out")
            pairs.add((a, b))
        self.pairs = sorted(p for p in pairs if p[0] != p[1])
        self.reruns: dict[str, list[str]] = {}
        for r in sorted(self.records, key=lambda r: (r.started, r.id)):
            if r.rerun_of:
                self.reruns.setdefault(r.rerun_of, []).append(r.id)
        self._locks: dict[str, tuple | None] = {}
        self.files: dict[str, bytes] = {}   # site path -> bytes
        self.notes: list[str] = []

    # ------------------------------------------------------------------ store reads

    def lock_of(self, snapshot_id: str | None):
        """(Lock, lock object {name, sha256, size}) of a snapshot in the store, or None."""
        if not snapshot_id:
            return None
        if snapshot_id not in self._locks:
            from ..lock import pylock
            from ..snapshot.fetch import load_root

            try:
                manifest = load_root(self.store, snapshot_id)
                obj = next(o for o in manifest["objects"] if o["role"] == "lock")
                data = self.store.read_verified(obj["sha256"], obj["name"])
                self._locks[snapshot_id] = (pylock.loads(data.decode(), Path(obj["name"])), obj)
            except (EnvgenError, StopIteration, OSError):
                self._locks[snapshot_id] = None
        return self._locks[snapshot_id]

    def _object(self, sha: str) -> bytes | None:
        try:
            return self.store.path_of(sha).read_bytes() if self.store.has(sha) else None
        except OSError:
            return None

    def image(self, path: str, info: dict) -> str | None:
        """Copy an output image into files/; its site path, or None (not an image, too large, not stored)."""
        ext = posixpath.splitext(path)[1].lower()
        if ext not in IMAGE_TYPES or (info.get("size") or 0) > MAX_IMAGE:
            return None
        data = self._object(info["sha256"])
        if data is None:
            return None
        name = f"files/{info['sha256']}{ext}"
        self.files[name] = data
        return name

    # ------------------------------------------------------------------ pages

    def build(self) -> dict[str, bytes]:
        pages: dict[str, str] = {"index.html": self.index()}
        for r in self.records:
            pages[f"runs/{r.id}.html"] = self.run_page(r)
        for a, b in self.pairs:
            pages[self.compare_name(a, b)] = self.compare_page(self.by_id[a], self.by_id[b])
        for doc in self.sweeps:
            pages[f"sweeps/{doc['id']}.html"] = self.sweep_page(doc)
        out = {k: v.encode() for k, v in pages.items()}
        out.update(self.files)
        for name in ("site.css", "site.js"):
            out[name] = resources.files("envgen.site").joinpath(name).read_bytes()
        out[MARKER] = b"envgen records site: `envgen runs --html` may replace this directory\n"
        return dict(sorted(out.items()))

    @staticmethod
    def compare_name(a: str, b: str) -> str:
        return f"compare/{a}_{b}.html"

    def index(self) -> str:
        tags = sorted({t for r in self.records for t in r.tags})
        envs = sorted({r.env_name or "" for r in self.records} - {""})
        heads = [("id", "id"), ("label", "label"), ("started", "started"), ("duration", "secs"), ("exit", "exit"),
                 ("env", "env"), ("tree", "tree"), (None, "command"), ("inputs", "in"), ("outputs", "out"),
                 (None, "tags")]
        rows = []
        for i, r in enumerate(self.records):
            st = status(r)
            exit_text = str(r.exit_status) if st == "finished" else st
            attrs = {
                "data-order": str(i), "data-id": r.id, "data-label": r.label or "", "data-started": r.started,
                "data-env": r.env_name or "", "data-tree": r.tree_digest or "", "data-exit": exit_text,
                "data-tags": json.dumps(r.tags), "data-duration": "" if r.duration is None else repr(r.duration),
                "data-num-duration": repr(r.duration if r.duration is not None else -1.0),
                "data-inputs": str(len(r.inputs)), "data-num-inputs": str(len(r.inputs)),
                "data-outputs": str(len(r.outputs)), "data-num-outputs": str(len(r.outputs)),
            }
            cmd = shlex.join(r.command)
            cells = [f"<a href=\"runs/{e(r.id)}.html\"><code>{e(r.id)}</code></a>", e(r.label or ""),
                     f"<span title=\"{e(r.started)}\">{e(r.started[:19].replace('T', ' '))}</span>",
                     "" if r.duration is None else f"{r.duration:.1f}", _state(r, ""), e(r.env_name or ""),
                     _code((r.tree_digest or "")[:12]), f"<code title=\"{e(cmd)}\">{e(cmd[:80])}</code>",
                     str(len(r.inputs)), str(len(r.outputs)),
                     "".join(f"<span class=\"tag\">{e(t)}</span>" for t in r.tags)]
            rows.append("<tr " + " ".join(f"{k}=\"{e(v)}\"" for k, v in attrs.items()) + ">"
                        + "".join(f"<td class=\"nowrap\">{c}</td>" if j in (0, 2, 4, 5, 6) else
                                  f"<td class=\"cmd\">{c}</td>" if j == 7 else f"<td>{c}</td>"
                                  for j, c in enumerate(cells)) + "</tr>\n")
        head = "".join(f"<th data-key=\"{k}\" aria-sort=\"none\">{e(t)}</th>" if k else f"<th>{e(t)}</th>"
                       for k, t in heads)

        def options(values: list[str]) -> str:
            return "<option value=\"\">any</option>" + "".join(f"<option>{e(v)}</option>" for v in values)

        body = [
            "<h1>envgen runs</h1>",
            f"<p class=\"note\">{len(self.records)} recorded run{'' if len(self.records) == 1 else 's'}, newest first. "
            "Click a column to sort; the filters and the order are kept in the address (e.g. "
            "<code>index.html#tag=paper&amp;sort=label&amp;order=asc</code>).</p>",
            "<form id=\"filters\">",
            "<label>label <input name=\"label\" type=\"search\" placeholder=\"contains…\"></label>",
            f"<label>tag <select name=\"tag\">{options(tags)}</select></label>",
            f"<label>env <select name=\"env\">{options(envs)}</select></label>",
            f"<span id=\"shown\">{len(self.records)} of {len(self.records)} runs shown</span>",
            "</form>",
            f"<table id=\"runs\" data-shown=\"{len(self.records)}\">\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
            + "".join(rows) + "</tbody>\n</table>",
        ]
        if self.pairs:
            body.append("<h2>Comparisons</h2>\n<ul id=\"comparisons\">")
            for a, b in self.pairs:
                kind = " (rerun)" if self.by_id[b].rerun_of == a else ""
                body.append(f"<li><a href=\"{self.compare_name(a, b)}\"><code>{e(a)}</code> and "
                            f"<code>{e(b)}</code></a>{kind}</li>")
            body.append("</ul>")
        if self.sweeps:
            body.append("<h2>Sweeps</h2>\n<ul id=\"sweeps\">")
            for doc in self.sweeps:
                body.append(f"<li><a href=\"sweeps/{e(doc['id'])}.html\">{e(doc['name'])}</a> "
                            f"<code>{e(doc['id'])}</code>: {len(doc['points'])} points over "
                            f"{e(' '.join(doc['params']))}</li>")
            body.append("</ul>")
        return _page("envgen runs", "\n".join(body), 0)

    def _files_section(self, what: str, files: dict) -> str:
        s = summarise_files(files)
        out = [f"<h2>{e(what.capitalize())}</h2>",
               f"<p class=\"summary\" id=\"{what}-summary\" data-count=\"{s['count']}\" data-bytes=\"{s['bytes']}\" "
               f"data-digest=\"{s['digest']}\">{e(summary_line(s))}</p>",
               _facts([("files", str(s["count"])), ("total size", e(human_size(s["bytes"]))),
                       ("set sha256", _code(s["digest"]))])]
        if not files:
            return "\n".join(out)

        def rows(entries):
            return [[_code(x["sha256"][:16] + "…"), e(human_size(x["size"])), _code(x["path"])] for x in entries]

        if s["more"]:
            out.append(f"<p class=\"note\">the first {len(s['first'])}:</p>")
        out.append(_table(["sha256", "size", "path"], rows(s["first"])))
        if s["more"]:
            every = [{"path": p, **i} for p, i in sorted(files.items())]
            out.append(f"<details id=\"{what}-all\"><summary>all {s['count']} {e(what)}</summary>\n"
                       + _table(["sha256", "size", "path"], rows(every)) + "</details>")
        return "\n".join(out)

    def _env_facts(self, r: Record) -> list[tuple[str, str]]:
        facts = [("env", e(r.env_name or "?")), ("runtime", e(f"{r.runtime}, builder {r.builder}")),
                 ("tree digest", _code(r.tree_digest or "?")), ("snapshot", _code(r.snapshot_id or "?"))]
        lk = self.lock_of(r.snapshot_id)
        if lk is not None:
            lock, obj = lk
            facts.append(("lock", f"<code>{e(obj['name'])}</code>, sha256 <code>{e(obj['sha256'])}</code>: "
                                  f"{len(lock.packages)} Python packages, {len(lock.debian.packages)} Debian packages, "
                                  f"snapshot date {e(lock.snapshot_date)}"))
        else:
            facts.append(("lock", "<span class=\"note\">not in this store</span>"))
        return facts

    def run_page(self, r: Record) -> str:
        st = status(r)
        code = r.code or {}
        if code.get("vcs"):
            code_text = _code(code.get("commit")) + (
                f" with uncommitted changes (sha256 <code>{e(str(code.get('changes_sha256', ''))[:16])}…</code>)"
                if code.get("dirty") else " (clean)")
        else:
            code_text = "<span class=\"note\">not under version control</span>"
        facts = [("command", _code(shlex.join(r.command))), ("label", e(r.label or "")), ("status", _state(r)),
                 ("reason", e(r.reason or "")), *self._env_facts(r), ("code revision", code_text),
                 ("started", e(r.started)),
                 ("duration", "" if r.duration is None else e(f"{r.duration:.3f} s")),
                 ("host", e(f"{r.host.get('cpu')}, {r.host.get('cores')} cores, kernel {r.host.get('kernel')}")),
                 ("network", "on" if r.network else "cut"),
                 ("tags", "".join(f"<span class=\"tag\">{e(t)}</span>" for t in r.tags))]
        if r.rerun_of:
            orig = (f"<a href=\"{r.rerun_of}.html\"><code>{e(r.rerun_of)}</code></a>" if r.rerun_of in self.by_id
                    else _code(r.rerun_of))
            facts.append(("rerun of", orig))
        body = [f"<h1>run <code>{e(r.id)}</code>" + (f" ({e(r.label)})" if r.label else "") + "</h1>",
                _facts([(k, v) for k, v in facts if v])]
        if r.binds:
            body += ["<h2>Binds</h2>", _table(["host", "in the env", "mode"], [
                [_code(b["src"]), _code(b["dst"]), e(b["mode"])] for b in r.binds])]
        body.append(self._files_section("inputs", r.inputs))
        body.append(self._files_section("outputs", r.outputs))
        images = [(p, self.image(p, i)) for p, i in sorted(r.outputs.items())]
        images = [(p, n) for p, n in images if n]
        if images:
            body.append("<h2>Images</h2>")
            body += [f"<figure><img src=\"../{e(n)}\" alt=\"{e(p)}\"><figcaption><code>{e(p)}</code></figcaption>"
                     "</figure>" for p, n in images]
        if self.reruns.get(r.id):
            body.append("<h2>Reruns</h2>")
            rows = []
            for rid in self.reruns[r.id]:
                new = self.by_id[rid]
                cmp = self._compare(r, new)
                verdict = cmp["verdict"] if cmp else "not comparable (no result)"
                counts = ", ".join(f"{n} {s}" for s, n in cmp["counts"].items()) if cmp else ""
                rows.append([f"<a href=\"{rid}.html\"><code>{e(rid)}</code></a>",
                             f"<span class=\"{'ok' if verdict == 'identical' else 'bad'}\">{e(verdict)}</span>",
                             e(counts), f"<a href=\"../{self.compare_name(r.id, rid)}\">compare</a>"])
            body.append(_table(["rerun", "verdict", "files", ""], rows, " id=\"reruns\""))
        others = [(a, b) for a, b in self.pairs if r.id in (a, b) and self.by_id[b].rerun_of != a]
        if others:
            body.append("<h2>Compared with</h2><ul>" + "".join(
                f"<li><a href=\"../{self.compare_name(a, b)}\"><code>{e(b if a == r.id else a)}</code></a></li>"
                for a, b in others) + "</ul>")
        if r.comments:
            body.append("<h2>Comments</h2>" + _table(["when", "comment"], [
                [e(c["created"]), e(c["text"])] for c in r.comments]))
        if st != "finished":
            body.append(f"<p class=\"note\">{e(st)}: this record has no exit status and no outputs.</p>")
        return _page(f"run {r.id}", "\n".join(body), 1)

    def _compare(self, a: Record, b: Record) -> dict | None:
        """compare_runs of *b* against *a* (None when either has no result); files whose objects are gone
        compare by sha256 alone."""
        if a.exit_status is None or b.exit_status is None:
            return None
        try:
            return compare_runs(self.store, a, b)
        except OSError:
            return compare_outputs(a.outputs, b.outputs, a.nondeterministic, lambda p: b"", lambda p: b"")

    def compare_page(self, a: Record, b: Record) -> str:
        def link(r: Record) -> str:
            return f"<a href=\"../runs/{r.id}.html\"><code>{e(r.id)}</code></a>" + (f" ({e(r.label)})"
                                                                                   if r.label else "")

        def row(name: str, x: str, y: str, raw: tuple[object, object]) -> list[str]:
            same = raw[0] == raw[1]
            return [e(name), x, y, "<span class=\"ok\">same</span>" if same else "<span class=\"bad\">differs</span>"]

        rows = [
            row("command", _code(shlex.join(a.command)), _code(shlex.join(b.command)), (a.command, b.command)),
            row("label", e(a.label or ""), e(b.label or ""), (a.label, b.label)),
            row("env", e(a.env_name or ""), e(b.env_name or ""), (a.env_name, b.env_name)),
            row("runtime", e(a.runtime), e(b.runtime), (a.runtime, b.runtime)),
            row("tree digest", _code(a.tree_digest or "?"), _code(b.tree_digest or "?"),
                (a.tree_digest, b.tree_digest)),
            row("snapshot", _code(a.snapshot_id or "?"), _code(b.snapshot_id or "?"), (a.snapshot_id, b.snapshot_id)),
            row("exit status", e(a.exit_status), e(b.exit_status), (a.exit_status, b.exit_status)),
            row("code revision", _code((a.code or {}).get("commit") or "-"), _code((b.code or {}).get("commit") or "-"),
                (a.code, b.code)),
        ]
        for name in sorted(set(a.env) | set(b.env)):
            rows.append(row(f"${name}", _code(a.env.get(name, "")), _code(b.env.get(name, "")),
                            (a.env.get(name), b.env.get(name))))
        for what in ("inputs", "outputs"):
            sa, sb = summarise_files(getattr(a, what)), summarise_files(getattr(b, what))
            rows.append(row(f"{what} (set)", e(summary_line(sa)), e(summary_line(sb)), (sa["digest"], sb["digest"])))
        body = [f"<h1>{link(a)} and {link(b)}</h1>",
                "<h2>Parameters and env</h2>",
                _table(["", "first", "second", ""], rows, " id=\"params\"")]
        body.append("<h2>Lock differences</h2>")
        la, lb = self.lock_of(a.snapshot_id), self.lock_of(b.snapshot_id)
        if la is None or lb is None:
            body.append("<p class=\"note\" id=\"lock-diff\" data-changes=\"\">a lock is not in this store "
                        "(its snapshot was not taken here, or was removed)</p>")
        else:
            from ..lock.diff import diff_build, diff_locks

            changes = diff_locks(la[0], lb[0]) + diff_build(la[0], lb[0])
            if changes:
                body.append(_table(["source", "name", "change", "first", "second"], [
                    [e(c["source"]), e(c["name"]), e(c["change"]), e(c["old"] or ""), e(c["new"] or "")]
                    for c in changes], f" id=\"lock-diff\" data-changes=\"{len(changes)}\""))
            else:
                same = "the same lock" if la[1]["sha256"] == lb[1]["sha256"] else "locks that pin the same artifacts"
                body.append(f"<p id=\"lock-diff\" data-changes=\"0\">no differences: {same} "
                            f"(<code>{e(la[1]['sha256'][:16])}…</code>)</p>")
        body.append("<h2>Output differences</h2>")
        cmp = self._compare(a, b)
        if cmp is None:
            body.append("<p class=\"note\">one of the runs has no result (no exit status, no outputs)</p>")
        else:
            body.append(f"<p id=\"verdict\" data-verdict=\"{e(cmp['verdict'])}\">verdict: "
                        f"<span class=\"{'ok' if cmp['verdict'] == 'identical' else 'bad'}\">{e(cmp['verdict'])}"
                        "</span>" + (" (nondeterministic files and columns as the first run's spec declares)"
                                     if a.nondeterministic else "") + "</p>")
            rows2 = []
            for f in cmp["files"]:
                extra = ", ".join(f["csv"]["columns"]) if f.get("csv") else ""
                rows2.append([_code(f["path"]), e(f["status"]), e(extra and f"columns: {extra}")])
            body.append(_table(["path", "status", ""], rows2, " id=\"outputs-diff\""))
        return _page(f"{a.id} and {b.id}", "\n".join(body), 1)

    def sweep_page(self, doc: dict) -> str:
        from ..sweep import engine as sw
        from ..sweep.collect import PLOT_HINT, gather, plot_svg

        g = gather(doc, sw.status(doc), self.plot_column)
        body = [f"<h1>sweep {e(doc['name'])} <code>{e(doc['id'])}</code></h1>",
                _facts([("points", str(len(doc["points"]))), ("parameters", _code(" ".join(doc["params"]))),
                        ("command", _code(shlex.join(doc["template"]))), ("runtime", e(doc["runtime"]))])]
        if g["plot_column"]:
            body.append("<h2>Plot</h2>")
            try:
                with tempfile.TemporaryDirectory(prefix="envgen-plot-") as scratch:
                    self.files[f"sweeps/{doc['id']}.svg"] = plot_svg(Path(scratch, "plot.svg"), g).read_bytes()
            except ImportError:
                body.append(f"<p class=\"note\" id=\"plot-note\">{e(PLOT_HINT)}</p>")
            else:
                body.append(f"<figure id=\"plot\"><img src=\"{doc['id']}.svg\" alt=\"{e(g['plot_column'])} against "
                            f"{e(g['params'][0])}\"><figcaption>{e(g['plot_column'])} against "
                            f"{e(', '.join(g['params']))}</figcaption></figure>")
        elif self.plot_column is None:
            body.append("<p class=\"note\">no plot: no point wrote a metrics file with number values</p>")
        cells = []
        for row in g["rows"]:
            cell = []
            for c in g["columns"]:
                v = row.get(c, "")
                if c == "run_id" and v:
                    cell.append(f"<a href=\"../runs/{e(v)}.html\"><code>{e(v)}</code></a>" if v in self.by_id
                                else _code(v))
                else:
                    cell.append(e(repr(v) if isinstance(v, float) else v))
            cells.append(cell)
        body += ["<h2>Points</h2>", _table(g["columns"], cells, " id=\"points\"")]
        return _page(f"sweep {doc['name']}", "\n".join(body), 1)


def load_sweeps(dirs: list[str]) -> list[dict]:
    from ..sweep import engine as sw

    docs = [sw.load(d) for d in dirs]
    seen: set[str] = set()
    for d in docs:
        if d["id"] in seen:
            raise EnvgenError(f"--sweep: sweep {d['id']} given twice")
        seen.add(d["id"])
    return docs


def check_target(out: Path) -> None:
    """DIR may be replaced only when it is absent, empty, or a site this command wrote."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise EnvgenError(f"{out}: exists and is not a directory", hint="give another --html DIR")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise EnvgenError(f"{out}: exists and is not an envgen records site (no {MARKER}); not replacing it",
                          hint="give a new or empty directory")


def write_site(store: Store, out: str | os.PathLike, records: list[Record], sweep_dirs: list[str] | None = None,
               compares: list[tuple[str, str]] | None = None, plot_column: str | None = None) -> dict:
    """Build the site in a temporary directory next to *out* and rename it into place; a summary dict."""
    out = Path(out)
    check_target(out)
    site = Site(store, records, load_sweeps(sweep_dirs or []), compares, plot_column)
    files = site.build()
    with atomic_dir(out) as tmp:
        for name, data in files.items():
            p = tmp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            os.chmod(p, 0o644)
        for d in sorted({p for name in files for p in Path(name).parents if str(p) != "."}):
            os.chmod(tmp / d, 0o755)
    return {"dir": str(out), "index": str(out / "index.html"), "runs": len(site.records),
            "compare_pages": [site.compare_name(a, b) for a, b in site.pairs],
            "sweeps": [f"sweeps/{d['id']}.html" for d in site.sweeps], "files": len(files)}
