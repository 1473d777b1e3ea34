"""The finite-sample pipeline: fixed pools, distinct batches, masked fits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_gmm import baselines, configs, samples, synthetic


@pytest.fixture(scope="module")
def pools():
  config = configs.get_config("samples", "smoke")
  grid = synthetic.build_grid(config)
  keys = synthetic.make_keys(config.seed, grid)
  mixtures = synthetic.make_mixtures(config, keys, grid)
  n = grid.swept["n"].astype(np.int64)
  return grid, samples.make_pools(
    keys.mixture, mixtures, n, grid.settings["p_same"]
  )


def test_pools_are_nested_within_a_seed(pools):
  grid, pool = pools
  # Smoke grid: seed 0 at n = 50 and n = 300, then seed 1.
  np.testing.assert_array_equal(grid.seed, [0, 0, 1, 1])
  np.testing.assert_array_equal(pool.x[0], pool.x[1])
  assert not np.allclose(pool.x[0], pool.x[2])
  np.testing.assert_array_equal(pool.n, [50, 300, 50, 300])


def test_a_batch_is_distinct_rows_among_the_first_n(pools):
  _, pool = pools
  one = jax.tree.map(lambda a: a[0], pool)  # n = 50
  for step in range(20):
    x, x_pos = samples.pool_pairs(jax.random.PRNGKey(step), one, 32, 1.0)
    rows = [int(np.flatnonzero((one.x == r).all(1))[0]) for r in x]
    assert len(set(rows)) == 32  # Distinct pairs in a batch.
    assert max(rows) < 50  # Only the first n rows are used.
    np.testing.assert_array_equal(x_pos, np.asarray(one.x_pos)[rows])
  # batch = n takes every row once: the full-batch case of n < 256.
  x, _ = samples.pool_pairs(jax.random.PRNGKey(0), one, 50, 1.0)
  np.testing.assert_array_equal(
    np.sort(np.asarray(x), axis=0), np.sort(np.asarray(one.x[:50]), axis=0)
  )


def test_masked_moments_equal_moments_of_the_first_n_rows(pools):
  _, pool = pools
  one = jax.tree.map(lambda a: np.asarray(a[0]), pool)
  with jax.enable_x64(True):
    mask = np.arange(one.x.shape[0]) < 50
    masked = baselines.moments_from_samples(
      one.x, one.labels, 4, one.x_pos, mask
    )
    # Reference: the same function on the 50 valid rows alone.
    plain = baselines.moments_from_samples(
      one.x[:50], one.labels[:50], 4, one.x_pos[:50]
    )
    for got, want in zip(masked, plain):
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert float(masked.count) == 50.0
    assert jnp.asarray(masked.sum_xx).dtype == jnp.float64
