"""Training encoders with self-supervised losses, one grid at a time.

`train` is written for one configuration: it draws a fresh batch of positive
pairs at every step (key fold_in(data_key, step)) and runs the whole loop in
`lax.scan` under optax. Pairs come from a `draw` function of a data source:
by default a Mixture and `mixture_pairs`; a fixed data set brings its own.

Most methods train a linear encoder A. BYOL adds a target encoder, an
exponential moving average of A that gives the targets and is never
differentiated. The `_mlp` methods train a small MLP (ssl_gmm/encoders.py)
instead, and report the linear encoder that stands for it on the data
(`encoders.effective_encoder`), so that every metric applies unchanged.

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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ssl_gmm import encoders, losses
from ssl_gmm.checks import check_values, is_int, require
from ssl_gmm.mixture import Mixture, embedded_pairs, sample_pairs


class Method(NamedTuple):
  """How a trained method learns.

  Attributes:
    loss: the name of its function in ssl_gmm/losses.py.
    similarity: "cosine" or "dot": how the loss compares embeddings, and so
      how they are compared downstream (L2-normalised for cosine).
    encoder: "linear" (A x) or "mlp" (encoders.MLP).
  """

  loss: str
  similarity: str
  encoder: str = "linear"


TRAINED_METHODS = {
  "infonce": Method("infonce", "cosine"),
  "infonce_dot": Method("infonce", "dot"),
  "ntxent": Method("ntxent", "cosine"),
  # SimSiam's and BYOL's cosine is fixed by the loss itself.
  "simsiam": Method("simsiam", "cosine"),
  "byol": Method("byol", "cosine"),
  # The non-contrastive regularised losses act on raw embeddings.
  "spectral": Method("spectral_contrastive", "dot"),
  "barlow_twins": Method("barlow_twins", "dot"),
  "vicreg": Method("vicreg", "dot"),
  "infonce_mlp": Method("infonce", "cosine", encoder="mlp"),
}
# Losses whose logits are similarity / temperature.
CONTRASTIVE_LOSSES = ("infonce", "ntxent")
# Losses with a k x k linear predictor on the online branch.
PREDICTOR_LOSSES = ("simsiam", "byol")
# How a step draws its batch: "plain" draws x and x' and embeds them;
# "embedding" draws A x and A x' of a Mixture directly (linear encoders).
SAMPLERS = ("plain", "embedding")


class MLPShape(NamedTuple):
  """Hidden width and depth of the `_mlp` methods' encoder."""

  width: int = 64
  depth: int = 2


DEFAULT_MLP = MLPShape()

# BYOL's target decay: target <- decay * target + (1 - decay) * A.
EMA_DECAY = 0.99


def is_mlp(method: str) -> bool:
  return TRAINED_METHODS[method].encoder == "mlp"


class Hyper(NamedTuple):
  """Per-configuration settings that may be swept (scalars, or stacked)."""

  learning_rate: jax.Array
  temperature: jax.Array
  p_same: jax.Array


class Trained(NamedTuple):
  """What one training run returns.

  Attributes:
    encoder: [k, d] the linear encoder A; for an MLP, the linear encoder
      that stands for it on the data (`encoders.effective_encoder`).
    predictor: [k, k] the linear predictor of SimSiam and BYOL (the
      identity for the others).
    final_loss: mean loss over the last tenth of the steps.
    diverged: whether a loss or a parameter became NaN or infinite.
    network: the MLP's parameters (an empty dict for a linear encoder).
  """

  encoder: jax.Array
  predictor: jax.Array
  final_loss: jax.Array
  diverged: jax.Array
  network: Any = None


def init_params(
  key: jax.Array,
  k: int,
  dim: int,
  method: str = "infonce",
  mlp: MLPShape = DEFAULT_MLP,
) -> dict[str, Any]:
  """A linear encoder ~ N(0, 1/d) entrywise, or an MLP with flax's default
  initialisers; the predictor starts at the identity."""
  predictor = jnp.eye(k, dtype=jnp.float32)
  if is_mlp(method):
    network = mlp_module(k, mlp).init(key, jnp.zeros((dim,), jnp.float32))
    return {"network": network, "predictor": predictor}
  encoder = jax.random.normal(key, (k, dim), jnp.float32) / jnp.sqrt(dim)
  return {"encoder": encoder, "predictor": predictor}


def mlp_module(k: int, mlp: MLPShape = DEFAULT_MLP) -> encoders.MLP:
  return encoders.MLP(width=mlp.width, depth=mlp.depth, features=k)


@functools.partial(jax.jit, static_argnames="mlp")
def embed_networks(networks, x: jax.Array, *, mlp: MLPShape) -> jax.Array:
  """[P, n, k] embeddings by P stacked MLPs of their [P, n, d] inputs.

  Inputs narrower than the networks' (a point of a padded grid, scored at
  its own shape) are padded with zero coordinates, as in training.
  """
  layers = networks["params"]
  dim = layers["Dense_0"]["kernel"].shape[1]  # [P, d, width]
  k = layers[f"Dense_{mlp.depth}"]["kernel"].shape[-1]  # [P, width, k]
  x = jnp.pad(x, ((0, 0), (0, 0), (0, dim - x.shape[-1])))
  return jax.vmap(mlp_module(k, mlp).apply)(networks, x)


