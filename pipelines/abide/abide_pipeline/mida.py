"""Maximum Independence Domain Adaptation (MIDA) in numpy/scipy.

Yan, Kou and Zhang, "Learning domain-invariant subspace using domain features
and independence maximization", IEEE Trans. Cybernetics 48(1), 2018.

Two scikit-learn compatible pieces:

* :class:`MIDA` -- the transformer. ``fit(X, y=None, factors=None)`` learns a
  kernel subspace that keeps the variance of ``X`` (weight ``mu``), is
  dependent on the known labels (weight ``eta``) and independent of the domain
  ``factors``. Rows whose label is ``-1`` are unlabelled (transductive rows).
* :class:`MIDAClassifier` -- a meta-estimator that lets a plain
  ``GridSearchCV``/``RandomizedSearchCV`` run MIDA transductively in every
  fold. The domain factors travel as the LAST ``num_factors`` columns of the
  feature matrix, so the usual ``fit(X, y)``/``predict(X)`` API carries them.

Objective and normalisation
---------------------------
With ``K`` the centred kernel matrix of the fitted rows (``K = H Kx H``),
``H = I - 11^T/n``, ``Ky`` the centred linear kernel of the one-hot labels of
the labelled rows (unlabelled rows are zero; ``Ky = 0`` if ``ignore_y``) and
``Kf`` the centred linear kernel of the factors, MIDA solves::

    maximise   tr(W^T K (mu H + eta Ky - Kf) K W)
    subject to W^T K W = I_k

i.e. the projection directions ``v_j = Phi^T W[:, j]`` in the kernel feature
space are orthonormal (``W`` is orthonormal in the kernel metric ``K``). With
``K = U diag(s) U^T`` (eigenvalues above a relative tolerance), ``W = U
diag(s)^-1/2 V`` and ``V`` holds the top eigenvectors (``scipy.linalg.eigh``,
descending eigenvalue order) of the reduced symmetric matrix
``diag(s)^1/2 U^T (mu H + eta Ky - Kf) U diag(s)^1/2``. Each column of ``W``
is sign-flipped so that its largest-magnitude entry is positive. The embedding
is ``Z = K W`` (``+ factors`` appended when ``augment``).
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.preprocessing import KernelCenterer
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted

_RANK_RTOL = 1e-10


def _centre_columns(a: np.ndarray) -> np.ndarray:
    return a - a.mean(axis=0, keepdims=True)


def hsic(a: np.ndarray, b: np.ndarray) -> float:
    """Biased empirical HSIC with linear kernels: tr(K_a H K_b H) / (n-1)^2."""
    a = _centre_columns(np.asarray(a, dtype=np.float64).reshape(len(a), -1))
    b = _centre_columns(np.asarray(b, dtype=np.float64).reshape(len(b), -1))
    n = a.shape[0]
    return float(np.sum((a.T @ b) ** 2) / (n - 1) ** 2)


class MIDA(TransformerMixin, BaseEstimator):
    """Kernel MIDA transformer (see the module docstring for the objective).

    Parameters
    ----------
    num_components : int or None
        Number of components; ``None`` keeps all (the rank of the centred
        kernel). Capped at that rank.
    kernel : {"linear", "rbf"}
        ``rbf`` uses ``gamma`` (default ``1 / n_features``).
    mu : float
        Weight of the variance term ``H``.
    eta : float
        Weight of the label-dependence term ``Ky``.
    ignore_y : bool
        Drop the label term (``Ky = 0``).
    augment : bool
        Append the domain factors to the embedding.
    gamma : float or None
        RBF width; ``None`` means ``1 / n_features``.
    """

    def __init__(
        self,
        num_components=None,
        kernel="linear",
        mu=1.0,
        eta=1.0,
        ignore_y=False,
        augment=False,
        gamma=None,
    ):
        self.num_components = num_components
        self.kernel = kernel
        self.mu = mu
        self.eta = eta
        self.ignore_y = ignore_y
        self.augment = augment
        self.gamma = gamma

    # -- kernels ---------------------------------------------------------
    def _kernel(self, a, b):
        if self.kernel == "linear":
            return a @ b.T
        if self.kernel == "rbf":
            gamma = self.gamma if self.gamma is not None else 1.0 / a.shape[1]
            return rbf_kernel(a, b, gamma=gamma)
        raise ValueError(f"unknown kernel {self.kernel!r}; use 'linear' or 'rbf'")

    @staticmethod
    def _factors(factors, n):
        if factors is None:
            return np.zeros((n, 0))
        f = check_array(factors, dtype=np.float64, ensure_2d=False, ensure_min_features=0)
        f = f.reshape(n, -1)
        return f

    def fit(self, X, y=None, factors=None):
        self._fit(X, y, factors)
        return self

    def fit_transform(self, X, y=None, factors=None):
        z = self._fit(X, y, factors)
        return self._augment(z, factors, len(z))

    def _fit(self, X, y, factors):
        X = check_array(X, dtype=np.float64)
        n = X.shape[0]
        f = self._factors(factors, n)
        kernel = self._kernel(X, X)
        centerer = KernelCenterer().fit(kernel)
        kc = centerer.transform(kernel)
        kc = (kc + kc.T) / 2.0

        s, u = linalg.eigh(kc)
        s, u = s[::-1], u[:, ::-1]
        keep = s > max(s[0], 0.0) * _RANK_RTOL
        if not np.any(keep):
            raise ValueError("MIDA: the centred kernel matrix is zero (constant data?)")
        s, u = s[keep], u[:, keep]
        sqrt_s = np.sqrt(s)
        us = u * sqrt_s  # K^{1/2} basis; rows = fitted samples

        reduced = np.diag(self.mu * s)
        if not self.ignore_y and y is not None:
            y = np.asarray(y)
            known = y != -1
            classes = np.unique(y[known])
            if len(classes) > 0:
                onehot = (y[:, None] == classes[None, :]).astype(np.float64)
                onehot[~known] = 0.0
                a = us.T @ _centre_columns(onehot)
                reduced += self.eta * (a @ a.T)
        if f.shape[1]:
            b = us.T @ _centre_columns(f)
            reduced -= b @ b.T
        reduced = (reduced + reduced.T) / 2.0

        evals, v = linalg.eigh(reduced)
        evals, v = evals[::-1], v[:, ::-1]
        k = len(s) if self.num_components is None else min(int(self.num_components), len(s))
        evals, v = evals[:k], v[:, :k]
        w = (u / sqrt_s) @ v
        # deterministic signs: the largest-magnitude entry of each column of W is positive
        signs = np.sign(w[np.argmax(np.abs(w), axis=0), np.arange(k)])
        signs[signs == 0] = 1.0
        w *= signs
        v *= signs

        self.X_fit_ = X
        self.centerer_ = centerer
        self.W_ = w
        self.eigenvalues_ = evals
        self.n_components_ = k
        self.n_features_in_ = X.shape[1]
        self.n_factors_ = f.shape[1]
        return us @ v  # == K W

    def _augment(self, z, factors, n):
        if not self.augment:
            return z
        f = self._factors(factors, n)
        return np.hstack([z, f])

    def transform(self, X, factors=None):
        check_is_fitted(self, "W_")
        X = check_array(X, dtype=np.float64)
        kc = self.centerer_.transform(self._kernel(X, self.X_fit_))
        return self._augment(kc @ self.W_, factors, X.shape[0])


def _estimator_has(name):
    return lambda self: hasattr(self.estimator, name)


class MIDAClassifier(ClassifierMixin, BaseEstimator):
    """Transductive MIDA + classifier, usable inside GridSearchCV.

    ``X`` is ``hstack([features, factors])``: the last ``num_factors``
    columns are the domain factors. ``fit`` stores the training rows and fits
    an inductive model (MIDA on the training rows, classifier on their
    embedding). ``predict``/``decision_function``/``predict_proba`` on rows
    other than the training rows are transductive, as in the original: MIDA is
    refitted on ``train + test`` rows with the test labels masked as unknown
    (``-1``; exactly the ``n_test`` test rows, fixing the original's
    off-by-one), the classifier is refitted on the training rows' embedding
    and applied to the test rows' embedding. The last transductive fit is
    cached, so several scorers on the same rows cost one fit.

    Hyper-parameters of ``estimator`` are exposed unprefixed (``C``,
    ``alpha``), those of the adapter as ``domain_adapter__*`` -- the names of
    the original's ``cv_results_`` columns.
    """

    def __init__(self, estimator=None, domain_adapter=None, num_factors=0, transductive=True):
        self.estimator = estimator
        self.domain_adapter = domain_adapter
        self.num_factors = num_factors
        self.transductive = transductive

    # -- parameters: estimator params unprefixed --------------------------
    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        if deep and self.estimator is not None:
            for key, value in self.estimator.get_params(deep=True).items():
                params.setdefault(key, value)
        return params

    def set_params(self, **params):
        own = set(self._get_param_names())
        est_keys = set(self.estimator.get_params(deep=True)) if self.estimator is not None else set()
        forwarded = {k: params.pop(k) for k in list(params) if k not in own and "__" not in k and k in est_keys}
        super().set_params(**params)
        if forwarded:
            self.estimator.set_params(**forwarded)
        return self

    # -- helpers -----------------------------------------------------------
    def _split(self, X):
        X = check_array(X, dtype=np.float64)
        m = int(self.num_factors)
        if m <= 0:
            return X, np.zeros((X.shape[0], 0))
        if X.shape[1] <= m:
            raise ValueError(f"X has {X.shape[1]} columns but num_factors={m}")
        return X[:, :-m], X[:, -m:]

    def _adapter(self):
        return clone(self.domain_adapter) if self.domain_adapter is not None else MIDA()

    def fit(self, X, y):
        xf, f = self._split(X)
        y = np.asarray(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        self.X_fit_, self.factors_fit_, self.y_fit_, self.y_encoded_ = xf, f, y, encoded
        self.domain_adapter_ = self._adapter()
        z = self.domain_adapter_.fit_transform(xf, encoded, factors=f)
        self.estimator_ = clone(self.estimator).fit(z, y)
        self.n_features_in_ = X.shape[1]
        self._cache = None
        return self

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_cache", None)
        return state

    def _model_for(self, X):
        check_is_fitted(self, "estimator_")
        xf, f = self._split(X)
        is_train = xf.shape == self.X_fit_.shape and np.array_equal(xf, self.X_fit_)
        if not self.transductive or is_train:
            return self.estimator_, self.domain_adapter_.transform(xf, factors=f)
        key = hashlib.sha1(np.ascontiguousarray(xf).tobytes() + np.ascontiguousarray(f).tobytes()).hexdigest()
        cache = getattr(self, "_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1], cache[2]
        n = self.X_fit_.shape[0]
        x_all = np.vstack([self.X_fit_, xf])
        f_all = np.vstack([self.factors_fit_, f])
        y_all = np.concatenate([self.y_encoded_, np.full(xf.shape[0], -1)])  # exactly the test rows unknown
        adapter = self._adapter()
        z_all = adapter.fit_transform(x_all, y_all, factors=f_all)
        estimator = clone(self.estimator).fit(z_all[:n], self.y_fit_)
        self._cache = (key, estimator, z_all[n:])
        return estimator, z_all[n:]

    def predict(self, X):
        estimator, z = self._model_for(X)
        return estimator.predict(z)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        estimator, z = self._model_for(X)
        return estimator.decision_function(z)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        estimator, z = self._model_for(X)
        return estimator.predict_proba(z)

    def transform(self, X):
        """The (transductive) embedding of ``X``."""
        return self._model_for(X)[1]
