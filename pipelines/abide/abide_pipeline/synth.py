"""Synthetic ABIDE PCP data in the exact on-disk layout of the real thing.

Layout::

    OUT/ABIDE_pcp/Phenotypic_V1_0b_preprocessed1.csv   (real 106-column header)
    OUT/ABIDE_pcp/cpac/<strategy>/<FILE_ID>_rois_<atlas>.1D

Subjects reuse the real SUB_ID / SITE_ID / FILE_ID / DX_GROUP of QC-passing
ABIDE subjects (``data/subjects.csv``), so the default set has the real QC'd
size: 871 subjects, 20 sites, 403 ASD / 468 control. Everything else --
demographics and all time series -- is simulated.

Time-series model (per subject, ``T`` time points, ``R`` ROIs)::

    ts = F L_s^T + a_s d l_d^T + g p_site^T + sigma_site * E          (AR(1) latent F, d, g)
    file = offset_site + scale_site * ts                            (per-ROI scanner gain)

* ``L_s``: 10 network loadings shared by everybody plus subject jitter;
* diagnostic signal: a latent ``d`` loading on 32 "signal" ROIs; its
  strength ``a_s`` ~ N(1.0, 0.3) for ASD and N(0.3, 0.3) for controls, so a
  few hundred of the 19,900 connections (496 among the signal ROIs)
  carry the label;
* site effects: each site has its own time-point count (100-300), noise level
  ``sigma_site`` (scales every correlation), a site "scanner" component
  ``p_site`` (shifts the connectivity pattern per site -- the part MIDA can
  remove), and per-ROI offset and scale (visible to covariance features only).

Files are written with fixed formatting (``%.4f``, tab-separated, ``#k``
header), rows sorted by SUB_ID and no timestamps: the same seed gives
byte-identical files.
"""

from __future__ import annotations

import csv
import io
import os
import zlib
from importlib import resources

import numpy as np
import pandas as pd
from scipy import signal

from .data import ATLAS_ROIS, PHENOTYPIC_FILE, InputError, strategy_name

DEFAULT_EXCLUDED = 12
STRATEGIES = [strategy_name(f, g) for f in (False, True) for g in (False, True)]
N_NETWORKS = 10
N_SIGNAL_ROIS = 32
TR = 2.0

# (mean age, sd age, P(eyes open)) per site, rounded from the real QC'd table.
SITE_INFO = {
    "CALTECH": (27.7, 10.4, 0.0),
    "CMU": (26.6, 5.7, 0.0),
    "KKI": (10.0, 1.3, 1.0),
    "LEUVEN_1": (22.6, 3.6, 1.0),
    "LEUVEN_2": (14.1, 1.4, 0.0),
    "MAX_MUN": (25.3, 11.9, 0.25),
    "NYU": (15.3, 6.6, 0.85),
    "OHSU": (10.7, 1.8, 1.0),
    "OLIN": (16.6, 3.5, 1.0),
    "PITT": (18.9, 6.9, 0.0),
    "SBL": (34.4, 8.6, 0.0),
    "SDSU": (14.4, 1.8, 1.0),
    "STANFORD": (10.0, 1.6, 0.0),
    "TRINITY": (17.0, 3.5, 0.0),
    "UCLA_1": (13.2, 2.4, 1.0),
    "UCLA_2": (12.5, 1.5, 1.0),
    "UM_1": (13.4, 2.9, 1.0),
    "UM_2": (16.0, 3.4, 1.0),
    "USM": (22.7, 8.3, 1.0),
    "YALE": (12.7, 2.9, 1.0),
}

# Kinds of excluded rows, cycled through: (column, value) or no_filename.
EXCLUSIONS = [
    ("qc_rater_1", "fail"),
    ("qc_anat_rater_2", "fail"),
    ("no_filename", None),
    ("qc_func_rater_3", "fail"),
    ("qc_rater_1", "maybe"),
    ("qc_func_rater_2", ""),
    ("qc_anat_rater_3", "fail"),
]

HANDEDNESS = (["R", "", "L", "Ambi", "-9999", "Mixed", "L->R"], [0.63, 0.27, 0.065, 0.015, 0.01, 0.006, 0.004])


def _package_file(name: str) -> str:
    return resources.files("abide_pipeline").joinpath("data", name).read_text(encoding="utf-8")


