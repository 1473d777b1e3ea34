"""The Gaussian-mixture pipeline: every method over a grid of mixtures.

A grid is the product of the replicate seeds and the values of every swept
setting. Keys come from the config's root seed, split by purpose: the
mixture of replicate s uses fold_in(mixture_root, s), so within one seed and
one shape every value of the other swept settings, and every method, sees
the same mixture; grid point p draws its data with fold_in(data_root, p),
and every method, trained or baseline, sees the same pairs at each step.

Traced settings (anisotropy, p_same, temperature, learning_rate) vary inside
one compiled program per method. Shape settings (dim, num_components, k)
are padded to the grid's largest shape by the sweep engine, so a grid of
any shapes is still one training program per method and one for the
baselines; each point is then scored at its own shape. Metrics against the
analytic Fisher subspace are computed in float64.
"""

import dataclasses
import functools
import itertools
import json
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_gmm import baselines, metrics, programs, subspace, sweep
from ssl_gmm import train as training
from ssl_gmm.mixture import Mixture, make_mixture, sample

# Settings that change array shapes; a sweep over them loops over shapes.
SHAPE_SETTINGS = ("dim", "num_components", "k")
# Settings that vary as traced arrays inside one compiled program.
TRACED_SETTINGS = ("anisotropy", "p_same", "temperature", "learning_rate")


class Outcome(NamedTuple):
  """What a pipeline returns to the runner.

  Attributes:
    rows: one dict per method x grid point, the columns of results.csv.
    swept: names of the swept columns, in order, after `seed`.
    timings: program name -> {"compile_s", "run_s", "steps_per_s"}.
  """

  rows: list[dict]
  swept: list[str]
  timings: dict[str, dict]


@dataclasses.dataclass(frozen=True)
class Grid:
  """Stacked grid points.

  Attributes:
    seed: [P] replicate index of every point.
    point: [P] global index of every point (its data key's fold_in).
    swept: setting name -> [P] its value at every point.
    settings: every traced setting (swept or fixed) -> [P] float32 values.
    shapes: [P] (dim, num_components, k) of every point.
  """

  seed: np.ndarray
  point: np.ndarray
  swept: dict[str, np.ndarray]
  settings: dict[str, np.ndarray]
  shapes: list[tuple[int, int, int]]

  @property
  def size(self) -> int:
    return len(self.seed)

  def take(self, index: np.ndarray) -> "Grid":
    """The points at `index`, keeping their global indices."""
    return Grid(
      seed=self.seed[index],
      point=self.point[index],
      swept={n: v[index] for n, v in self.swept.items()},
      settings={n: v[index] for n, v in self.settings.items()},
      shapes=[self.shapes[i] for i in index],
    )


def build_grid(config: ml_collections.ConfigDict) -> Grid:
  """The product of seeds and swept values, seeds outermost."""
  names = list(config.sweep.keys())
  axes = [range(config.seeds)] + [list(config.sweep[n]) for n in names]
  points = list(itertools.product(*axes))
  seed = np.array([p[0] for p in points], np.int32)
  swept = {n: np.array([p[i + 1] for p in points]) for i, n in enumerate(names)}
  fixed = {
    "anisotropy": config.mixture.anisotropy,
    "p_same": config.p_same,
    "temperature": config.train.temperature,
    "learning_rate": config.train.learning_rate,
  }
  settings = {
    n: np.asarray(swept.get(n, np.full(len(points), v)), np.float32)
    for n, v in fixed.items()
  }
  return Grid(
    seed=seed,
    point=np.arange(len(points)),
    swept=swept,
    settings=settings,
    shapes=[point_shape(config, swept, p) for p in range(len(points))],
  )


def point_shape(
  config: ml_collections.ConfigDict, swept: dict, p: int
) -> tuple[int, int, int]:
  """(dim, num_components, k) of point p; a config k of None means K - 1."""
  shape = {
    "dim": config.mixture.dim,
    "num_components": config.mixture.num_components,
    "k": config.k,
  }
  shape.update({n: int(swept[n][p]) for n in shape if n in swept})
  if shape["k"] is None:
    shape["k"] = shape["num_components"] - 1
  return shape["dim"], shape["num_components"], shape["k"]


