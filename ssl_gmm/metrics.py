"""How close an encoder is to the Fisher subspace, and what it is good for.

Shapes: `k` embedding dimension, `d` input dimension, `r` = K - 1 the
dimension of the Fisher subspace F. The subspace metrics are pure jnp, meant
for float64 under `jax.enable_x64(True)` and for a map over a grid; the
downstream metrics run k-means from scikit-learn on the host.

Every metric depends on an encoder A through its numerical rank: singular
values below `rank_tolerance` times the largest count as zero, so a
collapsed encoder has rank 0, distance 1 and fisher_ratio 0.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import cluster
from sklearn import metrics as skmetrics

from ssl_gmm import subspace

# Encoders are trained in float32: singular values below this fraction of
# the largest are float32 round-off, as in numpy.linalg.matrix_rank.
_FLOAT32_EPS = float(np.finfo(np.float32).eps)


def _rank_tolerance(encoder: jax.Array) -> float:
  return max(encoder.shape) * _FLOAT32_EPS


def check_encoder(encoder: jax.Array) -> None:
  """Refuses an encoder known on the host that is not a finite [k, d] array.

  A diverged run's encoder holds NaN; the pipelines score it as diverged
  (`DIVERGED`) instead of measuring it, and so must a direct caller.
  """
  if encoder.ndim != 2:
    raise ValueError(f"encoder has shape {encoder.shape}; expected [k, d].")
  if not isinstance(encoder, jax.core.Tracer) and not np.all(
    np.isfinite(encoder)
  ):
    raise ValueError("encoder holds a value that is not finite (diverged?).")


def row_space(encoder: jax.Array) -> tuple[jax.Array, jax.Array]:
  """An orthonormal basis of the row space of a [k, d] encoder.

  Returns:
    basis: [d, k]; columns past the numerical rank are zero.
    rank: the numerical rank (int).

  Raises:
    ValueError: see `check_encoder`.
  """
  check_encoder(encoder)
  _, singular, vt = jnp.linalg.svd(encoder, full_matrices=False)
  keep = singular > _rank_tolerance(encoder) * singular[0]
  return vt.T * keep, jnp.sum(keep)


def rank(encoder: jax.Array) -> jax.Array:
  """Numerical rank of a [k, d] encoder."""
  return row_space(encoder)[1]


def _largest_sine(q_inner: jax.Array, q_outer: jax.Array) -> jax.Array:
  """Sine of the largest angle from span(q_inner) to span(q_outer).

  Both have orthonormal (or zero) columns. The sine is the spectral norm of
  the part of q_inner outside span(q_outer): accurate near zero, where
  sqrt(1 - cos^2) would lose half the digits.
  """
  residual = q_inner - q_outer @ (q_outer.T @ q_inner)
  return jnp.clip(jnp.linalg.norm(residual, ord=2), 0.0, 1.0)


def distance(encoder: jax.Array, fisher_basis: jax.Array) -> jax.Array:
  """Sine of the largest principal angle between row(A) and F, in [0, 1].

  For k <= r it asks whether row(A) lies inside F; for k > r whether F lies
  inside row(A). Directions missing because rank(A) < min(k, r) count as 90
  degrees, so a collapsed encoder scores 1.

  Args:
    encoder: [k, d] encoder A.
    fisher_basis: [d, r] any basis of F.

  Returns:
    0 when the encoder recovers F, 1 when it misses a direction entirely.
  """
  k, r = encoder.shape[0], fisher_basis.shape[1]
  q_a, rank_a = row_space(encoder)
  q_f = jnp.linalg.qr(fisher_basis)[0]
  inner, outer = (q_a, q_f) if k <= r else (q_f, q_a)
  sine = _largest_sine(inner, outer)
  return jnp.where(rank_a < min(k, r), 1.0, sine)


def fisher_criterion(
  encoder: jax.Array, between: jax.Array, cov: jax.Array
) -> jax.Array:
  """J(A) = trace(pinv(A Sigma A^T) A S_B A^T) over A's numerical row space.

  J depends only on row(A), so it is evaluated on the orthonormal basis Q of
  row(A), where Q^T Sigma Q is invertible; directions past the rank add 0.
  """
  q, _ = row_space(encoder)
  kept = jnp.any(q != 0, axis=0)
  within = q.T @ cov @ q + jnp.diag(jnp.where(kept, 0.0, 1.0))
  return jnp.trace(jnp.linalg.solve(within, q.T @ between @ q))


def fisher_ratio(
  encoder: jax.Array,
  means: jax.Array,
  cov: jax.Array,
  weights: jax.Array,
) -> jax.Array:
  """J(A) / J*_k in [0, 1]; 1 when row(A) attains Fisher's best criterion."""
  k = encoder.shape[0]
  _, eigenvalues = subspace.fisher_subspace(means, cov, weights)
  best = jnp.sum(eigenvalues[:k])
  between = subspace.between_scatter(means, weights)
  return fisher_criterion(encoder, between, cov) / best