def method_loss(
  params: dict[str, Any],
  x: jax.Array,
  x_pos: jax.Array,
  temperature: jax.Array,
  method: str,
  mlp: MLPShape = DEFAULT_MLP,
) -> jax.Array:
  """The loss of a trained method on a batch of [n, d] pairs.

  BYOL's targets come from its target encoder, params["target"] (the
  encoder itself when absent, as at the first step).
  """
  if is_mlp(method):
    module = mlp_module(params["predictor"].shape[0], mlp)
    z = module.apply(params["network"], x)
    z_pos = module.apply(params["network"], x_pos)
  else:
    z, z_pos = x @ params["encoder"].T, x_pos @ params["encoder"].T
  targets = None
  if TRAINED_METHODS[method].loss == "byol":
    target = params.get("target", params["encoder"])
    targets = x @ target.T, x_pos @ target.T
  return embedding_loss(
    params["predictor"], z, z_pos, temperature, method, targets
  )


def embedding_loss(
  predictor: jax.Array,
  z: jax.Array,
  z_pos: jax.Array,
  temperature: jax.Array,
  method: str,
  targets: tuple[jax.Array, jax.Array] | None = None,
) -> jax.Array:
  """The loss of a trained method on [n, k] embedded pairs.

  Args:
    predictor: [k, k] linear predictor (used by SimSiam and BYOL).
    z: [n, k] anchor embeddings.
    z_pos: [n, k] positive embeddings.
    temperature: tau of the contrastive losses.
    method: a key of TRAINED_METHODS.
    targets: BYOL's target embeddings of the anchors and the positives.
  """
  loss_name, similarity, _ = TRAINED_METHODS[method]
  loss = getattr(losses, loss_name)
  if loss_name == "simsiam":
    return loss(z @ predictor.T, z_pos @ predictor.T, z, z_pos)
  if loss_name == "byol":
    target, target_pos = targets
    return loss(z @ predictor.T, z_pos @ predictor.T, target, target_pos)
  if loss_name in CONTRASTIVE_LOSSES:
    return loss(z, z_pos, temperature, similarity)
  return loss(z, z_pos)


