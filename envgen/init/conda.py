"""A conda ``environment.yml`` -> requirements, by an explicit table of conda names with a clear PyPI equivalent.

The ``pip:`` section is read as lines of a requirements file.  Each conda
package is mapped only when :data:`CONDA_TO_PYPI` names it: conda-forge and
PyPI share most scientific Python names, but not all (``pytorch`` is
``torch``, ``py-xgboost`` is ``xgboost``) and many conda packages are C
libraries, compilers or build variants that PyPI does not have as projects
at all.  :data:`NOT_ON_PYPI` says why for the well-known ones; any other
name is reported as not in the table.  No package is dropped without its
name and a reason, printed and written into the spec.

conda's version syntax becomes PEP 440 where it has one form there:
``=1.26`` (a prefix match) is ``==1.26.*``, ``==1.26.4`` and ``1.26.4`` are
``==1.26.4``, ``>=1.2,<2`` stays; a build string (``=1.26.4=py311h…``) is
conda-only and dropped with a note; ``|`` (either of two versions) has no
PEP 440 form and the package is not carried.  ``python`` sets the spec's
Python.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from . import yamlish
from .draft import InitError, Origin
from .pipreqs import Reader

# conda package name -> PyPI project name: the same project under both names (most are identical).
CONDA_TO_PYPI: dict[str, str] = {
    **{n: n for n in (
        "numpy", "scipy", "pandas", "scikit-learn", "scikit-image", "matplotlib", "seaborn", "statsmodels",
        "joblib", "threadpoolctl", "numexpr", "bottleneck", "numba", "llvmlite", "cython", "sympy", "networkx",
        "h5py", "pillow", "xarray", "dask", "pyarrow", "nibabel", "nilearn", "requests", "urllib3", "idna",
        "certifi", "charset-normalizer", "six", "packaging", "pyparsing", "python-dateutil", "pytz", "attrs",
        "click", "jinja2", "markupsafe", "tqdm", "rich", "tabulate", "toolz", "cloudpickle", "fsspec", "psutil",
        "lxml", "beautifulsoup4", "sqlalchemy", "pydantic", "protobuf", "setuptools", "wheel", "pytest",
        "ipython", "ipykernel", "jupyterlab", "notebook", "kiwisolver", "cycler", "fonttools", "contourpy",
        "regex", "tokenizers", "transformers", "datasets", "nltk", "torchvision", "torchaudio", "lightgbm",
        "tensorboard", "wandb", "hydra-core", "omegaconf", "plotly", "bokeh", "altair", "numcodecs", "zarr",
        "netcdf4", "shapely", "pyproj", "imageio", "tifffile", "pooch", "platformdirs", "filelock", "typer",
        "mne", "pywavelets", "patsy", "xlrd", "openpyxl", "pyzmq", "tornado", "traitlets", "decorator",
    )},
    "matplotlib-base": "matplotlib",  # conda-forge's matplotlib without the Qt backend
    "pyyaml": "pyyaml",
    "pytorch": "torch",
    "py-xgboost": "xgboost",
    "xgboost": "xgboost",
    "typing_extensions": "typing-extensions",
    "typing-extensions": "typing-extensions",
    "pytables": "tables",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "tensorflow": "tensorflow",
}

_CUDA = ("NVIDIA's CUDA libraries as conda ships them; on PyPI the wheels that need CUDA bring it "
         "(torch pulls nvidia-* wheels), so there is no one project to name")
_BLAS = "a BLAS/LAPACK build choice in conda; PyPI's numpy and scipy wheels bundle their own OpenBLAS"
_CRT = "the C/C++ runtime in conda; the Debian base provides it (libgcc-s1, libstdc++6, libgomp1)"
_SYS = "a system library conda ships with its Python; the env's Python is the Debian base's, which brings its own"
# well-known conda packages that are not PyPI projects, and why
NOT_ON_PYPI: dict[str, str] = {
    **{n: _CUDA for n in ("cudatoolkit", "cuda-toolkit", "cuda-runtime", "cuda-version", "cuda-nvcc", "cudnn",
                          "nccl", "cuda-cudart", "pytorch-cuda", "cupti")},
    **{n: _BLAS for n in ("mkl", "mkl-service", "mkl_fft", "mkl_random", "intel-openmp", "blas", "libblas",
                          "libcblas", "liblapack", "openblas", "libopenblas", "nomkl", "blas-devel")},
    **{n: _CRT for n in ("libgcc", "libgcc-ng", "libstdcxx", "libstdcxx-ng", "libgomp", "_libgcc_mutex",
                         "_openmp_mutex", "ld_impl_linux-64", "libgfortran", "libgfortran-ng", "libgfortran5",
                         "sysroot_linux-64", "kernel-headers_linux-64")},
    **{n: _SYS for n in ("openssl", "ca-certificates", "libffi", "zlib", "libzlib", "xz", "liblzma", "bzip2",
                         "libbzip2", "ncurses", "readline", "sqlite", "libsqlite", "tk", "libuuid", "libnsl",
                         "libxcrypt", "expat", "libexpat", "tzdata", "libmpdec", "python_abi")},
    "pip": "the installer itself: envgen installs the env without it (add 'pip' to requirements if the env "
           "must have it)",
    "opencv": "conda's opencv bundles the C++ library; on PyPI choose opencv-python or opencv-python-headless",
    "compilers": "conda's compiler toolchain; a source build gets gcc from the Debian base",
    "cxx-compiler": "conda's compiler toolchain; a source build gets gcc from the Debian base",
    "c-compiler": "conda's compiler toolchain; a source build gets gcc from the Debian base",
    "gcc": "a compiler; a source build gets gcc from the Debian base",
    "gxx": "a compiler; a source build gets gcc from the Debian base",
    "gfortran": "a compiler; add the Debian package gfortran to [os] build-packages if a source build needs it",
    "git": "a tool, not a Python package; add the Debian package git to [os] packages if the env needs it",
    "cmake": "a build tool; add the Debian package to [os] build-packages if a source build needs it",
    "make": "a build tool; add the Debian package to [os] build-packages if a source build needs it",
}
_UNKNOWN = ("not in envgen's table of conda packages with a clear PyPI equivalent (envgen/init/conda.py); "
            "if PyPI has the same project, add it to requirements")
_MATCH = re.compile(r"^(?:(?P<channel>[^:\s]+)::)?(?P<name>[A-Za-z0-9_][A-Za-z0-9_.+-]*)\s*(?P<rest>.*)$")


def read_environment(path: Path, reader: Reader) -> None:
    d = reader.draft
    where = reader.rel(path)
    d.sources.append(where)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InitError(f"{where}: not UTF-8 text") from None
    doc = yamlish.loads(text, where)
    if not isinstance(doc, dict) or not isinstance(doc.get("dependencies"), list):
        raise InitError(f"{where}: expected a conda environment file with a 'dependencies' list")
    if isinstance(doc.get("name"), str):
        d.names.append(doc["name"])
    channels = doc.get("channels") or []
    if channels:
        d.notes.append(f"{where}: conda channels ({', '.join(map(str, channels))}) are not used: "
                       "the spec's packages come from PyPI and Debian")
    for i, dep in enumerate(doc["dependencies"]):
        origin = Origin(where, detail=f"dependencies[{i}]")
        if isinstance(dep, dict) and list(dep) == ["pip"]:
            pip_items = dep["pip"] or []
            if not isinstance(pip_items, list):
                raise InitError(f"{origin}: expected a list under 'pip:'")
            for j, line in enumerate(pip_items):
                if not isinstance(line, str):
                    raise InitError(f"{origin}: pip[{j}]: expected a requirement line")
                reader.line(line, Origin(where, detail=f"pip[{j}]"), path.parent)
        elif isinstance(dep, str):
            conda_package(dep.strip(), origin, reader)
        else:
            raise InitError(f"{origin}: expected a conda package spec or a 'pip:' list, got {dep!r}")
    for key in sorted(set(doc) - {"name", "channels", "dependencies", "prefix", "variables"}):
        d.omit(f"{key}:", Origin(where), "not a key of a conda environment file that envgen init reads")
    if doc.get("variables"):
        d.omit("variables:", Origin(where), "environment variables of the env: set them in [run] env")


def conda_package(text: str, origin: Origin, reader: Reader) -> None:
    d = reader.draft
    m = _MATCH.match(text)
    if not m:
        raise InitError(f"{origin}: {text!r} is not a conda package spec")
    name, rest = m["name"].lower(), m["rest"].strip()
    if name == "python":
        version = _python_version(rest)
        if version:
            d.python_wanted.append((version, origin))
        elif rest:
            try:
                d.python_required.append((SpecifierSet(rest), origin))
            except InvalidSpecifier:
                d.omit(text, origin, "a Python version spec envgen init cannot read; use --python")
        return
    if name.startswith("r-") or name == "r-base":
        d.omit(text, origin, "an R package: envgen environments are Python (PyPI) on Debian")
        return
    if name in NOT_ON_PYPI:
        d.omit(text, origin, NOT_ON_PYPI[name])
        return
    if name not in CONDA_TO_PYPI:
        d.omit(text, origin, _UNKNOWN)
        return
    spec, why = pep440(rest)
    if spec is None:
        d.omit(text, origin, why)
        return
    if why:
        d.notes.append(f"{origin}: {text!r}: {why}")
    reader.requirement(CONDA_TO_PYPI[name] + spec, origin, reader.spec_dir)


def pep440(rest: str) -> tuple[str | None, str]:
    """conda's version (and build) part -> (PEP 440 specifier text or None, a note or the reason it has none)."""
    if not rest:
        return "", ""
    if "[" in rest:
        return None, "conda's [key=value] match-spec syntax has no PEP 440 form"
    if "|" in rest:
        return None, "an OR of versions (|) has no PEP 440 form; pin one version"
    note = ""
    if rest.startswith("=") and not rest.startswith("=="):
        version, _, build = rest[1:].partition("=")
        spec = f"=={version}" if version.endswith("*") else f"=={version}.*"
    elif rest.startswith("==") and "=" in rest[2:]:
        version, _, build = rest[2:].partition("=")
        spec = f"=={version}"
    elif re.match(r"^[0-9]", rest):  # the space form: "1.26.4 py311h…" or "1.26.*"
        version, _, build = rest.partition(" ")
        spec = f"=={version}"
    else:
        spec, build = rest.replace(" ", ""), ""
    if build.strip():
        note = f"the conda build string {build.strip()!r} is conda-only and not carried"
    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        return None, f"the version spec {rest!r} has no PEP 440 form"
    return spec, note


def _python_version(rest: str) -> str | None:
    """``=3.10``, ``==3.10.12``, ``3.10``, ``=3.10.12=h…`` -> ``3.10``; None for ranges."""
    m = re.match(r"^(?:==?)?\s*(\d+)\.(\d+)(?:\.[\d*]+)?(?:[=\s].*)?$", rest)
    return f"{m[1]}.{m[2]}" if m else None
