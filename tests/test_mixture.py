"""Tests of ssl_gmm.mixture: the mixture's geometry and its pair sampler.

Reference values are closed forms of the model in ssl_gmm/mixture.py
(means of norm `separation`, Sigma = I + (anisotropy - 1) P for a rank-r
projector P, P(c' = c) = p_same + (1 - p_same) sum_i pi_i^2), computed in
float64 NumPy; statistical checks use tolerances of five standard errors.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from ssl_gmm.mixture import (
  Mixture,
  make_mixture,
  mixture_from_params,
  sample,
  sample_pairs,
)

EPS32 = float(np.finfo(np.float32).eps)
# Five standard errors: a correct sampler fails one such check with
# probability ~6e-7, and every key below is fixed, so the tests are stable.
SIGMAS = 5.0


def _f64(a) -> np.ndarray:
  return np.asarray(a, np.float64)


def _nuisance_basis(cov: np.ndarray, r: int) -> np.ndarray:
  """[d, r] orthonormal eigenvectors of the r largest eigenvalues of cov."""
  _, vectors = np.linalg.eigh(cov)
  return vectors[:, -r:]


def _assert_mean_of_rows(values: np.ndarray, expected: np.ndarray) -> None:
  """Mean of iid rows equals `expected` within SIGMAS standard errors.

  The standard error of each column's mean is estimated from the rows.
  """
  n = values.shape[0]
  stderr = values.std(axis=0, ddof=1) / np.sqrt(n)
  error = np.abs(values.mean(axis=0) - expected)
  # A column with zero spread (stderr 0) must match to float64 rounding.
  assert np.all(error <= SIGMAS * stderr + 1e-12), (error, stderr)


def _assert_frequencies(labels: np.ndarray, weights: np.ndarray) -> None:
  """Label frequencies equal `weights` within SIGMAS binomial errors."""
  n = labels.shape[0]
  freq = np.bincount(labels, minlength=weights.shape[0]) / n
  stderr = np.sqrt(weights * (1 - weights) / n)
  assert np.all(np.abs(freq - weights) <= SIGMAS * stderr), (freq, weights)


def _outer_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[n, d * d] row-wise outer products a_i b_i^T, flattened."""
  return (a[:, :, None] * b[:, None, :]).reshape(a.shape[0], -1)


# Shapes are shared between tests so that jax compiles each program once.
GEOM_DIM, GEOM_K = 16, 4  # make_mixture's geometry
STATS_DIM, STATS_K = 5, 3  # the sampler's statistics
N_STATS = 100_000  # pairs per statistical check
N_SMALL = 256  # pairs per exact check
STATS_WEIGHTS = np.array([0.2, 0.5, 0.3])


@functools.cache
def _stats_params() -> tuple[np.ndarray, np.ndarray]:
  """Means and an anisotropic, non-diagonal covariance in R^STATS_DIM."""
  rng = np.random.default_rng(7)
  b = rng.normal(size=(STATS_DIM, STATS_DIM))
  cov = b @ b.T + np.diag([20.0, 1.0, 1.0, 0.5, 0.5])
  means = 2.0 * rng.normal(size=(STATS_K, STATS_DIM))
  return means, cov


def _stats_mixture() -> Mixture:
  means, cov = _stats_params()
  return mixture_from_params(means, cov, STATS_WEIGHTS)


def _uniform_mixture() -> Mixture:
  return make_mixture(jax.random.key(0), STATS_DIM, STATS_K, 10.0)


@functools.cache
def _pairs(uniform: bool, p_same: float, seed: int) -> list[np.ndarray]:
  """N_STATS pairs (x, x', c, c') from one of the two mixtures, as NumPy."""
  mixture = _uniform_mixture() if uniform else _stats_mixture()
  draws = sample_pairs(jax.random.key(seed), mixture, N_STATS, p_same)
  return [np.asarray(a) for a in draws]


# make_mixture ----------------------------------------------------------------


