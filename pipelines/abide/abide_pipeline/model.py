"""Classifier, hyper-parameter space and cross-validated search."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import GridSearchCV, LeavePGroupsOut, RandomizedSearchCV, RepeatedStratifiedKFold
from sklearn.svm import LinearSVC

from .data import InputError
from .mida import MIDA, MIDAClassifier

#: inverse regularisation grid of the original: 2^-15 ... 2^15.
C_GRID = np.logspace(-15, 15, 31, base=2)
CLASSIFIERS = ("ridge", "svm", "logistic")
SCORINGS = ("accuracy", "precision", "recall", "f1", "roc_auc", "matthews_corrcoef")
MIDA_NUM_COMPONENTS = [32, 64, 128, 256, None]


def make_classifier(name: str, max_iter: int, random_state):
    if name == "logistic":
        return LogisticRegression(max_iter=max_iter, random_state=random_state)
    if name == "ridge":
        return RidgeClassifier(max_iter=max_iter, random_state=random_state)
    if name == "svm":
        return LinearSVC(max_iter=max_iter, random_state=random_state)
    raise InputError(f"unknown classifier {name!r} (choose from {', '.join(CLASSIFIERS)})")


def param_space(classifier: str, mida: bool) -> dict:
    """The search space; ridge searches ``alpha = 1 / (2 C)`` over the same grid."""
    space = {"alpha": list(1.0 / (2.0 * C_GRID))} if classifier == "ridge" else {"C": list(C_GRID)}
    if mida:
        reg = list(1.0 / (2.0 * C_GRID))
        space.update(
            {
                "domain_adapter__num_components": list(MIDA_NUM_COMPONENTS),
                "domain_adapter__kernel": ["linear", "rbf"],
                "domain_adapter__mu": reg,
                "domain_adapter__eta": reg,
                "domain_adapter__ignore_y": [True, False],
                "domain_adapter__augment": [True, False],
            }
        )
    return space


def make_cv(split: str, num_folds: int, num_cv_repeats: int, random_state):
    if split == "skf":
        return RepeatedStratifiedKFold(n_splits=num_folds, n_repeats=num_cv_repeats, random_state=random_state)
    if split == "lpgo":
        return LeavePGroupsOut(n_groups=num_folds)
    raise InputError(f"unknown split {split!r} (choose from skf, lpgo)")


def check_split(split: str, num_folds: int, num_cv_repeats: int, y: np.ndarray, groups: np.ndarray) -> None:
    if num_cv_repeats < 1:
        raise InputError(f"--num-cv-repeats must be at least 1, got {num_cv_repeats}")
    if split == "skf":
        smallest = int(np.bincount(y).min()) if len(np.unique(y)) > 1 else 0
        if len(np.unique(y)) < 2:
            raise InputError("only one diagnostic group left after filtering; cannot classify")
        if num_folds < 2:
            raise InputError(f"--num-folds must be at least 2 for --split skf, got {num_folds}")
        if num_folds > smallest:
            raise InputError(
                f"--num-folds {num_folds} is larger than the smallest class ({smallest} subjects); "
                "use fewer folds"
            )
    else:
        n_sites = len(np.unique(groups))
        if not 1 <= num_folds < n_sites:
            raise InputError(
                f"--num-folds {num_folds} sites left out needs 1 <= num-folds < number of sites ({n_sites})"
            )


def build_search(args, num_factors: int, random_state):
    """GridSearchCV / RandomizedSearchCV exactly as the original configures it.

    ``random_state`` is ONE shared ``np.random.RandomState`` handed to the
    classifier, the CV splitter and the randomized search, as in the original.
    """
    unknown = [s for s in args.scoring if s not in SCORINGS]
    if unknown:
        raise InputError(f"unknown scoring {unknown[0]!r} (choose from {', '.join(SCORINGS)})")
    classifier = make_classifier(args.classifier, args.num_solver_iterations, random_state)
    if args.mida:
        estimator = MIDAClassifier(classifier, MIDA(), num_factors=num_factors)
    else:
        estimator = classifier
    space = param_space(args.classifier, args.mida)
    cv = make_cv(args.split, args.num_folds, args.num_cv_repeats, random_state)
    common = dict(
        scoring=list(args.scoring),
        refit=args.scoring[0],
        cv=cv,
        n_jobs=args.num_jobs,
        verbose=args.verbose,
        error_score="raise",
    )
    if args.search_strategy == "grid":
        return GridSearchCV(estimator, space, **common)
    if args.search_strategy == "random":
        if args.num_search_iterations < 1:
            raise InputError(f"--num-search-iterations must be at least 1, got {args.num_search_iterations}")
        return RandomizedSearchCV(
            estimator, space, n_iter=args.num_search_iterations, random_state=random_state, **common
        )
    raise InputError(f"unknown search strategy {args.search_strategy!r} (choose from grid, random)")
