"""Real labelled data: what the encoders recover from scikit-learn's sets.

The `real_data` pipeline (claim C6) trains the linear encoders on positive
pairs drawn from the training split of a labelled data set shipped inside
scikit-learn (no download), and scores them as the synthetic pipeline does.

- Splits. Each replicate seed draws its own stratified train/test split.
  Features constant on the training split are dropped, the rest are
  standardised with the training split's mean and standard deviation, so
  the held-out rows are never seen before they are scored.
- Reference. No analytic Fisher subspace exists here: the within-class
  covariance Sigma, class means and priors are estimated on the training
  split by scikit-learn's `LinearDiscriminantAnalysis(solver="eigen",
  shrinkage="auto")` (Ledoit-Wolf shrinkage per class), S_B follows from the
  means and priors, and F is their Fisher subspace, in float64. `distance`
  and `fisher_ratio` are measured against that estimate, so the `lda` row
  (encoder = F itself) is the reference, distance 0 and fisher_ratio 1 by
  construction, and not a competitor. scikit-learn's own `scalings_` differ
  from F by a few degrees: it takes S_B as a shrunk total covariance minus
  Sigma rather than from the means.
- Pairs. The anchor is a uniformly random training row; its positive is
  another row of the same class (the anchor itself only when it is alone in
  its class) or, with probability 1 - p_same, a uniformly random row of the
  other classes. Unlike the mixture's pairs (whose fresh component may be
  the anchor's again), p_same = 0 never pairs two rows of one class.
- Baselines. `pca` takes the top principal directions of the standardised
  training split; `whitened_pca` estimates Sigma without labels as
  Cov(x - x') / 2 over exactly the pairs the encoders saw (the stream of
  `steps` x `batch` pairs replayed with the same keys), with the total
  covariance of the same anchors, and keeps the top generalised
  eigenvectors (baselines.whitened_pca_encoder).

The number of kept features may differ between seeds of one data set (a
pixel of `digits` that is constant on one training split and not on
another): every seed's rows are padded with zero columns to the largest
count D, which the encoders never see (their weights there get no
gradient). Those columns are zeroed before scoring and the estimates are
padded with an inert identity block, so every metric equals its value on
the seed's own features.

Known limitation: with K = 2 (breast_cancer) the embedding has k = 1
dimension, and a cosine loss (infonce, ntxent, simsiam) then sees only the
sign of each embedding, so its gradient is zero up to float32 rounding
(about 3e-7, against about 2 at k = 2, measured on breast_cancer). Adam
rescales that rounding noise into full-size steps, so those rows measure
where the noise took the encoder, not what the loss learns.

Shapes: `n` training rows, `m` held-out rows, `d` kept features of one
split, `D` the largest d over a data set's seeds, `K` classes, `k`
embedding dimension (K - 1 by default), `P` grid points.
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn import datasets
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import train_test_split

from ssl_gmm import (
  baselines,
  checks,
  metrics,
  mixture,
  programs,
  subspace,
  synthetic,
  validation,
)
from ssl_gmm import train as training

LOADERS = {
  "digits": datasets.load_digits,
  "wine": datasets.load_wine,
  "breast_cancer": datasets.load_breast_cancer,
}
BASELINES = ("lda", "pca", "whitened_pca")
METHODS = ("infonce", "infonce_mlp", "ntxent", "simsiam", *BASELINES)


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
  """A labelled data set shipped with scikit-learn.

  Args:
    name: one of LOADERS.

  Returns:
    x: [N, features] float64 rows; y: [N] labels as the data set gives them.

  Raises:
    ValueError: for an unknown name.
  """
  if name not in LOADERS:
    raise ValueError(
      f"dataset={name!r} is invalid: expected one of {tuple(LOADERS)}."
    )
  x, y = LOADERS[name](return_X_y=True)
  return np.asarray(x, np.float64), np.asarray(y)


class Split(NamedTuple):
  """One stratified train/test split, standardised on its training rows.

  Attributes:
    x_train: [n, d] float32 standardised training rows.
    y_train: [n] int32 labels in 0..K-1.
    x_test: [m, d] float32 held-out rows, scaled with the training moments.
    y_test: [m] int32 labels.
    features: [d] indices of the kept columns of the raw data.
    mean: [d] float64 training means of the kept columns.
    scale: [d] float64 training standard deviations of the kept columns.
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  features: np.ndarray
  mean: np.ndarray
  scale: np.ndarray


