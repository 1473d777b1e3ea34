"""Runs one experiment: a grid of configurations, every method, every metric.

A grid is the product of the replicate seeds and the values of every swept
setting. Keys come from the config's root seed, split by purpose: the
mixture of replicate s uses fold_in(mixture_root, s), so every value of the
other swept settings and every method sees the same mixture; grid point p
draws its data with fold_in(data_root, p), and every method, trained or
baseline, sees the same pairs at the same step.

Each trained method is one `train_grid` program for the whole grid; the
baselines are one more. Metrics against the analytic Fisher subspace are
computed in float64.
"""

import dataclasses
import itertools
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from ssl_gmm import (
  baselines,
  claims,
  compilation,
  metrics,
  plotting,
  results,
  subspace,
)
from ssl_gmm import train as training
from ssl_gmm.mixture import Mixture, make_mixture, sample
from ssl_gmm.validation import validate


@dataclasses.dataclass(frozen=True)
class Grid:
  """Stacked grid points.

  Attributes:
    seed: [P] replicate index of every point.
    swept: setting name -> [P] its value at every point.
    settings: every traced setting (swept or fixed) -> [P] float32 values.
  """

  seed: np.ndarray
  swept: dict[str, np.ndarray]
  settings: dict[str, np.ndarray]

  @property
  def size(self) -> int:
    return len(self.seed)


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
  return Grid(seed=seed, swept=swept, settings=settings)


@dataclasses.dataclass(frozen=True)
class Keys:
  """[P] keys of every grid point, one set per purpose."""

  mixture: jax.Array
  init: jax.Array
  data: jax.Array
  eval: jax.Array


def make_keys(root_seed: int, grid: Grid) -> Keys:
  roots = jax.random.split(jax.random.PRNGKey(root_seed), 4)
  fold = jax.vmap(jax.random.fold_in, in_axes=(None, 0))
  points = jnp.arange(grid.size)
  return Keys(
    mixture=fold(roots[0], jnp.asarray(grid.seed)),
    init=fold(roots[1], points),
    data=fold(roots[2], points),
    eval=fold(roots[3], points),
  )


def make_mixtures(
  config: ml_collections.ConfigDict, keys: Keys, grid: Grid
) -> Mixture:
  """The stacked mixture of every grid point (float32)."""
  m = config.mixture

  def one(key, anisotropy):
    return make_mixture(
      key,
      m.dim,
      m.num_components,
      anisotropy,
      separation=m.separation,
      n_nuisance=m.n_nuisance,
    )

  return jax.jit(jax.vmap(one))(
    keys.mixture, jnp.asarray(grid.settings["anisotropy"])
  )


def _timed_compile(fn, *args, **static):
  start = time.perf_counter()
  compiled = fn.lower(*args, **static).compile()
  return compiled, time.perf_counter() - start


def _timed_run(compiled, *args):
  start = time.perf_counter()
  out = jax.block_until_ready(compiled(*args))
  return out, time.perf_counter() - start


