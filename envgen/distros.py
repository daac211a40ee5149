"""What envgen knows about each supported OS base and target platform.

An OS base pins three things that the rest of envgen derives from: the apt
sources (archives and suites), the Python minor version the distribution
ships (the env's interpreter comes from its .debs), and the glibc version
(which decides the newest manylinux wheels that will run on it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    archive: str  # "debian" or "debian-security": the path on the mirror
    suite: str


@dataclass(frozen=True)
class Distro:
    name: str
    codename: str
    python: str
    glibc: tuple[int, int]
    suites: tuple[Suite, ...]
    keyring: str = "/usr/share/keyrings/debian-archive-keyring.gpg"
    # Beyond the interpreter: the libraries every manylinux wheel may assume the
    # system provides and that python3.X does not pull in (PEP 599/600 policy):
    # C++ extension wheels (scipy, pandas, …) link libstdc++.so.6; and a POSIX
    # shell with the core utilities, which users and container runtimes expect
    # (Apptainer's action scripts are /bin/sh scripts).
    runtime_roots: tuple[str, ...] = ("coreutils", "dash", "libstdc++6")
    components: tuple[str, ...] = ("main",)


DEFAULT_MIRROR = "http://deb.debian.org"

DISTROS: dict[str, Distro] = {
    "debian/bookworm": Distro(
        name="debian/bookworm",
        codename="bookworm",
        python="3.11",
        glibc=(2, 36),
        suites=(
            Suite("debian", "bookworm"),
            Suite("debian", "bookworm-updates"),
            Suite("debian-security", "bookworm-security"),
        ),
    ),
    "debian/trixie": Distro(
        name="debian/trixie",
        codename="trixie",
        python="3.13",
        glibc=(2, 41),
        suites=(
            Suite("debian", "trixie"),
            Suite("debian", "trixie-updates"),
            Suite("debian-security", "trixie-security"),
        ),
    ),
}


@dataclass(frozen=True)
class Platform:
    name: str  # envgen's name, e.g. linux-x86_64
    machine: str  # platform_machine / wheel tag arch
    deb_arch: str  # Debian architecture
    oci_arch: str  # OCI/Go architecture name


PLATFORMS: dict[str, Platform] = {
    "linux-x86_64": Platform("linux-x86_64", "x86_64", "amd64", "amd64"),
}