def prepare(
  x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float
) -> Split:
  """Splits, drops constant features and standardises, all on training rows.

  Args:
    x: [N, features] raw rows.
    y: [N] labels, any K distinct values.
    seed: random_state of the stratified split.
    test_fraction: share of the rows held out, in (0, 1).

  Returns:
    The split, labels remapped to 0..K-1 in sorted order of the raw labels.
  """
  _, labels = np.unique(y, return_inverse=True)
  x_train, x_test, y_train, y_test = train_test_split(
    x, labels, test_size=test_fraction, stratify=labels, random_state=seed
  )
  features = np.flatnonzero(np.ptp(x_train, axis=0) > 0)
  x_train, x_test = x_train[:, features], x_test[:, features]
  mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
  return Split(
    x_train=((x_train - mean) / scale).astype(np.float32),
    y_train=y_train.astype(np.int32),
    x_test=((x_test - mean) / scale).astype(np.float32),
    y_test=y_test.astype(np.int32),
    features=features,
    mean=mean,
    scale=scale,
  )


class Estimates(NamedTuple):
  """The shared-covariance mixture LDA fits to a training split (float64).

  Attributes:
    means: [K, d] class means.
    cov: [d, d] within-class covariance Sigma, Ledoit-Wolf shrunk per class
      and weighted by the priors.
    weights: [K] class priors (training proportions).
    between: [d, d] between-class scatter S_B of the means and priors.
  """

  means: np.ndarray
  cov: np.ndarray
  weights: np.ndarray
  between: np.ndarray


def estimates(x_train: np.ndarray, y_train: np.ndarray) -> Estimates:
  """Sigma, S_B, class means and priors of a training split.

  Args:
    x_train: [n, d] training rows.
    y_train: [n] labels in 0..K-1.

  Returns:
    scikit-learn's shrunk LDA moments (`covariance_`, `means_`, `priors_`)
    and the S_B of the means and priors, all float64.

  References:
    Ledoit & Wolf, "A well-conditioned estimator for large-dimensional
    covariance matrices", 2004 (the shrinkage scikit-learn applies).
  """
  lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto")
  lda.fit(np.asarray(x_train, np.float64), y_train)
  means = np.asarray(lda.means_, np.float64)
  weights = np.asarray(lda.priors_, np.float64)
  with jax.enable_x64(True):
    between = np.asarray(subspace.between_scatter(means, weights))
  return Estimates(
    means, np.asarray(lda.covariance_, np.float64), weights, between
  )


def reference(est: Estimates) -> tuple[np.ndarray, np.ndarray]:
  """The estimated Fisher subspace, in float64.

  Returns:
    basis: [d, K - 1] top generalised eigenvectors of (S_B, Sigma).
    eigenvalues: [K - 1] their Fisher criteria.
  """
  with jax.enable_x64(True):
    basis, eigenvalues = subspace.fisher_subspace(
      est.means, est.cov, est.weights
    )
    return np.asarray(basis), np.asarray(eigenvalues)


class PairSource(NamedTuple):
  """A training split laid out for drawing pairs, rows grouped by class.

  Class c holds rows start[c] to start[c] + count[c] - 1, so a row of the
  same class or of another one is one integer draw, with no padded table.

  Attributes:
    x: [n, D] float32 training rows, sorted by class (stable).
    labels: [n] int32 class of every row.
    start: [K] int32 first row of every class.
    count: [K] int32 rows of every class.
  """

  x: jax.Array
  labels: jax.Array
  start: jax.Array
  count: jax.Array


def pair_source(
  x_train: np.ndarray,
  y_train: np.ndarray,
  num_classes: int,
  dim: int | None = None,
) -> PairSource:
  """Sorts [n, d] rows by their [n] labels, zero-padded to `dim` columns."""
  order = np.argsort(y_train, kind="stable")
  x = np.asarray(x_train, np.float32)[order]
  x = np.pad(x, ((0, 0), (0, (dim or x.shape[1]) - x.shape[1])))
  labels = np.asarray(y_train, np.int32)[order]
  count = np.bincount(labels, minlength=num_classes).astype(np.int32)
  start = (np.cumsum(count) - count).astype(np.int32)
  return PairSource(*(jnp.asarray(a) for a in (x, labels, start, count)))


