"""End-to-end runs of the main command: outputs, columns, determinism."""

import os

import joblib
import numpy as np
import pandas as pd
import yaml

from abide_helpers import SMALL_N
from abide_pipeline.outputs import OUTPUT_FILES


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def test_outputs_exist_with_documented_content(run_a):
    assert sorted(os.listdir(run_a)) == sorted(OUTPUT_FILES)
    args = yaml.safe_load(open(os.path.join(run_a, "args.yaml")))
    assert args["feature_extraction"] == ["pearson"] and args["scoring"] == ["accuracy"]
    assert args["random_state"] == 0 and args["num_folds"] == 3 and args["mida"] is False
    assert list(args) == sorted(args)

    ph = pd.read_csv(os.path.join(run_a, "phenotypes.csv"), index_col=0)
    assert ph.index.name == "SUB_ID" and len(ph) == SMALL_N
    assert list(ph.columns) == ["SITE_ID", "SEX", "AGE_AT_SCAN", "FIQ", "HANDEDNESS_CATEGORY",
                                "EYE_STATUS_AT_SCAN", "DX_GROUP"]

    with np.load(os.path.join(run_a, "inputs.npz"), allow_pickle=True) as npz:
        assert sorted(npz.files) == ["X", "groups", "y"]
        assert npz["X"].shape == (SMALL_N, 19900)
        assert npz["groups"].dtype == object
        assert set(npz["y"].tolist()) == {0, 1}

    cv = pd.read_csv(os.path.join(run_a, "cv_results.csv"))
    expected = (["mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time", "param_C", "params"]
                + [f"split{i}_test_accuracy" for i in range(3)]
                + ["mean_test_accuracy", "std_test_accuracy", "rank_test_accuracy"])
    assert list(cv.columns) == expected
    assert len(cv) == 3

    search = joblib.load(os.path.join(run_a, "model.joblib"))
    assert search.refit == "accuracy" and search.error_score == "raise"
    assert search.best_score_ == cv["mean_test_accuracy"].max()


def test_clearly_above_chance(run_a):
    cv = pd.read_csv(os.path.join(run_a, "cv_results.csv"))
    assert cv["mean_test_accuracy"].max() > 0.65


def test_rerun_is_identical(run_a, run_b):
    for name in ("args.yaml", "phenotypes.csv", "inputs.npz"):
        if name == "args.yaml":
            a = yaml.safe_load(open(os.path.join(run_a, name)))
            b = yaml.safe_load(open(os.path.join(run_b, name)))
            same = {k: v for k, v in a.items() if k != "output_dir"}
            assert same == {k: v for k, v in b.items() if k != "output_dir"}
        else:
            assert _read(os.path.join(run_a, name)) == _read(os.path.join(run_b, name)), name
    ca = pd.read_csv(os.path.join(run_a, "cv_results.csv"))
    cb = pd.read_csv(os.path.join(run_b, "cv_results.csv"))
    stable = [c for c in ca.columns if not c.endswith("_time")]
    pd.testing.assert_frame_equal(ca[stable], cb[stable])
    ma = joblib.load(os.path.join(run_a, "model.joblib"))
    mb = joblib.load(os.path.join(run_b, "model.joblib"))
    with np.load(os.path.join(run_a, "inputs.npz"), allow_pickle=True) as npz:
        x = npz["X"]
    np.testing.assert_array_equal(ma.predict(x), mb.predict(x))
    np.testing.assert_array_equal(ma.decision_function(x), mb.decision_function(x))


def test_args_yaml_bytes_identical_for_identical_command(small_dataset, tmp_path):
    from abide_helpers import FAST_FLAGS, run_cli

    argv = ["--input-dir", small_dataset, "--random-state", "3", *FAST_FLAGS, "--num-search-iterations", "1"]
    for name in ("x", "y"):
        os.makedirs(tmp_path / name)
    cwd = os.getcwd()
    try:  # same relative --output-dir, different working directories
        blobs = []
        for name in ("x", "y"):
            os.chdir(tmp_path / name)
            assert run_cli(argv + ["--output-dir", "out"]) [0] == 0
            blobs.append(_read(os.path.join("out", "args.yaml")))
    finally:
        os.chdir(cwd)
    assert blobs[0] == blobs[1]


def test_other_seed_other_scores(run_a, run_other_seed):
    ca = pd.read_csv(os.path.join(run_a, "cv_results.csv"))
    cc = pd.read_csv(os.path.join(run_other_seed, "cv_results.csv"))
    split_cols = [c for c in ca.columns if c.startswith("split")]
    assert not np.array_equal(ca[split_cols].to_numpy(), cc[split_cols].to_numpy())
    # the features do not depend on the seed
    assert _read(os.path.join(run_a, "inputs.npz")) == _read(os.path.join(run_other_seed, "inputs.npz"))


def test_mida_run(run_mida):
    with np.load(os.path.join(run_mida, "inputs.npz"), allow_pickle=True) as npz:
        assert sorted(npz.files) == ["factors", "groups", "x", "y"]
        x, factors = npz["x"], npz["factors"]
    assert factors.shape[0] == x.shape[0] == SMALL_N
    cv = pd.read_csv(os.path.join(run_mida, "cv_results.csv"))
    for p in ("num_components", "kernel", "mu", "eta", "ignore_y", "augment"):
        assert f"param_domain_adapter__{p}" in cv.columns
    assert "param_C" in cv.columns and len(cv) == 2
    search = joblib.load(os.path.join(run_mida, "model.joblib"))
    pred = search.predict(np.hstack([x, factors]))
    assert pred.shape == (SMALL_N,)
