"""Self-supervised losses on a batch of embedded positive pairs.

Shapes: `n` pairs, `k` embedding dimension. The cross-entropy losses
(InfoNCE, NT-Xent, CLIP) build their logits as similarity / temperature and
take the cross entropy with a log-softmax (logsumexp), so they never
exponentiate before the log and stay finite at small temperatures. The
spectral contrastive loss has no logits: it is a polynomial in the raw
embeddings' dot products. The non-contrastive losses use no negatives:
SimSiam and BYOL compare predictions with stop-gradient targets, and Barlow
Twins and VICReg act on per-batch statistics of the embedding columns.
Normalisation is guarded: a zero embedding normalises to zero with a finite
gradient instead of 0/0, and Barlow Twins floors each column's variance, so
a constant column standardises without 0/0.
"""

import jax
import jax.numpy as jnp

from ssl_gmm.checks import check_values, is_finite, require

SIMILARITIES = ("cosine", "dot")

# Squared norms below this are treated as this value when normalising, so a
# collapsed (zero) embedding yields a finite loss and gradient.
_NORM_FLOOR = 1e-12


def l2_normalize(z: jax.Array) -> jax.Array:
  """Scales every row of z to unit norm; zero rows stay zero."""
  squared = jnp.sum(z * z, axis=-1, keepdims=True)
  return z * jax.lax.rsqrt(jnp.maximum(squared, _NORM_FLOOR))


def check_batch(least: int = 1, **views: jax.Array) -> None:
  """Checks the views of a batch: [n, k] arrays of one shape, with n >= least.

  Shapes are static, so this runs on the host even under jit. The
  cross-entropy losses are defined from one pair (the loss is then 0); the
  losses of batch statistics and of pairs i != j need two.

  Raises:
    ValueError: naming the first view that is not [n, k], or whose shape
      differs from the first's, or n < least.
  """
  (first, reference), *_ = views.items()
  for name, view in views.items():
    shape = tuple(view.shape)
    ok = len(shape) == 2 and shape[1] >= 1
    require(ok, f"{name}.shape", shape, "expected [n, k] with k >= 1")
    rule = f"expected {first}'s shape {tuple(reference.shape)}"
    require(shape == tuple(reference.shape), f"{name}.shape", shape, rule)
  rule = f"n >= {least} pairs"
  require(reference.shape[0] >= least, "n", reference.shape[0], rule)


def check_weights(**weights) -> None:
  """Checks loss weights known on the host: finite and >= 0 (eps > 0)."""
  for name, value in weights.items():
    if isinstance(value, jax.core.Tracer):
      continue
    require(is_finite(value), name, value, "must be a finite number")
    positive = value > 0 if name == "eps" else value >= 0
    require(positive, name, value, "must be > 0" if name == "eps" else ">= 0")


def similarity_logits(
  a: jax.Array, b: jax.Array, temperature, similarity: str = "cosine"
) -> jax.Array:
  """Returns [n_a, n_b] logits s(a_i, b_j) / temperature.

  Raises:
    ValueError: for an unknown similarity, or a temperature that is known
      on the host (not traced) and not a finite number > 0.
  """
  check_values("temperature", temperature, scalar=True)
  if similarity == "cosine":
    a, b = l2_normalize(a), l2_normalize(b)
  elif similarity != "dot":
    raise ValueError(
      f"similarity={similarity!r}; expected one of {SIMILARITIES}."
    )
  return a @ b.T / temperature


def _cross_entropy_diagonal(logits: jax.Array) -> jax.Array:
  """Mean cross entropy of each row against the target on its diagonal."""
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.mean(jnp.diagonal(log_probs))


def infonce(
  z: jax.Array, z_pos: jax.Array, temperature, similarity: str = "cosine"
) -> jax.Array:
  """One-sided InfoNCE: anchor i against every positive j, target j = i.

  Args:
    z: [n, k] anchor embeddings.
    z_pos: [n, k] positive embeddings.
    temperature: tau > 0.
    similarity: "cosine" or "dot".

  Returns:
    The mean loss; log n when all embeddings are identical.

  References:
    van den Oord et al., "Representation Learning with Contrastive Predictive
    Coding", 2018.
  """
  check_batch(z=z, z_pos=z_pos)
  return _cross_entropy_diagonal(
    similarity_logits(z, z_pos, temperature, similarity)
  )


def ntxent(
  z: jax.Array, z_pos: jax.Array, temperature, similarity: str = "cosine"
) -> jax.Array:
  """SimCLR's NT-Xent: both views are anchors against the 2n - 1 others.

  Args:
    z: [n, k] first-view embeddings.
    z_pos: [n, k] second-view embeddings; row i is the positive of z's row i.
    temperature: tau > 0.
    similarity: "cosine" (SimCLR's choice) or "dot".

  Returns:
    The mean loss over the 2n anchors; log(2n - 1) when all are identical.

  References:
    Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", 2020.
  """
  check_batch(z=z, z_pos=z_pos)
  n = z.shape[0]
  both = jnp.concatenate([z, z_pos], axis=0)  # [2n, k]
  logits = similarity_logits(both, both, temperature, similarity)
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  partner = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.mean(log_probs[jnp.arange(2 * n), partner])


