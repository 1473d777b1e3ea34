"""Training linear encoders with self-supervised losses, one grid at a time.

`train` is written for one configuration: it draws a fresh batch of positive
pairs at every step (key fold_in(data_key, step)) and runs the whole loop in
`lax.scan` under optax. Pairs come from a `draw` function of a data source:
by default a Mixture and `mixture_pairs`; a fixed data set brings its own.

For a mixture, the `embedding` sampler draws the embeddings A x directly
(`mixture.embedded_pairs`): the same distribution from k normals per sample
instead of d. An optional mask zeroes encoder rows and columns, so that a
grid padded to its largest shape trains every point in one program with the
padded coordinates and embedding dimensions inert.

`train_grid` vmaps `train` over stacked configurations and jit-compiles the
result, so a sweep over seeds and any traced setting (anisotropy, p_same,
temperature, learning rate) is one compiled program per method and shape.

Shapes: `n` batch size, `d` input dimension, `k` embedding dimension.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ssl_gmm import losses
from ssl_gmm.mixture import Mixture, embedded_pairs, sample_pairs

# Each trained method: (loss, similarity). SimSiam's cosine is fixed by the
# loss itself; its embeddings are compared by cosine downstream too.
TRAINED_METHODS = {
  "infonce": ("infonce", "cosine"),
  "infonce_dot": ("infonce", "dot"),
  "ntxent": ("ntxent", "cosine"),
  "simsiam": ("simsiam", "cosine"),
}
# How a step draws its batch: "plain" draws x and x' and embeds them;
# "embedding" draws A x and A x' of a Mixture directly.
SAMPLERS = ("plain", "embedding")


class Hyper(NamedTuple):
  """Per-configuration settings that may be swept (scalars, or stacked)."""

  learning_rate: jax.Array
  temperature: jax.Array
  p_same: jax.Array


class Trained(NamedTuple):
  """What one training run returns.

  Attributes:
    encoder: [k, d] the linear encoder A.
    predictor: [k, k] SimSiam's linear predictor (identity for others).
    final_loss: mean loss over the last tenth of the steps.
    diverged: whether a loss or a parameter became NaN or infinite.
  """

  encoder: jax.Array
  predictor: jax.Array
  final_loss: jax.Array
  diverged: jax.Array


def init_params(key: jax.Array, k: int, dim: int) -> dict[str, jax.Array]:
  """Encoder ~ N(0, 1/d) entrywise; the predictor starts at the identity."""
  encoder = jax.random.normal(key, (k, dim), jnp.float32) / jnp.sqrt(dim)
  return {"encoder": encoder, "predictor": jnp.eye(k, dtype=jnp.float32)}


def method_loss(
  params: dict[str, jax.Array],
  x: jax.Array,
  x_pos: jax.Array,
  temperature: jax.Array,
  method: str,
) -> jax.Array:
  """The loss of a trained method on a batch of [n, d] pairs."""
  z = x @ params["encoder"].T
  z_pos = x_pos @ params["encoder"].T
  return embedding_loss(params["predictor"], z, z_pos, temperature, method)


def embedding_loss(
  predictor: jax.Array,
  z: jax.Array,
  z_pos: jax.Array,
  temperature: jax.Array,
  method: str,
) -> jax.Array:
  """The loss of a trained method on [n, k] embedded pairs."""
  loss_name, similarity = TRAINED_METHODS[method]
  if loss_name == "simsiam":
    return losses.simsiam(z @ predictor.T, z_pos @ predictor.T, z, z_pos)
  loss = getattr(losses, loss_name)
  return loss(z, z_pos, temperature, similarity)


def mixture_pairs(
  key: jax.Array, mixture: Mixture, batch: int, p_same: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """The default `draw`: [batch, d] anchors and positives of a mixture."""
  x, x_pos, _, _ = sample_pairs(key, mixture, batch, p_same)
  return x, x_pos


def train(
  init_key: jax.Array,
  data_key: jax.Array,
  source,
  hyper: Hyper,
  mask: jax.Array | None = None,
  *,
  method: str,
  k: int,
  steps: int,
  batch: int,
  draw: Callable = mixture_pairs,
  sampler: str = "plain",
) -> Trained:
  """Trains one linear encoder with Adam on fresh pairs at every step.

  Args:
    init_key: key of the initial parameters.
    data_key: key of the data stream; step t draws with fold_in(data_key, t),
      so the spectral baselines can replay the same pairs (with the plain
      sampler; the embedding sampler draws other pairs of the same law).
    source: what `draw` draws from (a pytree of arrays, e.g. a Mixture).
    hyper: learning rate, temperature and p_same of this configuration.
    mask: optional [k, d] array of ones and zeros. The encoder is multiplied
      by it in every step, so masked entries start at zero, get a zero
      gradient and stay zero; a zero row is a padded embedding dimension, a
      zero column a padded input coordinate. The initial scale uses the
      number of unmasked columns as d.
    method: a key of TRAINED_METHODS.
    k: embedding dimension.
    steps: optimisation steps.
    batch: pairs per step.
    draw: draw(key, source, batch, p_same) -> ([batch, d] x, [batch, d] x').
      Used by the plain sampler.
    sampler: one of SAMPLERS; "embedding" needs a Mixture source.

  Returns:
    The trained encoder and predictor, final loss and divergence flag.
  """
  if sampler not in SAMPLERS:
    raise ValueError(f"sampler={sampler!r}; expected one of {SAMPLERS}.")
  if sampler == "embedding":
    dim = source.means.shape[-1]
  else:
    draw_batch = functools.partial(draw, batch=batch)
    shapes = jax.eval_shape(draw_batch, data_key, source, p_same=hyper.p_same)
    dim = shapes[0].shape[-1]
  params = init_params(init_key, k, dim)
  if mask is None:
    mask = jnp.ones((k, dim), jnp.float32)
  else:
    # N(0, 1 / d) entrywise for the unpadded d.
    scale = jnp.sqrt(dim / jnp.maximum(jnp.max(jnp.sum(mask, axis=1)), 1))
    params["encoder"] = params["encoder"] * mask * scale
  rows = jnp.max(mask, axis=1)
  predictor_mask = rows[:, None] * rows[None, :]
  optimizer = optax.inject_hyperparams(optax.adam)(
    learning_rate=hyper.learning_rate
  )

  def loss_fn(params, key):
    encoder = params["encoder"] * mask
    if sampler == "embedding":
      z, z_pos = embedded_pairs(key, source, encoder, batch, hyper.p_same)
    else:
      x, x_pos = draw(key, source, batch, hyper.p_same)
      z, z_pos = x @ encoder.T, x_pos @ encoder.T
    predictor = params["predictor"] * predictor_mask
    return embedding_loss(predictor, z, z_pos, hyper.temperature, method)

  loss_and_grad = jax.value_and_grad(loss_fn)

  def step(carry, t):
    params, opt_state = carry
    loss, grads = loss_and_grad(params, jax.random.fold_in(data_key, t))
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  carry = (params, optimizer.init(params))
  (params, _), loss_trace = jax.lax.scan(step, carry, jnp.arange(steps))
  finite = jnp.all(jnp.isfinite(loss_trace)) & jnp.all(
    jnp.isfinite(params["encoder"])
  )
  tail = loss_trace[-max(1, steps // 10) :]
  return Trained(
    encoder=params["encoder"] * mask,
    predictor=params["predictor"] * predictor_mask,
    final_loss=jnp.mean(tail),
    diverged=~finite,
  )


@functools.partial(
  jax.jit, static_argnames=("method", "k", "steps", "batch", "draw", "sampler")
)
def train_grid(
  init_keys: jax.Array,
  data_keys: jax.Array,
  sources,
  hyper: Hyper,
  masks: jax.Array | None = None,
  *,
  method: str,
  k: int,
  steps: int,
  batch: int,
  draw: Callable = mixture_pairs,
  sampler: str = "plain",
) -> Trained:
  """`train` vmapped over a leading grid axis of every array argument."""
  one = functools.partial(
    train,
    method=method,
    k=k,
    steps=steps,
    batch=batch,
    draw=draw,
    sampler=sampler,
  )
  return jax.vmap(one)(init_keys, data_keys, sources, hyper, masks)
