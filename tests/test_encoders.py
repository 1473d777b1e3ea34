"""MLP encoders: the effective linear encoder, training, masking, scoring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from ssl_gmm import encoders, metrics, subspace, train
from ssl_gmm.mixture import make_mixture


def _mixture(dim=6, num_components=3, anisotropy=50.0, seed=0):
  return make_mixture(jax.random.PRNGKey(seed), dim, num_components, anisotropy)


def test_linear_map_has_its_own_row_space_and_metrics():
  # For f(x) = A x the Jacobian outer product is A^T A, so the effective
  # encoder B = Q A (polar decomposition): the same row space, and every
  # metric that depends on A^T A only is unchanged. Reference: float64
  # metrics of A itself, scipy's principal angles between the row spaces.
  with jax.enable_x64(True):
    mixture = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), _mixture())
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(2, 6)))
    x = jnp.asarray(rng.normal(size=(50, 6)))
    b = encoders.effective_encoder(lambda v: a @ v, x, k=2)
    np.testing.assert_allclose(b.T @ b, a.T @ a, atol=1e-10)
    angles = scipy.linalg.subspace_angles(np.asarray(a).T, np.asarray(b).T)
    np.testing.assert_allclose(angles, 0.0, atol=1e-7)
    basis, _ = subspace.fisher_subspace(
      mixture.means, mixture.cov, mixture.weights
    )
    args = (mixture.means, mixture.cov, mixture.weights)
    np.testing.assert_allclose(
      metrics.fisher_ratio(b, *args), metrics.fisher_ratio(a, *args), rtol=1e-9
    )
    np.testing.assert_allclose(
      metrics.nuisance_share(b, basis, mixture.cov),
      metrics.nuisance_share(a, basis, mixture.cov),
      rtol=1e-9,
    )
    np.testing.assert_allclose(
      metrics.distance(b, basis), metrics.distance(a, basis), atol=1e-7
    )


def test_jacobian_outer_product_against_finite_differences():
  # Reference: central differences of the MLP in float64, averaged by NumPy.
  with jax.enable_x64(True):
    module = encoders.MLP(width=5, depth=2, features=3)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(7, 4)))
    params = module.init(jax.random.PRNGKey(0), x[0])
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)

    def fn(v):
      return module.apply(params, v)

    found = encoders.jacobian_outer_product(fn, x)
    step, expected = 1e-6, np.zeros((4, 4))
    for row in np.asarray(x):
      jac = np.stack(
        [
          (np.asarray(fn(row + step * e)) - np.asarray(fn(row - step * e)))
          / (2 * step)
          for e in np.eye(4)
        ],
        axis=1,
      )  # [k, d]
      expected += jac.T @ jac / len(x)
    np.testing.assert_allclose(found, expected, rtol=1e-6, atol=1e-9)


def test_a_direction_the_encoder_ignores_is_outside_its_effective_encoder():
  # An MLP of x[:2] only: its effective encoder has nothing on x[2:].
  module = encoders.MLP(width=8, depth=1, features=2)
  x = jnp.asarray(np.random.default_rng(2).normal(size=(30, 5)), jnp.float32)
  params = module.init(jax.random.PRNGKey(1), x[0, :2])
  b = encoders.effective_encoder(lambda v: module.apply(params, v[:2]), x, k=2)
  np.testing.assert_array_equal(np.asarray(b)[:, 2:], 0.0)
  assert np.linalg.matrix_rank(np.asarray(b)) == 2


@pytest.fixture(scope="module")
def padded_mlp():
  """infonce_mlp trained on a d = 6 mixture padded to d = 8, k = 2 to 3."""
  mixture = _mixture()
  dim, k = 8, 3
  pad = dim - 6
  padded = mixture._replace(
    means=jnp.pad(mixture.means, ((0, 0), (0, pad))),
    sqrt_left=jnp.pad(mixture.sqrt_left, ((0, pad), (0, 0))),
    sqrt_right=jnp.pad(mixture.sqrt_right, ((0, pad), (0, 0))),
  )
  mask = jnp.zeros((k, dim), jnp.float32).at[:2, :6].set(1.0)
  hyper = train.Hyper(*(jnp.float32(v) for v in (1e-2, 0.5, 1.0)))
  key = jax.random.PRNGKey(3)
  trained = jax.jit(
    lambda: train.train(
      key,
      key,
      padded,
      hyper,
      mask,
      method="infonce_mlp",
      k=k,
      steps=30,
      batch=32,
      mlp=train.MLPShape(width=16, depth=1),
    )
  )()
  return trained, padded


def test_padded_coordinates_and_dimensions_of_an_mlp_are_inert(padded_mlp):
  trained, _ = padded_mlp
  encoder = np.asarray(trained.encoder)
  assert not bool(trained.diverged)
  # Padded input coordinates: the masked input makes their Jacobian zero.
  np.testing.assert_array_equal(encoder[:, 6:], 0.0)
  # The effective encoder has as many directions as the point's own k.
  np.testing.assert_array_equal(encoder[2], 0.0)
  assert np.linalg.matrix_rank(encoder[:2, :6]) == 2


def test_embed_networks_pads_narrower_inputs_with_zeros(padded_mlp):
  trained, _ = padded_mlp
  shape = train.MLPShape(width=16, depth=1)
  network = jax.tree.map(lambda a: a[None], trained.network)
  x = np.random.default_rng(5).normal(size=(1, 4, 6)).astype(np.float32)
  wide = np.concatenate([x, np.zeros((1, 4, 2), np.float32)], axis=-1)
  np.testing.assert_array_equal(
    train.embed_networks(network, jnp.asarray(x), mlp=shape),
    train.embed_networks(network, jnp.asarray(wide), mlp=shape),
  )


def test_an_mlp_refuses_the_embedding_sampler():
  mixture = _mixture()
  hyper = train.Hyper(*(jnp.float32(v) for v in (1e-2, 0.5, 1.0)))
  with pytest.raises(ValueError, match="infonce_mlp"):
    train.train(
      jax.random.PRNGKey(0),
      jax.random.PRNGKey(0),
      mixture,
      hyper,
      method="infonce_mlp",
      k=2,
      steps=2,
      batch=8,
      sampler="embedding",
    )
