"""The records site (`envgen runs --html`, envgen/site/) and the summaries `envgen runs show` shares with it.

The quick tests use records written straight into a store.  The browser test
makes real runs in the tiny env (a run, its rerun, a run that writes an image,
a run in an older env, a two-point local sweep), writes the site and opens its
pages in headless Chromium (``--dump-dom``: the DOM after the scripts ran).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from envgen.errors import EnvgenError
from envgen.run.records import Record, Records
from envgen.run.summary import set_digest, summarise_files
from envgen.snapshot.store import Store
from helpers import require_tool, run_envgen


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _record(run_id: str, started: str, n_inputs: int = 0, **kw) -> Record:
    base = dict(id=run_id, started=started, runtime="bwrap", command=["python", "-c", "print(1)"],
                binds=[{"src": "/host/data", "dst": "/data", "mode": "ro"}], network=False,
                env={"PYTHONHASHSEED": "0"}, code={"vcs": None},
                inputs={f"/data/sub-{i:03d}.nii": {"sha256": _sha(f"in{i}"), "size": 1000 + i}
                        for i in range(n_inputs)},
                outputs={"/out/scores.csv": {"sha256": _sha("out"), "size": 42}}, host={"cores": 2},
                nondeterministic={}, snapshot_id="5" * 64, tree_digest="7" * 64, env_name="demo", exit_status=0,
                duration=1.25, state="finished")
    base.update(kw)
    return Record(**base)


@pytest.fixture
def store_with_runs(tmp_path):
    root = tmp_path / "store"
    Store(root)
    db = Records(root / "records.sqlite")
    db.add(_record("20250101-000000-aaaaaa", "2025-01-01T00:00:00.000Z", n_inputs=12, label="fig<1>",
                   tags=["paper"]))
    db.add(_record("20250102-000000-bbbbbb", "2025-01-02T00:00:00.000Z", n_inputs=2, label="b & c",
                   reason="<script>alert(1)</script>"))
    db.close()
    return root


def test_summary_counts_sizes_and_digests_the_set():
    files = {f"/d/{i}": {"sha256": _sha(str(i)), "size": i} for i in range(12)}
    s = summarise_files(files)
    assert s["count"] == 12 and s["bytes"] == sum(range(12)) and s["more"] == 7
    assert [e["path"] for e in s["first"]] == sorted(files)[:5]
    listing = "".join(f"{files[p]['sha256']}  {p}\n" for p in sorted(files))  # `sha256sum` form, sorted by path
    assert s["digest"] == hashlib.sha256(listing.encode()).hexdigest()
    changed = {**files, "/d/3": {"sha256": _sha("x"), "size": 3}}
    assert set_digest(changed) != s["digest"]
    short = summarise_files({p: files[p] for p in sorted(files)[:4]})
    assert short["more"] == 0 and len(short["first"]) == 4


def test_runs_show_summarises_long_lists_and_all_lists_them(store_with_runs):
    rid = "20250101-000000-aaaaaa"
    shown = run_envgen("runs", "--store", str(store_with_runs), "show", rid, check=True).stdout
    listed = re.findall(r"/data/sub-\d+\.nii", shown)
    assert listed == [f"/data/sub-{i:03d}.nii" for i in range(5)]
    digest = summarise_files(_record(rid, "", n_inputs=12).inputs)["digest"]
    assert f"12 files, 12.1 kB, set sha256 {digest[:16]}" in shown and "7 more" in shown and "--all" in shown
    every = run_envgen("runs", "--store", str(store_with_runs), "show", rid, "--all", check=True).stdout
    assert len(re.findall(r"/data/sub-\d+\.nii", every)) == 12 and "more" not in every
    doc = json.loads(run_envgen("runs", "--store", str(store_with_runs), "show", rid, "--json", check=True).stdout)
    assert len(doc["inputs"]) == 12 and doc["summaries"]["inputs"]["digest"] == digest


def test_site_is_deterministic_escaped_and_replaces_only_a_site(store_with_runs, tmp_path):
    site = tmp_path / "site"
    env = {"TZ": "UTC", "LC_ALL": "C.UTF-8"}
    proc = run_envgen("runs", "--store", str(store_with_runs), "--html", str(site), "--json", env=env, check=True)
    assert json.loads(proc.stdout)["runs"] == 2
    first = {p.relative_to(site): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}
    assert Path("index.html") in first and Path("runs/20250102-000000-bbbbbb.html") in first
    page = first[Path("runs/20250102-000000-bbbbbb.html")].decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "fig&lt;1&gt;" in first[Path("index.html")].decode()
    assert not re.search(r"(src|href)=\"(https?:)?//", b"".join(first.values()).decode("utf-8", "replace"))
    # again, elsewhere, under another umask and time zone: the same bytes, and the site replaced whole
    (site / "stray.txt").write_text("from before\n")
    other = tmp_path / "elsewhere" / "site"
    script = ("import os, sys, runpy; os.umask(0o077); sys.argv = ['envgen'] + sys.argv[1:]; "
              "runpy.run_module('envgen', run_name='__main__')")
    for target in (site, other):
        subprocess.run([os.sys.executable, "-c", script, "runs", "--store", str(store_with_runs), "--html",
                        str(target)], check=True, capture_output=True, env={**os.environ, "TZ": "Asia/Tokyo"})
        again = {p.relative_to(target): p.read_bytes() for p in sorted(target.rglob("*")) if p.is_file()}
        assert again == first
        assert {oct(p.stat().st_mode & 0o777) for p in target.rglob("*") if p.is_file()} == {"0o644"}
    # a directory that is not a site is never replaced; the options that need --html say so
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep\n")
    proc = run_envgen("runs", "--store", str(store_with_runs), "--html", str(mine))
    assert proc.returncode == 2 and "not an envgen records site" in proc.stderr and "Traceback" not in proc.stderr
    assert (mine / "notes.txt").read_text() == "keep\n" and len(list(tmp_path.glob(".mine*"))) == 0
    proc = run_envgen("runs", "--store", str(store_with_runs), "--compare", "20250101", "20250102")
    assert proc.returncode == 2 and "--html" in proc.stderr
    proc = run_envgen("runs", "--store", str(store_with_runs), "--html", str(site), "--compare", "2025", "20250102")
    assert proc.returncode == 2 and "ambiguous" in proc.stderr


# --------------------------------------------------------------------------- in a real browser


class _Dom(HTMLParser):
    """The elements of a dumped DOM, as (tag, attrs) in document order, and the text."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.elements if t == tag and all(a.get(k.replace("_", "-")) == v
                                                                for k, v in attrs.items())]

    def one(self, tag: str, **attrs) -> dict:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, found)
        return found[0]


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["chromium", "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}",
                           *args], capture_output=True, text=True, timeout=120)