class Keys(NamedTuple):
  """[P] keys of every grid point, one set per purpose."""

  mixture: jax.Array
  init: jax.Array
  data: jax.Array
  eval: jax.Array


def make_keys(root_seed: int, grid: Grid) -> Keys:
  roots = jax.random.split(jax.random.PRNGKey(root_seed), 4)
  fold = jax.vmap(jax.random.fold_in, in_axes=(None, 0))
  points = jnp.asarray(grid.point)
  return Keys(
    mixture=fold(roots[0], jnp.asarray(grid.seed)),
    init=fold(roots[1], points),
    data=fold(roots[2], points),
    eval=fold(roots[3], points),
  )


def make_mixtures(
  config: ml_collections.ConfigDict, keys: Keys, grid: Grid
) -> Mixture:
  """The stacked mixture of every point of a one-shape grid (float32)."""
  m = config.mixture
  dim, num_components, _ = grid.shapes[0]

  def one(key, anisotropy):
    return make_mixture(
      key,
      dim,
      num_components,
      anisotropy,
      separation=m.separation,
      n_nuisance=m.n_nuisance,
    )

  return jax.jit(functools.partial(programs.map_points, one))(
    keys.mixture, jnp.asarray(grid.settings["anisotropy"])
  )


def make_programs(
  config: ml_collections.ConfigDict,
  padding: sweep.Padding,
  grid_mesh: jax.sharding.Mesh,
) -> dict[str, sweep.Program]:
  """One program per trained method, and one for the baselines if any.

  Each program takes a chunk of the padded grid, sharded over `grid_mesh`:
  (init keys, data keys, mixtures, Hyper, masks) for a trained method,
  (data keys, mixtures, p_same, coords, rows) for the baselines.
  """
  t = config.train
  mlp = mlp_shape(config)
  devices = tuple(d.id for d in grid_mesh.devices.flat)
  made = {}
  for method in config.methods:
    if method not in training.TRAINED_METHODS:
      continue
    one = functools.partial(
      training.train,
      method=method,
      k=padding.k,
      steps=t.steps,
      batch=t.batch,
      sampler=t.sampler,
      mlp=mlp,
    )

    def train_grid(init_keys, data_keys, mixtures, hyper, masks, one=one):
      return jax.vmap(one)(init_keys, data_keys, mixtures, hyper, masks)

    made[method] = sweep.Program(
      method,
      jax.jit(sweep.sharded(train_grid, grid_mesh)),
      t.steps,
      key=("train", method, padding.k, t.steps, t.batch, t.sampler, mlp)
      + devices,
    )
  if any(m in baselines.BASELINE_METHODS for m in config.methods):
    fit = functools.partial(
      baselines.baseline_points, k=padding.k, steps=t.steps, batch=t.batch
    )

    def baseline_grid(data_keys, mixtures, p_same, coords, rows):
      return fit(data_keys, mixtures, p_same, coords, rows)

    made["baselines"] = sweep.Program(
      "baselines",
      jax.jit(sweep.sharded(baseline_grid, grid_mesh)),
      t.steps,
      key=("baselines", padding.k, t.steps, t.batch, devices),
    )
  return made


def mlp_shape(config: ml_collections.ConfigDict) -> training.MLPShape:
  return training.MLPShape(config.mlp.width, config.mlp.depth)