def draw_rows(
  key: jax.Array, source: PairSource, batch: int, p_same
) -> tuple[jax.Array, jax.Array]:
  """Rows of anchors and their positives in `source.x`.

  Every draw has an explicit dtype, so that the same key gives the same rows
  with or without 64-bit mode (the baselines replay the training stream).

  Args:
    key: PRNG key of this batch.
    source: one training split (not stacked).
    batch: number of pairs.
    p_same: probability that the positive is of the anchor's class (traced).

  Returns:
    anchor: [batch] int32 uniformly random rows; positive: [batch] int32
    rows of the anchor's class other than the anchor (the anchor when it is
    alone in its class) with probability p_same, else uniformly random rows
    of the other classes.
  """
  key_anchor, key_same, key_in, key_out = jax.random.split(key, 4)
  n = source.x.shape[0]
  i32 = jnp.int32
  anchor = jax.random.randint(key_anchor, (batch,), 0, n, dtype=i32)
  label = source.labels[anchor]
  start, count = source.start[label], source.count[label]
  # Same class: one of the class's other count - 1 rows, skipping the anchor.
  r = jax.random.randint(key_in, (batch,), 0, jnp.maximum(count - 1, 1), i32)
  same = start + r + ((r >= anchor - start) & (count > 1))
  # Another class: one of the n - count rows outside the anchor's block.
  u = jax.random.randint(key_out, (batch,), 0, n - count, i32)
  other = u + count * (u >= start)
  keep = jax.random.uniform(key_same, (batch,), jnp.float32) < p_same
  return anchor, jnp.where(keep, same, other)


def draw(
  key: jax.Array, source: PairSource, batch: int, p_same
) -> tuple[jax.Array, jax.Array]:
  """The `draw` of train.train: [batch, D] anchors and positives."""
  anchor, positive = draw_rows(key, source, batch, p_same)
  return source.x[anchor], source.x[positive]


@functools.partial(jax.jit, static_argnames=("steps", "batch"))
def pair_moments_grid(
  data_keys: jax.Array,
  sources: PairSource,
  p_same: jax.Array,
  *,
  steps: int,
  batch: int,
) -> baselines.Moments:
  """[P] float64 moments of the pairs every point trained on, replayed."""

  def one(data_key, source, p):
    def batch_moments(t):
      x, x_pos = draw(jax.random.fold_in(data_key, t), source, batch, p)
      unlabelled = jnp.zeros(batch, jnp.int32)
      return baselines.moments_from_samples(x, unlabelled, 1, x_pos)

    def step(total, t):
      return jax.tree.map(jnp.add, total, batch_moments(t)), None

    shapes = jax.eval_shape(batch_moments, 0)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return jax.lax.scan(step, zeros, jnp.arange(steps))[0]

  return jax.vmap(one)(data_keys, sources, p_same)


def baseline_encoders(
  split: Split, est: Estimates, pairs: baselines.Moments, k: int
) -> dict[str, np.ndarray]:
  """[k, d] encoders of `lda`, `pca` and `whitened_pca` on one split.

  Args:
    split: the split.
    est: its estimates (the reference of `lda`).
    pairs: moments of its replayed pairs, over D >= d padded columns.
    k: embedding dimension; `lda` rows past K - 1 are zero.

  Returns:
    method -> [k, d] float64 encoder over the split's own features.
  """
  num_classes, dim = est.means.shape
  basis, _ = reference(est)
  basis = np.pad(basis, ((0, 0), (0, max(0, k - basis.shape[1]))))
  with jax.enable_x64(True):
    labelled = baselines.moments_from_samples(
      split.x_train, split.y_train, num_classes
    )
    encoders = {
      "lda": subspace.top_rows(jnp.asarray(basis), k, num_classes - 1),
      "pca": baselines.pca_encoder(labelled, k),
      "whitened_pca": baselines.whitened_pca_encoder(_crop(pairs, dim), k),
    }
    return {name: np.asarray(a, np.float64) for name, a in encoders.items()}


