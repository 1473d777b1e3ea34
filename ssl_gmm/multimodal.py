"""Two modalities that share a component, and what CLIP learns from them.

The model: a shared component c ~ weights and
a private sign s, +1 or -1 with probability 1/2 each, independent of c.
Modality x ~ N(mu_c + s u, Sigma_x) in R^d1 sees both; modality y ~
N(nu_c, Sigma_y) in R^d2 sees only c; x and y are independent given (c, s).
For c, x's within-class covariance is Sigma_x + u u^T, so x's shared Fisher
subspace is span{(Sigma_x + u u^T)^{-1} m_i}; claim C4 says CLIP lands there
and drops s, while InfoNCE on x alone (whose positives share c and s) keeps s.

The pipeline mirrors `synthetic`: one grid of seeds x swept values
(anisotropy_x, anisotropy_y, and any traced optimiser setting), keys from the
config's root seed split by purpose (`synthetic.make_keys`), one compiled
program per method: `train_clip_grid` gives the rows `clip` (A, scored on x)
and `clip_y` (B, scored on y); `train.train_grid` with `x_pairs` gives
`infonce`; `x_baseline_grid` gives `lda` and `oracle`.

Shapes: `n` samples, `d1` and `d2` the dimensions of x and y, `K`
components, `k` embedding dimension, `P` grid points.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from sklearn import linear_model

from ssl_gmm import baselines, losses, metrics, programs, subspace, synthetic
from ssl_gmm import train as training
from ssl_gmm.checks import (
  check_n_eval,
  check_norm,
  check_shape,
  check_traced,
  check_values,
  is_int,
  require,
)
from ssl_gmm.mixture import Mixture, make_mixture

METHODS = ("clip", "clip_y", "infonce", "lda", "oracle")
# Methods whose loss compares embeddings by cosine; the others embed raw.
_COSINE = ("clip", "clip_y", "infonce")
# Settings a multimodal sweep may vary, all as traced arrays.
SWEEPABLE = ("anisotropy_x", "anisotropy_y", "temperature", "learning_rate")


class TwoModalMixture(NamedTuple):
  """A shared component seen by two modalities, and x's private sign.

  Attributes:
    weights: [K] mixing weights of the shared component c.
    means_x: [K, d1] means mu_c of modality x.
    private: [d1] the private direction u; x's mean is mu_c + s u.
    cov_x: [d1, d1] Sigma_x, x's covariance given (c, s).
    cov_x_sqrt: [d1, d1] a square root of Sigma_x.
    means_y: [K, d2] means nu_c of modality y.
    cov_y: [d2, d2] Sigma_y, y's covariance given c.
    cov_y_sqrt: [d2, d2] a square root of Sigma_y.
  """

  weights: jax.Array
  means_x: jax.Array
  private: jax.Array
  cov_x: jax.Array
  cov_x_sqrt: jax.Array
  means_y: jax.Array
  cov_y: jax.Array
  cov_y_sqrt: jax.Array


def make_two_modal(
  key: jax.Array,
  dim_x: int,
  dim_y: int,
  num_components: int,
  anisotropy_x: jax.Array | float,
  anisotropy_y: jax.Array | float,
  *,
  separation: float = 3.0,
  private_norm: float = 4.0,
  n_nuisance: int | None = None,
  dtype=jnp.float32,
) -> TwoModalMixture:
  """Builds each modality as `mixture.make_mixture` does, and a random u.

  The key alone fixes the means, the nuisance directions and u; the two
  anisotropies only scale, so a sweep over them keeps the same geometry.

  Args:
    key: PRNG key of the mixture.
    dim_x: dimension d1 of x.
    dim_y: dimension d2 of y.
    num_components: number of shared components K.
    anisotropy_x: nuisance variance of Sigma_x (traced; may be swept).
    anisotropy_y: nuisance variance of Sigma_y (traced; may be swept).
    separation: norm of every mean, in both modalities.
    private_norm: norm of u.
    n_nuisance: nuisance directions per modality; defaults to K.
    dtype: floating dtype of the parameters.

  Returns:
    The two-modality mixture, with uniform weights.

  Raises:
    ValueError: as `make_mixture` does for either modality, naming
      anisotropy_x or anisotropy_y; or if private_norm lies outside
      [0, 1e3].
  """
  ok = is_int(num_components) and num_components >= 2
  require(ok, "num_components", num_components, "K >= 2")
  for name, dim in (("dim_x", dim_x), ("dim_y", dim_y)):
    rule = f"an int >= num_components = {num_components}"
    require(is_int(dim) and dim >= num_components, name, dim, rule)
  check_values("anisotropy_x", anisotropy_x)
  check_values("anisotropy_y", anisotropy_y)
  if not isinstance(private_norm, jax.core.Tracer):
    check_norm("private_norm", private_norm)
  key_x, key_y, key_u = jax.random.split(key, 3)
  common = dict(separation=separation, n_nuisance=n_nuisance, dtype=dtype)
  x = make_mixture(key_x, dim_x, num_components, anisotropy_x, **common)
  y = make_mixture(key_y, dim_y, num_components, anisotropy_y, **common)
  direction = jax.random.normal(key_u, (dim_x,), dtype)
  private = private_norm * direction / jnp.linalg.norm(direction)
  return TwoModalMixture(
    weights=x.weights,
    means_x=x.means,
    private=private,
    cov_x=x.cov,
    cov_x_sqrt=x.cov_sqrt,
    means_y=y.means,
    cov_y=y.cov,
    cov_y_sqrt=y.cov_sqrt,
  )


def _latents(key: jax.Array, mixture: TwoModalMixture, n: int):
  """[n] components c, [n] signs s in {-1, +1}, and two keys for the noise.

  Drawn in float32 whatever the 64-bit mode, so that float64 reference code
  replays the stream training saw.
  """
  key_c, key_s, key_a, key_b = jax.random.split(key, 4)
  logits = jnp.log(mixture.weights.astype(jnp.float32))
  c = jax.random.categorical(key_c, logits, shape=(n,))
  heads = jax.random.uniform(key_s, (n,), jnp.float32) < 0.5
  return c, jnp.where(heads, 1, -1), key_a, key_b


def _gaussian(key, means: jax.Array, cov_sqrt: jax.Array, dtype) -> jax.Array:
  """[n, d] draws of N(means[i], S S^T) with S = cov_sqrt."""
  noise = jax.random.normal(key, means.shape, dtype)
  return means + noise @ cov_sqrt.astype(dtype).T


def _draw_x(key, mixture: TwoModalMixture, c, s, dtype) -> jax.Array:
  shift = s[:, None].astype(dtype) * mixture.private.astype(dtype)
  means = mixture.means_x.astype(dtype)[c] + shift
  return _gaussian(key, means, mixture.cov_x_sqrt, dtype)


def sample_two_modal(
  key: jax.Array, mixture: TwoModalMixture, n: int, dtype=jnp.float32
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Draws n paired observations (x, y) with their latent c and s.

  Args:
    key: PRNG key of this batch.
    mixture: the two-modality mixture.
    n: number of pairs.
    dtype: floating dtype of the samples.

  Returns:
    x: [n, d1], x ~ N(mu_c + s u, Sigma_x); y: [n, d2], y ~ N(nu_c,
    Sigma_y), independent of x given (c, s); c: [n] components; s: [n]
    signs in {-1, +1}, independent of c.
  """
  c, s, key_x, key_y = _latents(key, mixture, n)
  x = _draw_x(key_x, mixture, c, s, dtype)
  y = _gaussian(
    key_y, mixture.means_y.astype(dtype)[c], mixture.cov_y_sqrt, dtype
  )
  return x, y, c, s