def negative_cosine(p: jax.Array, target: jax.Array) -> jax.Array:
  """Mean of -cos(p_i, target_i) over rows, with guarded normalisation."""
  return -jnp.mean(jnp.sum(l2_normalize(p) * l2_normalize(target), axis=-1))


def simsiam(
  p: jax.Array, p_pos: jax.Array, z: jax.Array, z_pos: jax.Array
) -> jax.Array:
  """Symmetrised SimSiam loss with its stop-gradient on the targets.

  Args:
    p: [n, k] predictor outputs of the first view.
    p_pos: [n, k] predictor outputs of the second view.
    z: [n, k] encoder outputs of the first view (targets for p_pos).
    z_pos: [n, k] encoder outputs of the second view (targets for p).

  Returns:
    The mean of -cos(p, sg(z_pos)) and -cos(p_pos, sg(z)); -1 when each
    prediction equals its target.

  References:
    Chen & He, "Exploring Simple Siamese Representation Learning", 2021.
  """
  check_batch(p=p, p_pos=p_pos, z=z, z_pos=z_pos)
  sg = jax.lax.stop_gradient
  return 0.5 * (negative_cosine(p, sg(z_pos)) + negative_cosine(p_pos, sg(z)))


def clip(
  z_x: jax.Array, z_y: jax.Array, temperature, similarity: str = "cosine"
) -> jax.Array:
  """CLIP's symmetric cross-modal loss: mean of row and column cross entropy.

  Args:
    z_x: [n, k] embeddings of modality x.
    z_y: [n, k] embeddings of modality y; row i pairs with z_x's row i.
    temperature: tau > 0.
    similarity: "cosine" or "dot".

  Returns:
    The average (not the sum) of the x-to-y and y-to-x losses; log n when all
    embeddings are identical.

  References:
    Radford et al., "Learning Transferable Visual Models From Natural
    Language Supervision", 2021.
  """
  check_batch(z_x=z_x, z_y=z_y)
  logits = similarity_logits(z_x, z_y, temperature, similarity)
  return 0.5 * (
    _cross_entropy_diagonal(logits) + _cross_entropy_diagonal(logits.T)
  )


def _sum_off_diagonal_squares(m: jax.Array) -> jax.Array:
  """Sum of m_ij^2 over i != j, for a square m."""
  off_diagonal = ~jnp.eye(m.shape[0], dtype=bool)
  return jnp.sum(jnp.where(off_diagonal, m * m, 0.0))


def spectral_contrastive(z: jax.Array, z_pos: jax.Array) -> jax.Array:
  """HaoChen et al.'s spectral contrastive loss, batch estimator.

  -2/n sum_i z_i . z_pos_i + 1/(n (n - 1)) sum_{i != j} (z_i . z_pos_j)^2, on
  the raw embeddings (no normalisation, no temperature): the population loss
  -2 E[f(x)^T f(x+)] + E[(f(x)^T f(x'))^2] with the pairs (i, j), i != j, as
  the independent draws x, x'.

  Args:
    z: [n, k] anchor embeddings.
    z_pos: [n, k] positive embeddings; row i is the positive of z's row i.

  Returns:
    The loss; -2 |v|^2 + |v|^4 when every row of z and z_pos is v, so 0 at
    collapse to zero.

  Raises:
    ValueError: if n < 2, which leaves no pair i != j.

  References:
    HaoChen, Wei, Gaidon & Ma, "Provable Guarantees for Self-Supervised Deep
    Learning with Spectral Contrastive Loss", NeurIPS 2021.
  """
  check_batch(2, z=z, z_pos=z_pos)
  n = z.shape[0]
  products = z @ z_pos.T  # [n, n]: z_i . z_pos_j
  positive = jnp.mean(jnp.diagonal(products))
  negative = _sum_off_diagonal_squares(products) / (n * (n - 1))
  return -2 * positive + negative


# Barlow Twins floors each column's variance at this value before dividing by
# its square root (a standard deviation floor of 1e-4), so a constant column
# standardises to (nearly) zero with a finite loss and gradient instead of
# 0/0. Columns of an embedding that is not collapsed have variances far above
# it, which it leaves exact.
_VARIANCE_FLOOR = 1e-8


def _standardize_columns(z: jax.Array) -> jax.Array:
  """Centres each column over the batch and divides by its population std."""
  centered = z - jnp.mean(z, axis=0)
  variance = jnp.mean(centered * centered, axis=0)
  return centered * jax.lax.rsqrt(jnp.maximum(variance, _VARIANCE_FLOOR))