def _crop(m: baselines.Moments, dim: int) -> baselines.Moments:
  """The moments of the first `dim` columns (drops the zero padding)."""
  return m._replace(
    sum_xx=m.sum_xx[:dim, :dim],
    class_sum=m.class_sum[:, :dim],
    sum_diff=m.sum_diff[:dim],
    sum_diff2=m.sum_diff2[:dim, :dim],
  )


def _pad_encoder(encoder: np.ndarray, dim: int) -> np.ndarray:
  return np.pad(encoder, ((0, 0), (0, dim - encoder.shape[1])))


def padded_mixture(est: Estimates, dim: int) -> mixture.Mixture:
  """The estimates as a float64 Mixture over `dim` >= d coordinates.

  The padded coordinates have zero means and an identity covariance block,
  so they carry no class information and leave F and J* unchanged.
  """
  num_classes, d = est.means.shape
  cov = np.eye(dim)
  cov[:d, :d] = est.cov
  means = np.pad(est.means, ((0, 0), (0, dim - d)))
  with jax.enable_x64(True):
    return mixture.mixture_from_params(means, cov, est.weights)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One data set's grid: a split per seed, stacked for the programs.

  Attributes:
    name: the data set.
    grid: its points (seeds x swept traced settings), global indices.
    keys: [P] keys of every point.
    splits: one split per replicate seed.
    estimates: one Estimates per replicate seed.
    sources: [P] stacked PairSource, padded to D columns.
    mixtures: [P] stacked float64 padded estimates (for the metrics).
    k: embedding dimension.
  """

  name: str
  grid: synthetic.Grid
  keys: synthetic.Keys
  splits: list[Split]
  estimates: list[Estimates]
  sources: PairSource
  mixtures: mixture.Mixture
  k: int

  @property
  def num_classes(self) -> int:
    return self.estimates[0].means.shape[0]

  @property
  def dim(self) -> int:
    return self.sources.x.shape[-1]


def build_dataset(
  config: ml_collections.ConfigDict, index: int, base: synthetic.Grid
) -> Dataset:
  """Splits, estimates and stacks data set `config.datasets[index]`.

  Replicate s splits with a random_state drawn from the key its mixture
  would have in the synthetic pipeline (fold_in of the root seed by s), so
  every data set of one replicate uses the same split seed. Points are
  numbered after the previous data sets', so no two share a data key.
  """
  name = config.datasets[index]
  grid = dataclasses.replace(base, point=base.point + index * base.size)
  keys = synthetic.make_keys(config.seed, grid)
  x, y = load(name)
  splits, ests = [], []
  for s in range(config.seeds):
    key = keys.mixture[int(np.flatnonzero(grid.seed == s)[0])]
    seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
    splits.append(prepare(x, y, seed, config.test_fraction))
    ests.append(estimates(splits[-1].x_train, splits[-1].y_train))
  num_classes = ests[0].means.shape[0]
  k = num_classes - 1 if config.k is None else config.k
  dim = max(split.x_train.shape[1] for split in splits)
  if k > dim:
    raise ValueError(f"k={k} is invalid: {name} keeps {dim} features.")
  stack = lambda items: jax.tree.map(  # noqa: E731
    lambda *a: np.stack(a)[grid.seed], *items
  )
  sources = stack(
    [pair_source(s.x_train, s.y_train, num_classes, dim) for s in splits]
  )
  mixtures = stack([padded_mixture(e, dim) for e in ests])
  return Dataset(name, grid, keys, splits, ests, sources, mixtures, k)


def _hyper(grid: synthetic.Grid) -> training.Hyper:
  return training.Hyper(
    *(jnp.asarray(grid.settings[n]) for n in training.Hyper._fields)
  )


def train_methods(
  config: ml_collections.ConfigDict, data: Dataset
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict]]:
  """Trains and fits every method of the config on one data set.

  Returns:
    outputs: method -> {"encoder": [P, k, D] (zero on padded columns),
      "diverged": [P], "final_loss": [P] (trained methods only), "network":
      an MLP's stacked parameters (`_mlp` methods only)}.
    timings: program label -> {"compile_s", "run_s", "steps_per_s"}.
  """
  t = config.train
  static = dict(k=data.k, steps=t.steps, batch=t.batch)
  hyper = _hyper(data.grid)
  widths = np.array([len(s.features) for s in data.splits])[data.grid.seed]
  mask = np.arange(data.dim) < widths[:, None, None]  # [P, 1, D]
  outputs, timings = {}, {}
  mlp = synthetic.mlp_shape(config)
  for method in [m for m in config.methods if m in training.TRAINED_METHODS]:
    name = f"{method} ({data.name})"
    args = (data.keys.init, data.keys.data, data.sources, hyper)
    if training.is_mlp(method):
      # The MLP sees a data set's padded columns masked out; a linear
      # encoder's are zeroed below (its initial scale stays 1 / D).
      masks = np.broadcast_to(mask, (len(mask), data.k, data.dim))
      args += (jnp.asarray(masks, jnp.float32),)
    trained, timings[name] = programs.compile_and_run(
      training.train_grid,
      args,
      dict(static, method=method, draw=draw, mlp=mlp),
      name,
      t.steps,
    )
    outputs[method] = {
      "encoder": np.asarray(trained.encoder, np.float64) * mask,
      "diverged": np.asarray(trained.diverged),
      "final_loss": np.asarray(trained.final_loss, np.float64),
    }
    if training.is_mlp(method):
      outputs[method]["network"] = jax.tree.map(np.asarray, trained.network)
  wanted = [m for m in config.methods if m in BASELINES]
  if wanted:
    outputs.update(_fit_baselines(data, hyper, static, wanted, timings))
  return outputs, timings


def _fit_baselines(data, hyper, static, wanted, timings) -> dict:
  """The baselines' [P, k, D] encoders; `timings` gains the pairs' replay."""
  name = f"pairs ({data.name})"
  with jax.enable_x64(True):
    pairs, timings[name] = programs.compile_and_run(
      pair_moments_grid,
      (data.keys.data, data.sources, hyper.p_same),
      dict(steps=static["steps"], batch=static["batch"]),
      name,
      static["steps"],
    )
  fitted = []
  for p, s in enumerate(data.grid.seed):
    one = jax.tree.map(lambda a, p=p: a[p], pairs)
    found = baseline_encoders(
      data.splits[s], data.estimates[s], one, static["k"]
    )
    fitted.append({m: _pad_encoder(found[m], data.dim) for m in wanted})
  outputs = {}
  for method in wanted:
    encoder = np.stack([f[method] for f in fitted])
    diverged = ~np.all(np.isfinite(encoder), axis=(1, 2))
    outputs[method] = {"encoder": encoder, "diverged": diverged}
  return outputs


def evaluate(
  config: ml_collections.ConfigDict,
  data: Dataset,
  outputs: dict[str, dict[str, np.ndarray]],
) -> list[dict]:
  """One row per method and point of one data set with every metric."""
  with jax.enable_x64(True):
    angles = np.asarray(synthetic.means_fisher_angles(data.mixtures))
    measured = {
      method: jax.tree.map(
        np.asarray,
        synthetic.subspace_metrics(jnp.asarray(out["encoder"]), data.mixtures),
      )
      for method, out in outputs.items()
    }
  rows = []
  for method in config.methods:
    out, found = outputs[method], measured[method]
    for p, s in enumerate(data.grid.seed):
      row = {"method": method, "seed": int(s), "dataset": data.name}
      row.update({n: float(v[p]) for n, v in data.grid.swept.items()})
      if out["diverged"][p]:
        scores = metrics.chance_downstream(data.estimates[s].weights)
        row.update(metrics.DIVERGED, **scores._asdict())
      else:
        row.update({n: float(v[p]) for n, v in found.items() if n != "rank"})
        row["rank"] = int(found["rank"][p])
        network = None
        if "network" in out:
          network = jax.tree.map(lambda a, p=p: a[p], out["network"])
        scores = _downstream(
          method, out["encoder"][p], data, s, network, config
        )
        row.update(scores._asdict())
      row["diverged"] = bool(out["diverged"][p])
      if "final_loss" in out:
        row["final_loss"] = float(out["final_loss"][p])
      rows.append(dict(row, means_fisher_angle=float(angles[p])))
  return rows


def _downstream(
  method: str,
  encoder: np.ndarray,
  data: Dataset,
  seed: int,
  network=None,
  config: ml_collections.ConfigDict | None = None,
) -> metrics.Downstream:
  """Held-out scores of a [k, D] encoder, class means from training rows.

  An MLP (`network`, its parameters) is scored on its own embedding.
  """
  split = data.splits[seed]
  cosine = synthetic.is_cosine(method)
  if network is None:
    encoder = encoder[:, : split.x_train.shape[1]]
    fit = metrics.embed(encoder, split.x_train, cosine)
    test = metrics.embed(encoder, split.x_test, cosine)
  else:
    mlp = synthetic.mlp_shape(config)
    fit, test = (
      metrics.as_loss_sees(
        np.asarray(
          training.embed_networks(
            jax.tree.map(lambda a: a[None], network),
            jnp.asarray(x[None], jnp.float32),
            mlp=mlp,
          )[0],
          np.float64,
        ),
        cosine,
      )
      for x in (split.x_train, split.x_test)
    )
  return metrics.downstream(
    embed_fit=fit,
    labels_fit=split.y_train,
    embed_test=test,
    labels_test=split.y_test,
    num_components=data.num_classes,
    seed=int(seed),
  )


def run_grid(config: ml_collections.ConfigDict) -> synthetic.Outcome:
  """Trains and scores every method on every data set of the config.

  Each data set is one shape group: every trained method compiles one
  program for it, and so does the replay of its pairs for `whitened_pca`.
  Rows are ordered by method, then data set, then point (seed outermost).
  """
  base = synthetic.build_grid(config)
  rows, timings = [], {}
  # Every data set is built, and its k checked, before any of them trains.
  built = [build_dataset(config, i, base) for i in range(len(config.datasets))]
  for data in built:
    outputs, spent = train_methods(config, data)
    timings.update(spent)
    rows += evaluate(config, data, outputs)
  # Stable: each data set's rows are already by method, then point.
  rows.sort(key=lambda r: config.methods.index(r["method"]))
  return synthetic.Outcome(
    rows=rows, swept=["dataset", *base.swept], timings=timings
  )


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the settings only this pipeline has.

  Raises:
    ValueError: naming the first invalid setting and its value.
  """
  require = checks.require
  datasets = tuple(config.datasets)
  require(len(datasets) >= 1, "datasets", datasets, "need one")
  repeated = sorted({name for name in datasets if datasets.count(name) > 1})
  require(not repeated, "datasets", datasets, f"{repeated} named twice")
  for name in datasets:
    require(
      name in LOADERS, "dataset", name, f"expected one of {tuple(LOADERS)}"
    )
  if "C6" in config.claims:
    target = config.claim_dataset
    rule = f"claim C6 reads {datasets}: one of them"
    require(target in datasets, "claim_dataset", target, rule)
  fraction = config.test_fraction
  require(
    checks.is_finite(fraction) and 0 < fraction < 1,
    "test_fraction",
    fraction,
    "must lie in (0, 1)",
  )
  for method in config.methods:
    require(method in METHODS, "method", method, f"expected one of {METHODS}")
  k = config.k
  require(k is None or (checks.is_int(k) and k >= 1), "k", k, "None or >= 1")
  for name in datasets:
    x, y = load(name)
    # Either side of the stratified split needs two rows of every class
    # (sklearn refuses fewer than one; the class covariances need two).
    num_classes = len(np.unique(y))
    held = math.ceil(fraction * len(y))
    sides = min(held, len(y) - held)
    rule = (
      f"it leaves {held} of {name}'s {len(y)} rows for testing and "
      f"{len(y) - held} for training; each needs 2 K = {2 * num_classes}"
    )
    require(sides >= 2 * num_classes, "test_fraction", fraction, rule)
    # An upper bound on the features a split keeps (those not constant on
    # its training rows); build_dataset checks the exact number.
    width = int(np.sum(np.ptp(x, axis=0) > 0))
    if k is not None:
      rule = f"{name} has {width} non-constant features"
      require(k <= width, "k", k, rule)
  for name, values in config.sweep.items():
    # Its data have no anisotropy to vary.
    known = tuple(n for n in validation.TRACED_SETTINGS if n != "anisotropy")
    require(name in known, "sweep", name, f"real_data sweeps only {known}")
    for value in values:
      checks.check_traced(name, value)
