"""The finite-sample pipeline: every method trained on n pairs drawn once.

Each seed draws one pool of pairs from its mixture; the grid point with n
training pairs uses the pool's first n, so the data sets of one seed are
nested and a learning curve over n compares like with like. Encoders train
for the same number of steps at every n, each step on min(batch, n)
distinct pairs of the n chosen uniformly at random; `lda` fits the same n
anchors with their labels, `pca` the n anchors, `whitened_pca` the n pairs.

The batch size min(batch, n) is a shape, so the grid splits into one group
per batch size; the pool is padded to the largest n and masked, so every n
of a group runs in one compiled program.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_gmm import baselines, programs, synthetic
from ssl_gmm import train as training
from ssl_gmm.mixture import Mixture, sample_pairs

# fold_in tag that turns a seed's mixture key into the key of its pool.
_POOL_TAG = 1


class Pool(NamedTuple):
  """A fixed training set of pairs, padded to a common length.

  Attributes:
    x: [n_max, d] anchors.
    x_pos: [n_max, d] positives.
    labels: [n_max] anchor components.
    n: number of valid leading rows (traced).
  """

  x: jax.Array
  x_pos: jax.Array
  labels: jax.Array
  n: jax.Array


def pool_pairs(
  key: jax.Array, pool: Pool, batch: int, p_same: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """A `train.train` draw: `batch` distinct pairs among the pool's first n.

  p_same is unused: the pool's pairs were drawn with it.
  """
  del p_same
  rows = jnp.arange(pool.x.shape[0])
  scores = jnp.where(rows < pool.n, jax.random.uniform(key, rows.shape), -1.0)
  chosen = jax.lax.top_k(scores, batch)[1]
  return pool.x[chosen], pool.x_pos[chosen]


def make_pools(
  keys: jax.Array, mixtures: Mixture, n: np.ndarray, p_same: np.ndarray
) -> Pool:
  """[P] pools of max(n) pairs each, keyed per seed (so nested over n)."""
  n_max = int(np.max(n))

  def one(key, mixture, p):
    pool_key = jax.random.fold_in(key, _POOL_TAG)
    return sample_pairs(pool_key, mixture, n_max, p)[:3]

  x, x_pos, labels = jax.jit(jax.vmap(one))(keys, mixtures, jnp.asarray(p_same))
  return Pool(x, x_pos, labels, jnp.asarray(n, jnp.int32))


def fit_baselines(
  config: ml_collections.ConfigDict, pools: Pool, mixtures: Mixture, k: int
) -> dict[str, np.ndarray]:
  """[P, k, d] float64 encoders of the baselines on each pool's first n."""
  num_components = mixtures.means.shape[1]

  def one(pool, mixture):
    mask = jnp.arange(pool.x.shape[0]) < pool.n
    moments = baselines.moments_from_samples(
      pool.x, pool.labels, num_components, pool.x_pos, mask
    )
    return baselines.fit_baselines(moments, mixture, k=k)

  with jax.enable_x64(True):
    fits = jax.jit(functools.partial(programs.map_points, one))(pools, mixtures)
  wanted = [m for m in config.methods if m in fits]
  return {m: np.asarray(fits[m], np.float64) for m in wanted}


def run_grid(config: ml_collections.ConfigDict) -> synthetic.Outcome:
  """Trains and scores every method at every n of the config's sweep."""
  grid = synthetic.build_grid(config)
  keys = synthetic.make_keys(config.seed, grid)
  mixtures = synthetic.make_mixtures(config, keys, grid)
  n = grid.swept["n"].astype(np.int64)
  pools = make_pools(keys.mixture, mixtures, n, grid.settings["p_same"])
  k, t = grid.shapes[0][2], config.train
  hyper = training.Hyper(
    *(jnp.asarray(grid.settings[s]) for s in training.Hyper._fields)
  )
  outputs, timings = {}, {}
  batches = np.minimum(t.batch, n)
  for method in config.methods:
    if method not in training.TRAINED_METHODS:
      continue
    parts = {}
    for batch in sorted(set(batches.tolist())):
      index = np.flatnonzero(batches == batch)
      label = f"{method} (batch {batch})"
      args = (keys.init, keys.data, pools, hyper)
      static = dict(method=method, k=k, steps=t.steps, batch=int(batch))
      trained, timings[label] = programs.compile_and_run(
        training.train_grid,
        jax.tree.map(lambda a, i=index: a[i], args),
        dict(static, draw=pool_pairs),
        label,
        t.steps,
      )
      parts[batch] = (index, trained)
    outputs[method] = _scatter(parts, grid.size)
  for method, encoder in fit_baselines(config, pools, mixtures, k).items():
    diverged = ~np.all(np.isfinite(encoder), axis=(1, 2))
    outputs[method] = {"encoder": encoder, "diverged": diverged}
  rows = synthetic.evaluate(config, grid, keys, mixtures, outputs)
  for row in rows:
    row["n"] = int(row["n"])
    del row["_point"]
  return synthetic.Outcome(rows=rows, swept=["n"], timings=timings)


def _scatter(parts: dict, size: int) -> dict[str, np.ndarray]:
  """Reassembles per-batch-size outputs into grid order."""
  out = {}
  for index, trained in parts.values():
    for name, value in (
      ("encoder", trained.encoder),
      ("diverged", trained.diverged),
      ("final_loss", trained.final_loss),
    ):
      value = np.asarray(value)
      if name not in out:
        out[name] = np.zeros((size, *value.shape[1:]), value.dtype)
      out[name][index] = value
  out["encoder"] = out["encoder"].astype(np.float64)
  return out