def nuisance_share(
  encoder: jax.Array, fisher_basis: jax.Array, cov: jax.Array
) -> jax.Array:
  """Share of the embedding's variance that carries no class information.

  Each row a splits into a_F in F plus a_perp with a_perp^T Sigma F = 0, so
  a_perp^T m_i = 0. The share is trace(A_perp Sigma A_perp^T) /
  trace(A Sigma A^T): 0 when every row lies in F, 0 for a zero encoder.
  """
  check_encoder(encoder)
  w = fisher_basis
  gram = w.T @ cov @ w
  in_f = jnp.linalg.solve(gram, w.T @ cov @ encoder.T).T @ w.T  # [k, d]
  perp = encoder - in_f
  total = jnp.trace(encoder @ cov @ encoder.T)
  nuisance = jnp.trace(perp @ cov @ perp.T)
  return jnp.where(total > 0, nuisance / jnp.where(total > 0, total, 1), 0.0)


def subspace_angle(basis_a: jax.Array, basis_b: jax.Array) -> jax.Array:
  """Largest principal angle between two full-rank subspaces, in degrees.

  From the smaller subspace to the larger (the first if equal in dimension).
  """
  q_a = jnp.linalg.qr(basis_a)[0]
  q_b = jnp.linalg.qr(basis_b)[0]
  if q_a.shape[1] > q_b.shape[1]:
    q_a, q_b = q_b, q_a
  return jnp.degrees(jnp.arcsin(_largest_sine(q_a, q_b)))


# What a diverged encoder is scored on the subspace metrics: a failure.
DIVERGED = {
  "distance": 1.0,
  "fisher_ratio": 0.0,
  "nuisance_share": 1.0,
  "rank": 0,
}


def embed(encoder: np.ndarray, x: np.ndarray, cosine: bool) -> np.ndarray:
  """[n, k] embedding of [n, d] samples as a loss sees it.

  L2-normalised when the loss compares embeddings by cosine, raw otherwise.
  """
  return as_loss_sees(x @ encoder.T, cosine)


def as_loss_sees(z: np.ndarray, cosine: bool) -> np.ndarray:
  """[n, k] embeddings L2-normalised for a cosine loss, raw otherwise."""
  if cosine:
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
  return z


class Downstream(NamedTuple):
  """Held-out metrics of one embedding."""

  accuracy: float
  nmi: float
  ari: float


def downstream(
  embed_fit: np.ndarray,
  labels_fit: np.ndarray,
  embed_test: np.ndarray,
  labels_test: np.ndarray,
  num_components: int,
  seed: int = 0,
) -> Downstream:
  """Nearest-class-mean accuracy and k-means NMI/ARI on held-out samples.

  Class means come from the fitting split; accuracy, and k-means with
  `num_components` clusters, are measured on the test split, which needs at
  least `num_components` samples.

  Args:
    embed_fit: [n, k] embeddings of the fitting split.
    labels_fit: [n] their components.
    embed_test: [m, k] embeddings of the test split.
    labels_test: [m] their components.
    num_components: K.
    seed: seed of k-means' initialisation.
  """
  # A component that drew no fitting sample has no mean and is never
  # predicted (its test samples count as errors).
  classes = np.unique(labels_fit)
  centroids = np.stack(
    [embed_fit[labels_fit == c].mean(axis=0) for c in classes]
  )
  gaps = ((embed_test[:, None, :] - centroids[None]) ** 2).sum(-1)
  accuracy = float(np.mean(classes[gaps.argmin(axis=1)] == labels_test))
  clusters = cluster.KMeans(
    n_clusters=num_components, n_init=4, random_state=seed
  ).fit_predict(embed_test)
  return Downstream(
    accuracy=accuracy,
    nmi=float(skmetrics.normalized_mutual_info_score(labels_test, clusters)),
    ari=float(skmetrics.adjusted_rand_score(labels_test, clusters)),
  )


def chance_downstream(weights: np.ndarray) -> Downstream:
  """The downstream metrics a diverged encoder is credited with."""
  return Downstream(accuracy=float(np.max(weights)), nmi=0.0, ari=0.0)