def train_methods(
  config: ml_collections.ConfigDict, keys: Keys, mixtures: Mixture, grid: Grid
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict]]:
  """Trains every method of the config over the whole grid.

  Returns:
    outputs: method -> {"encoder": [P, k, d], "diverged": [P],
      "final_loss": [P] (trained methods only)}.
    timings: method -> {"compile_s", "run_s", "steps_per_s"}.
  """
  t = config.train
  static = dict(k=config.k, steps=t.steps, batch=t.batch)
  hyper = training.Hyper(
    learning_rate=jnp.asarray(grid.settings["learning_rate"]),
    temperature=jnp.asarray(grid.settings["temperature"]),
    p_same=jnp.asarray(grid.settings["p_same"]),
  )
  outputs, timings = {}, {}
  for method in config.methods:
    if method not in training.TRAINED_METHODS:
      continue
    args = (keys.init, keys.data, mixtures, hyper)
    compiled, compile_s = _timed_compile(
      training.train_grid, *args, method=method, **static
    )
    trained, run_s = _timed_run(compiled, *args)
    outputs[method] = {
      "encoder": np.asarray(trained.encoder, np.float64),
      "diverged": np.asarray(trained.diverged),
      "final_loss": np.asarray(trained.final_loss, np.float64),
    }
    timings[method] = _log_timing(method, compile_s, run_s, grid.size, t.steps)
  wanted = [m for m in config.methods if m in baselines.BASELINE_METHODS]
  if wanted:
    with jax.enable_x64(True):
      args = (keys.data, mixtures, hyper.p_same)
      compiled, compile_s = _timed_compile(
        baselines.baseline_grid, *args, **static
      )
      fitted, run_s = _timed_run(compiled, *args)
    for method in wanted:
      encoder = np.asarray(fitted[method], np.float64)
      diverged = ~np.all(np.isfinite(encoder), axis=(1, 2))
      outputs[method] = {"encoder": encoder, "diverged": diverged}
    timings["baselines"] = _log_timing(
      "baselines", compile_s, run_s, grid.size, t.steps
    )
  return outputs, timings


def _log_timing(name, compile_s, run_s, points, steps) -> dict:
  rate = points * steps / run_s
  logging.info(
    "%s: compiled in %.1fs, ran %d points x %d steps in %.1fs "
    "(%.0f configuration-steps/s)",
    name,
    compile_s,
    points,
    steps,
    run_s,
    rate,
  )
  return {"compile_s": compile_s, "run_s": run_s, "steps_per_s": rate}


@jax.jit
def _subspace_metrics(encoders: jax.Array, mixtures: Mixture) -> dict:
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

  return jax.vmap(one)(encoders, mixtures)


@jax.jit
def _means_fisher_angles(mixtures: Mixture) -> jax.Array:
  """[P] angle in degrees between span{centred means} and F."""

  def one(mixture):
    basis, _ = subspace.fisher_subspace(
      mixture.means, mixture.cov, mixture.weights
    )
    centred = subspace.centred_means(mixture.means, mixture.weights)
    rank = mixture.means.shape[0] - 1
    means_basis = jnp.linalg.svd(centred, full_matrices=False)[2][:rank].T
    return metrics.subspace_angle(means_basis, basis)

  return jax.vmap(one)(mixtures)


def _embed(encoder: np.ndarray, x: np.ndarray, method: str) -> np.ndarray:
  """The embedding as the method's loss sees it."""
  z = x @ encoder.T
  if training.TRAINED_METHODS.get(method, (None, "dot"))[1] == "cosine":
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = z / np.maximum(norms, 1e-12)
  return z


def evaluate(
  config: ml_collections.ConfigDict,
  grid: Grid,
  keys: Keys,
  mixtures: Mixture,
  outputs: dict[str, dict[str, np.ndarray]],
) -> list[dict]:
  """One row per method and grid point with every metric."""
  num_components = config.mixture.num_components
  n_fit = config.n_eval // 2
  x, labels = jax.jit(
    jax.vmap(lambda key, mix: sample(key, mix, config.n_eval))
  )(keys.eval, mixtures)
  x, labels = np.asarray(x, np.float64), np.asarray(labels)
  weights = np.asarray(mixtures.weights)
  with jax.enable_x64(True):
    mixtures64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), mixtures)
    angles = np.asarray(_means_fisher_angles(mixtures64))
    measured = {
      method: jax.tree.map(
        np.asarray, _subspace_metrics(jnp.asarray(out["encoder"]), mixtures64)
      )
      for method, out in outputs.items()
    }
  rows = []
  for method in config.methods:
    out, found = outputs[method], measured[method]
    for p in range(grid.size):
      row = {"method": method, "seed": int(grid.seed[p])}
      row.update({n: float(v[p]) for n, v in grid.swept.items()})
      diverged = bool(out["diverged"][p])
      if diverged:
        row.update(distance=1.0, fisher_ratio=0.0, nuisance_share=1.0, rank=0)
        scores = metrics.chance_downstream(weights[p])
      else:
        row.update({name: float(v[p]) for name, v in found.items()})
        row["rank"] = int(found["rank"][p])
        z = _embed(out["encoder"][p], x[p], method)
        scores = metrics.downstream(
          z[:n_fit],
          labels[p, :n_fit],
          z[n_fit:],
          labels[p, n_fit:],
          num_components,
          seed=int(grid.seed[p]),
        )
      row.update(scores._asdict())
      row["diverged"] = diverged
      if "final_loss" in out:
        row["final_loss"] = float(out["final_loss"][p])
      row["means_fisher_angle"] = float(angles[p])
      rows.append(row)
  return rows


