"""The Debian runtime: resolve the .deb closure that makes the env's Python run.

apt does the resolving (Depends, Pre-Depends, alternatives, virtual packages),
against the signed indices of the OS base, in a private state directory so
the host's own apt configuration and installed packages play no part:

* ``apt-get update`` fetches and verifies the InRelease files with the
  distribution keyring, then the Packages indices they sign;
* ``apt-get install -s`` from an empty dpkg status gives the closure;
* ``apt-get download --print-uris`` gives each .deb's URL, size and SHA256
  as the signed index states it;
* ``apt-cache show`` gives each package's Depends/Pre-Depends, from which the
  edges of the graph are drawn.

The private state lives in envgen's cache; deleting it only costs time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..clock import SnapshotDate
from ..distros import DEFAULT_MIRROR, Distro
from ..errors import EnvgenError, LockError
from ..fsutil import atomic_write
from ..paths import apt_state_dir
from ..proc import run as run_tool
from .pylock import DebPackage
from .pylock import DebRelease as ReleaseInfo

SNAPSHOT_SERVICE = "https://snapshot.debian.org/archive"
# The static busybox is the trust root of the Nix builder.  Source builds add their
# compilers and the spec's [os] build-packages (see envgen.lock.make.debian_build_packages).
BUILD_ROOTS = ["busybox-static"]


@dataclass
class DebianResolution:
    distro: str
    arch: str
    roots: list[str]
    build_roots: list[str]
    releases: list[ReleaseInfo]
    packages: list[DebPackage]


def mirror_uri(template: str | None, archive: str, snapshot_date: dt.datetime | None = None) -> str:
    """The apt URI of *archive* under the spec's ``[os] mirror`` template (else the default mirror).

    ``{archive}`` becomes the archive (``debian``, ``debian-security``);
    ``{snapshot-date}`` becomes *snapshot_date* in snapshot.debian.org's form
    (``20250508T000000Z``), so the spec's one date freezes the OS layer too.
    """
    if not template:
        return f"{DEFAULT_MIRROR}/{archive}"
    uri = template.replace("{archive}", archive)
    if "{snapshot-date}" in uri:
        if snapshot_date is None:
            raise LockError(f"the mirror {template} names {{snapshot-date}}, but no snapshot date was given")
        uri = uri.replace("{snapshot-date}", SnapshotDate.parse(snapshot_date).compact)
    return uri.rstrip("/")


class Apt:
    """apt-get and apt-cache confined to a private state directory."""

    def __init__(self, distro: Distro, arch: str, mirror: str | None, state: Path | None = None,
                 snapshot_date: dt.datetime | None = None):
        self.distro = distro
        self.arch = arch
        self.mirror = mirror
        self.sources = [(s, mirror_uri(mirror, s.archive, snapshot_date)) for s in distro.suites]
        key = hashlib.sha256(repr((distro.name, arch, self.sources)).encode()).hexdigest()[:16]
        self.state = state or apt_state_dir() / f"{distro.codename}-{arch}-{key}"
        for tool in ("apt-get", "apt-cache"):
            if not shutil.which(tool):
                raise EnvgenError(
                    f"locking the Debian runtime needs {tool}, which is not on PATH",
                    hint="run `envgen lock` on a Debian or Ubuntu host (or in a debian container); "
                    "every later stage works from the lock without apt",
                )
        if not Path(distro.keyring).is_file():
            raise EnvgenError(
                f"the Debian archive keyring {distro.keyring} is missing, so the indices cannot be verified",
                hint="apt-get install debian-archive-keyring",
            )

    def _prepare(self) -> None:
        s = self.state
        for d in ("lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d",
                  "etc/sources.list.d"):
            (s / d).mkdir(parents=True, exist_ok=True)
        (s / "status").touch()
        lines = [
            f"deb [arch={self.arch} signed-by={self.distro.keyring}] {uri} {suite.suite}"
            f" {' '.join(self.distro.components)}"
            for suite, uri in self.sources
        ]
        (s / "etc" / "sources.list").write_text("\n".join(lines) + "\n")

    def options(self) -> list[str]:
        s = self.state
        opts = {
            "Dir::State": s,
            "Dir::State::Lists": s / "lists",
            "Dir::State::status": s / "status",
            "Dir::Cache": s / "cache",
            "Dir::Cache::pkgcache": s / "cache" / "pkgcache.bin",
            "Dir::Cache::srcpkgcache": s / "cache" / "srcpkgcache.bin",
            "Dir::Etc::SourceList": s / "etc" / "sources.list",
            "Dir::Etc::SourceParts": s / "etc" / "sources.list.d",
            "Dir::Etc::Parts": s / "etc" / "apt.conf.d",
            "Dir::Etc::Preferences": s / "etc" / "preferences",
            "Dir::Etc::PreferencesParts": s / "etc" / "preferences.d",
            "APT::Architecture": self.arch,
            "APT::Architectures::": self.arch,
            "APT::Install-Recommends": "false",
            "APT::Install-Suggests": "false",
            "Acquire::Check-Valid-Until": "false",
            "Acquire::Languages": "none",
            "Debug::NoLocking": "1",
        }
        out: list[str] = []
        for k, v in opts.items():
            out += ["-o", f"{k}={v}"]
        return out

    def _run(self, tool: str, args: list[str], what: str) -> str:
        env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
        env.pop("APT_CONFIG", None)
        proc = run_tool([tool, *self.options(), *args], f"apt ({what})", env=env, check=False)
        errors = [ln[3:].strip() for ln in proc.stderr.splitlines() if ln.startswith("E: ")]
        if proc.returncode != 0 or errors:
            raise EnvgenError(f"apt could not {what}: {'; '.join(errors) or proc.stderr.strip()[-400:]}")
        return proc.stdout

    @contextmanager
    def locked(self):
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.state / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._prepare()
                yield self
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def update(self) -> None:
        out = self._run("apt-get", ["update", "-q"], f"fetch the {self.distro.name} indices")
        for line in out.splitlines():
            if line.startswith(("W: ", "Err:")) and "Release" in line:
                raise EnvgenError(f"apt could not fetch the {self.distro.name} indices: {line}")

    def releases(self) -> list[ReleaseInfo]:
        infos: list[ReleaseInfo] = []
        lists = self.state / "lists"
        for suite, uri in self.sources:
            prefix = _uri_to_listname(uri) + f"_dists_{suite.suite}_"
            path = lists / (prefix + "InRelease")
            if not path.is_file():
                raise EnvgenError(f"no signed InRelease file for {uri} {suite.suite} after apt-get update")
            raw = path.read_bytes()
            from debian.deb822 import Release  # python-debian is imported only when apt had to run

            rel = Release(raw.decode("utf-8", "replace"))
            parsed = email.utils.parsedate_tz(rel["Date"])
            if parsed is None:
                raise EnvgenError(f"{path}: unreadable Date {rel['Date']!r}")
            year, month, day, hour, minute, second = parsed[:6]
            date = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
            infos.append(ReleaseInfo(suite.archive, suite.suite, uri, date, hashlib.sha256(raw).hexdigest()))
        return infos

    def closure(self, roots: list[str]) -> list[tuple[str, str]]:
        out = self._run("apt-get", ["install", "-s", "-qq", "-y", "--no-install-recommends", *roots],
                        f"resolve the closure of {', '.join(roots)}")
        pins = []
        for line in out.splitlines():
            m = re.match(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) ", line)
            if m:
                pins.append((m.group(1).split(":")[0], m.group(2)))
        return sorted(set(pins))

    def uris(self, pins: list[tuple[str, str]]) -> dict[str, tuple[str, int, str]]:
        out = self._run("apt-get", ["download", "--print-uris", "-qq", *[f"{n}={v}" for n, v in pins]],
                        "list the .deb URLs")
        result = {}
        for line in out.splitlines():
            m = re.match(r"^'(\S+)' (\S+) (\d+) SHA256:([0-9a-f]{64})$", line.strip())
            if m:
                url, fname, size, sha = m.groups()
                result[urllib.parse.unquote(url.rsplit("/", 1)[1])] = (url, int(size), sha)
        return result

    def show(self, pins: list[tuple[str, str]]) -> list:
        out = self._run("apt-cache", ["show", "--no-all-versions", *[f"{n}={v}" for n, v in pins]],
                        "read the package records")
        from debian.deb822 import Packages

        return list(Packages.iter_paragraphs(out.splitlines(keepends=True), use_apt_pkg=False))


def _uri_to_listname(uri: str) -> str:
    p = urllib.parse.urlsplit(uri)
    host_path = p.netloc + p.path
    return urllib.parse.unquote(host_path.rstrip("/")).replace("/", "_")


def _edges(records: dict, names: set[str]) -> dict[str, list[str]]:
    provides: dict[str, list[str]] = {}
    for name, rec in records.items():
        for group in rec.relations.get("provides", []):
            for alt in group:
                provides.setdefault(alt["name"], []).append(name)
    edges: dict[str, list[str]] = {}
    for name, rec in records.items():
        targets: set[str] = set()
        for field_name in ("pre-depends", "depends"):
            for group in rec.relations.get(field_name, []):
                for alt in group:
                    dep = alt["name"]
                    if dep in names:
                        targets.add(dep)
                        break
                    if dep in provides:
                        targets.add(sorted(provides[dep])[0])
                        break
        targets.discard(name)
        edges[name] = sorted(targets)
    return edges


def _reachable(roots: list[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        n = todo.pop()
        if n in seen or n not in edges:
            continue
        seen.add(n)
        todo.extend(edges[n])
    return seen


def stamp(date: dt.datetime) -> str:
    return SnapshotDate.parse(date.astimezone(dt.UTC)).compact


def _fetch(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.read()
    except (OSError, ValueError):
        return None


class _Fetcher:
    """GETs over one kept-alive connection per host (one DNS lookup, one handshake), else urllib.

    urllib opens a connection per request; with a proxy configured, or when a
    server answers anything but 200 (a redirect), urllib does the request.
    """

    PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

    def __init__(self) -> None:
        self.direct = not any(os.environ.get(k) for k in self.PROXY_VARS)
        self.conns: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def get(self, url: str) -> bytes | None:
        parts = urllib.parse.urlsplit(url)
        if not self.direct or parts.scheme not in ("http", "https"):
            return _fetch(url)
        key = (parts.scheme, parts.netloc)
        try:
            conn = self.conns.get(key)
            if conn is None:
                cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                conn = self.conns[key] = cls(parts.netloc, timeout=20)
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                return body
        except (OSError, http.client.HTTPException):
            self.conns.pop(key, None)
        return _fetch(url)

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


def _inrelease_unchanged(apt: Apt) -> bool:
    """True when every suite's InRelease on the mirror equals the one apt verified last time.

    Identical bytes carry the same (already verified) signature, so apt's
    indices in the private state directory are current and need no update.
    """
    lists = apt.state / "lists"
    urls, paths = [], []
    for suite, uri in apt.sources:
        urls.append(f"{uri}/dists/{suite.suite}/InRelease")
        paths.append(lists / (_uri_to_listname(uri) + f"_dists_{suite.suite}_InRelease"))
    if not all(p.is_file() for p in paths):
        return False
    # One after the other, on one connection per host: this runs alongside uv, well inside
    # its time, and the fewer DNS queries at once, the fewer a rate-limiting resolver drops
    # (each costs whoever waits on it a 5 s retry).
    fetcher = _Fetcher()
    try:
        for url, path in zip(urls, paths, strict=True):
            remote = fetcher.get(url)
            if remote is None or remote != path.read_bytes():
                return False
    finally:
        fetcher.close()
    return True


def _cache_key(apt: Apt, roots: list[str], build_roots: list[str]) -> str:
    h = hashlib.sha256()
    for suite, uri in apt.sources:
        p = apt.state / "lists" / (_uri_to_listname(uri) + f"_dists_{suite.suite}_InRelease")
        h.update(f"{uri} {suite.suite} {hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode())
    h.update(repr((RESOLUTION_CACHE_VERSION, apt.arch, roots, build_roots)).encode())
    return h.hexdigest()


RESOLUTION_CACHE_VERSION = 1


def _load_cached(path: Path) -> DebianResolution | None:
    try:
        data = json.loads(path.read_text())
        return DebianResolution(
            distro=data["distro"], arch=data["arch"], roots=data["roots"], build_roots=data["build_roots"],
            releases=[ReleaseInfo(r["archive"], r["suite"], r["uri"], dt.datetime.fromisoformat(r["date"]),
                                  r["inrelease_sha256"]) for r in data["releases"]],
            packages=[DebPackage(**p) for p in data["packages"]],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_cached(path: Path, res: DebianResolution) -> None:
    data = dataclasses.asdict(res)
    for r in data["releases"]:
        r["date"] = r["date"].isoformat()
    atomic_write(path, json.dumps(data, sort_keys=True))


def resolve_debian(distro: Distro, arch: str, python: str, extra: list[str], mirror: str | None,
                   snapshot_date: dt.datetime | None = None, build_packages: list[str] | None = None
                   ) -> DebianResolution:
    """The closure of the runtime roots (+ *extra*) and of the build roots (+ *build_packages*).

    A package reachable from a runtime root has role "runtime", whatever else needs it.
    The resolution cache is keyed by both root lists.
    """
    roots = sorted({f"python{python}", *distro.runtime_roots, *extra})
    build_roots = sorted({*BUILD_ROOTS, *(build_packages or [])} - set(roots))
    apt = Apt(distro, arch, mirror, snapshot_date=snapshot_date)
    with apt.locked():
        if not _inrelease_unchanged(apt):
            apt.update()
        cache = apt.state / "resolutions" / f"{_cache_key(apt, roots, build_roots)}.json"
        cached = _load_cached(cache)
        if cached is not None:
            return cached
        res = _resolve_with_apt(apt, distro, arch, roots, build_roots)
        _save_cached(cache, res)
        return res


def _resolve_with_apt(apt: Apt, distro: Distro, arch: str, roots: list[str],
                      build_roots: list[str]) -> DebianResolution:
    releases = apt.releases()
    pins = apt.closure(roots + build_roots)
    if not pins:
        raise EnvgenError(f"apt resolved an empty closure for {', '.join(roots)}")
    uris = apt.uris(pins)
    records = {rec["Package"]: rec for rec in apt.show(pins)}
    names = {n for n, _ in pins}
    missing = names - set(records)
    if missing:
        raise EnvgenError(f"apt returned no record for {', '.join(sorted(missing))}")
    edges = _edges(records, names)
    runtime = _reachable(roots, edges)
    newest: dict[str, dt.datetime] = {}
    for r in releases:
        newest[r.archive] = max(newest.get(r.archive, r.date), r.date)
    archive_uris = {r.archive: r.uri for r in releases}
    packages = []
    for name, version in pins:
        rec = records[name]
        filename = rec["Filename"]
        base = os.path.basename(filename)
        if base not in uris:
            raise EnvgenError(f"apt gave no URL for {name} {version}")
        url, size, sha = uris[base]
        archive = next((a for a, u in archive_uris.items() if url.startswith(u + "/")), None)
        if archive is None:
            raise EnvgenError(f"{url} is not under any configured archive")
        if rec.get("SHA256") and rec["SHA256"] != sha:
            raise EnvgenError(f"apt reports two hashes for {name} {version}")
        packages.append(DebPackage(
            name=name,
            version=version,
            architecture=rec["Architecture"],
            filename=filename,
            size=size,
            sha256=sha,
            archive=archive,
            url=url,
            snapshot_url=f"{SNAPSHOT_SERVICE}/{archive}/{stamp(newest[archive])}/{urllib.parse.quote(filename)}",
            role="runtime" if name in runtime else "build",
            depends=edges[name],
        ))
    return DebianResolution(
        distro=distro.name, arch=arch, roots=roots, build_roots=build_roots,
        releases=sorted(releases, key=lambda r: (r.archive, r.suite)), packages=packages,
    )
