"""Gaussian mixtures with a shared covariance, and their positive pairs.

Shapes: `n` samples, `d` input dimension, `K` components, `r` nuisance
directions. Every sampler takes an explicit dtype (float32 by default) so
that it draws the same numbers whether or not 64-bit mode is on: the
float64 reference code replays exactly the stream an encoder trained on.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssl_gmm.checks import (
  check_count,
  check_covariance,
  check_shape,
  check_values,
  is_int,
  require,
)


class Mixture(NamedTuple):
  """A K-component Gaussian mixture in R^d with one shared covariance.

  The square root S of Sigma (Sigma = S S^T) is stored as a low-rank update
  of the identity, S = I + U W^T, so that drawing n samples costs O(n d r)
  rather than O(n d^2): r is the number of nuisance directions for the
  default mixture, and d (U = I) for a mixture of arbitrary parameters.

  Attributes:
    means: [K, d] component means.
    cov: [d, d] shared within-component covariance Sigma.
    sqrt_left: [d, r] U.
    sqrt_right: [d, r] W.
    weights: [K] mixing weights, summing to one.
  """

  means: jax.Array
  cov: jax.Array
  sqrt_left: jax.Array
  sqrt_right: jax.Array
  weights: jax.Array

  @property
  def cov_sqrt(self) -> jax.Array:
    """[d, d] the square root S = I + U W^T of Sigma."""
    eye = jnp.eye(self.cov.shape[-1], dtype=self.cov.dtype)
    return eye + self.sqrt_left @ jnp.swapaxes(self.sqrt_right, -1, -2)

  @classmethod
  def from_sqrt(cls, means, cov, cov_sqrt, weights) -> "Mixture":
    """A mixture whose square root S of Sigma is given whole (U = I)."""
    eye = jnp.eye(cov.shape[-1], dtype=cov.dtype)
    right = jnp.swapaxes(cov_sqrt - eye, -1, -2)
    return cls(means, cov, jnp.broadcast_to(eye, right.shape), right, weights)


def make_mixture(
  key: jax.Array,
  dim: int,
  num_components: int,
  anisotropy: jax.Array | float,
  *,
  separation: float = 3.0,
  n_nuisance: int | None = None,
  dtype=jnp.float32,
) -> Mixture:
  """Builds the default mixture of the design: random means, anisotropic Sigma.

  The means are independent uniformly random directions scaled to norm
  `separation`. Sigma has variance `anisotropy` along `n_nuisance` orthonormal
  directions drawn uniformly at random, and variance 1 elsewhere. Both draws
  are invariant under rotations, so the whole basis is randomly rotated: no
  optimiser can exploit the coordinate axes, and the nuisance directions
  overlap the span of the means in general position.

  The key alone fixes the means and the nuisance directions; `anisotropy`
  only scales, so a sweep over it keeps the same mixture geometry.

  Args:
    key: PRNG key of the mixture.
    dim: input dimension d.
    num_components: number of components K.
    anisotropy: variance along the nuisance directions (traced; may be swept).
    separation: norm of every mean.
    n_nuisance: number of nuisance directions r; defaults to K.
    dtype: floating dtype of the parameters.

  Returns:
    The mixture, with uniform weights.

  Raises:
    ValueError: if K < 2, d < K, separation is not a finite number > 0,
      n_nuisance lies outside [0, d], or an anisotropy known on the host is
      not a finite number > 0 (Sigma would not be positive definite).
  """
  check_shape(dim, num_components, 1)
  check_values("separation", separation, scalar=True)
  n_nuisance = num_components if n_nuisance is None else n_nuisance
  rule = f"0 <= n_nuisance <= d (d = {dim})"
  ok = is_int(n_nuisance) and 0 <= n_nuisance <= dim
  require(ok, "n_nuisance", n_nuisance, rule)
  check_values("anisotropy", anisotropy, scalar=True)
  key_means, key_nuisance = jax.random.split(key)
  directions = jax.random.normal(key_means, (num_components, dim), dtype)
  norms = jnp.linalg.norm(directions, axis=1, keepdims=True)
  means = separation * directions / norms
  gaussian = jax.random.normal(key_nuisance, (dim, n_nuisance), dtype)
  basis = jnp.linalg.qr(gaussian)[0]  # [d, r], orthonormal columns
  anisotropy = jnp.asarray(anisotropy, dtype)
  # Parenthesised so that Sigma is exactly symmetric in float32.
  cov = jnp.eye(dim, dtype=dtype) + (anisotropy - 1) * (basis @ basis.T)
  weights = jnp.full((num_components,), 1 / num_components, dtype)
  # S = I + (sqrt(a) - 1) V V^T is the symmetric square root of Sigma.
  right = (jnp.sqrt(anisotropy) - 1) * basis
  return Mixture(means, cov, basis, right, weights)


def mixture_from_params(
  means: np.ndarray, cov: np.ndarray, weights: np.ndarray | None = None
) -> Mixture:
  """Builds a mixture from explicit parameters, checking them on the host.

  Args:
    means: [K, d] component means.
    cov: [d, d] shared covariance; must be symmetric positive definite.
    weights: [K] mixing weights; uniform when omitted.

  Returns:
    The mixture, with a Cholesky factor as the square root of `cov`.

  Raises:
    ValueError: if the means are not a finite [K, d] array with K >= 2 and
      d >= K, a shape disagrees, the weights are not a distribution, or `cov`
      is not finite, symmetric and positive definite in the dtype it is
      stored in (float32 unless x64 is enabled): its condition number below
      1 / (d eps), eps that dtype's machine epsilon, and its eigenvalues
      squared within the dtype's range.
  """
  means = np.asarray(means, np.float64)
  cov = np.asarray(cov, np.float64)
  if means.ndim != 2:
    raise ValueError(f"means has shape {means.shape}; expected [K, d].")
  num_components, dim = means.shape
  check_shape(dim, num_components, 1)
  if weights is None:
    weights = np.full(num_components, 1 / num_components)
  weights = np.asarray(weights, np.float64)
  for name, value in (("means", means), ("weights", weights)):
    if not np.all(np.isfinite(value)):
      raise ValueError(f"{name} holds a value that is not finite: {value}.")
  if cov.shape != (dim, dim):
    raise ValueError(f"cov has shape {cov.shape}; expected {(dim, dim)}.")
  if weights.shape != (num_components,) or np.any(weights < 0):
    raise ValueError(f"weights={weights} must be {num_components} values >= 0.")
  if not np.isclose(weights.sum(), 1.0):
    raise ValueError(f"weights sum to {weights.sum()}, not 1.")
  # Checked in the dtype the mixture is stored in (float32 unless x64 is
  # enabled), where S_B squares the means.
  dtype = jax.dtypes.canonicalize_dtype(np.float64)
  check_covariance("cov", cov, dtype)
  high = np.sqrt(np.finfo(dtype).max)
  if np.max(np.abs(means)) > high:
    raise ValueError(
      f"means reach {np.max(np.abs(means)):.3g}; their squares would "
      f"overflow {np.dtype(dtype)} (needs |mean| <= {high:.3g})."
    )
  chol = np.linalg.cholesky(cov)
  return Mixture.from_sqrt(
    *(jnp.asarray(a) for a in (means, cov, chol, weights))
  )


def sample(
  key: jax.Array, mixture: Mixture, n: int, dtype=jnp.float32
) -> tuple[jax.Array, jax.Array]:
  """Draws n labelled samples.

  Returns:
    x: [n, d] samples; labels: [n] int component indices.

  Raises:
    ValueError: if n is not an int >= 1.
  """
  check_count("n", n)
  key_label, key_noise = jax.random.split(key)
  labels = components(key_label, mixture.weights, n)
  return _draw(key_noise, mixture, labels, dtype), labels


def sample_pairs(
  key: jax.Array,
  mixture: Mixture,
  n: int,
  p_same: jax.Array | float = 1.0,
  dtype=jnp.float32,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Draws n positive pairs (x, x').

  x comes from component c ~ weights. With probability `p_same` the
  positive's component c' is c; otherwise c' is a fresh draw from the
  weights (possibly c again). x' is an independent draw from component c',
  so x' is marginally the mixture for every p_same.

  Args:
    key: PRNG key of this batch.
    mixture: the mixture.
    n: number of pairs.
    p_same: probability that the positive shares the anchor's component
      (traced; may be swept).
    dtype: floating dtype of the samples.

  Returns:
    x: [n, d] anchors; x_pos: [n, d] positives; labels: [n] anchor
    components; labels_pos: [n] positive components.

  Raises:
    ValueError: if n is not an int >= 1, or a p_same known on the host lies
      outside [0, 1].
  """
  check_count("n", n)
  check_values("p_same", p_same)
  labels, labels_pos, key_x, key_pos = pair_components(
    key, mixture.weights, n, p_same, dtype
  )
  x = _draw(key_x, mixture, labels, dtype)
  x_pos = _draw(key_pos, mixture, labels_pos, dtype)
  return x, x_pos, labels, labels_pos


