"""The embedding sampler: the law of A x drawn without x."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_gmm import synthetic
from ssl_gmm import train as training
from ssl_gmm.mixture import (
  _inverse_cdf,
  cholesky_semidefinite,
  embedded_pairs,
  make_mixture,
)


@pytest.mark.parametrize("size", [1, 3, 6])
def test_cholesky_matches_numpy_on_positive_definite_matrices(size):
  rng = np.random.default_rng(size)
  a = rng.normal(size=(size, size + 2))
  c = a @ a.T  # Positive definite.
  found = np.asarray(cholesky_semidefinite(jnp.asarray(c, jnp.float32)))
  np.testing.assert_allclose(found, np.linalg.cholesky(c), rtol=1e-4, atol=1e-4)


def test_cholesky_of_a_semidefinite_matrix_has_zero_columns_and_gradient():
  # Row 1 of A is zero: C has a zero row and column. L L^T must still be C,
  # with L's column 1 zero, and the gradient through it finite.
  a = jnp.asarray([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0], [0.3, -1.0, 2.0]])
  c = a @ a.T
  chol = cholesky_semidefinite(c)
  np.testing.assert_allclose(chol @ chol.T, c, atol=1e-5)
  assert np.all(np.asarray(chol[:, 1]) == 0)
  grad = jax.grad(lambda a: jnp.sum(cholesky_semidefinite(a @ a.T)))(a)
  assert np.all(np.isfinite(grad))


def test_inverse_cdf_draws_each_component_at_its_weight():
  weights = jnp.asarray([0.5, 0.0, 0.2, 0.3, 0.0])
  u = jax.random.uniform(jax.random.PRNGKey(0), (200_000,))
  counts = np.bincount(np.asarray(_inverse_cdf(u, weights)), minlength=5)
  # Zero-weight components (padding) are never drawn; the others within
  # 4 standard errors of a binomial count.
  assert counts[1] == 0 and counts[4] == 0
  expected = 200_000 * np.asarray(weights)
  spread = np.sqrt(expected * (1 - np.asarray(weights)))
  assert np.all(np.abs(counts - expected) <= 4 * spread + 1e-9)


def test_embedded_pairs_have_the_law_of_embedded_draws():
  # Closed form: given component c, A x ~ N(A m_c, A Sigma A^T).
  mixture = make_mixture(jax.random.PRNGKey(1), 12, 3, 40.0)
  encoder = jax.random.normal(jax.random.PRNGKey(2), (3, 12)) / 4
  z, z_pos = embedded_pairs(jax.random.PRNGKey(3), mixture, encoder, 60_000)
  means = np.asarray(mixture.means @ encoder.T, np.float64)
  cov = np.asarray(encoder @ mixture.cov @ encoder.T, np.float64)
  for draw in (np.asarray(z, np.float64), np.asarray(z_pos, np.float64)):
    # Assign each draw to its component by the known means: at this
    # separation the components overlap, so check the mixture's moments.
    np.testing.assert_allclose(draw.mean(0), means.mean(0), atol=0.05)
    total = cov + np.cov(means.T, bias=True)
    np.testing.assert_allclose(np.cov(draw.T), total, rtol=0.05, atol=0.05)
  # Positives share their anchor's component (p_same = 1): the pair's
  # cross-covariance is the between-component covariance of the means.
  cross = np.cov(np.asarray(z).T, np.asarray(z_pos).T)[:3, 3:]
  np.testing.assert_allclose(cross, np.cov(means.T, bias=True), atol=0.08)


def test_independent_positives_at_p_same_zero():
  mixture = make_mixture(jax.random.PRNGKey(4), 8, 4, 5.0)
  encoder = jnp.eye(3, 8)
  z, z_pos = embedded_pairs(
    jax.random.PRNGKey(5), mixture, encoder, 60_000, p_same=0.0
  )
  cross = np.cov(np.asarray(z).T, np.asarray(z_pos).T)[:3, 3:]
  np.testing.assert_allclose(cross, 0.0, atol=0.06)


def test_both_samplers_reach_the_same_distances():
  # Eight mixtures, each trained by both samplers: their mean distances to
  # F agree within three standard errors of the difference.
  points = 8
  keys = jax.random.split(jax.random.PRNGKey(6), points)
  mixtures = jax.vmap(lambda key: make_mixture(key, 16, 3, 30.0))(keys)
  hyper = training.Hyper(
    *(jnp.full(points, v, jnp.float32) for v in (1e-2, 0.5, 1.0))
  )
  distances = {}
  for sampler in training.SAMPLERS:
    out = training.train_grid(
      keys,
      jax.random.split(keys[0], points),
      mixtures,
      hyper,
      method="infonce",
      k=2,
      steps=300,
      batch=64,
      sampler=sampler,
    )
    with jax.enable_x64(True):
      as64 = functools.partial(jnp.asarray, dtype=jnp.float64)
      scores = synthetic.subspace_metrics(
        as64(out.encoder), jax.tree.map(as64, mixtures)
      )
      distances[sampler] = np.asarray(scores["distance"])
  plain, embedded = (np.asarray(distances[s]) for s in training.SAMPLERS)
  spread = np.sqrt((plain.var() + embedded.var()) / points)
  assert abs(plain.mean() - embedded.mean()) <= 3 * spread + 0.02
  assert embedded.mean() < 0.3  # Both learn F, not only agree.