def _resolved(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json())


def run(config: ml_collections.ConfigDict, out: pathlib.Path) -> dict:
  """Runs an experiment and publishes its folder `out/<name>/`.

  Writes config.json, results.csv, summary.json and `<name>.png` into a
  partial folder, then moves them into place; the previous results stay
  whole until then.

  Args:
    config: the experiment's config (see ssl_gmm/configs).
    out: the results folder.

  Returns:
    The summary: experiment name, claims with verdicts, timings.

  Raises:
    ValueError: if a setting is invalid (before anything is compiled).
  """
  validate(config)
  out = pathlib.Path(out)
  start = time.perf_counter()
  grid = build_grid(config)
  logging.info("%s: %d grid points", config.name, grid.size)
  keys = make_keys(config.seed, grid)
  mixtures = make_mixtures(config, keys, grid)
  with compilation.count_compilations() as compiled:
    outputs, timings = train_methods(config, keys, mixtures, grid)
  rows = evaluate(config, grid, keys, mixtures, outputs)
  # The table of the report: every method at the last value of each sweep.
  at = {name: float(values[-1]) for name, values in config.sweep.items()}
  summary = {
    "experiment": config.name,
    "profile": config.profile,
    "claims": claims.verdicts(rows, config),
    "table": {"at": at, "rows": claims.method_means(rows, config.methods, at)},
    "grid_points": grid.size,
    "timings": timings,
    # Compilations of the grid programs: one per trained method and one for
    # the baselines, however many grid points.
    "compilations": {
      name: n for name, n in compiled.items() if name.endswith("_grid)")
    },
    "wall_s": time.perf_counter() - start,
  }
  _publish(config, out, rows, summary, list(grid.swept))
  for verdict in summary["claims"]:
    logging.info(
      "%s %s: %s", verdict["name"], _word(verdict["holds"]), verdict["detail"]
    )
  return summary


def _word(holds: bool) -> str:
  return "holds" if holds else "does not hold"


def _publish(config, out, rows, summary, swept) -> None:
  partial = results.partial_dir(out, config.name)
  columns = list(results.LEADING_COLUMNS) + swept + list(results.METRIC_COLUMNS)
  results.atomic_write_text(
    partial / "results.csv", results.csv_text(rows, columns)
  )
  results.write_json(
    partial / "config.json",
    {"config": _resolved(config), **results.run_metadata()},
  )
  # The config names the figure's axis; a run whose sweep was changed plots
  # against its first swept setting instead.
  x = config.figure.x if config.figure.x in swept else (swept or ["seed"])[0]
  figure = plotting.sweep_figure(
    rows,
    x,
    config.methods,
    log_x=config.figure.log_x and x == config.figure.x,
    title=f"{config.name}: d={config.mixture.dim}, "
    f"K={config.mixture.num_components}, k={config.k}",
    thresholds={
      "distance": config.thresholds.distance_max,
      "fisher_ratio": config.thresholds.fisher_ratio_min,
    },
  )
  results.atomic_write_bytes(partial / f"{config.name}.png", figure)
  summary = dict(summary, figure=f"{config.name}/{config.name}.png")
  results.write_json(partial / "summary.json", summary)
  results.publish(partial, out / config.name)
  logging.info("%s: wrote %s", config.name, out / config.name)
