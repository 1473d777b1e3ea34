"""Refuses invalid settings on the host, before anything is compiled."""

import itertools
import math

import ml_collections

from ssl_gmm.baselines import BASELINE_METHODS
from ssl_gmm.claims import CLAIMS
from ssl_gmm.train import SAMPLERS, TRAINED_METHODS, is_mlp

KNOWN_METHODS = tuple(TRAINED_METHODS) + BASELINE_METHODS
OPTIMIZERS = ("adam",)
PIPELINES = (
  "synthetic",
  "samples",
  "multimodal",
  "real_data",
  "heteroscedastic",
)
# Settings that a sweep may vary: as traced arrays, or shape by shape.
TRACED_SETTINGS = ("anisotropy", "p_same", "temperature", "learning_rate")
SHAPE_SETTINGS = ("dim", "num_components", "k")


def require(ok: bool, name: str, value, rule: str) -> None:
  if not ok:
    raise ValueError(f"{name}={value!r} is invalid: {rule}.")


def is_finite(value) -> bool:
  return isinstance(value, int | float) and math.isfinite(value)


def check_traced(name: str, value) -> None:
  """Checks one value of a setting that may be swept."""
  require(is_finite(value), name, value, "must be a finite number")
  if name == "p_same":
    require(0 <= value <= 1, name, value, "must lie in [0, 1]")
  else:
    require(value > 0, name, value, "must be > 0")


def check_shape(dim: int, num_components: int, k: int) -> None:
  """Checks d, K and k of one mixture and encoder."""
  require(num_components >= 2, "num_components", num_components, "K >= 2")
  require(dim >= num_components, "dim", dim, f"d >= K (K = {num_components})")
  require(1 <= k <= dim, "k", k, f"1 <= k <= d (d = {dim})")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks a resolved experiment config.

  Raises:
    ValueError: naming the first invalid setting and its value.
  """
  require(
    config.pipeline in PIPELINES, "pipeline", config.pipeline, f"{PIPELINES}"
  )
  require(config.seeds >= 1, "seeds", config.seeds, "must be >= 1")
  mixture = config.mixture
  require(
    mixture.separation > 0, "separation", mixture.separation, "must be > 0"
  )
  check_traced("anisotropy", mixture.anisotropy)
  check_traced("p_same", config.p_same)
  check_traced("temperature", config.train.temperature)
  check_traced("learning_rate", config.train.learning_rate)
  train = config.train
  require(
    train.optimizer in OPTIMIZERS, "optimizer", train.optimizer, f"{OPTIMIZERS}"
  )
  require(train.steps >= 1, "steps", train.steps, "must be >= 1")
  require(train.batch >= 2, "batch", train.batch, "must be >= 2")
  require(config.n_eval >= 4, "n_eval", config.n_eval, "must be >= 4")
  require(
    train.get("sampler", "plain") in SAMPLERS,
    "sampler",
    train.get("sampler"),
    f"expected one of {SAMPLERS}",
  )
  if "engine" in config:
    width = config.engine.chunk_width
    require(
      width is None or (isinstance(width, int) and width >= 1),
      "chunk_width",
      width,
      "None or an int >= 1",
    )
    budget = config.engine.memory_budget_mib
    require(
      is_finite(budget) and budget > 0,
      "memory_budget_mib",
      budget,
      "must be > 0",
    )
  require(
    isinstance(config.get("downstream", True), bool),
    "downstream",
    config.get("downstream"),
    "must be True or False",
  )
  figure = config.figure
  if figure.kind == "heatmap":
    for axis in (figure.x, figure.y):
      require(
        axis in config.sweep,
        "figure",
        axis,
        f"a heatmap's x and y must be swept ({tuple(config.sweep)})",
      )
  for claim in config.claims:
    require(claim in CLAIMS, "claim", claim, f"expected one of {tuple(CLAIMS)}")
  # The pipelines of their own check their own settings and sweeps; they
  # import this module, so they are imported here, not at the top.
  if config.pipeline == "multimodal":
    from ssl_gmm import multimodal

    multimodal.validate(config)
    return
  if config.pipeline == "heteroscedastic":
    from ssl_gmm import heteroscedastic

    heteroscedastic.validate(config)
    return
  for method in config.methods:
    require(
      method in KNOWN_METHODS,
      "method",
      method,
      f"expected one of {KNOWN_METHODS}",
    )
  _check_mlp(config)
  _check_sweep(config)
  if config.pipeline == "real_data":
    from ssl_gmm import real_data

    real_data.validate(config)


def _check_mlp(config: ml_collections.ConfigDict) -> None:
  """An MLP's shape, and a sampler that draws inputs for it."""
  mlps = [m for m in config.methods if m in TRAINED_METHODS and is_mlp(m)]
  if not mlps:
    return
  for name in ("width", "depth"):
    value = config.mlp[name]
    least = 1 if name == "width" else 0
    require(
      isinstance(value, int) and value >= least,
      f"mlp.{name}",
      value,
      f"an int >= {least}",
    )
  sampler = config.train.get("sampler", "plain")
  require(
    sampler == "plain",
    "sampler",
    sampler,
    f"methods {mlps} train an MLP, which needs the 'plain' sampler",
  )


def _check_sweep(config: ml_collections.ConfigDict) -> None:
  """Checks every swept value, and the shape of every grid point."""
  shapes = {
    "dim": [config.mixture.dim],
    "num_components": [config.mixture.num_components],
    "k": [config.k],
  }
  known = TRACED_SETTINGS + SHAPE_SETTINGS
  if config.pipeline == "samples":
    known = (*TRACED_SETTINGS, "n")
  for name, values in config.sweep.items():
    require(name in known, "sweep", name, f"sweepable: {known}")
    require(len(values) >= 1, name, values, "a sweep needs values")
    if name in SHAPE_SETTINGS:
      shapes[name] = list(values)
    elif name == "n":
      for value in values:
        require(
          isinstance(value, int) and value >= 2, "n", value, "an int >= 2"
        )
    else:
      for value in values:
        check_traced(name, value)
  for dim, num_components, k in itertools.product(*shapes.values()):
    check_shape(dim, num_components, num_components - 1 if k is None else k)
    n_nuisance = config.mixture.n_nuisance
    if n_nuisance is not None:
      require(
        0 <= n_nuisance <= dim,
        "n_nuisance",
        n_nuisance,
        f"0 <= n_nuisance <= d (d = {dim})",
      )