def _dom(url: str, profile: Path) -> _Dom:
    proc = _chromium("--dump-dom", url, profile=profile)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return _Dom(proc.stdout)


PNG_CMD = ("import struct, zlib\n"
           "def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))\n"
           "raw = b''.join(b'\\x00' + b'\\xff\\x00\\x00' * 6 for _ in range(4))\n"
           "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 6, 4, 8, 2, 0, 0, 0))"
           " + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')\n"
           "open('/out/figure.png', 'wb').write(png)\n")
METRICS_CMD = ("import json, sys; s = int(sys.argv[1]); "
               "json.dump({'score': s / 10, 'loss': 1 - s / 10}, open('/out/metrics.json', 'w'))")


@pytest.mark.network
@pytest.mark.slow
def test_site_in_chromium(tiny, tmp_path):
    require_tool("chromium", why="the records site is checked in a real browser")
    store = str(tiny.store)

    def run(spec: Path, *args: str) -> str:
        proc = run_envgen("run", str(spec), "--store", store, "--json", *args)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["run"]

    data, out = tmp_path / "data", tmp_path / "out"
    for d in (data, out, tmp_path / "img", tmp_path / "old"):
        d.mkdir()
    for i in range(12):
        (data / f"sub-{i:02d}.txt").write_text(f"subject {i}\n")
    fig = run(tiny.spec, "--bind", f"{data}:/data:ro", "--bind", f"{out}:/out", "--label", "site-fig",
              "--tag", "site-paper", "--", "hello", "--out", "/out", "--seed", "2")
    rr = json.loads(run_envgen("rerun", fig, "--store", store, "--json", check=True).stdout)
    img = run(tiny.spec, "--bind", f"{tmp_path / 'img'}:/out", "--label", "site-image", "--tag", "site-draft",
              "--", "python", "-c", PNG_CMD)
    # an older env (six 1.16.0): its compare page has a lock diff
    old_spec = tiny.spec.parent / "tiny-old.toml"
    old_spec.write_text(tiny.spec.read_text().replace('name = "tiny"', 'name = "tiny-old"')
                        .replace("six==1.17.0", "six==1.16.0"))
    run_envgen("lock", str(old_spec), check=True)
    run_envgen("snapshot", str(old_spec), "--store", store, check=True)
    old = run(old_spec, "--bind", f"{tmp_path / 'old'}:/out", "--label", "site-old", "--", "hello", "--out", "/out",
              "--seed", "2")
    sweep = tmp_path / "sweep"
    run_envgen("sweep", str(tiny.spec), "--store", store, "--param", "seed=1..2", "--engine", "local", "--out",
               str(sweep), "--", "python", "-c", METRICS_CMD, "{seed}", check=True)
    sweep_id = json.loads((sweep / "sweep.json").read_text())["id"]

    site = tmp_path / "site"
    res = json.loads(run_envgen("runs", "--store", store, "--html", str(site), "--sweep", str(sweep), "--plot",
                                "score", "--compare", fig, old, "--json", check=True).stdout)
    assert f"compare/{fig}_{rr['rerun']}.html" in res["compare_pages"] and f"compare/{fig}_{old}.html" in \
        res["compare_pages"]
    profile = tmp_path / "chromium-profile"
    url = (site / "index.html").as_uri()

    # the index lists the runs; a filter from the URL hides the rest; sorting from the URL reorders
    dom = _dom(url, profile)
    rows = dom.find("tr")[1:]
    ids = [r["data-id"] for r in rows]
    assert {fig, rr["rerun"], img, old} <= set(ids) and not any("hidden" in r for r in rows)
    dom = _dom(url + "#tag=site-paper", profile)
    rows = dom.find("tr")[1:]
    assert [r["data-id"] for r in rows if "hidden" not in r] == [fig]
    assert dom.one("table", id="runs")["data-shown"] == "1" and len(rows) == len(ids)
    dom = _dom(url + "#env=tiny-old", profile)
    assert [r["data-id"] for r in dom.find("tr")[1:] if "hidden" not in r] == [old]
    dom = _dom(url + "#label=site-&sort=label&order=asc", profile)
    visible = [(r["data-label"], r["data-id"]) for r in dom.find("tr")[1:] if "hidden" not in r]
    assert [label for label, _ in visible] == sorted(label for label, _ in visible)
    assert {label for label, _ in visible} == {"site-fig", "site-image", "site-old"}
    assert dom.one("th", data_key="label")["aria-sort"] == "ascending"

    # a run page: the summary and the folded full list, its rerun compared, the commands' images shown
    dom = _dom((site / "runs" / f"{fig}.html").as_uri(), profile)
    summary = dom.one("p", id="inputs-summary")
    assert summary["data-count"] == "12" and summary["data-digest"] == set_digest(
        json.loads(run_envgen("runs", "--store", store, "show", fig, "--json", check=True).stdout)["inputs"])
    assert dom.find("details", id="inputs-all") and "open" not in dom.one("details", id="inputs-all")
    text = "".join(dom.text)
    assert "12 files" in text and "hello --out /out --seed 2" in text and tiny.built["tree_digest"] in text
    assert rr["rerun"] in text and "identical" in text
    dom = _dom((site / "runs" / f"{img}.html").as_uri(), profile)
    pic = [a for a in dom.find("img") if a.get("alt") == "/out/figure.png"]
    assert len(pic) == 1 and pic[0]["data-natural-width"] == "6"
    assert (site / pic[0]["src"].removeprefix("../")).read_bytes()[:4] == b"\x89PNG"

    # the compare page: both env digests, and the lock diff (six 1.16.0 -> 1.17.0)
    dom = _dom((site / "compare" / f"{fig}_{old}.html").as_uri(), profile)
    text = "".join(dom.text)
    old_tree = json.loads(run_envgen("runs", "--store", store, "show", old, "--json", check=True).stdout)
    assert tiny.built["tree_digest"] in text and old_tree["tree_digest"] in text
    assert old_tree["tree_digest"] != tiny.built["tree_digest"]
    assert int(dom.one("table", id="lock-diff")["data-changes"]) >= 1
    assert re.search(r"pypi\s*six\s*downgraded\s*1\.17\.0\s*1\.16\.0", text), text

    # the sweep page: the plot, loaded by the browser, and the table
    dom = _dom((site / "sweeps" / f"{sweep_id}.html").as_uri(), profile)
    plot = dom.one("figure", id="plot")
    assert plot is not None
    svg = [a for a in dom.find("img") if a.get("src") == f"{sweep_id}.svg"]
    assert len(svg) == 1 and int(svg[0]["data-natural-width"]) > 100
    assert b"<svg" in (site / "sweeps" / f"{sweep_id}.svg").read_bytes()
    assert "0.1" in "".join(dom.text) and "0.2" in "".join(dom.text)

    # the same records give the same site; and a screenshot of the index renders
    again = tmp_path / "again"
    run_envgen("runs", "--store", store, "--html", str(again), "--sweep", str(sweep), "--plot", "score",
               "--compare", fig, old, check=True)
    assert {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()} == \
        {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    shot = tmp_path / "index.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1200,800", url, profile=profile)
    assert proc.returncode == 0, proc.stderr[-2000:]
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1200, 800)
    shutil.rmtree(profile, ignore_errors=True)


