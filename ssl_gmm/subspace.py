"""The Fisher (LDA) subspace and the spectral baselines.

Shapes: `d` input dimension, `K` components, `k` embedding dimension. The
functions are pure jnp and work in the dtype they are given: call them under
`jax.enable_x64(True)` with float64 inputs for reference values, since a
float32 eigendecomposition loses exactly the small-variance directions that
the Fisher subspace depends on under strong anisotropy. Nothing here is
meant to be differentiated: the gradient of eigh is undefined at repeated
eigenvalues (an isotropic covariance).
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from ssl_gmm.checks import check_covariance, require


def centred_means(means: jax.Array, weights: jax.Array) -> jax.Array:
  """Returns [K, d] means minus their weighted average."""
  return means - weights @ means


def between_scatter(means: jax.Array, weights: jax.Array) -> jax.Array:
  """Returns the [d, d] between-class scatter S_B = sum_i pi_i m_i m_i^T."""
  centred = centred_means(means, weights)
  return (centred.T * weights) @ centred


def generalized_eigh(
  scatter: jax.Array, cov: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Solves scatter w = lambda cov w by Cholesky whitening.

  jax has no generalised symmetric eigensolver, so with cov = L L^T we take
  the eigenvectors u of L^{-1} scatter L^{-T} and map them back, w = L^{-T} u.

  Args:
    scatter: [d, d] symmetric matrix.
    cov: [d, d] symmetric positive definite matrix.

  Returns:
    eigenvalues: [d], in decreasing order.
    vectors: [d, d], column i the eigenvector of eigenvalue i, normalised so
      that vectors^T cov vectors = I. NaN when cov is not positive definite.
  """
  chol = jnp.linalg.cholesky(cov)
  half = jsl.solve_triangular(chol, scatter, lower=True)
  whitened = jsl.solve_triangular(chol, half.T, lower=True)
  whitened = 0.5 * (whitened + whitened.T)
  eigenvalues, u = jnp.linalg.eigh(whitened)
  vectors = jsl.solve_triangular(chol.T, u, lower=False)
  return eigenvalues[::-1], vectors[:, ::-1]


def fisher_subspace(
  means: jax.Array, cov: jax.Array, weights: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """The Fisher subspace F = span{Sigma^{-1} m_i} and its eigenvalues.

  Args:
    means: [K, d] component means.
    cov: [d, d] shared within-component covariance Sigma.
    weights: [K] mixing weights.

  Returns:
    basis: [d, K - 1], the top K - 1 generalised eigenvectors of
      (S_B, Sigma), Sigma-orthonormal, in decreasing order of eigenvalue.
    eigenvalues: [K - 1], Fisher's criterion of each direction; the best
      criterion of a k-dimensional embedding, J*_k, is the sum of the top
      min(k, K - 1).

  Raises:
    ValueError: when the arguments are known on the host (not traced) and
      one is not finite, Sigma is not symmetric positive definite in its
      dtype, or every component has the same mean: F is then undefined, and
      the eigensolver would return NaN or an arbitrary basis.

  References:
    Fisher, "The use of multiple measurements in taxonomic problems", 1936;
    Rao, "The utilization of multiple measurements in problems of biological
    classification", 1948.
  """
  _check_moments(means, cov, weights)
  rank = means.shape[0] - 1
  eigenvalues, vectors = generalized_eigh(between_scatter(means, weights), cov)
  return vectors[:, :rank], eigenvalues[:rank]


def _check_moments(means, cov, weights) -> None:
  """Raises if Sigma or the means known on the host leave F undefined."""
  if any(isinstance(a, jax.core.Tracer) for a in (means, cov, weights)):
    return
  for name, value in (("means", means), ("weights", weights)):
    if not np.all(np.isfinite(np.asarray(value))):
      raise ValueError(f"{name} holds a value that is not finite.")
  check_covariance("cov", cov, np.asarray(cov).dtype)
  if not np.any(centred_means(np.asarray(means), np.asarray(weights))):
    raise ValueError("means are all equal: the Fisher subspace is undefined.")


def top_rows(vectors: jax.Array, k: int, keep: int | None = None) -> jax.Array:
  """Returns a [k, d] encoder whose rows are the first columns of vectors.

  Rows past `keep` (when given) are zero, for methods such as LDA whose
  embedding has fewer than k dimensions.
  """
  columns = vectors.shape[1]
  require(1 <= k <= columns, "k", k, f"1 <= k <= {columns} (the columns)")
  rows = vectors[:, :k].T
  if keep is not None and keep < k:
    rows = rows.at[keep:].set(0)
  return rows


def pca_directions(total_cov: jax.Array) -> jax.Array:
  """Returns [d, d] principal directions in decreasing order of variance."""
  return jnp.linalg.eigh(total_cov)[1][:, ::-1]


def shrink(cov: jax.Array, shrinkage) -> jax.Array:
  """Blends cov with a multiple of the identity of the same trace.

  (1 - s) cov + s (trace(cov) / d) I; s = 0 leaves cov unchanged, and any
  s > 0 makes a singular covariance positive definite.
  """
  dim = cov.shape[-1]
  target = jnp.trace(cov) / dim * jnp.eye(dim, dtype=cov.dtype)
  return (1 - shrinkage) * cov + shrinkage * target