@pytest.mark.parametrize("separation", [1.0, 3.0, 7.5])
def test_means_have_norm_separation(separation):
  mixture = make_mixture(
    jax.random.key(0), GEOM_DIM, GEOM_K, 10.0, separation=separation
  )
  norms = np.linalg.norm(_f64(mixture.means), axis=1)
  # Closed form: every mean has norm `separation` (float32 rounding).
  np.testing.assert_allclose(norms, separation, rtol=1e-6, atol=0)
  # Closed form: uniform weights 1/K.
  np.testing.assert_allclose(_f64(mixture.weights), 0.25, rtol=1e-7, atol=0)


@pytest.mark.parametrize(
  "n_nuisance, anisotropy",
  [(None, 100.0), (None, 0.1), (None, 1.0), (2, 1000.0), (7, 30.0)],
)
def test_cov_spectrum(n_nuisance, anisotropy):
  mixture = make_mixture(
    jax.random.key(1), GEOM_DIM, GEOM_K, anisotropy, n_nuisance=n_nuisance
  )
  r = GEOM_K if n_nuisance is None else n_nuisance
  cov = _f64(mixture.cov)
  # Closed form: eigenvalue `anisotropy` r times and 1 (d - r) times.
  expected = np.sort(np.r_[np.full(r, anisotropy), np.ones(GEOM_DIM - r)])
  # float32 parameters: the QR basis is orthonormal to ~d eps, and entries
  # are rounded relative to max(1, anisotropy); Weyl's bound gives this.
  atol = 4 * GEOM_DIM * EPS32 * max(1.0, anisotropy)
  eigenvalues = np.linalg.eigvalsh(cov)
  np.testing.assert_allclose(eigenvalues, expected, rtol=0, atol=atol)
  # cov_sqrt is a square root: S S^T = Sigma (same float32 bound).
  sqrt = _f64(mixture.cov_sqrt)
  np.testing.assert_allclose(sqrt @ sqrt.T, cov, rtol=0, atol=atol)
  # Sigma is symmetric (its construction, I + (a - 1) B B^T).
  np.testing.assert_allclose(cov, cov.T, rtol=0, atol=atol)


def test_anisotropy_only_scales():
  key = jax.random.key(2)
  low = make_mixture(key, GEOM_DIM, GEOM_K, 10.0)
  high = make_mixture(key, GEOM_DIM, GEOM_K, 1000.0)
  # The key alone fixes the means (make_mixture's docstring; the model:
  # every swept value uses the same mixture).
  np.testing.assert_array_equal(np.asarray(low.means), np.asarray(high.means))
  # Same nuisance directions: the projector (Sigma - I) / (a - 1) agrees.
  # Entries of Sigma are rounded to a * eps32, so P is known to ~1e-5.
  eye = np.eye(GEOM_DIM)
  proj_low = (_f64(low.cov) - eye) / 9.0
  proj_high = (_f64(high.cov) - eye) / 999.0
  np.testing.assert_allclose(proj_low, proj_high, rtol=0, atol=1e-4)
  # And their top-K eigenvectors span the same subspace (principal angles).
  angles = scipy.linalg.subspace_angles(
    _nuisance_basis(_f64(low.cov), GEOM_K),
    _nuisance_basis(_f64(high.cov), GEOM_K),
  )
  np.testing.assert_allclose(angles, 0.0, rtol=0, atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_nuisance_in_general_position(seed):
  mixture = make_mixture(jax.random.key(seed), GEOM_DIM, GEOM_K, 100.0)
  nuisance = _nuisance_basis(_f64(mixture.cov), GEOM_K)  # [d, r]
  means = _f64(mixture.means).T  # [d, K]
  angles = np.degrees(scipy.linalg.subspace_angles(nuisance, means))
  # Not inside span{means} (else F = span{Sigma^-1 m_i} would stay in that
  # span): for random 4-planes in R^16 the largest angle is typically 75-85
  # degrees; 0 would mean the nuisance span lies inside the means' span.
  assert angles.max() > 30.0
  # Overlaps span{means} (the model): a smallest angle of 90 degrees would
  # make F equal to span{means}; typical values are 40-65 degrees.
  assert angles.min() < 80.0
  # Not aligned with coordinate axes: e_j inside the nuisance span would give
  # P_jj = 1 and a basis coordinate of modulus 1 (typical maxima ~0.6).
  projector = nuisance @ nuisance.T
  assert np.diag(projector).max() < 0.9
  assert np.abs(nuisance).max() < 0.9


def test_make_mixture_same_under_x64():
  key = jax.random.key(5)
  outside = make_mixture(key, GEOM_DIM, GEOM_K, 50.0, dtype=jnp.float32)
  with jax.enable_x64(True):
    inside = make_mixture(key, GEOM_DIM, GEOM_K, 50.0, dtype=jnp.float32)
    inside = [np.asarray(a) for a in inside]
  # mixture.py's docstring: the same numbers with or without 64-bit mode.
  for a, b in zip(outside, inside):
    assert b.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(a), b)


