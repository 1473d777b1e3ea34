"""Refuses invalid settings on the host, before anything is compiled."""

import itertools
import re

import ml_collections

from ssl_gmm.baselines import BASELINE_METHODS
from ssl_gmm.checks import (
  check_n_eval,
  check_shape,
  check_traced,
  is_finite,
  is_int,
  require,
)
from ssl_gmm.claims import CLAIMS, READS, linear_objectives
from ssl_gmm.configs.common import PROFILES
from ssl_gmm.results import METRIC_COLUMNS
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
FIGURE_KINDS = ("sweep", "bars", "heatmap", "ranking")
# The metric columns of results.csv beyond the shared ones, by pipeline.
PIPELINE_METRICS = {
  "multimodal": ("s_accuracy",),
  "heteroscedastic": ("qda_accuracy", "bayes_accuracy"),
}
DOWNSTREAM_METRICS = ("accuracy", "nmi", "ari")
# The pipelines that can skip the downstream metrics (`downstream` False);
# the others read them in their own claims, or score with them alone.
SKIPS_DOWNSTREAM = ("synthetic", "samples")
# A config's name names its folder under the output directory.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
# jax.random.PRNGKey keeps a seed's low 32 bits: 2**32 would repeat 0.
SEED_LIMIT = 2**32


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks a resolved experiment config.

  Raises:
    ValueError: naming the first invalid setting and its value.
  """
  require(
    config.pipeline in PIPELINES, "pipeline", config.pipeline, f"{PIPELINES}"
  )
  name = config.name
  rule = "letters, digits, '_' and '-' only: it names a folder"
  require(isinstance(name, str) and NAME.fullmatch(name), "name", name, rule)
  seed = config.seed
  rule = f"an int in [0, {SEED_LIMIT})"
  require(is_int(seed) and 0 <= seed < SEED_LIMIT, "seed", seed, rule)
  mixture = config.mixture
  check_traced("separation", mixture.separation)
  check_traced("anisotropy", mixture.anisotropy)
  check_traced("p_same", config.p_same)
  check_traced("temperature", config.train.temperature)
  check_traced("learning_rate", config.train.learning_rate)
  train = config.train
  require(
    train.optimizer in OPTIMIZERS, "optimizer", train.optimizer, f"{OPTIMIZERS}"
  )
  counts = (
    ("seeds", config.seeds, 1),
    ("steps", train.steps, 1),
    ("batch", train.batch, 2),
    ("n_eval", config.n_eval, 4),
  )
  for name, value, least in counts:
    rule = f"an int >= {least}"
    require(is_int(value) and value >= least, name, value, rule)
  require(
    train.get("sampler", "plain") in SAMPLERS,
    "sampler",
    train.get("sampler"),
    f"expected one of {SAMPLERS}",
  )
  if "engine" in config:
    width = config.engine.chunk_width
    require(
      width is None or (is_int(width) and width >= 1),
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
  downstream = config.get("downstream", True)
  rule = "must be True or False"
  require(isinstance(downstream, bool), "downstream", downstream, rule)
  rule = f"only the pipelines {SKIPS_DOWNSTREAM} can skip downstream metrics"
  ok = downstream or config.pipeline in SKIPS_DOWNSTREAM
  require(ok, "downstream", downstream, rule)
  require(config.profile in PROFILES, "profile", config.profile, f"{PROFILES}")
  for name, value in config.thresholds.items():
    rule = "must be a finite number"
    require(is_finite(value), f"thresholds.{name}", value, rule)
  _check_figure(config)
  figure = config.figure
  if figure.kind == "heatmap":
    for axis in (figure.x, figure.y):
      require(
        axis in config.sweep,
        "figure",
        axis,
        f"a heatmap's x and y must be swept ({tuple(config.sweep)})",
      )
  methods = tuple(config.methods)
  require(len(methods) >= 1, "methods", methods, "name at least one")
  repeated = sorted({m for m in methods if methods.count(m) > 1})
  require(not repeated, "methods", methods, f"{repeated} named twice")
  # The pipelines of their own check their own settings and sweeps; they
  # import this module, so they are imported here, not at the top.
  if config.pipeline == "multimodal":
    from ssl_gmm import multimodal

    multimodal.validate(config)
  elif config.pipeline == "heteroscedastic":
    from ssl_gmm import heteroscedastic

    heteroscedastic.validate(config)
  else:
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
  for claim in config.claims:
    require(claim in CLAIMS, "claim", claim, f"expected one of {tuple(CLAIMS)}")
    _check_reads(config, claim)


def _check_mlp(config: ml_collections.ConfigDict) -> None:
  """An MLP's shape, and a sampler that draws inputs for it."""
  mlps = [m for m in config.methods if m in TRAINED_METHODS and is_mlp(m)]
  if not mlps:
    return
  for name in ("width", "depth"):
    value = config.mlp[name]
    least = 1 if name == "width" else 0
    require(
      is_int(value) and value >= least,
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
        require(is_int(value) and value >= 2, "n", value, "an int >= 2")
    else:
      for value in values:
        check_traced(name, value)
  if config.pipeline == "real_data":
    return  # Its d, K and k come from the data sets (real_data.validate).
  for dim, num_components, k in itertools.product(*shapes.values()):
    check_shape(dim, num_components, num_components - 1 if k is None else k)
    check_n_eval(config.n_eval, num_components)
    n_nuisance = config.mixture.n_nuisance
    if n_nuisance is not None:
      require(
        0 <= n_nuisance <= dim,
        "n_nuisance",
        n_nuisance,
        f"0 <= n_nuisance <= d (d = {dim})",
      )


def _check_reads(config: ml_collections.ConfigDict, claim: str) -> None:
  """The methods and swept settings the claim reads are in the run."""
  reads = READS[claim]
  for method in reads.methods:
    rule = f"claim {claim} reads {method!r}, which is not among them"
    require(method in config.methods, "methods", tuple(config.methods), rule)
  swept = tuple(config.sweep)
  for name in reads.sweep:
    require(name in swept, "sweep", swept, f"claim {claim} reads {name} swept")
  if reads.any_sweep:
    require(swept, "sweep", swept, f"claim {claim} reads a swept setting")
  told_apart = reads.sweep + reads.axes + swept[:1] * reads.any_sweep
  for name, values in config.sweep.items():
    rule = (
      f"claim {claim} would average over {name}'s {len(values)} values; "
      "sweep it in a run without this claim (config.claims)"
    )
    ok = name in told_apart or len(values) == 1
    require(ok, "sweep", swept, rule)
  _check_claim_grid(config, claim)
  if reads.metrics:
    rule = f"claim {claim} reads {', '.join(reads.metrics)}, downstream"
    ok = config.get("downstream", True)
    require(ok, "downstream", False, rule)


def _check_claim_grid(config: ml_collections.ConfigDict, claim: str) -> None:
  """The grid holds the points a claim compares, so that it checks something.

  C5 and phase read the p_same values at or above a threshold, and C5 a
  control at p_same 0; objectives reads the trained linear objectives.
  """
  t = config.thresholds
  p_same = tuple(config.sweep.get("p_same", ()))
  floors = {"C5": "control_p_same_min", "phase": "p_same_min"}
  if claim in floors:
    floor = t[floors[claim]]
    rule = f"claim {claim} reads p_same >= thresholds.{floors[claim]} = {floor}"
    require(any(p >= floor for p in p_same), "sweep.p_same", p_same, rule)
  if claim == "C5":
    rule = "claim C5 reads its control at p_same 0"
    require(0.0 in p_same, "sweep.p_same", p_same, rule)
  if claim == "objectives":
    rule = "claim objectives reads the trained linear objectives: name one"
    ok = linear_objectives(config.methods)
    require(ok, "methods", tuple(config.methods), rule)


def _check_figure(config: ml_collections.ConfigDict) -> None:
  """A known kind of figure, of metrics that the run writes."""
  figure = config.figure
  rule = f"expected one of {FIGURE_KINDS}"
  require(figure.kind in FIGURE_KINDS, "figure.kind", figure.kind, rule)
  metrics = tuple(figure.metrics)
  require(len(metrics) >= 1, "figure.metrics", metrics, "name at least one")
  known = METRIC_COLUMNS + PIPELINE_METRICS.get(config.pipeline, ())
  if not config.get("downstream", True):
    known = tuple(m for m in known if m not in DOWNSTREAM_METRICS)
  for metric in metrics:
    rule = f"this run writes {known}"
    require(metric in known, "figure.metrics", metric, rule)