def sample_x_pairs(
  key: jax.Array, mixture: TwoModalMixture, n: int, dtype=jnp.float32
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Draws n unimodal positive pairs on x that share both c and s.

  The anchors are exactly the x of `sample_two_modal` with the same key, so
  InfoNCE on x, CLIP and LDA see the same anchors at every step; the
  positive is another independent draw of x from the same (c, s).

  Returns:
    x: [n, d1] anchors; x_pos: [n, d1] positives; c: [n]; s: [n].
  """
  c, s, key_x, key_pos = _latents(key, mixture, n)
  x = _draw_x(key_x, mixture, c, s, dtype)
  return x, _draw_x(key_pos, mixture, c, s, dtype), c, s


def x_pairs(
  key: jax.Array, mixture: TwoModalMixture, batch: int, p_same: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """The `draw` of `train.train_grid` for InfoNCE on x: [batch, d1] pairs.

  Positives always share the anchor's c and s; `p_same` is not used.
  """
  del p_same
  x, x_pos, _, _ = sample_x_pairs(key, mixture, batch)
  return x, x_pos


def x_within(mixture: TwoModalMixture) -> jax.Array:
  """[d1, d1] x's within-class covariance for c: Sigma_x + u u^T."""
  return mixture.cov_x + jnp.outer(mixture.private, mixture.private)


def x_view(mixture: TwoModalMixture) -> Mixture:
  """Modality x's first two moments as a learner blind to s sees them.

  Means mu_c and within-class covariance Sigma_x + u u^T (its Cholesky
  factor as square root). Given c, x is a two-point mixture along u, not a
  Gaussian: this view is for subspaces and metrics, never for sampling.
  """
  within = x_within(mixture)
  cholesky = jnp.linalg.cholesky(within)
  return Mixture.from_sqrt(mixture.means_x, within, cholesky, mixture.weights)


def y_view(mixture: TwoModalMixture) -> Mixture:
  """Modality y as a Mixture: means nu_c, covariance Sigma_y."""
  return Mixture.from_sqrt(
    mixture.means_y, mixture.cov_y, mixture.cov_y_sqrt, mixture.weights
  )


def x_shared_fisher(mixture: TwoModalMixture) -> tuple[jax.Array, jax.Array]:
  """x's Fisher subspace for c: [d1, K - 1] basis and [K - 1] eigenvalues.

  The top generalised eigenvectors of (S_B, Sigma_x + u u^T); call it in
  float64 for reference values (see `subspace`).
  """
  return subspace.fisher_subspace(
    mixture.means_x, x_within(mixture), mixture.weights
  )


def y_fisher(mixture: TwoModalMixture) -> tuple[jax.Array, jax.Array]:
  """y's Fisher subspace: [d2, K - 1] basis and [K - 1] eigenvalues."""
  return subspace.fisher_subspace(
    mixture.means_y, mixture.cov_y, mixture.weights
  )


class ClipTrained(NamedTuple):
  """CLIP's two encoders, A [k, d1] of x and B [k, d2] of y, as trained.

  `final_loss` and `diverged` mean what they mean in `train.Trained`; a
  point diverged when its loss or either encoder became NaN or infinite.
  """

  encoder_x: jax.Array
  encoder_y: jax.Array
  final_loss: jax.Array
  diverged: jax.Array


def clip_loss(
  params: dict[str, jax.Array], x: jax.Array, y: jax.Array, temperature
) -> jax.Array:
  """`losses.clip` (cosine) of [n, d1] x and [n, d2] y under A and B."""
  z_x, z_y = x @ params["x"].T, y @ params["y"].T
  return losses.clip(z_x, z_y, temperature, "cosine")


def train_clip(
  init_key: jax.Array,
  data_key: jax.Array,
  mixture: TwoModalMixture,
  hyper: training.Hyper,
  *,
  k: int,
  steps: int,
  batch: int,
) -> ClipTrained:
  """Trains A and B with CLIP's loss and Adam, fresh pairs at every step.

  Args:
    init_key: key of the initial encoders (each as `train.init_params`).
    data_key: key of the data stream; step t draws with fold_in(data_key, t).
    mixture: the two-modality mixture.
    hyper: learning rate and temperature (p_same is not used).
    k: embedding dimension of both encoders.
    steps: optimisation steps.
    batch: pairs per step.

  Returns:
    Both encoders, the final loss and the divergence flag.
  """
  key_x, key_y = jax.random.split(init_key)
  dims = {"x": mixture.means_x.shape[-1], "y": mixture.means_y.shape[-1]}
  keys = {"x": key_x, "y": key_y}
  params = {
    m: training.init_params(keys[m], k, dims[m])["encoder"] for m in dims
  }
  optimizer = optax.inject_hyperparams(optax.adam)(
    learning_rate=hyper.learning_rate
  )
  loss_and_grad = jax.value_and_grad(clip_loss)

  def step(carry, t):
    params, opt_state = carry
    key = jax.random.fold_in(data_key, t)
    x, y, _, _ = sample_two_modal(key, mixture, batch)
    loss, grads = loss_and_grad(params, x, y, hyper.temperature)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  carry = (params, optimizer.init(params))
  (params, _), loss_trace = jax.lax.scan(step, carry, jnp.arange(steps))
  finite = [jnp.all(jnp.isfinite(a)) for a in (loss_trace, *params.values())]
  return ClipTrained(
    encoder_x=params["x"],
    encoder_y=params["y"],
    final_loss=jnp.mean(loss_trace[-max(1, steps // 10) :]),
    diverged=~functools.reduce(jnp.logical_and, finite),
  )


@functools.partial(jax.jit, static_argnames=("k", "steps", "batch"))
def train_clip_grid(
  init_keys: jax.Array,
  data_keys: jax.Array,
  mixtures: TwoModalMixture,
  hyper: training.Hyper,
  *,
  k: int,
  steps: int,
  batch: int,
) -> ClipTrained:
  """`train_clip` vmapped over a leading grid axis of every array argument."""
  one = functools.partial(train_clip, k=k, steps=steps, batch=batch)
  return jax.vmap(one)(init_keys, data_keys, mixtures, hyper)


def lda_moments(
  data_key: jax.Array, mixture: TwoModalMixture, *, steps: int, batch: int
) -> baselines.Moments:
  """float64 moments of the steps x batch anchors InfoNCE on x saw, with c.

  Replays `x_pairs`' stream (step t drawn with fold_in(data_key, t)) and
  keeps the anchors and their shared components c; s is not a label.
  """
  num_components = mixture.means_x.shape[0]

  def at(t):
    key = jax.random.fold_in(data_key, t)
    x, _, c, _ = sample_x_pairs(key, mixture, batch)
    return baselines.moments_from_samples(x, c, num_components)

  def add(total, t):
    return jax.tree.map(jnp.add, total, at(t)), None

  shapes = jax.eval_shape(at, 0)
  zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
  return jax.lax.scan(add, zeros, jnp.arange(steps))[0]


@functools.partial(jax.jit, static_argnames=("k", "steps", "batch"))
def x_baseline_grid(
  data_keys: jax.Array,
  mixtures: TwoModalMixture,
  *,
  k: int,
  steps: int,
  batch: int,
) -> dict[str, jax.Array]:
  """[P, k, d1] encoders of x's `lda` and `oracle` (call under x64).

  LDA accumulates its moments over the very anchors InfoNCE on x saw, as
  many labelled samples as InfoNCE saw pairs (steps x batch), instead of
  holding them in memory at once; the oracle is x's shared Fisher subspace.
  """

  accumulate = functools.partial(lda_moments, steps=steps, batch=batch)
  moments = jax.vmap(accumulate)(data_keys, mixtures)

  def fit(moments, mixture):
    mixture64 = jax.tree.map(lambda a: a.astype(jnp.float64), mixture)
    return {
      "lda": baselines.lda_encoder(moments, k),
      "oracle": baselines.oracle_encoder(x_view(mixture64), k),
    }

  return programs.map_points(fit, moments, mixtures)


def s_accuracy(
  z_fit: np.ndarray, s_fit: np.ndarray, z_test: np.ndarray, s_test: np.ndarray
) -> float:
  """Held-out accuracy of logistic regression predicting s from [n, k] z.

  Fitted on the fitting split with scikit-learn's defaults; 0.5 means the
  embedding tells nothing of s.
  """
  model = linear_model.LogisticRegression().fit(z_fit, s_fit)
  return float(model.score(z_test, s_test))


def embedding_dim(config: ml_collections.ConfigDict) -> int:
  """The config's k; None means K - 1."""
  k = config.k
  return config.mixture.num_components - 1 if k is None else k


def _swept_or_fixed(config, grid: synthetic.Grid, name: str) -> np.ndarray:
  """[P] float32 values of an anisotropy: swept, or config.mixture's."""
  fixed = np.full(grid.size, config.mixture.anisotropy)
  return np.asarray(grid.swept.get(name, fixed), np.float32)


@functools.partial(jax.jit, static_argnames=("shape", "settings"))
def _stacked_mixtures(keys, anisotropy_x, anisotropy_y, *, shape, settings):
  """`make_two_modal` over [P] keys and anisotropies; settings: its kwargs."""

  def one(key, a_x, a_y):
    return make_two_modal(key, *shape, a_x, a_y, **dict(settings))

  return programs.map_points(one, keys, anisotropy_x, anisotropy_y)


def make_mixtures(
  config: ml_collections.ConfigDict,
  keys: synthetic.Keys,
  grid: synthetic.Grid,
) -> TwoModalMixture:
  """The stacked [P] two-modality mixtures of the grid (float32)."""
  m, mm = config.mixture, config.multimodal
  settings = (
    ("separation", m.separation),
    ("private_norm", mm.private_norm),
    ("n_nuisance", m.n_nuisance),
  )
  return _stacked_mixtures(
    keys.mixture,
    jnp.asarray(_swept_or_fixed(config, grid, "anisotropy_x")),
    jnp.asarray(_swept_or_fixed(config, grid, "anisotropy_y")),
    shape=(mm.dim_x, mm.dim_y, m.num_components),
    settings=settings,
  )


def _trained(encoder, trained) -> dict[str, np.ndarray]:
  return {
    "encoder": np.asarray(encoder, np.float64),
    "diverged": np.asarray(trained.diverged),
    "final_loss": np.asarray(trained.final_loss, np.float64),
  }


def train_methods(
  config: ml_collections.ConfigDict,
  keys: synthetic.Keys,
  mixtures: TwoModalMixture,
  grid: synthetic.Grid,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict]]:
  """Trains or fits every method of the config over the grid.

  Returns:
    outputs: method -> {"encoder": [P, k, d1] ([P, k, d2] for clip_y),
      "diverged": [P], "final_loss": [P] (trained methods only)}.
    timings: program label -> {"compile_s", "run_s", "steps_per_s"}.
  """
  t, wanted = config.train, set(config.methods)
  static = dict(k=embedding_dim(config), steps=t.steps, batch=t.batch)
  hyper = training.Hyper(
    *(jnp.asarray(grid.settings[n]) for n in training.Hyper._fields)
  )
  args = (keys.init, keys.data, mixtures, hyper)
  outputs, timings = {}, {}
  if wanted & {"clip", "clip_y"}:
    clip, timings["clip"] = programs.compile_and_run(
      train_clip_grid, args, static, "clip", t.steps
    )
    outputs["clip"] = _trained(clip.encoder_x, clip)
    outputs["clip_y"] = _trained(clip.encoder_y, clip)
  if "infonce" in wanted:
    static_x = dict(static, method="infonce", draw=x_pairs)
    infonce, timings["infonce"] = programs.compile_and_run(
      training.train_grid, args, static_x, "infonce", t.steps
    )
    outputs["infonce"] = _trained(infonce.encoder, infonce)
  if wanted & {"lda", "oracle"}:
    with jax.enable_x64(True):
      fitted, timings["baselines"] = programs.compile_and_run(
        x_baseline_grid, (keys.data, mixtures), static, "baselines", t.steps
      )
    for method in ("lda", "oracle"):
      encoder = np.asarray(fitted[method], np.float64)
      diverged = ~np.all(np.isfinite(encoder), axis=(1, 2))
      outputs[method] = {"encoder": encoder, "diverged": diverged}
  return {m: outputs[m] for m in config.methods}, timings


_x_views = jax.jit(functools.partial(programs.map_points, x_view))


def _modality_metrics(outputs: dict, mixtures: TwoModalMixture) -> dict:
  """Method -> subspace metrics and means-F angle in its own modality."""
  with jax.enable_x64(True):
    mixtures64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), mixtures)
    views = {"x": _x_views(mixtures64), "y": y_view(mixtures64)}
    angles = {v: synthetic.means_fisher_angles(m) for v, m in views.items()}
    measured = {}
    for method, out in outputs.items():
      modality = "y" if method == "clip_y" else "x"
      found = synthetic.subspace_metrics(
        jnp.asarray(out["encoder"]), views[modality]
      )
      found["means_fisher_angle"] = angles[modality]
      measured[method] = jax.tree.map(np.asarray, found)
  return measured


class _Held(NamedTuple):
  """Held-out samples of every grid point; the first n_fit fit, the rest test.

  Attributes:
    x: [P, n, d1]; y: [P, n, d2]; c: [P, n] components; s: [P, n] signs.
    n_fit: size of the fitting half.
    num_components: K.
  """

  x: np.ndarray
  y: np.ndarray
  c: np.ndarray
  s: np.ndarray
  n_fit: int
  num_components: int


@functools.partial(jax.jit, static_argnames="n")
def _sample_held_out(keys: jax.Array, mixtures: TwoModalMixture, n: int):
  """`sample_two_modal` of n samples at each of [P] keys and mixtures."""
  return jax.vmap(functools.partial(sample_two_modal, n=n))(keys, mixtures)


def _held_out(config, keys: synthetic.Keys, mixtures) -> _Held:
  x, y, c, s = _sample_held_out(keys.eval, mixtures, config.n_eval)
  as64 = functools.partial(np.asarray, dtype=np.float64)
  return _Held(
    x=as64(x),
    y=as64(y),
    c=np.asarray(c),
    s=np.asarray(s),
    n_fit=config.n_eval // 2,
    num_components=config.mixture.num_components,
  )


def _downstream(method: str, encoder, held: _Held, p: int, seed: int) -> dict:
  """accuracy, nmi and ari for c, and s_accuracy, of point p's embedding."""
  data = held.y if method == "clip_y" else held.x
  z = metrics.embed(encoder, data[p], method in _COSINE)
  fit, test = slice(None, held.n_fit), slice(held.n_fit, None)
  c, s = held.c[p], held.s[p]
  scores = metrics.downstream(
    z[fit], c[fit], z[test], c[test], held.num_components, seed=seed
  )
  s_score = s_accuracy(z[fit], s[fit], z[test], s[test])
  return dict(scores._asdict(), s_accuracy=s_score)


def _failure(weights: np.ndarray) -> dict:
  """What a diverged point is credited with: a failure on every metric."""
  chance = metrics.chance_downstream(weights)._asdict()
  return dict(metrics.DIVERGED, **chance, s_accuracy=0.5)


def evaluate(
  config: ml_collections.ConfigDict,
  grid: synthetic.Grid,
  keys: synthetic.Keys,
  mixtures: TwoModalMixture,
  outputs: dict[str, dict[str, np.ndarray]],
) -> list[dict]:
  """One row per method (config order) and grid point, with every metric."""
  held = _held_out(config, keys, mixtures)
  measured = _modality_metrics(outputs, mixtures)
  weights = np.asarray(mixtures.weights)
  rows = []
  for method in config.methods:
    out, found = outputs[method], measured[method]
    for p in range(grid.size):
      seed = int(grid.seed[p])
      row = {"method": method, "seed": seed}
      row.update({n: float(v[p]) for n, v in grid.swept.items()})
      diverged = bool(out["diverged"][p])
      if diverged:
        row.update(_failure(weights[p]))
      else:
        row.update({n: float(v[p]) for n, v in found.items()})
        row["rank"] = int(found["rank"][p])
        encoder = out["encoder"][p]
        row.update(_downstream(method, encoder, held, p, seed))
      row["diverged"] = diverged
      if "final_loss" in out:
        row["final_loss"] = float(out["final_loss"][p])
      row["means_fisher_angle"] = float(found["means_fisher_angle"][p])
      rows.append(row)
  return rows


def run_grid(config: ml_collections.ConfigDict) -> synthetic.Outcome:
  """Trains and scores every method on every point of the config's grid.

  Args:
    config: a multimodal config (ssl_gmm/configs/multimodal.py).

  Returns:
    The rows of results.csv, ordered by method (config order) then point;
    the swept column names; the timings of every grid program.
  """
  grid = synthetic.build_grid(config)
  keys = synthetic.make_keys(config.seed, grid)
  mixtures = make_mixtures(config, keys, grid)
  outputs, timings = train_methods(config, keys, mixtures, grid)
  rows = evaluate(config, grid, keys, mixtures, outputs)
  return synthetic.Outcome(rows=rows, swept=list(grid.swept), timings=timings)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks a multimodal config on the host, before anything is compiled.

  Raises:
    ValueError: naming the first invalid setting and its value.
  """
  # validation.validate has checked the settings every pipeline shares
  # (seeds, separation, optimiser, steps, batch, n_eval) already.
  mm, mixture = config.multimodal, config.mixture
  num_components, k = mixture.num_components, embedding_dim(config)
  for name in ("dim_x", "dim_y"):
    rule = f"must be >= num_components = {num_components}"
    require(mm[name] >= num_components, name, mm[name], rule)
  smaller = min(mm.dim_x, mm.dim_y)
  rule = f"1 <= k <= min(dim_x, dim_y) = {smaller}"
  require(1 <= k <= smaller, "k", k, rule)
  check_shape(smaller, num_components, k)
  check_n_eval(config.n_eval, num_components)
  check_norm("private_norm", mm.private_norm)
  if mixture.n_nuisance is not None:
    rule = f"0 <= n_nuisance <= min(dim_x, dim_y) = {smaller}"
    n_nuisance = mixture.n_nuisance
    require(0 <= n_nuisance <= smaller, "n_nuisance", n_nuisance, rule)
  for method in config.methods:
    require(method in METHODS, "method", method, f"expected one of {METHODS}")
  for claim in config.claims:  # Only C4 reads this pipeline's rows.
    require(claim == "C4", "claim", claim, "expected ('C4',)")
  for name, values in config.sweep.items():
    require(name in SWEEPABLE, "sweep", name, f"sweepable: {SWEEPABLE}")
    require(len(values) >= 1, name, values, "a sweep needs values")
    for value in values:
      check_traced(name, value)