# mixture_from_params ---------------------------------------------------------


@pytest.mark.parametrize(
  "cov",
  [
    np.diag([1.0, -1.0, 2.0]),  # indefinite
    np.diag([1.0, 0.0, 2.0]),  # singular, exactly
    np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),  # singular
    -np.eye(3),  # negative definite
  ],
)
def test_from_params_rejects_non_positive_definite(cov):
  means = np.zeros((2, 3))
  with pytest.raises(ValueError, match="positive definite"):
    mixture_from_params(means, cov)


@pytest.mark.parametrize("seed", range(8))
def test_from_params_rejects_duplicated_feature(seed):
  # A sample covariance with a duplicated feature is singular:
  # in floating point its smallest eigenvalue is ~1e-16 of its largest, of
  # either sign depending on rounding, so it must be refused whatever that
  # sign (for some seeds it is positive and Cholesky succeeds).
  rng = np.random.default_rng(seed)
  data = rng.normal(size=(50, 3))
  cov = np.cov(np.c_[data, data[:, :1]].T)
  with pytest.raises(ValueError, match="positive definite"):
    mixture_from_params(np.zeros((2, 4)), cov)


def test_from_params_rejects_bad_shapes_and_weights():
  means = np.zeros((2, 3))
  with pytest.raises(ValueError, match="shape"):
    mixture_from_params(means, np.eye(4))
  with pytest.raises(ValueError, match="weights"):
    mixture_from_params(means, np.eye(3), weights=np.array([0.2, 0.3, 0.5]))
  with pytest.raises(ValueError, match="sum to"):
    mixture_from_params(means, np.eye(3), weights=np.array([0.5, 0.6]))
  with pytest.raises(ValueError, match="weights"):
    mixture_from_params(means, np.eye(3), weights=np.array([1.5, -0.5]))
  with pytest.raises(ValueError, match="symmetric"):
    mixture_from_params(means, np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]))