def check_static(
  method: str,
  k: int,
  steps: int,
  batch: int,
  sampler: str = "plain",
  mlp: MLPShape = DEFAULT_MLP,
) -> None:
  """Refuses static arguments of `train` that no training run can use.

  Raises:
    ValueError: naming the first invalid argument and its value.
  """
  known = tuple(TRAINED_METHODS)
  require(method in known, "method", method, f"expected one of {known}")
  require(is_int(k) and k >= 1, "k", k, "an int >= 1")
  require(is_int(steps) and steps >= 1, "steps", steps, "an int >= 1")
  # A contrastive batch needs a negative; statistics need two rows.
  require(is_int(batch) and batch >= 2, "batch", batch, "an int >= 2")
  require(sampler in SAMPLERS, "sampler", sampler, f"one of {SAMPLERS}")
  if is_mlp(method):
    rule = "an MLPShape(width, depth)"
    require(isinstance(mlp, MLPShape), "mlp", mlp, rule)
    width, depth = mlp
    require(is_int(width) and width >= 1, "mlp.width", width, "an int >= 1")
    require(is_int(depth) and depth >= 0, "mlp.depth", depth, "an int >= 0")


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
  mlp: MLPShape = DEFAULT_MLP,
) -> Trained:
  """Trains one encoder with Adam on fresh pairs at every step.

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
      number of unmasked columns as d. An MLP sees its input multiplied by
      the column mask and its output by the row mask.
    method: a key of TRAINED_METHODS.
    k: embedding dimension.
    steps: optimisation steps.
    batch: pairs per step.
    draw: draw(key, source, batch, p_same) -> ([batch, d] x, [batch, d] x').
      Used by the plain sampler.
    sampler: one of SAMPLERS; "embedding" needs a Mixture source and a
      linear encoder.
    mlp: width and depth of the `_mlp` methods' encoder.

  Returns:
    The trained encoder and predictor, final loss and divergence flag. An
    MLP's encoder is its effective linear encoder over `batch` fresh draws
    of the source (key fold_in(data_key, steps)), and its parameters are
    in `network`.

  Raises:
    ValueError: naming the first invalid argument (see `check_static`), or
      a learning rate, temperature or p_same that is known on the host and
      out of range (traced values are the caller's to check).
  """
  check_static(method, k, steps, batch, sampler, mlp)
  for name, value in hyper._asdict().items():
    check_values(name, value)
  if sampler == "embedding" and is_mlp(method):
    raise ValueError(
      f"sampler='embedding' draws a linear encoder's embeddings; method "
      f"{method!r} trains an MLP: use sampler='plain'."
    )
  byol = TRAINED_METHODS[method].loss == "byol"
  if sampler == "embedding":
    dim = source.means.shape[-1]
  else:
    draw_batch = functools.partial(draw, batch=batch)
    shapes = jax.eval_shape(draw_batch, data_key, source, p_same=hyper.p_same)
    dim = shapes[0].shape[-1]
  require(k <= dim, "k", k, f"1 <= k <= d (d = {dim})")
  params = init_params(init_key, k, dim, method, mlp)
  if mask is None:
    mask = jnp.ones((k, dim), jnp.float32)
  elif not is_mlp(method):
    # N(0, 1 / d) entrywise for the unpadded d.
    scale = jnp.sqrt(dim / jnp.maximum(jnp.max(jnp.sum(mask, axis=1)), 1))
    params["encoder"] = params["encoder"] * mask * scale
  rows = jnp.max(mask, axis=1)
  coords = jnp.max(mask, axis=0)
  predictor_mask = rows[:, None] * rows[None, :]
  module = mlp_module(k, mlp)
  optimizer = optax.inject_hyperparams(optax.adam)(
    learning_rate=hyper.learning_rate
  )

  def embed(params, x):
    if is_mlp(method):
      return module.apply(params["network"], x * coords) * rows
    return x @ (params["encoder"] * mask).T

  def loss_fn(params, target, key):
    targets = None
    if sampler == "embedding":
      encoder = params["encoder"] * mask
      if byol:
        # One draw of x for both encoders: stack them, then split.
        both = jnp.concatenate([encoder, jax.lax.stop_gradient(target)])
        z, z_pos = embedded_pairs(key, source, both, batch, hyper.p_same)
        targets = z[:, k:], z_pos[:, k:]
        z, z_pos = z[:, :k], z_pos[:, :k]
      else:
        z, z_pos = embedded_pairs(key, source, encoder, batch, hyper.p_same)
    else:
      x, x_pos = draw(key, source, batch, hyper.p_same)
      z, z_pos = embed(params, x), embed(params, x_pos)
      if byol:
        targets = x @ target.T, x_pos @ target.T
    predictor = params["predictor"] * predictor_mask
    return embedding_loss(
      predictor, z, z_pos, hyper.temperature, method, targets
    )

  loss_and_grad = jax.value_and_grad(loss_fn)

  def step(carry, t):
    params, opt_state, target = carry
    key = jax.random.fold_in(data_key, t)
    loss, grads = loss_and_grad(params, target, key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if byol:
      target = optax.incremental_update(
        params["encoder"] * mask, target, 1.0 - EMA_DECAY
      )
    return (params, opt_state, target), loss

  # BYOL's target starts as the encoder; the others carry an unused zero.
  target = params["encoder"] * mask if byol else jnp.zeros(())
  carry = (params, optimizer.init(params), target)
  (params, _, _), loss_trace = jax.lax.scan(step, carry, jnp.arange(steps))
  leaves = [loss_trace, *jax.tree.leaves(params)]
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))
  if is_mlp(method):
    x, _ = draw(jax.random.fold_in(data_key, steps), source, batch, 1.0)
    encoder = encoders.effective_encoder(
      lambda v: embed(params, v), x * coords, k
    )
    # As many directions as the point's own k (the unpadded rows).
    encoder = encoder * (jnp.arange(k) < jnp.sum(rows))[:, None]
    network = params["network"]
  else:
    encoder, network = params["encoder"] * mask, {}
  tail = loss_trace[-max(1, steps // 10) :]
  return Trained(
    encoder=encoder,
    predictor=params["predictor"] * predictor_mask,
    final_loss=jnp.mean(tail),
    diverged=~finite,
    network=network,
  )


def _checks_hyper(grid_fn: Callable) -> Callable:
  """grid_fn, refusing stacked settings out of range before it compiles.

  The check reads the settings on the host, so it applies where they are
  concrete arrays (a direct call); under an outer jit or shard_map they
  are traced, and the config they came from has been checked.
  """

  def check(hyper: Hyper) -> None:
    for name, value in hyper._asdict().items():
      check_values(name, value)

  @functools.wraps(grid_fn)
  def checked(init_keys, data_keys, sources, hyper, *args, **kwargs):
    check(hyper)
    return grid_fn(init_keys, data_keys, sources, hyper, *args, **kwargs)

  def lower(init_keys, data_keys, sources, hyper, *args, **kwargs):
    check(hyper)
    return grid_fn.lower(init_keys, data_keys, sources, hyper, *args, **kwargs)

  checked.lower = lower  # Ahead-of-time compilation checks the same way.
  return checked


@_checks_hyper
@functools.partial(
  jax.jit,
  static_argnames=("method", "k", "steps", "batch", "draw", "sampler", "mlp"),
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
  mlp: MLPShape = DEFAULT_MLP,
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
    mlp=mlp,
  )
  return jax.vmap(one)(init_keys, data_keys, sources, hyper, masks)