def phenotypic_header() -> list:
    return next(csv.reader(io.StringIO(_package_file("phenotypic_header.csv"))))


def real_subjects() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(_package_file("subjects.csv")))


def _rng(seed: int, *keys) -> np.random.Generator:
    return np.random.default_rng([int(seed)] + [int(k) for k in keys])


def _site_key(site: str) -> int:
    return zlib.crc32(site.encode("ascii"))


def _largest_remainder(total: int, weights) -> list:
    weights = np.asarray(weights, dtype=float)
    raw = total * weights / weights.sum()
    base = np.floor(raw).astype(int)
    order = np.argsort(-(raw - base), kind="stable")
    base[order[: total - base.sum()]] += 1
    return base.tolist()


def select_subjects(n_subjects=None, sites=None, n_excluded=DEFAULT_EXCLUDED) -> pd.DataFrame:
    """Rows (SUB_ID, SITE_ID, FILE_ID, DX_GROUP, EXCLUSION) of the synthetic set, sorted by SUB_ID."""
    table = real_subjects()
    all_sites = list(SITE_INFO)
    if sites is None:
        sites = all_sites
    else:
        sites = [s.strip().upper() for s in sites if s.strip()]
        unknown = [s for s in sites if s not in SITE_INFO]
        if unknown or not sites:
            raise InputError(
                f"unknown site(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(all_sites)}"
            )
        sites = list(dict.fromkeys(sites))
    passing = table[(table.QC_PASS == 1) & table.SITE_ID.isin(sites)].sort_values("SUB_ID")
    pool = {s: passing[passing.SITE_ID == s] for s in sites}
    if n_subjects is None:
        counts = [len(pool[s]) for s in sites]
    else:
        if n_subjects < 4 * len(sites):
            raise InputError(f"--n-subjects must be at least 4 per site ({4 * len(sites)} for {len(sites)} sites)")
        counts = _largest_remainder(n_subjects, [len(pool[s]) for s in sites])
    used = set(table.SUB_ID)
    next_id = int(table.SUB_ID.max()) + 1000
    rows = []
    for site, k in zip(sites, counts, strict=True):
        p = pool[site]
        asd, ctl = p[p.DX_GROUP == 1], p[p.DX_GROUP == 2]
        k_asd = int(round(k * len(asd) / len(p)))
        k_asd = min(max(k_asd, 2), k - 2)
        prefix = p.FILE_ID.iloc[0].rsplit("_", 1)[0]
        for frame, want, dx in ((asd, k_asd, 1), (ctl, k - k_asd, 2)):
            take = frame.head(want)
            rows += [(r.SUB_ID, site, r.FILE_ID, dx, "") for r in take.itertuples()]
            for _ in range(want - len(take)):  # more than ABIDE has: fresh IDs, same prefix
                while next_id in used:
                    next_id += 1
                used.add(next_id)
                rows.append((next_id, site, f"{prefix}_{next_id:07d}", dx, ""))
    # excluded rows: real non-passing IDs of the chosen sites first
    spare = table[(table.QC_PASS == 0) & table.SITE_ID.isin(sites)].sort_values("SUB_ID")
    spare = spare[spare.FILE_ID != "no_filename"]
    taken = {r[0] for r in rows}
    spare = spare[~spare.SUB_ID.isin(taken)]
    for i in range(max(0, n_excluded)):
        column, value = EXCLUSIONS[i % len(EXCLUSIONS)]
        if i < len(spare):
            r = spare.iloc[i]
            sub_id, site, file_id, dx = int(r.SUB_ID), r.SITE_ID, r.FILE_ID, int(r.DX_GROUP)
        else:
            site = sites[i % len(sites)]
            while next_id in used:
                next_id += 1
            used.add(next_id)
            prefix = pool[site].FILE_ID.iloc[0].rsplit("_", 1)[0]
            sub_id, file_id, dx = next_id, f"{prefix}_{next_id:07d}", 1 + i % 2
        if column == "no_filename":
            file_id = "no_filename"
        rows.append((sub_id, site, file_id, dx, f"{column}={value}" if value is not None else column))
    out = pd.DataFrame(rows, columns=["SUB_ID", "SITE_ID", "FILE_ID", "DX_GROUP", "EXCLUSION"])
    return out.sort_values("SUB_ID", kind="stable").reset_index(drop=True)