def test_from_params_accepts_valid_and_uses_cholesky():
  means, cov = _stats_params()
  mixture = _stats_mixture()
  chol = _f64(mixture.cov_sqrt)
  # A Cholesky factor: lower triangular with a positive diagonal.
  np.testing.assert_array_equal(np.triu(chol, 1), 0.0)
  assert np.all(np.diag(chol) > 0)
  # L L^T = cov; the package stores float32 unless x64 is on, so entries
  # carry relative rounding ~1e-7 of the largest entry.
  scale = np.abs(cov).max()
  np.testing.assert_allclose(chol @ chol.T, cov, rtol=0, atol=1e-5 * scale)
  # It is the Cholesky factor: numpy.linalg.cholesky in float64.
  np.testing.assert_allclose(
    chol, np.linalg.cholesky(cov), rtol=0, atol=1e-5 * np.sqrt(scale)
  )
  np.testing.assert_allclose(_f64(mixture.means), means, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(_f64(mixture.cov), cov, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(
    _f64(mixture.weights), STATS_WEIGHTS, rtol=1e-6, atol=0
  )
  # Weights default to uniform.
  uniform = mixture_from_params(means, cov)
  np.testing.assert_allclose(
    _f64(uniform.weights), 1 / STATS_K, rtol=1e-6, atol=0
  )


# sample_pairs: labels --------------------------------------------------------


@pytest.mark.parametrize("p_same", [1.0, 0.5, 0.0])
def test_pairs_are_not_copies(p_same):
  # Key reuse: x and x' drawn with one key would be equal.
  x, x_pos, _, _ = _pairs(False, p_same, 1)
  gaps = np.linalg.norm(_f64(x) - _f64(x_pos), axis=1)
  # x - x' ~ N(mu_c - mu_c', 2 Sigma) with Sigma >= 0.5 I: its norm is
  # below 1e-3 with probability < 1e-15 per pair in d = 5.
  assert gaps.min() > 1e-3
  # No coordinate is shared either (key reuse would share all of them).
  assert not np.any(x == x_pos)


def test_p_same_one_keeps_component():
  _, _, labels, labels_pos = _pairs(False, 1.0, 2)
  np.testing.assert_array_equal(labels, labels_pos)
  # All K components occur (so the equality above is not vacuous).
  assert len(np.unique(labels)) == STATS_K


def test_p_same_zero_is_independent():
  _, _, labels, labels_pos = _pairs(True, 0.0, 3)
  n = labels.shape[0]
  # Closed form: P(c' = c) = 1/K; binomial standard error.
  p = 1 / STATS_K
  same = np.mean(labels == labels_pos)
  assert abs(same - p) < SIGMAS * np.sqrt(p * (1 - p) / n)
  # Closed form: every cell of the joint law is 1/K^2 (independence).
  joint = np.zeros((STATS_K, STATS_K))
  np.add.at(joint, (labels, labels_pos), 1.0 / n)
  cell = p * p
  error = np.abs(joint - cell)
  assert np.all(error < SIGMAS * np.sqrt(cell * (1 - cell) / n)), joint


@pytest.mark.parametrize("p_same", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_p_same_rate_with_unequal_weights(p_same):
  _, _, labels, labels_pos = _pairs(False, p_same, 4)
  # Closed form (the model): c' = c with probability p_same, else a fresh
  # draw from pi, which is c again with probability sum_i pi_i^2.
  expected = p_same + (1 - p_same) * np.sum(STATS_WEIGHTS**2)
  stderr = np.sqrt(expected * (1 - expected) / N_STATS)
  assert abs(np.mean(labels == labels_pos) - expected) <= SIGMAS * stderr
  # Both components are marginally distributed as pi, for every p_same.
  _assert_frequencies(labels, STATS_WEIGHTS)
  _assert_frequencies(labels_pos, STATS_WEIGHTS)


@pytest.mark.parametrize("p_same", [0.25, 0.5, 0.75])
def test_p_same_rate_uniform(p_same):
  _, _, labels, labels_pos = _pairs(True, p_same, 5)
  # Closed form: p + (1 - p) / K.
  expected = p_same + (1 - p_same) / STATS_K
  stderr = np.sqrt(expected * (1 - expected) / N_STATS)
  assert abs(np.mean(labels == labels_pos) - expected) <= SIGMAS * stderr


# sample_pairs and sample: moments --------------------------------------------


@pytest.mark.parametrize("p_same", [1.0, 0.5, 0.0])
def test_pairs_have_mixture_moments(p_same):
  means, cov = _stats_params()
  x, x_pos, _, _ = _pairs(False, p_same, 6)
  # Closed form: mean m = sum_i pi_i mu_i; covariance Sigma + S_B with
  # S_B = sum_i pi_i (mu_i - m)(mu_i - m)^T (law of total covariance).
  mean = STATS_WEIGHTS @ means
  centred = means - mean
  total = cov + centred.T @ (STATS_WEIGHTS[:, None] * centred)
  for drawn in (_f64(x), _f64(x_pos)):
    _assert_mean_of_rows(drawn, mean)
    # Second moments about the true mean: a mean of iid products, whose
    # standard error is estimated from the products themselves.
    dev = drawn - mean
    _assert_mean_of_rows(_outer_rows(dev, dev), total.ravel())


@pytest.mark.parametrize("p_same", [1.0, 0.5])
def test_pairs_are_conditionally_gaussian(p_same):
  means, cov = _stats_params()
  x, x_pos, labels, labels_pos = _pairs(False, p_same, 7)
  # Closed form: x - mu_c and x' - mu_c' are N(0, Sigma) and independent.
  noise = _f64(x) - means[labels]
  noise_pos = _f64(x_pos) - means[labels_pos]
  for residual in (noise, noise_pos):
    _assert_mean_of_rows(residual, np.zeros(STATS_DIM))
    _assert_mean_of_rows(_outer_rows(residual, residual), cov.ravel())
  # Independence given (c, c'): the cross-covariance is zero.
  _assert_mean_of_rows(_outer_rows(noise, noise_pos), np.zeros(STATS_DIM**2))


def test_within_pair_covariance_is_sigma():
  _, cov = _stats_params()
  x, x_pos, _, _ = _pairs(False, 1.0, 8)
  diff = _f64(x) - _f64(x_pos)
  # Closed form: with p_same = 1, x - x' ~ N(0, 2 Sigma), so
  # E[(x - x')(x - x')^T] / 2 = Sigma (whitened_pca's estimate, the model).
  _assert_mean_of_rows(0.5 * _outer_rows(diff, diff), cov.ravel())


def test_sample_matches_its_model():
  means, cov = _stats_params()
  x, labels = sample(jax.random.key(9), _stats_mixture(), N_STATS)
  labels = np.asarray(labels)
  # Closed form: labels ~ pi, and x - mu_c ~ N(0, Sigma).
  _assert_frequencies(labels, STATS_WEIGHTS)
  noise = _f64(x) - means[labels]
  _assert_mean_of_rows(noise, np.zeros(STATS_DIM))
  _assert_mean_of_rows(_outer_rows(noise, noise), cov.ravel())


# Determinism and x64 ---------------------------------------------------------


def test_same_key_same_samples_different_key_different():
  mixture = _stats_mixture()
  first = sample_pairs(jax.random.key(11), mixture, N_SMALL, 0.5)
  again = sample_pairs(jax.random.key(11), mixture, N_SMALL, 0.5)
  other = sample_pairs(jax.random.key(12), mixture, N_SMALL, 0.5)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Continuous draws under different keys share no coordinate.
  for a, b in zip(first[:2], other[:2]):
    assert not np.any(np.asarray(a) == np.asarray(b))
  # Labels under different keys disagree somewhere (P(all equal) < 1e-60).
  assert np.any(np.asarray(first[2]) != np.asarray(other[2]))

  x, labels = sample(jax.random.key(11), mixture, N_SMALL)
  x_again, labels_again = sample(jax.random.key(11), mixture, N_SMALL)
  x_other, _ = sample(jax.random.key(12), mixture, N_SMALL)
  np.testing.assert_array_equal(np.asarray(x), np.asarray(x_again))
  np.testing.assert_array_equal(np.asarray(labels), np.asarray(labels_again))
  assert not np.any(np.asarray(x) == np.asarray(x_other))


def test_sampler_same_under_x64():
  mixture = _stats_mixture()
  key = jax.random.key(14)
  x, labels = sample(key, mixture, N_SMALL, dtype=jnp.float32)
  pairs = sample_pairs(key, mixture, N_SMALL, 0.5, dtype=jnp.float32)
  with jax.enable_x64(True):
    x_64, labels_64 = sample(key, mixture, N_SMALL, dtype=jnp.float32)
    pairs_64 = sample_pairs(key, mixture, N_SMALL, 0.5, dtype=jnp.float32)
    x_64, labels_64 = np.asarray(x_64), np.asarray(labels_64)
    pairs_64 = [np.asarray(a) for a in pairs_64]
  # mixture.py's docstring: the same stream with or without 64-bit mode.
  assert x_64.dtype == np.float32
  assert pairs_64[0].dtype == np.float32
  np.testing.assert_array_equal(np.asarray(x), x_64)
  np.testing.assert_array_equal(np.asarray(labels), labels_64)
  for a, b in zip(pairs, pairs_64):
    np.testing.assert_array_equal(np.asarray(a), b)


@pytest.mark.parametrize(
  "changes, named",
  [
    (dict(num_components=1), "num_components=1"),  # K < 2
    (dict(dim=2), "dim=2"),  # d < K = 3
    (dict(dim=8.0), "dim=8.0"),  # Not an int (the message says so).
    (dict(anisotropy=1e-8), "anisotropy=1e-08"),  # Underflows when squared.
    (dict(anisotropy=True), "anisotropy=True"),  # A bool is not a number.
    # One mixture has one anisotropy; a sweep maps over its values.
    (dict(anisotropy=np.array([1.0, 2.0])), r"anisotropy.shape=\(2,\)"),
    (dict(anisotropy=-1.0), "anisotropy=-1.0"),  # Sigma not positive definite
    (dict(anisotropy=0.0), "anisotropy=0.0"),
    (dict(separation=float("nan")), "separation=nan"),
    (dict(n_nuisance=9), "n_nuisance=9"),  # > d = 8
  ],
)
def test_make_mixture_names_a_bad_argument(changes, named):
  arguments = dict(dim=8, num_components=3, anisotropy=10.0) | changes
  with pytest.raises(ValueError, match=f"^{named} is invalid"):
    make_mixture(jax.random.PRNGKey(0), **arguments)


@pytest.mark.parametrize("p_same", [1.5, -0.1, float("nan"), None])
def test_sample_pairs_names_a_bad_p_same(p_same):
  mixture = make_mixture(jax.random.PRNGKey(0), 4, 2, 1.0)
  with pytest.raises(ValueError, match=f"^p_same={p_same!r} is invalid"):
    sample_pairs(jax.random.PRNGKey(1), mixture, 8, p_same)


@pytest.mark.parametrize("n", [0, -1, 2.5])
def test_samplers_name_a_bad_count(n):
  mixture = make_mixture(jax.random.PRNGKey(0), 4, 2, 1.0)
  key = jax.random.PRNGKey(1)
  for draw in (sample, sample_pairs):
    with pytest.raises(ValueError, match=f"^n={n!r} is invalid"):
      draw(key, mixture, n)


@pytest.mark.parametrize(
  "means, cov, named",
  [
    (np.zeros(3), np.eye(3), r"means has shape \(3,\)"),  # Not [K, d].
    (np.zeros((1, 3)), np.eye(3), "num_components=1"),  # K < 2
    (np.zeros((3, 2)), np.eye(2), "dim=2"),  # d < K
    (np.array([[np.nan, 0, 0], [1, 0, 0]]), np.eye(3), "means holds"),
    (np.zeros((2, 3)), np.diag([1.0, np.inf, 1.0]), "cov holds"),
    # Positive definite in float64, singular in float32, where a condition
    # number of 1e9 exceeds 1 / (d eps) = 1 / (3 * 1.19e-7) = 2.8e6.
    (
      np.zeros((2, 3)),
      np.diag([1.0, 1.0, 1e-9]),
      "cov is not positive definite in float32",
    ),
    # Variances whose squares leave float32's range (1.2e-38 to 3.4e38).
    (
      np.zeros((2, 3)),
      1e-30 * np.eye(3),
      "cov is not positive definite in float32",
    ),
    (
      np.zeros((2, 3)),
      1e30 * np.eye(3),
      "cov is not positive definite in float32",
    ),
    # Means whose squares (in S_B) would overflow float32.
    (1e20 * np.eye(3)[:2], np.eye(3), "means reach 1e\\+20"),
  ],
)
def test_from_params_names_what_float32_cannot_hold(means, cov, named):
  with pytest.raises(ValueError, match=f"^{named}"):
    mixture_from_params(means, cov)
