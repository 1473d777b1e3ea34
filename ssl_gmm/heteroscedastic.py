"""Where the theory stops: components with unequal covariances.

Component c of the mixture is N(mu_c, Sigma_c) with its own covariance
Sigma_c = I + (anisotropy - 1) Q_c Q_c^T, where Q_c ([d, r]) are r
orthonormal nuisance directions drawn independently for each component. At
anisotropy 1 every Sigma_c is I, the homoscedastic control. Otherwise LDA's
model (one shared covariance) is wrong: the Bayes-optimal classifier is
quadratic, argmax_c log pi_c + log N(x; mu_c, Sigma_c), and the best linear
reduction need not be the Fisher subspace.

The reference F is still the Fisher subspace of (S_B, Sigma_W), with the
pooled within-class covariance Sigma_W = sum_c pi_c Sigma_c: what LDA
estimates from labelled samples, and what `oracle` is. `distance`,
`fisher_ratio` and `nuisance_share` are measured against it (with Sigma_W
as the covariance). Two columns ask what an embedding keeps for a quadratic
classifier:

- `qda_accuracy`: scikit-learn's QuadraticDiscriminantAnalysis, fitted on
  the labelled embeddings of the first half of the held-out samples and
  scored on the second half. QDA is unchanged by an invertible linear map of
  its input, so it scores row(A) alone: the embedding is taken in an
  orthonormal basis of row(A), rank(A) coordinates, which also keeps the
  class covariances of a rank-deficient encoder invertible (rank 0 scores
  chance). No cosine normalisation is applied. With about n_eval / (2 K)
  samples per class in k dimensions every class covariance is well
  conditioned, so QDA runs unregularised (reg_param 0).
- `bayes_accuracy`: the Bayes-optimal classifier on raw x with the true
  parameters (float64), on the same second half. It is the same for every
  method at a grid point: the ceiling of any classifier.

The pipeline mirrors `synthetic`: one grid of seeds x swept values, keys
split by purpose (`synthetic.make_keys`; the mixture of seed s is shared
across swept values), one compiled program per trained method (any of
`train.TRAINED_METHODS` with a linear encoder: `train.train_grid` with this
module's `pairs` and the plain sampler), and one for the baselines.

The baselines replay the first ceil(n_baseline / batch) batches of the
stream the trained encoders saw: `lda` fits the labelled anchors' class
means and pooled covariance, `pca` the anchors, `whitened_pca` the pairs;
`oracle` is F itself. The whole stream (steps x batch pairs) would hand LDA
hundreds of thousands of labelled samples: n_baseline, of the order of
n_eval, keeps it an estimate from a labelled set of realistic size.

Shapes: `n` samples, `d` input dimension, `K` components, `r` nuisance
directions per component, `k` embedding dimension, `P` grid points.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.linalg
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

from ssl_gmm import baselines, metrics, programs, synthetic
from ssl_gmm import train as training
from ssl_gmm.checks import (
  check_shape,
  check_traced,
  check_values,
  is_int,
  require,
)
from ssl_gmm.mixture import Mixture, components, pair_components
from ssl_gmm.validation import TRACED_SETTINGS

# The claims that read this pipeline's rows.
CLAIMS = ("hetero_lda_gap", "hetero_infonce")


class HeteroMixture(NamedTuple):
  """A K-component Gaussian mixture in R^d with a covariance per component.

  Each square root S_c of Sigma_c (Sigma_c = S_c S_c^T) is stored as a
  low-rank update of the identity, S_c = I + U_c W_c^T, as `mixture.Mixture`
  stores its one S.

  Attributes:
    means: [K, d] component means.
    covs: [K, d, d] covariances Sigma_c.
    sqrt_left: [K, d, r] U_c.
    sqrt_right: [K, d, r] W_c.
    weights: [K] mixing weights, summing to one.
  """

  means: jax.Array
  covs: jax.Array
  sqrt_left: jax.Array
  sqrt_right: jax.Array
  weights: jax.Array


def make_hetero_mixture(
  key: jax.Array,
  dim: int,
  num_components: int,
  anisotropy: jax.Array | float,
  *,
  separation: float = 3.0,
  n_nuisance: int | None = None,
  dtype=jnp.float32,
) -> HeteroMixture:
  """Random means as `mixture.make_mixture`, and nuisance directions per c.

  The means are the ones `make_mixture` draws from the same key. Each
  component gets its own `n_nuisance` orthonormal directions Q_c, drawn
  uniformly at random and independently of the other components' (in
  general position, randomly rotated), with variance `anisotropy` along
  them and 1 elsewhere. The key alone fixes the means and every Q_c;
  `anisotropy` only scales, so a sweep over it keeps the same geometry.

  Args:
    key: PRNG key of the mixture.
    dim: input dimension d.
    num_components: number of components K.
    anisotropy: variance along each component's nuisance directions
      (traced; may be swept); 1 gives Sigma_c = I for every c.
    separation: norm of every mean.
    n_nuisance: nuisance directions r per component; defaults to K.
    dtype: floating dtype of the parameters.

  Returns:
    The mixture, with uniform weights.

  Raises:
    ValueError: if K < 2, d < K, n_nuisance lies outside [1, d], or a
      separation or anisotropy known on the host is outside its range.
  """
  check_shape(dim, num_components, 1)
  check_values("separation", separation, scalar=True)
  n_nuisance = num_components if n_nuisance is None else n_nuisance
  rule = f"1 <= n_nuisance <= d (d = {dim})"
  ok = is_int(n_nuisance) and 1 <= n_nuisance <= dim
  require(ok, "n_nuisance", n_nuisance, rule)
  check_values("anisotropy", anisotropy, scalar=True)
  key_means, key_nuisance = jax.random.split(key)
  directions = jax.random.normal(key_means, (num_components, dim), dtype)
  norms = jnp.linalg.norm(directions, axis=1, keepdims=True)
  means = separation * directions / norms
  shape = (num_components, dim, n_nuisance)
  gaussian = jax.random.normal(key_nuisance, shape, dtype)
  # One unbatched QR per component (see programs.map_points).
  bases = jax.lax.map(lambda g: jnp.linalg.qr(g)[0], gaussian)  # [K, d, r]
  anisotropy = jnp.asarray(anisotropy, dtype)
  projectors = bases @ jnp.swapaxes(bases, -1, -2)
  covs = jnp.eye(dim, dtype=dtype) + (anisotropy - 1) * projectors
  weights = jnp.full((num_components,), 1 / num_components, dtype)
  # S_c = I + (sqrt(a) - 1) Q_c Q_c^T is the symmetric square root.
  right = (jnp.sqrt(anisotropy) - 1) * bases
  return HeteroMixture(means, covs, bases, right, weights)


def pooled_within(mixture: HeteroMixture) -> jax.Array:
  """[d, d] the pooled within-class covariance Sigma_W = sum_c pi_c Sigma_c."""
  return jnp.einsum("k,kde->de", mixture.weights, mixture.covs)


def pooled_view(mixture: HeteroMixture) -> Mixture:
  """The mixture as LDA models it: its means, one covariance Sigma_W.

  Its Fisher subspace is the reference F of every metric. Given c, x is
  not N(mu_c, Sigma_W): this view is for subspaces and metrics, never for
  sampling.
  """
  within = pooled_within(mixture)
  cholesky = jnp.linalg.cholesky(within)
  return Mixture.from_sqrt(mixture.means, within, cholesky, mixture.weights)


def _draw(key, mixture: HeteroMixture, labels: jax.Array, dtype) -> jax.Array:
  """[n, d] draws mu_c + S_c e, e ~ N(0, I), of the given components."""
  dim = mixture.means.shape[-1]
  noise = jax.random.normal(key, (labels.shape[0], dim), dtype)
  left = mixture.sqrt_left.astype(dtype)[labels]  # [n, d, r]
  right = mixture.sqrt_right.astype(dtype)[labels]  # [n, d, r]
  low_rank = jnp.einsum("nd,ndr->nr", noise, right)
  means = mixture.means.astype(dtype)[labels]
  return means + noise + jnp.einsum("nr,ndr->nd", low_rank, left)


def sample(
  key: jax.Array, mixture: HeteroMixture, n: int, dtype=jnp.float32
) -> tuple[jax.Array, jax.Array]:
  """Draws n labelled samples: [n, d] x and [n] int components."""
  key_label, key_noise = jax.random.split(key)
  labels = components(key_label, mixture.weights, n)
  return _draw(key_noise, mixture, labels, dtype), labels


def sample_pairs(
  key: jax.Array,
  mixture: HeteroMixture,
  n: int,
  p_same: jax.Array | float = 1.0,
  dtype=jnp.float32,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Draws n positive pairs (x, x') by the rule of `mixture.sample_pairs`.

  x comes from component c ~ weights. With probability `p_same` the
  positive's component c' is c, otherwise a fresh draw from the weights
  (possibly c again); x' is an independent draw from component c', with
  c''s own covariance.

  Returns:
    x: [n, d] anchors; x_pos: [n, d] positives; labels: [n] anchor
    components; labels_pos: [n] positive components.
  """
  labels, labels_pos, key_x, key_pos = pair_components(
    key, mixture.weights, n, p_same, dtype
  )
  x = _draw(key_x, mixture, labels, dtype)
  x_pos = _draw(key_pos, mixture, labels_pos, dtype)
  return x, x_pos, labels, labels_pos