def barlow_twins(
  z: jax.Array, z_pos: jax.Array, off_diagonal_weight=5e-3
) -> jax.Array:
  """Barlow Twins: pushes the views' cross-correlation matrix to identity.

  Each column is standardised over the batch (mean 0, population standard
  deviation, i.e. divided by n, as the authors' BatchNorm1d(affine=False)
  does; its variance is floored at 1e-8 rather than offset by an epsilon),
  then C = z_std^T z_pos_std / n is [k, k] and the loss is
  sum_i (1 - C_ii)^2 + off_diagonal_weight * sum_{i != j} C_ij^2.

  Args:
    z: [n, k] first-view embeddings.
    z_pos: [n, k] second-view embeddings; row i pairs with z's row i.
    off_diagonal_weight: lambda, the redundancy-reduction weight (the paper's
      5e-3).

  Returns:
    The loss; 0 when z == z_pos and z's columns are uncorrelated, k (up to
    rounding in the column means) when either view is constant (C = 0).

  References:
    Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins: Self-Supervised
    Learning via Redundancy Reduction", ICML 2021.
  """
  check_batch(2, z=z, z_pos=z_pos)
  check_weights(off_diagonal_weight=off_diagonal_weight)
  n = z.shape[0]
  c = _standardize_columns(z).T @ _standardize_columns(z_pos) / n
  on_diagonal = jnp.sum(jnp.square(1 - jnp.diagonal(c)))
  return on_diagonal + off_diagonal_weight * _sum_off_diagonal_squares(c)


def vicreg(
  z: jax.Array,
  z_pos: jax.Array,
  invariance_weight=25.0,
  variance_weight=25.0,
  covariance_weight=1.0,
  eps=1e-4,
) -> jax.Array:
  """VICReg: invariance, variance and covariance terms, weighted.

  Follows the authors' reference implementation (main_vicreg.py):
  invariance is the mean of (z - z_pos)^2 over all n k entries; variance is
  mean_j relu(1 - sqrt(var_j + eps)) averaged over the two views; covariance
  is the sum of the squared off-diagonal entries of each view's covariance,
  divided by k, summed over the two views. Variances and covariances are
  unbiased (divided by n - 1). eps > 0 keeps the square root's gradient
  finite at collapse.

  Args:
    z: [n, k] first-view embeddings.
    z_pos: [n, k] second-view embeddings; row i pairs with z's row i.
    invariance_weight: lambda (the paper's 25).
    variance_weight: mu (the paper's 25).
    covariance_weight: nu (the paper's 1).
    eps: added to each variance before the square root (the paper's 1e-4).

  Returns:
    The weighted sum; variance_weight * (1 - sqrt(eps)) when z == z_pos is
    constant over the batch.

  Raises:
    ValueError: if n < 2, where the unbiased variance is undefined, or a
      weight known on the host is negative (eps not > 0).

  References:
    Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance
    Regularization for Self-Supervised Learning", ICLR 2022.
  """
  check_batch(2, z=z, z_pos=z_pos)
  check_weights(
    invariance_weight=invariance_weight,
    variance_weight=variance_weight,
    covariance_weight=covariance_weight,
    eps=eps,
  )
  n, k = z.shape

  def variance_and_covariance(x):
    centered = x - jnp.mean(x, axis=0)
    covariance = centered.T @ centered / (n - 1)  # [k, k]
    std = jnp.sqrt(jnp.diagonal(covariance) + eps)
    return (
      jnp.mean(jax.nn.relu(1 - std)),
      _sum_off_diagonal_squares(covariance) / k,
    )

  invariance = jnp.mean(jnp.square(z - z_pos))
  variance, covariance = variance_and_covariance(z)
  variance_pos, covariance_pos = variance_and_covariance(z_pos)
  return (
    invariance_weight * invariance
    + variance_weight * 0.5 * (variance + variance_pos)
    + covariance_weight * (covariance + covariance_pos)
  )


def byol(
  p: jax.Array, p_pos: jax.Array, target: jax.Array, target_pos: jax.Array
) -> jax.Array:
  """Symmetrised BYOL loss with its stop-gradient on the targets.

  Each direction is the normalised MSE |p^_i - t^_i|^2 = 2 - 2 cos(p_i, t_i)
  averaged over rows, against a stop-gradient target. BYOL sums the two
  directions; this returns their mean, which only rescales the gradient by
  1/2. A zero row normalises to zero (cos = 0, so 2 for that row).

  Args:
    p: [n, k] online predictions of the first view.
    p_pos: [n, k] online predictions of the second view.
    target: [n, k] target-network projections of the first view (targets for
      p_pos).
    target_pos: [n, k] target-network projections of the second view
      (targets for p).

  Returns:
    The mean of 2 - 2 cos(p, sg(target_pos)) and 2 - 2 cos(p_pos,
    sg(target)); 0 when each prediction equals its target.

  References:
    Grill et al., "Bootstrap Your Own Latent: A New Approach to
    Self-Supervised Learning", NeurIPS 2020.
  """
  check_batch(p=p, p_pos=p_pos, target=target, target_pos=target_pos)
  sg = jax.lax.stop_gradient
  forward = 2 + 2 * negative_cosine(p, sg(target_pos))
  backward = 2 + 2 * negative_cosine(p_pos, sg(target))
  return 0.5 * (forward + backward)
