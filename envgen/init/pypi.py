"""``envgen init --date auto``: the first midnight at which every exactly pinned release could be installed.

For each exact pin (``NAME==V``) the index's JSON project page (PEP 691, with
PEP 700 upload times: PyPI's, or ``$ENVGEN_INDEX_URL``'s) lists the release's
files with their upload times.  The time that counts is
that of the file the target installs: the wheel :func:`~envgen.lock.tags.best_wheel`
picks for the spec's CPython and platform, else the sdist (built from
source), else the earliest file.  (A release's first file is often its sdist,
with the wheels uploaded minutes or days later; the lock, which takes only
what was uploaded before the snapshot date, needs the wheel.)  The snapshot
date is the first 00:00:00Z after the newest of those times.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from ..clock import SnapshotDate, parse_utc
from ..distros import DISTROS, PLATFORMS
from ..errors import FetchError
from ..lock.resolve import index_url
from ..lock.tags import best_wheel, supported_tags

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class Upload:
    name: str
    version: str
    filename: str
    time: dt.datetime


def project_files(name: str) -> list[dict]:
    """The files of *name* on the index: its PEP 691 JSON page (with PEP 700 upload times)."""
    url = f"{index_url().rstrip('/')}/{canonicalize_name(name)}/"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": SIMPLE_JSON}), timeout=60) as resp:
            data = json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FetchError(f"{name}: no such project on the index ({url})") from None
        raise FetchError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FetchError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    return data.get("files", [])


def _version_of(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def release_upload(name: str, version: str, python: str, base: str, platform: str) -> Upload:
    """The upload of the file of *name* *version* that the target installs."""
    want = Version(version)
    files = {}
    for f in project_files(name):
        fn = f.get("filename", "")
        t = parse_utc(f.get("upload-time") or "")
        if t is not None and _version_of(fn) == want:
            files[fn] = t
    if not files:
        raise FetchError(f"{name}=={version}: the index has no files of that release (with upload times)")
    tags = supported_tags(python, PLATFORMS[platform].machine, DISTROS[base].glibc)
    chosen = best_wheel([fn for fn in files if fn.endswith(".whl")], tags)
    if chosen is None:
        sdists = sorted((t, fn) for fn, t in files.items() if not fn.endswith(".whl"))
        chosen = sdists[0][1] if sdists else min((t, fn) for fn, t in files.items())[1]
    return Upload(name, version, chosen, files[chosen])


def auto_date(pins: list[tuple[str, str]], python: str, base: str, platform: str) -> tuple[SnapshotDate, list[Upload]]:
    """The first 00:00:00Z after every pin's installable upload, and the uploads (newest first)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        uploads = list(pool.map(lambda p: release_upload(p[0], p[1], python, base, platform), pins))
    uploads.sort(key=lambda u: (u.time, u.name), reverse=True)
    return ceil_midnight(uploads[0].time), uploads


def ceil_midnight(t: dt.datetime) -> SnapshotDate:
    """The first 00:00:00Z strictly after *t* (uv takes what was uploaded *before* the date)."""
    t = t.astimezone(dt.UTC)
    return SnapshotDate.parse(dt.datetime(t.year, t.month, t.day, tzinfo=dt.UTC) + dt.timedelta(days=1))