def _sweep_dir(tmp_path: Path) -> Path:
    """A finished two-point sweep directory as `envgen sweep` leaves it (sweep.json, each point's status and
    metrics.json), without running it."""
    from envgen.sweep import engine as sw

    d = tmp_path / "sweep"
    points = []
    for i in range(2):
        pdir = d / "points" / f"{i:03d}"
        pdir.mkdir(parents=True)
        (pdir / "status.json").write_text(json.dumps({"state": "completed", "exit_status": 0, "run_id": f"r{i}"}))
        (pdir / "metrics.json").write_text(json.dumps({"score": 0.5 + i / 4}))
        points.append({"index": i, "params": {"seed": str(i)}, "dir": str(pdir), "command": ["x"]})
    sw.save({**sw.formats.header(sw.KIND), "id": "0123456789ab", "name": "demo", "created": "2025-01-01T00:00:00Z",
             "spec": "demo.toml", "store": "store", "runtime": "bwrap", "engine": "local", "binds": [],
             "params": ["seed=0..1"], "template": ["x"], "resources": {}, "points": points, "jobs": [], "dir": str(d)})
    return d


def test_sweep_plot_is_a_stable_svg_or_a_note_without_matplotlib(store_with_runs, tmp_path, monkeypatch):
    import sys

    from envgen.site.build import write_site

    sweep = _sweep_dir(tmp_path)
    store = Store(store_with_runs)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "matplotlib", None)  # as if not installed
        write_site(store, tmp_path / "plain", [], [str(sweep)], None, "score")
    page = (tmp_path / "plain" / "sweeps" / "0123456789ab.html").read_text()
    assert 'id="plot-note"' in page and "envgen[plot]" in page and "0.75" in page
    assert not (tmp_path / "plain" / "sweeps" / "0123456789ab.svg").exists()
    pytest.importorskip("matplotlib")
    svgs = []
    for name in ("a", "b"):
        write_site(store, tmp_path / name, [], [str(sweep)], None, "score")
        svgs.append((tmp_path / name / "sweeps" / "0123456789ab.svg").read_bytes())
    assert svgs[0] == svgs[1] and b"<svg" in svgs[0] and b"<dc:date>" not in svgs[0]
    with pytest.raises(EnvgenError, match="no column 'nope'"):
        write_site(store, tmp_path / "c", [], [str(sweep)], None, "nope")
    assert not (tmp_path / "c").exists()
