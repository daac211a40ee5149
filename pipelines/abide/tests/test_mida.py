"""MIDA maths: kernel-metric orthonormality, ordering, signs, the independence trade-off, transduction."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from abide_pipeline.mida import MIDA, MIDAClassifier, hsic


def _problem(n=80, d=120, seed=0):
    rng = np.random.default_rng(seed)
    site = rng.integers(0, 3, n)
    factors = np.eye(3)[site][:, 1:]  # two site dummies
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d))
    x[:, :20] += 1.5 * site[:, None]  # site shift
    x[:, 20:30] += 1.0 * y[:, None]  # label signal
    return x, y, factors


def _centred_kernel(m, x):
    return m.centerer_.transform(m._kernel(x, x))


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_w_is_orthonormal_in_the_kernel_metric(kernel):
    x, y, f = _problem()
    m = MIDA(num_components=10, kernel=kernel, mu=1.0, eta=1.0).fit(x, y, factors=f)
    k = _centred_kernel(m, x)
    np.testing.assert_allclose(m.W_.T @ k @ m.W_, np.eye(10), atol=1e-8)
    # embedding of the fitted rows is K W, and transform() reproduces it
    np.testing.assert_allclose(m.transform(x), k @ m.W_, atol=1e-8)
    np.testing.assert_allclose(m.fit_transform(x, y, factors=f), k @ m.W_, atol=1e-8)


def test_eigenvalues_descend_and_solve_the_objective():
    x, y, f = _problem()
    mu, eta = 0.7, 2.0
    m = MIDA(num_components=8, mu=mu, eta=eta).fit(x, y, factors=f)
    assert np.all(np.diff(m.eigenvalues_) <= 1e-9)
    n = len(x)
    h = np.eye(n) - 1.0 / n
    onehot = np.eye(2)[y]
    ky = h @ onehot @ onehot.T @ h
    kf = h @ f @ f.T @ h
    k = _centred_kernel(m, x)
    objective = m.W_.T @ k @ (mu * h + eta * ky - kf) @ k @ m.W_
    np.testing.assert_allclose(objective, np.diag(m.eigenvalues_), atol=1e-6 * np.abs(m.eigenvalues_).max())


def test_sign_convention_is_deterministic():
    x, y, f = _problem()
    m = MIDA(num_components=6).fit(x, y, factors=f)
    cols = np.arange(6)
    assert np.all(m.W_[np.argmax(np.abs(m.W_), axis=0), cols] > 0)
    again = MIDA(num_components=6).fit(x.copy(), y, factors=f)
    np.testing.assert_array_equal(m.W_, again.W_)


def test_independence_term_grows_with_mu():
    """Under the objective, lowering mu weights -Kf more: HSIC(Z, factors) must not increase."""
    x, y, f = _problem()
    terms, hsics = [], []
    for mu in [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]:
        m = MIDA(num_components=10, mu=mu, eta=0.0).fit(x, y, factors=f)
        z = m.transform(x)
        k = _centred_kernel(m, x)
        fc = f - f.mean(0)
        terms.append(np.trace(m.W_.T @ k @ fc @ fc.T @ k @ m.W_))
        hsics.append(hsic(z, f))
    assert np.all(np.diff(terms) >= -1e-8 * max(terms))
    np.testing.assert_allclose(terms, np.array(hsics) * (len(x) - 1) ** 2, rtol=1e-6, atol=1e-9)
    assert hsics[0] < 1e-6 * hsics[-1]  # small mu: (near) independent of the sites
    # without factors the embedding is kernel PCA-like and site-dependent
    plain = MIDA(num_components=10, mu=1.0, eta=0.0).fit(x, y)
    assert hsic(plain.transform(x), f) > 100 * hsics[0]


def test_label_term_raises_label_dependence():
    x, y, f = _problem()
    low = MIDA(num_components=5, mu=1.0, eta=0.0).fit(x, y, factors=f)
    high = MIDA(num_components=5, mu=1.0, eta=100.0).fit(x, y, factors=f)
    ignored = MIDA(num_components=5, mu=1.0, eta=100.0, ignore_y=True).fit(x, y, factors=f)
    assert hsic(high.transform(x), y) > hsic(low.transform(x), y)
    np.testing.assert_allclose(ignored.W_, low.W_)


def test_augment_and_component_cap():
    x, y, f = _problem(n=30)
    m = MIDA(num_components=256, augment=True).fit(x, y, factors=f)
    assert m.n_components_ == 29  # rank of the centred kernel of 30 rows
    z = m.transform(x, factors=f)
    assert z.shape == (30, 29 + 2)
    np.testing.assert_array_equal(z[:, -2:], f)


def test_classifier_parameter_names_and_clone():
    est = MIDAClassifier(LogisticRegression(), MIDA(), num_factors=2)
    params = est.get_params()
    assert "C" in params and "domain_adapter__mu" in params
    est.set_params(C=0.25, domain_adapter__mu=3.0)
    assert est.estimator.C == 0.25 and est.domain_adapter.mu == 3.0
    copy = clone(est)
    assert copy.estimator.C == 0.25 and copy.estimator is not est.estimator


def test_transductive_prediction_masks_exactly_the_test_labels():
    x, y, f = _problem(n=70)
    train, test = np.arange(50), np.arange(50, 70)
    design = np.hstack([x, f])
    mida = MIDA(num_components=12, mu=1.0, eta=5.0)
    clf = MIDAClassifier(LogisticRegression(max_iter=500), mida, num_factors=2).fit(design[train], y[train])
    pred = clf.predict(design[test])

    y_all = np.concatenate([y[train], -np.ones(len(test), dtype=int)])  # the fix: only test rows unknown
    z = clone(mida).fit_transform(np.vstack([x[train], x[test]]), y_all, factors=np.vstack([f[train], f[test]]))
    manual = LogisticRegression(max_iter=500).fit(z[:50], y[train]).predict(z[50:])
    np.testing.assert_array_equal(pred, manual)

    buggy = y_all.copy()
    buggy[len(train) - 1] = -1  # the original's y[n_train-1:] = -1
    z_bug = clone(mida).fit_transform(np.vstack([x[train], x[test]]), buggy, factors=np.vstack([f[train], f[test]]))
    assert not np.allclose(np.abs(z), np.abs(z_bug))

    # decision_function on the same rows reuses the cached transductive fit and agrees with predict
    scores = clf.decision_function(design[test])
    np.testing.assert_array_equal(clf.classes_[(scores > 0).astype(int)], pred)
    # on the training rows the inductive model is used
    assert clf.predict(design[train]).shape == (50,)
