"""Self-supervised losses on a batch of embedded positive pairs.

Shapes: `n` pairs, `k` embedding dimension. Every contrastive loss builds
its logits as similarity / temperature and takes the cross entropy with a
log-softmax (logsumexp), so it never exponentiates before the log and stays
finite at small temperatures. Normalisation is guarded: a zero embedding
normalises to zero with a finite gradient instead of 0/0.
"""

import jax
import jax.numpy as jnp

SIMILARITIES = ("cosine", "dot")

# Squared norms below this are treated as this value when normalising, so a
# collapsed (zero) embedding yields a finite loss and gradient.
_NORM_FLOOR = 1e-12


def l2_normalize(z: jax.Array) -> jax.Array:
  """Scales every row of z to unit norm; zero rows stay zero."""
  squared = jnp.sum(z * z, axis=-1, keepdims=True)
  return z * jax.lax.rsqrt(jnp.maximum(squared, _NORM_FLOOR))


def similarity_logits(
  a: jax.Array, b: jax.Array, temperature, similarity: str = "cosine"
) -> jax.Array:
  """Returns [n_a, n_b] logits s(a_i, b_j) / temperature."""
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
  logits = similarity_logits(z_x, z_y, temperature, similarity)
  return 0.5 * (
    _cross_entropy_diagonal(logits) + _cross_entropy_diagonal(logits.T)
  )