def pairs(
  key: jax.Array, mixture: HeteroMixture, batch: int, p_same: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """The `draw` of `train.train_grid`: [batch, d] anchors and positives."""
  x, x_pos, _, _ = sample_pairs(key, mixture, batch, p_same)
  return x, x_pos


def log_densities(
  x: np.ndarray, means: np.ndarray, covs: np.ndarray
) -> np.ndarray:
  """[n, K] log N(x_i; mu_c, Sigma_c) of [n, d] samples, in float64.

  With Sigma_c = L L^T (Cholesky), log N = -|L^{-1}(x - mu_c)|^2 / 2 -
  sum log diag(L) - (d / 2) log(2 pi).
  """
  x = np.asarray(x, np.float64)
  dim = x.shape[1]
  found = np.empty((x.shape[0], len(means)))
  for c, (mean, cov) in enumerate(zip(means, covs)):
    chol = np.linalg.cholesky(np.asarray(cov, np.float64))
    white = scipy.linalg.solve_triangular(chol, (x - mean).T, lower=True)
    log_det = 2 * np.sum(np.log(np.diag(chol)))
    found[:, c] = -0.5 * (
      np.sum(white**2, 0) + log_det + dim * np.log(2 * np.pi)
    )
  return found


def bayes_predict(x: np.ndarray, mixture: HeteroMixture) -> np.ndarray:
  """[n] argmax_c log pi_c + log N(x; mu_c, Sigma_c): the Bayes classifier.

  References:
    Hastie, Tibshirani & Friedman, "The Elements of Statistical Learning",
    2nd ed., 2009, section 4.3 (the Gaussian discriminant functions).
  """
  weights = np.asarray(mixture.weights, np.float64)
  scores = np.log(weights) + log_densities(x, mixture.means, mixture.covs)
  return np.argmax(scores, axis=1)


def bayes_accuracy(
  x: np.ndarray, labels: np.ndarray, mixture: HeteroMixture
) -> float:
  """Accuracy of the Bayes-optimal classifier on labelled [n, d] samples."""
  return float(np.mean(bayes_predict(x, mixture) == labels))


def qda_accuracy(
  z_fit: np.ndarray,
  labels_fit: np.ndarray,
  z_test: np.ndarray,
  labels_test: np.ndarray,
) -> float:
  """Held-out accuracy of unregularised QDA fitted on [n, k] embeddings."""
  model = QuadraticDiscriminantAnalysis().fit(z_fit, labels_fit)
  return float(model.score(z_test, labels_test))


def row_coordinates(
  encoder: np.ndarray, rank: int, x: np.ndarray
) -> np.ndarray:
  """[n, rank] coordinates of x in an orthonormal basis of row(A).

  `rank` is the encoder's numerical rank (`metrics.rank`); the basis is its
  top right singular vectors.
  """
  basis = np.linalg.svd(encoder, full_matrices=False)[2][:rank]
  return x @ basis.T


def embedding_qda(
  encoder: np.ndarray,
  rank: int,
  x: np.ndarray,
  labels: np.ndarray,
  weights: np.ndarray,
) -> float:
  """qda_accuracy of row(A): QDA fitted on the first half, scored on the rest.

  A rank-0 encoder keeps nothing and scores chance, max(weights).
  """
  if rank == 0:
    return float(np.max(weights))
  z = row_coordinates(encoder, rank, x)
  n_fit = x.shape[0] // 2
  return qda_accuracy(z[:n_fit], labels[:n_fit], z[n_fit:], labels[n_fit:])


@functools.partial(jax.jit, static_argnames=("shape", "settings"))
def _stacked_mixtures(keys, anisotropy, *, shape, settings):
  """`make_hetero_mixture` over [P] keys and anisotropies."""

  def one(key, value):
    return make_hetero_mixture(key, *shape, value, **dict(settings))

  return programs.map_points(one, keys, anisotropy)


def make_mixtures(
  config: ml_collections.ConfigDict, keys: synthetic.Keys, grid: synthetic.Grid
) -> HeteroMixture:
  """The stacked [P] mixtures of the grid (float32)."""
  m = config.mixture
  dim, num_components, _ = grid.shapes[0]
  settings = (("separation", m.separation), ("n_nuisance", m.n_nuisance))
  return _stacked_mixtures(
    keys.mixture,
    jnp.asarray(grid.settings["anisotropy"]),
    shape=(dim, num_components),
    settings=settings,
  )


def replay_moments(
  data_key: jax.Array,
  mixture: HeteroMixture,
  p_same: jax.Array,
  *,
  steps: int,
  batch: int,
) -> baselines.Moments:
  """float64 moments of the first `steps` batches training drew, labelled.

  Replays `pairs`' stream (step t drawn with fold_in(data_key, t)) and keeps
  the anchors with their components, and the pairs.
  """
  num_components = mixture.means.shape[0]

  def at(t):
    key = jax.random.fold_in(data_key, t)
    x, x_pos, labels, _ = sample_pairs(key, mixture, batch, p_same)
    return baselines.moments_from_samples(x, labels, num_components, x_pos)

  def add(total, t):
    return jax.tree.map(jnp.add, total, at(t)), None

  shapes = jax.eval_shape(at, 0)
  zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
  return jax.lax.scan(add, zeros, jnp.arange(steps))[0]


@functools.partial(jax.jit, static_argnames=("k", "steps", "batch"))
def baseline_grid(
  data_keys: jax.Array,
  mixtures: HeteroMixture,
  p_same: jax.Array,
  *,
  k: int,
  steps: int,
  batch: int,
) -> dict[str, jax.Array]:
  """[P, k, d] encoders of every baseline (call under x64).

  `lda`, `pca` and `whitened_pca` fit the replayed first `steps` batches;
  `oracle` is the Fisher subspace of (S_B, Sigma_W).
  """
  replay = functools.partial(replay_moments, steps=steps, batch=batch)
  moments = jax.vmap(replay)(data_keys, mixtures, p_same)

  def fit(moments, mixture):
    mixture64 = jax.tree.map(lambda a: a.astype(jnp.float64), mixture)
    return baselines.fit_baselines(moments, pooled_view(mixture64), k=k)

  return programs.map_points(fit, moments, mixtures)


def baseline_steps(config: ml_collections.ConfigDict) -> int:
  """Batches the baselines replay: n_baseline samples in whole batches."""
  return math.ceil(config.n_baseline / config.train.batch)


def train_methods(
  config: ml_collections.ConfigDict,
  keys: synthetic.Keys,
  mixtures: HeteroMixture,
  grid: synthetic.Grid,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict]]:
  """Trains or fits every method of the config over the grid.

  Returns:
    outputs: method -> {"encoder": [P, k, d] float64, "diverged": [P],
      "final_loss": [P] (trained methods only)}.
    timings: program label -> {"compile_s", "run_s", "steps_per_s"}.
  """
  t, k = config.train, grid.shapes[0][2]
  hyper = training.Hyper(
    *(jnp.asarray(grid.settings[n]) for n in training.Hyper._fields)
  )
  outputs, timings = {}, {}
  for method in config.methods:
    if method not in training.TRAINED_METHODS:
      continue
    static = dict(
      method=method,
      k=k,
      steps=t.steps,
      batch=t.batch,
      draw=pairs,
      sampler="plain",
    )
    trained, timings[method] = programs.compile_and_run(
      training.train_grid,
      (keys.init, keys.data, mixtures, hyper),
      static,
      method,
      t.steps,
    )
    outputs[method] = {
      "encoder": np.asarray(trained.encoder, np.float64),
      "diverged": np.asarray(trained.diverged),
      "final_loss": np.asarray(trained.final_loss, np.float64),
    }
  wanted = [m for m in config.methods if m in baselines.BASELINE_METHODS]
  if wanted:
    steps = baseline_steps(config)
    static = dict(k=k, steps=steps, batch=t.batch)
    args = (keys.data, mixtures, hyper.p_same)
    with jax.enable_x64(True):
      fitted, timings["baselines"] = programs.compile_and_run(
        baseline_grid, args, static, "baselines", steps
      )
    for method in wanted:
      encoder = np.asarray(fitted[method], np.float64)
      diverged = ~np.all(np.isfinite(encoder), axis=(1, 2))
      outputs[method] = {"encoder": encoder, "diverged": diverged}
  return outputs, timings