def _fmt(x, digits):
    return f"{x:.{digits}f}"


def phenotype_rows(subjects: pd.DataFrame, seed: int) -> list:
    header = phenotypic_header()
    rows = []
    for i, s in enumerate(subjects.itertuples()):
        rng = _rng(seed, 1, s.SUB_ID)
        age_mean, age_sd, p_open = SITE_INFO[s.SITE_ID]
        row = dict.fromkeys(header, "")
        row[header[0]] = str(i)
        row["Unnamed: 0"] = str(i + 1)
        row["SUB_ID"] = str(s.SUB_ID)
        row["X"] = str(i + 1)
        row["subject"] = str(s.SUB_ID)
        row["SITE_ID"] = s.SITE_ID
        row["FILE_ID"] = s.FILE_ID
        row["DX_GROUP"] = str(s.DX_GROUP)
        row["DSM_IV_TR"] = str(int(rng.integers(1, 4))) if s.DX_GROUP == 1 else "0"
        age = max(6.5, rng.normal(age_mean, age_sd))
        row["AGE_AT_SCAN"] = _fmt(age, 2)
        row["SEX"] = "1" if rng.random() < 0.85 else "2"
        row["HANDEDNESS_CATEGORY"] = str(rng.choice(HANDEDNESS[0], p=HANDEDNESS[1]))
        u = rng.random()
        fiq = rng.normal(104.0 if s.DX_GROUP == 1 else 112.0, 14.0)
        row["FIQ"] = "-9999" if u < 0.03 else ("" if u < 0.06 else str(int(round(fiq))))
        row["FIQ_TEST_TYPE"] = "WASI" if row["FIQ"] not in ("", "-9999") else ""
        row["EYE_STATUS_AT_SCAN"] = "1" if rng.random() < p_open else "2"
        row["AGE_AT_MPRAGE"] = ""
        row["func_mean_fd"] = _fmt(float(rng.lognormal(-2.3, 0.5)), 10)
        row["qc_rater_1"] = "OK"
        row["qc_anat_rater_2"] = "maybe" if rng.random() < 0.15 else "OK"
        row["qc_func_rater_2"] = "maybe" if rng.random() < 0.2 else "OK"
        row["qc_anat_rater_3"] = "OK"
        row["qc_func_rater_3"] = "OK"
        row["SUB_IN_SMP"] = "1"
        if s.EXCLUSION and s.EXCLUSION != "no_filename":
            column, value = s.EXCLUSION.split("=", 1)
            row[column] = value
        rows.append([row[c] for c in header])
    return [header] + rows


class _World:
    """Seeded global and per-site parameters of the generative model."""

    def __init__(self, seed: int, n_rois: int, atlas: str):
        g = _rng(seed, 0, _site_key(atlas))
        self.n_rois = n_rois
        self.network = np.sort(g.integers(0, N_NETWORKS, n_rois))
        base = g.normal(0.0, 0.15, (n_rois, N_NETWORKS))
        base[np.arange(n_rois), self.network] += 0.8
        self.loadings = base
        self.signal_rois = np.sort(g.choice(n_rois, size=min(N_SIGNAL_ROIS, n_rois), replace=False))
        signal_loading = np.zeros(n_rois)
        signal_loading[self.signal_rois] = g.choice([-1.0, 1.0], size=len(self.signal_rois)) * g.uniform(
            0.5, 0.8, len(self.signal_rois)
        )
        self.signal_loading = signal_loading
        self.seed = seed
        self.atlas = atlas
        self._sites = {}

    def site(self, site: str):
        if site not in self._sites:
            g = _rng(self.seed, 2, _site_key(site), _site_key(self.atlas))
            self._sites[site] = {
                "T": int(g.integers(100, 301)),
                "noise": float(g.uniform(0.7, 1.4)),
                "pattern": g.normal(0.0, 0.6, self.n_rois),
                "offset": g.normal(0.0, 30.0, self.n_rois) + g.uniform(-200, 200),
                "scale": np.exp(g.normal(0.0, 0.3, self.n_rois)) * g.uniform(5.0, 20.0),
            }
        return self._sites[site]


def _ar1(x: np.ndarray, phi: float) -> np.ndarray:
    return signal.lfilter([np.sqrt(1 - phi**2)], [1.0, -phi], x, axis=0)