def train_chunk(
  config: ml_collections.ConfigDict,
  grid_programs: dict[str, sweep.Program],
  grid_mesh: jax.sharding.Mesh,
  keys: Keys,
  mixtures: Mixture,
  settings: dict[str, np.ndarray],
  masks: np.ndarray,
) -> dict[str, dict[str, np.ndarray]]:
  """Trains and fits every method on one chunk of the padded grid.

  Returns:
    method -> {"encoder": [W, k, d] float64 (padded), "diverged": [W],
      "final_loss": [W] (trained methods only), "network": the stacked
      parameters of an MLP (`_mlp` methods only)}.
  """
  hyper = training.Hyper(
    learning_rate=settings["learning_rate"],
    temperature=settings["temperature"],
    p_same=settings["p_same"],
  )
  place = functools.partial(sweep.shard, grid_mesh=grid_mesh)
  outputs = {}
  for method in config.methods:
    if method not in training.TRAINED_METHODS:
      continue
    args = place((keys.init, keys.data, mixtures, hyper, masks))
    trained = sweep.gather(grid_programs[method](*args))
    outputs[method] = {
      "encoder": np.asarray(trained.encoder, np.float64),
      "diverged": np.asarray(trained.diverged),
      "final_loss": np.asarray(trained.final_loss, np.float64),
    }
    if training.is_mlp(method):
      outputs[method]["network"] = jax.tree.map(np.asarray, trained.network)
  wanted = [m for m in config.methods if m in baselines.BASELINE_METHODS]
  if wanted:
    coords, rows = masks.max(axis=1), masks.max(axis=2)
    with jax.enable_x64(True):
      args = place((keys.data, mixtures, hyper.p_same, coords, rows))
      fitted = sweep.gather(grid_programs["baselines"](*args))
    for method in wanted:
      encoder = np.asarray(fitted[method], np.float64)
      diverged = ~np.all(np.isfinite(encoder), axis=(1, 2))
      outputs[method] = {"encoder": encoder, "diverged": diverged}
  return outputs


@jax.jit
def subspace_metrics(encoders: jax.Array, mixtures: Mixture) -> dict:
  """distance, fisher_ratio, nuisance_share, rank of [P, k, d] encoders."""

  def one(encoder, mixture):
    basis, _ = subspace.fisher_subspace(
      mixture.means, mixture.cov, mixture.weights
    )
    return {
      "distance": metrics.distance(encoder, basis),
      "fisher_ratio": metrics.fisher_ratio(
        encoder, mixture.means, mixture.cov, mixture.weights
      ),
      "nuisance_share": metrics.nuisance_share(encoder, basis, mixture.cov),
      "rank": metrics.rank(encoder),
    }

  return programs.map_points(one, encoders, mixtures)


@jax.jit
def means_fisher_angles(mixtures: Mixture) -> jax.Array:
  """[P] angle in degrees between span{centred means} and F."""

  def one(mixture):
    basis, _ = subspace.fisher_subspace(
      mixture.means, mixture.cov, mixture.weights
    )
    centred = subspace.centred_means(mixture.means, mixture.weights)
    rank = mixture.means.shape[0] - 1
    means_basis = jnp.linalg.svd(centred, full_matrices=False)[2][:rank].T
    return metrics.subspace_angle(means_basis, basis)

  return programs.map_points(one, mixtures)