def pair_components(
  key: jax.Array,
  weights: jax.Array,
  n: int,
  p_same: jax.Array | float,
  dtype=jnp.float32,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """The components of n positive pairs, by the p_same rule.

  Returns:
    labels: [n] anchor components ~ weights; labels_pos: [n] positive
    components (the anchor's with probability p_same, else a fresh draw);
    and the keys with which to draw the anchors and the positives.
  """
  key_c, key_fresh, key_same, key_x, key_pos = jax.random.split(key, 5)
  labels = components(key_c, weights, n)
  fresh = components(key_fresh, weights, n)
  same = jax.random.uniform(key_same, (n,), dtype) < jnp.asarray(p_same, dtype)
  return labels, jnp.where(same, labels, fresh), key_x, key_pos


def components(key: jax.Array, weights: jax.Array, n: int) -> jax.Array:
  """[n] component indices drawn from the weights (in float32 in any mode)."""
  logits = jnp.log(weights.astype(jnp.float32))
  return jax.random.categorical(key, logits, shape=(n,))


def _draw(key, mixture: Mixture, labels: jax.Array, dtype) -> jax.Array:
  dim = mixture.means.shape[-1]
  noise = jax.random.normal(key, (labels.shape[0], dim), dtype)
  means = mixture.means.astype(dtype)[labels]
  left, right = (
    mixture.sqrt_left.astype(dtype),
    mixture.sqrt_right.astype(dtype),
  )
  return means + noise + (noise @ right) @ left.T


def embedded_pairs(
  key: jax.Array,
  mixture: Mixture,
  encoder: jax.Array,
  n: int,
  p_same: jax.Array | float = 1.0,
) -> tuple[jax.Array, jax.Array]:
  """Draws the embeddings (A x, A x') of n positive pairs, without x.

  For a linear encoder A ([k, d]) the embedding of a draw from component c
  is Gaussian: A x = A m_c + A S e with e ~ N(0, I_d), so A x has mean A m_c
  and covariance C = (A S)(A S)^T. Drawing A m_c + L h with L L^T = C and
  h ~ N(0, I_k) gives exactly the same distribution from k normals per
  sample instead of d, and costs O(k d r + k^2 d) per batch for the
  low-rank S = I + U W^T. Both the mean and L depend on A differentiably,
  so a loss of these embeddings has the same expectation as a loss of
  A x and A x', and its reparametrised gradient is an unbiased estimate of
  the same gradient (a different estimator from the one of `sample_pairs`:
  the noise enters through L rather than through x).

  Components are drawn by inverse CDF from one uniform each; positives
  follow the same p_same rule as `sample_pairs`. Rows of A that are zero
  (a collapsed encoder, or the padded rows of a padded grid) give zero
  embedding coordinates.

  Args:
    key: PRNG key of this batch.
    mixture: the mixture.
    encoder: [k, d] linear encoder A.
    n: number of pairs.
    p_same: probability that the positive shares the anchor's component.

  Returns:
    z: [n, k] anchor embeddings; z_pos: [n, k] positive embeddings.

  Raises:
    ValueError: if n is not an int >= 1, or a p_same known on the host lies
      outside [0, 1].
  """
  check_count("n", n)
  check_values("p_same", p_same)
  dtype = encoder.dtype
  k = encoder.shape[0]
  key_u, key_h = jax.random.split(key)
  uniforms = jax.random.uniform(key_u, (3, n), dtype)
  normals = jax.random.normal(key_h, (2, n, k), dtype)
  labels = _inverse_cdf(uniforms[0], mixture.weights)
  fresh = _inverse_cdf(uniforms[1], mixture.weights)
  labels_pos = jnp.where(uniforms[2] < p_same, labels, fresh)
  means = mixture.means.astype(dtype) @ encoder.T  # [K, k]
  left = mixture.sqrt_left.astype(dtype)
  right = mixture.sqrt_right.astype(dtype)
  encoder_sqrt = encoder + (encoder @ left) @ right.T  # A S, [k, d]
  chol = cholesky_semidefinite(encoder_sqrt @ encoder_sqrt.T)
  z = means[labels] + normals[0] @ chol.T
  z_pos = means[labels_pos] + normals[1] @ chol.T
  return z, z_pos


def cholesky_semidefinite(c: jax.Array) -> jax.Array:
  """Lower-triangular L with L L^T = c for a small positive semidefinite c.

  Unrolled over the (static, small) size of c in plain jnp operations, so
  that it vectorises under vmap and is differentiable without LAPACK. A
  pivot at or below a relative tolerance (a zero row of c, or a direction
  c does not span) gives a zero column instead of a NaN, with a zero
  gradient.
  """
  size = c.shape[-1]
  tolerance = 1e-12 * jnp.maximum(jnp.trace(c), jnp.finfo(c.dtype).tiny)
  columns = []
  for j in range(size):
    previous = jnp.stack(columns, axis=1) if columns else None
    column = c[:, j]
    if previous is not None:
      column = column - previous @ previous[j]
    pivot = column[j]
    positive = pivot > tolerance
    root = jnp.sqrt(jnp.where(positive, pivot, 1.0))
    column = jnp.where(positive, column / root, 0.0)
    columns.append(jnp.where(jnp.arange(size) >= j, column, 0.0))
  return jnp.stack(columns, axis=1)


def _inverse_cdf(uniform: jax.Array, weights: jax.Array) -> jax.Array:
  """Components i with probability weights[i] / sum(weights), by inverse CDF.

  Components of weight zero (the padding of a padded grid) are never drawn.
  """
  edges = jnp.cumsum(weights.astype(uniform.dtype))
  labels = jnp.sum(uniform[:, None] * edges[-1] >= edges[None, :-1], axis=1)
  last = jnp.max(jnp.where(weights > 0, jnp.arange(weights.shape[0]), 0))
  return jnp.minimum(labels, last)