def simulate_subject(world: _World, sub_id: int, site: str, dx: int) -> np.ndarray:
    """Raw (nofilt_noglobal) time series, shape (T, R)."""
    s = world.site(site)
    rng = _rng(world.seed, 3, sub_id, _site_key(world.atlas))
    t = s["T"]
    latent = _ar1(rng.standard_normal((t, N_NETWORKS + 2)), 0.5)
    loadings = world.loadings + rng.normal(0.0, 0.1, world.loadings.shape)
    strength = rng.normal(1.0 if dx == 1 else 0.3, 0.3)
    ts = latent[:, :N_NETWORKS] @ loadings.T
    ts += strength * np.outer(latent[:, N_NETWORKS], world.signal_loading)
    ts += np.outer(latent[:, N_NETWORKS + 1], s["pattern"])
    ts += s["noise"] * rng.standard_normal((t, world.n_rois))
    return s["offset"] + s["scale"] * ts


def apply_strategy(ts: np.ndarray, strategy: str) -> np.ndarray:
    out = ts
    if strategy.startswith("filt"):
        b, a = signal.butter(2, [0.01, 0.1], btype="band", fs=1.0 / TR)
        out = signal.filtfilt(b, a, out, axis=0)
    if strategy.endswith("_global"):
        centred = out - out.mean(axis=0)
        gs = centred.mean(axis=1, keepdims=True)
        beta = (gs * centred).sum(axis=0) / max(float((gs**2).sum()), 1e-12)
        out = out - gs * beta
    return out


def write_1d(path: str, ts: np.ndarray) -> None:
    n = ts.shape[1]
    header = "\t".join(f"#{k}" for k in range(1, n + 1))
    rounded = np.round(ts, 4) + 0.0  # + 0.0 turns -0.0 into 0.0
    fmt = "\t".join(["%.4f"] * n)
    body = "\n".join(fmt % tuple(row) for row in rounded.tolist())
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write(header + "\n" + body + "\n")


def generate(out, seed=0, n_subjects=None, sites=None, n_excluded=DEFAULT_EXCLUDED, atlases=("cc200",),
             strategies=("nofilt_noglobal",)) -> pd.DataFrame:
    atlases = list(atlases)
    bad = [a for a in atlases if a not in ATLAS_ROIS]
    if bad or not atlases:
        raise InputError(f"unknown atlas {bad[0] if bad else '(none)'!r} (choose from {', '.join(ATLAS_ROIS)})")
    strategies = STRATEGIES if list(strategies) == ["all"] else list(strategies)
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not strategies:
        raise InputError(f"unknown strategy {bad[0] if bad else '(none)'!r} (choose from {', '.join(STRATEGIES)}, all)")
    subjects = select_subjects(n_subjects, sites, n_excluded)
    root = os.path.join(out, "ABIDE_pcp")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, PHENOTYPIC_FILE), "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(phenotype_rows(subjects, seed))
    for strategy in strategies:
        os.makedirs(os.path.join(root, "cpac", strategy), exist_ok=True)
    with_files = subjects[subjects.FILE_ID != "no_filename"]
    for atlas in atlases:
        world = _World(seed, ATLAS_ROIS[atlas], atlas)
        for s in with_files.itertuples():
            raw = simulate_subject(world, int(s.SUB_ID), s.SITE_ID, int(s.DX_GROUP))
            for strategy in strategies:
                path = os.path.join(root, "cpac", strategy, f"{s.FILE_ID}_rois_{atlas}.1D")
                write_1d(path, apply_strategy(raw, strategy))
    return subjects


def main(args) -> None:
    sites = args.sites.split(",") if args.sites else None
    subjects = generate(
        args.out,
        seed=args.seed,
        n_subjects=args.n_subjects,
        sites=sites,
        n_excluded=args.n_excluded,
        atlases=[a.strip() for a in args.atlases.split(",") if a.strip()],
        strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
    )
    kept = subjects[subjects.EXCLUSION == ""]
    print(
        f"wrote {len(subjects)} phenotypic rows ({len(kept)} passing QC: "
        f"{int((kept.DX_GROUP == 1).sum())} ASD / {int((kept.DX_GROUP == 2).sum())} control, "
        f"{kept.SITE_ID.nunique()} sites) to {os.path.join(args.out, 'ABIDE_pcp')}"
    )