def evaluate(
  config: ml_collections.ConfigDict,
  grid: Grid,
  keys: Keys,
  mixtures: Mixture,
  outputs: dict[str, dict[str, np.ndarray]],
) -> list[dict]:
  """One row per method and grid point with every metric.

  Accuracy, NMI and ARI only when the config's `downstream` is on.
  """
  if config.downstream:
    x, labels = _eval_samples(keys.eval, mixtures, config.n_eval)
    held_out = np.asarray(x, np.float64), np.asarray(labels)
  with jax.enable_x64(True):
    mixtures64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), mixtures)
    angles = np.asarray(means_fisher_angles(mixtures64))
    measured = {
      method: jax.tree.map(
        np.asarray, subspace_metrics(jnp.asarray(out["encoder"]), mixtures64)
      )
      for method, out in outputs.items()
    }
  embedded = {}
  if config.downstream:
    for method, out in outputs.items():
      if "network" in out:
        k = out["encoder"].shape[1]
        z = training.embed_networks(
          out["network"], held_out[0], mlp=mlp_shape(config)
        )
        embedded[method] = np.asarray(z, np.float64)[..., :k]
  rows = []
  for method in config.methods:
    out, found = outputs[method], measured[method]
    for p in range(grid.size):
      row = {"method": method, "seed": int(grid.seed[p])}
      row["_point"] = int(grid.point[p])
      row.update({n: float(v[p]) for n, v in grid.swept.items()})
      diverged = bool(out["diverged"][p])
      if diverged:
        row.update(metrics.DIVERGED)
      else:
        row.update({name: float(v[p]) for name, v in found.items()})
        row["rank"] = int(found["rank"][p])
      if config.downstream:
        scores = downstream(
          out["encoder"][p] if not diverged else None,
          is_cosine(method),
          *(a[p] for a in held_out),
          np.asarray(mixtures.weights[p]),
          seed=int(grid.seed[p]),
          embedded=embedded[method][p] if method in embedded else None,
        )
        row.update(scores._asdict())
      row["diverged"] = diverged
      if "final_loss" in out:
        row["final_loss"] = float(out["final_loss"][p])
      row["means_fisher_angle"] = float(angles[p])
      rows.append(row)
  return rows


def downstream(
  encoder: np.ndarray | None,
  cosine: bool,
  x: np.ndarray,
  labels: np.ndarray,
  weights: np.ndarray,
  seed: int,
  embedded: np.ndarray | None = None,
) -> metrics.Downstream:
  """Scores of an encoder (None: diverged, chance) on held-out samples.

  The first half of x fits the nearest-mean classifier's class means; the
  second half is classified and clustered. `embedded`, when given, is the
  encoder's own (nonlinear) embedding of x, used instead of x A^T.
  """
  if encoder is None:
    return metrics.chance_downstream(weights)
  n_fit = x.shape[0] // 2
  if embedded is None:
    z = metrics.embed(encoder, x, cosine)
  else:
    z = metrics.as_loss_sees(embedded, cosine)
  return metrics.downstream(
    z[:n_fit],
    labels[:n_fit],
    z[n_fit:],
    labels[n_fit:],
    weights.shape[0],
    seed=seed,
  )


@functools.partial(jax.jit, static_argnums=2)
def _eval_samples(keys: jax.Array, mixtures: Mixture, n: int):
  return jax.vmap(sample, in_axes=(0, 0, None))(keys, mixtures, n)


def is_cosine(method: str) -> bool:
  """Whether the method's loss compares embeddings by cosine."""
  return training.TRAINED_METHODS.get(method, (None, "dot"))[1] == "cosine"


class Padded(NamedTuple):
  """A grid with every point's mixture at its own shape and padded.

  Attributes:
    grid: the grid.
    keys: its keys, as NumPy arrays.
    padding: the grid's largest shape.
    mixtures: [P, ...] padded mixtures (NumPy, float32).
    masks: [P, k, d] encoder masks (`sweep.encoder_masks`).
    own: shape -> stacked mixtures of that shape's points, in grid order.
    position: [P] each point's index within its shape's stack.
  """

  grid: Grid
  keys: Keys
  padding: sweep.Padding
  mixtures: Mixture
  masks: np.ndarray
  own: dict
  position: np.ndarray


def pad_grid(config: ml_collections.ConfigDict) -> Padded:
  """The config's grid, its mixtures built shape by shape, then padded."""
  grid = build_grid(config)
  keys = make_keys(config.seed, grid)
  shapes = list(dict.fromkeys(grid.shapes))
  groups = {s: np.flatnonzero([g == s for g in grid.shapes]) for s in shapes}
  own, position = {}, np.zeros(grid.size, int)
  for shape, index in groups.items():
    group_keys = Keys(*(k[index] for k in keys))
    mixtures = make_mixtures(config, group_keys, grid.take(index))
    own[shape] = jax.tree.map(np.asarray, mixtures)
    position[index] = np.arange(len(index))
  ranks = [own[s].sqrt_left.shape[-1] for s in shapes]
  padding = sweep.padding_of(shapes, ranks)
  padded = [sweep.pad_mixtures(own[s], padding) for s in shapes]
  order = np.argsort(np.concatenate(list(groups.values())), kind="stable")
  padded = jax.tree.map(lambda *a: np.concatenate(a)[order], *padded)
  return Padded(
    grid=grid,
    keys=Keys(*(np.asarray(k) for k in keys)),
    padding=padding,
    mixtures=padded,
    masks=sweep.encoder_masks(grid.shapes, padding),
    own=own,
    position=position,
  )