@functools.partial(jax.jit, static_argnums=2)
def _eval_samples(keys: jax.Array, mixtures: HeteroMixture, n: int):
  return jax.vmap(sample, in_axes=(0, 0, None))(keys, mixtures, n)


_pooled_views = jax.jit(functools.partial(programs.map_points, pooled_view))


def at_point(mixtures: HeteroMixture, p: int) -> HeteroMixture:
  """Point p's parameters of stacked mixtures, as float64 NumPy arrays."""
  return HeteroMixture(*(np.asarray(a[p], np.float64) for a in mixtures))


def evaluate(
  config: ml_collections.ConfigDict,
  grid: synthetic.Grid,
  keys: synthetic.Keys,
  mixtures: HeteroMixture,
  outputs: dict[str, dict[str, np.ndarray]],
) -> list[dict]:
  """One row per method (config order) and grid point, with every metric.

  A diverged point scores as a failure: the subspace metrics of
  `metrics.DIVERGED` and chance accuracy; its bayes_accuracy, a property of
  the point, is kept.
  """
  x, labels = _eval_samples(keys.eval, mixtures, config.n_eval)
  x, labels = np.asarray(x, np.float64), np.asarray(labels)
  n_fit = config.n_eval // 2
  with jax.enable_x64(True):
    mixtures64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), mixtures)
    views = _pooled_views(mixtures64)
    angles = np.asarray(synthetic.means_fisher_angles(views))
    measured = {
      method: jax.tree.map(
        np.asarray,
        synthetic.subspace_metrics(jnp.asarray(out["encoder"]), views),
      )
      for method, out in outputs.items()
    }
  ceiling = [
    bayes_accuracy(x[p, n_fit:], labels[p, n_fit:], at_point(mixtures, p))
    for p in range(grid.size)
  ]
  weights = np.asarray(mixtures.weights, np.float64)
  rows = []
  for method in config.methods:
    out, found = outputs[method], measured[method]
    for p in range(grid.size):
      seed = int(grid.seed[p])
      row = {"method": method, "seed": seed}
      row.update({n: float(v[p]) for n, v in grid.swept.items()})
      diverged = bool(out["diverged"][p])
      encoder = None if diverged else out["encoder"][p]
      if diverged:
        row.update(metrics.DIVERGED)
      else:
        row.update({n: float(v[p]) for n, v in found.items()})
        row["rank"] = int(found["rank"][p])
      scores = synthetic.downstream(
        encoder,
        synthetic.is_cosine(method),
        x[p],
        labels[p],
        weights[p],
        seed=seed,
      )
      row.update(scores._asdict())
      row["diverged"] = diverged
      if "final_loss" in out:
        row["final_loss"] = float(out["final_loss"][p])
      row["means_fisher_angle"] = float(angles[p])
      rank = 0 if diverged else row["rank"]
      row["qda_accuracy"] = embedding_qda(
        encoder, rank, x[p], labels[p], weights[p]
      )
      row["bayes_accuracy"] = ceiling[p]
      rows.append(row)
  return rows


