"""Spectral and supervised baselines fitted on the encoders' own data.

Each baseline replays the exact stream of positive pairs a trained encoder
saw (step t drawn with fold_in(data_key, t)) and accumulates its moments in
float64, then solves an eigenproblem:

- `lda`: labelled anchors; class means and pooled within-class covariance,
  then their Fisher subspace (min(k, K - 1) rows; the rest are zero).
- `pca`: unlabelled anchors; the top k principal directions.
- `whitened_pca`: unlabelled pairs; Sigma is estimated without labels as
  Cov(x - x') / 2, and the top k generalised eigenvectors of the total
  covariance against it are kept. With p_same = p < 1 a positive is, with
  probability 1 - p, an independent draw, so the estimate is Sigma +
  (1 - p) S_B in expectation. The total covariance is Sigma + S_B: in
  Sigma's whitened basis both share S_B's eigenvectors, with generalised
  eigenvalues (1 + l) / (1 + (1 - p) l) in the same order as S_B's l for
  every p > 0. So the estimate still recovers F under noisy positives; only
  p = 0 leaves nothing to find.
- `oracle`: the analytic Fisher subspace of the true parameters.

On a grid padded to its largest shape (ssl_gmm/sweep.py), the padded
coordinates of every draw are zeroed, and each eigenproblem is completed
with the identity in the denominator and zero in the numerator there, so
that it splits into the unpadded problem and padded directions of
eigenvalue zero, which rank last; rows past the point's own k (and K - 1
for LDA and the oracle) are zeroed.

Call these under `jax.enable_x64(True)`: the samplers still draw float32
numbers identical to training; each batch's sums are taken in float32 and
accumulated over batches in float64.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssl_gmm import programs, subspace
from ssl_gmm.checks import is_finite, is_int, require
from ssl_gmm.mixture import Mixture, sample_pairs

BASELINE_METHODS = ("pca", "whitened_pca", "lda", "oracle")


class Moments(NamedTuple):
  """Sums over a stream of pairs (float64).

  Attributes:
    count: number of anchors n.
    sum_xx: [d, d] sum of x x^T over anchors.
    class_count: [K] anchors per component.
    class_sum: [K, d] sum of anchors per component.
    sum_diff: [d] sum of x - x'.
    sum_diff2: [d, d] sum of (x - x')(x - x')^T.
  """

  count: jax.Array
  sum_xx: jax.Array
  class_count: jax.Array
  class_sum: jax.Array
  sum_diff: jax.Array
  sum_diff2: jax.Array


def accumulate_moments(
  data_key: jax.Array,
  mixture: Mixture,
  p_same: jax.Array,
  coords: jax.Array | None = None,
  *,
  steps: int,
  batch: int,
) -> Moments:
  """Sums the moments of `steps` batches of pairs, as training draws them.

  `coords` ([d] ones and zeros) zeroes the padded coordinates of a padded
  mixture's draws.
  """
  num_components, dim = mixture.means.shape
  f64 = jnp.float64

  def step(moments, t):
    x, x_pos, labels, _ = sample_pairs(
      jax.random.fold_in(data_key, t), mixture, batch, p_same
    )
    if coords is not None:
      x, x_pos = x * coords, x_pos * coords
    # One batch's sums in float32 (a few hundred terms: relative error
    # about 1e-6, far below the sampling error of the estimates), added
    # across steps in float64, where thousands of terms would lose digits.
    diff = x - x_pos
    onehot = jax.nn.one_hot(labels, num_components, dtype=x.dtype)
    batch_moments = Moments(
      count=jnp.asarray(batch, f64),
      sum_xx=x.T @ x,
      class_count=onehot.sum(0),
      class_sum=onehot.T @ x,
      sum_diff=diff.sum(0),
      sum_diff2=diff.T @ diff,
    )
    batch_moments = jax.tree.map(lambda a: a.astype(f64), batch_moments)
    return jax.tree.map(jnp.add, moments, batch_moments), None

  zeros = Moments(
    count=jnp.zeros((), f64),
    sum_xx=jnp.zeros((dim, dim), f64),
    class_count=jnp.zeros((num_components,), f64),
    class_sum=jnp.zeros((num_components, dim), f64),
    sum_diff=jnp.zeros((dim,), f64),
    sum_diff2=jnp.zeros((dim, dim), f64),
  )
  return jax.lax.scan(step, zeros, jnp.arange(steps))[0]


def total_covariance(m: Moments) -> jax.Array:
  mean = m.class_sum.sum(0) / m.count
  return m.sum_xx / m.count - jnp.outer(mean, mean)


def within_covariance(m: Moments) -> jax.Array:
  """Pooled within-class covariance (maximum likelihood, divided by n)."""
  safe = jnp.maximum(m.class_count, 1)[:, None]
  class_means = m.class_sum / safe
  explained = (class_means.T * m.class_count) @ class_means
  return (m.sum_xx - explained) / m.count


def pair_covariance(m: Moments) -> jax.Array:
  """Cov(x - x') / 2, the label-free estimate of Sigma."""
  mean = m.sum_diff / m.count
  return 0.5 * (m.sum_diff2 / m.count - jnp.outer(mean, mean))


def lda_encoder(
  m: Moments, k: int, shrinkage=0.0, fill: jax.Array | float = 0.0
) -> jax.Array:
  """[k, d] LDA encoder from labelled moments; NaN if Sigma_W is singular.

  The within-class covariance is shrunk towards a scaled identity by
  `shrinkage` (0: none); an estimate that is singular (fewer samples than
  dimensions, or a duplicated feature) makes the Cholesky factor NaN, which
  `fit_lda` turns into an error that names the cause. `fill` is added to it
  afterwards: the identity on a padded grid's padded coordinates.
  """
  num_components = m.class_count.shape[0]
  means = m.class_sum / jnp.maximum(m.class_count, 1)[:, None]
  weights = m.class_count / m.count
  within = subspace.shrink(within_covariance(m), shrinkage) + fill
  basis, _ = subspace.fisher_subspace(means, within, weights)
  return subspace.top_rows(_pad_columns(basis, k), k, num_components - 1)


def pca_encoder(m: Moments, k: int) -> jax.Array:
  return subspace.top_rows(subspace.pca_directions(total_covariance(m)), k)


def whitened_pca_encoder(
  m: Moments, k: int, fill: jax.Array | float = 0.0
) -> jax.Array:
  """[k, d]; `fill` is added to the estimate of Sigma, as in `lda_encoder`."""
  _, vectors = subspace.generalized_eigh(
    total_covariance(m), pair_covariance(m) + fill
  )
  return subspace.top_rows(vectors, k)


def oracle_encoder(mixture: Mixture, k: int) -> jax.Array:
  num_components = mixture.means.shape[0]
  basis, _ = subspace.fisher_subspace(
    mixture.means, mixture.cov, mixture.weights
  )
  return subspace.top_rows(_pad_columns(basis, k), k, num_components - 1)


def _pad_columns(basis: jax.Array, k: int) -> jax.Array:
  """Appends zero columns so that `top_rows` can take k of them."""
  missing = max(0, k - basis.shape[1])
  return jnp.pad(basis, ((0, 0), (0, missing)))


def fit_baselines(
  moments: Moments,
  mixture: Mixture,
  coords: jax.Array | None = None,
  rows: jax.Array | None = None,
  *,
  k: int,
) -> dict[str, jax.Array]:
  """Every baseline's [k, d] encoder from one point's moments (float64).

  Args:
    moments: the point's moments.
    mixture: its (possibly padded) mixture, for the oracle.
    coords: [d] ones on the point's own coordinates (all ones unpadded).
    rows: [k] ones on the point's own embedding dimensions.
    k: the (padded) embedding dimension.
  """
  dim = moments.class_sum.shape[1]
  f64 = jnp.float64
  coords = jnp.ones(dim, f64) if coords is None else coords.astype(f64)
  rows = jnp.ones(k, f64) if rows is None else rows.astype(f64)
  fill = jnp.diag(1 - coords)
  mixture64 = jax.tree.map(lambda a: a.astype(f64), mixture)
  # LDA and the oracle keep the point's own K - 1 rows: K counts the
  # components of nonzero weight, so padded components are left out.
  kept = jnp.arange(k) < jnp.sum(mixture64.weights > 0) - 1
  encoders = {
    "pca": pca_encoder(moments, k),
    "whitened_pca": whitened_pca_encoder(moments, k, fill),
    "lda": lda_encoder(moments, k, fill=fill) * kept[:, None],
    "oracle": oracle_encoder(mixture64, k) * kept[:, None],
  }
  return {name: e * rows[:, None] for name, e in encoders.items()}


def baseline_points(
  data_keys: jax.Array,
  mixtures: Mixture,
  p_same: jax.Array,
  coords: jax.Array | None = None,
  rows: jax.Array | None = None,
  *,
  k: int,
  steps: int,
  batch: int,
) -> dict[str, jax.Array]:
  """Every baseline's [grid, k, d] encoder over a stacked grid (float64).

  `coords` ([grid, d]) and `rows` ([grid, k]) mark each point's own
  coordinates and embedding dimensions on a padded grid.
  """
  accumulate = functools.partial(accumulate_moments, steps=steps, batch=batch)
  moments = jax.vmap(accumulate)(data_keys, mixtures, p_same, coords)
  fit = functools.partial(fit_baselines, k=k)
  return programs.map_points(fit, moments, mixtures, coords, rows)


@functools.partial(jax.jit, static_argnames=("k", "steps", "batch"))
def baseline_grid(
  data_keys: jax.Array,
  mixtures: Mixture,
  p_same: jax.Array,
  *,
  k: int,
  steps: int,
  batch: int,
) -> dict[str, jax.Array]:
  """Every baseline's [grid, k, d] encoder over an unpadded grid (float64)."""
  return baseline_points(
    data_keys, mixtures, p_same, k=k, steps=steps, batch=batch
  )


def moments_from_samples(
  x: jax.Array,
  labels: jax.Array,
  num_components: int,
  x_pos: jax.Array | None = None,
  mask: jax.Array | None = None,
) -> Moments:
  """Float64 moments of given [n, d] anchors (and optional positives).

  Rows where `mask` ([n] booleans) is false are left out, so a padded data
  set keeps a fixed shape.
  """
  x = jnp.asarray(x, jnp.float64)
  x_pos = x if x_pos is None else jnp.asarray(x_pos, jnp.float64)
  keep = jnp.ones(x.shape[0]) if mask is None else jnp.asarray(mask)
  keep = keep.astype(jnp.float64)[:, None]
  x, diff = x * keep, (x - x_pos) * keep
  onehot = jax.nn.one_hot(labels, num_components, dtype=jnp.float64) * keep
  return Moments(
    count=keep.sum(),
    sum_xx=x.T @ x,
    class_count=onehot.sum(0),
    class_sum=onehot.T @ x,
    sum_diff=diff.sum(0),
    sum_diff2=diff.T @ diff,
  )


def fit_lda(x, labels, num_components: int, k: int, shrinkage=0.0):
  """LDA encoder of labelled [n, d] samples, refusing a singular Sigma_W.

  Args:
    x: [n, d] samples.
    labels: [n] components in 0..K-1.
    num_components: K.
    k: embedding dimension; rows past K - 1 are zero.
    shrinkage: in [0, 1]; blends Sigma_W with a scaled identity.

  Returns:
    [k, d] float64 encoder.

  Raises:
    ValueError: if shrinkage lies outside [0, 1], x is not a finite [n, d]
      array, the labels are not [n] integers in 0..K-1 covering every
      component, or the (shrunk) within-class covariance is singular,
      naming its rank and the remedies.
  """
  ok = is_finite(shrinkage) and 0 <= shrinkage <= 1
  require(ok, "shrinkage", shrinkage, "must lie in [0, 1]")
  x, labels = np.asarray(x), np.asarray(labels)
  require(x.ndim == 2, "x.shape", x.shape, "expected [n, d]")
  bad = np.argwhere(~np.isfinite(x))
  if bad.size:
    row, column = bad[0]
    raise ValueError(
      f"x[{row}, {column}]={x[row, column]} is invalid: samples must be finite."
    )
  ok = is_int(num_components) and num_components >= 2
  require(ok, "num_components", num_components, "K >= 2")
  ok = is_int(k) and 1 <= k <= x.shape[1]
  require(ok, "k", k, f"1 <= k <= d (d = {x.shape[1]})")
  rule = f"expected [n] integer labels (n = {x.shape[0]})"
  ok = labels.shape == x.shape[:1] and labels.dtype.kind in "iu"
  require(ok, "labels", f"{labels.dtype}{list(labels.shape)}", rule)
  outside = labels[(labels < 0) | (labels >= num_components)]
  rule = f"every label must lie in 0..K-1 (K = {num_components})"
  require(not outside.size, "label", outside[:1].tolist(), rule)
  # A class without samples has no mean: S_B would lose a direction and
  # the encoder's last rows would be arbitrary.
  missing = sorted(set(range(num_components)) - set(labels.tolist()))
  rule = "every component needs samples, or the Fisher subspace shrinks"
  require(not missing, "labels", f"no samples of {missing}", rule)
  with jax.enable_x64(True):
    moments = moments_from_samples(x, labels, num_components)
    within = subspace.shrink(within_covariance(moments), shrinkage)
    eigenvalues = jnp.linalg.eigvalsh(within)
    dim = within.shape[0]
    tolerance = dim * jnp.finfo(jnp.float64).eps * eigenvalues[-1]
    if eigenvalues[0] <= tolerance:
      rank = int(jnp.sum(eigenvalues > tolerance))
      raise ValueError(
        f"LDA: the within-class covariance is singular (rank {rank} of "
        f"{dim}, from {x.shape[0]} samples); a duplicated or constant "
        "feature, or fewer samples than dimensions, causes this. Drop such "
        "features or pass shrinkage > 0."
      )
    return lda_encoder(moments, k, shrinkage)