def chunk_width(
  config: ml_collections.ConfigDict, padding: sweep.Padding, points: int
) -> int:
  """Points per device in a chunk: the config's, or what fits its budget.

  Args:
    config: the experiment's config (`engine.chunk_width`, or None for
      `engine.memory_budget_mib`).
    padding: the grid's padded shape, at which every point trains.
    points: the grid points each device has to run.
  """
  if config.engine.chunk_width is not None:
    return config.engine.chunk_width
  t = config.train
  trained = [m for m in config.methods if m in training.TRAINED_METHODS]
  mlp = tuple(mlp_shape(config))
  per_point = max(
    sweep.point_bytes(
      m,
      t.batch,
      padding.dim,
      padding.k,
      t.steps,
      t.sampler,
      mlp if training.is_mlp(m) else None,
    )
    for m in trained or ["infonce"]
  )
  budget = int(config.engine.memory_budget_mib * 2**20)
  return sweep.chunk_width(budget, per_point, points)


def _take(index: np.ndarray, a: np.ndarray) -> np.ndarray:
  return a[index]


def run_grid(
  config: ml_collections.ConfigDict, chunks: pathlib.Path | None = None
) -> Outcome:
  """Trains and scores every method on every point of the config's grid.

  The grid is padded to its largest shape and runs in chunks over every
  device (ssl_gmm/sweep.py). With a `chunks` folder, every finished chunk
  is kept there and a rerun of the same resolved config resumes from them.
  """
  grid, host_keys, padding, padded, masks, own, position = pad_grid(config)
  shapes = list(own)
  grid_mesh = sweep.mesh()
  devices = grid_mesh.devices.size
  width = chunk_width(config, padding, -(-grid.size // devices))
  grid_programs = make_programs(config, padding, grid_mesh)

  def work(index: np.ndarray, real: int) -> list[dict]:
    outputs = train_chunk(
      config,
      grid_programs,
      grid_mesh,
      Keys(*(k[index] for k in host_keys)),
      jax.tree.map(lambda a: a[index], padded),
      {n: v[index] for n, v in grid.settings.items()},
      masks[index],
    )
    rows = []
    for shape in shapes:
      picked = np.flatnonzero([grid.shapes[i] == shape for i in index[:real]])
      if len(picked) == 0:
        continue
      dim, _, k = shape
      points = index[picked]
      mixtures = Mixture(*(a[position[points]] for a in own[shape]))
      unpadded = {
        method: {
          name: (
            v[picked][:, :k, :dim]
            if name == "encoder"
            else jax.tree.map(functools.partial(_take, picked), v)
          )
          for name, v in out.items()
        }
        for method, out in outputs.items()
      }
      rows += evaluate(
        config,
        grid.take(points),
        Keys(*(k[points] for k in host_keys)),
        mixtures,
        unpadded,
      )
    return rows

  store = None
  if chunks is not None:
    resolved = json.loads(config.to_json())
    store = sweep.ChunkStore(
      chunks, sweep.fingerprint(resolved, width * devices)
    )
  rows = sweep.run_chunks(grid.size, width * devices, work, store, config.name)
  order = {m: i for i, m in enumerate(config.methods)}
  rows.sort(key=lambda r: (order[r["method"]], r["_point"]))
  for row in rows:
    del row["_point"]
  timings = {name: p.timing() for name, p in grid_programs.items()}
  return Outcome(rows=rows, swept=list(grid.swept), timings=timings)