def run_grid(config: ml_collections.ConfigDict) -> synthetic.Outcome:
  """Trains and scores every method on every point of the config's grid.

  Args:
    config: a heteroscedastic config (ssl_gmm/configs/heteroscedastic.py).

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
  """Checks a heteroscedastic config on the host, before any compilation.

  Raises:
    ValueError: naming the first invalid setting and its value.
  """
  # validation.validate has checked the settings every pipeline shares
  # (seeds, separation, optimiser, steps, batch, n_eval) already.
  dim, num_components, k = synthetic.point_shape(config, {}, 0)
  check_shape(dim, num_components, k)
  n_eval, least = config.n_eval, 8 * num_components * (k + 1)
  rule = (
    f"an int >= 8 K (k + 1) = {least}: about 4 (k + 1) samples of each "
    "class in the half that fits QDA's k-dimensional covariances"
  )
  require(n_eval >= least, "n_eval", n_eval, rule)
  r = config.mixture.n_nuisance
  r = num_components if r is None else r
  rule = f"1 <= n_nuisance <= d (d = {dim})"
  require(1 <= r <= dim, "n_nuisance", r, rule)
  sampler = config.train.sampler
  rule = "this pipeline draws its own pairs: 'plain'"
  require(sampler == "plain", "sampler", sampler, rule)
  n_baseline = config.n_baseline
  rule = f"an int >= d + K = {dim + num_components} (a nonsingular Sigma_W)"
  ok = is_int(n_baseline) and n_baseline >= dim + num_components
  require(ok, "n_baseline", n_baseline, rule)
  known = (*training.TRAINED_METHODS, *baselines.BASELINE_METHODS)
  for method in config.methods:
    require(method in known, "method", method, f"expected one of {known}")
    if method in training.TRAINED_METHODS:
      linear = training.TRAINED_METHODS[method].encoder == "linear"
      require(linear, "method", method, "this pipeline scores linear encoders")
  for name, values in config.sweep.items():
    rule = f"sweepable: {TRACED_SETTINGS}"
    require(name in TRACED_SETTINGS, "sweep", name, rule)
    require(len(values) >= 1, name, values, "a sweep needs values")
    for value in values:
      check_traced(name, value)
  for claim in config.claims:
    require(claim in CLAIMS, "claim", claim, f"expected one of {CLAIMS}")
