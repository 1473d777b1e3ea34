"""Measures the sweep engine against one-at-a-time training and a floor.

  python scripts/benchmark.py                         # results/benchmark.json
  python scripts/benchmark.py --workloads=batch64 --steps=200
  python scripts/benchmark.py --print_table           # the README table

Workloads:
  batch64, batch256: the anisotropy experiment, InfoNCE only, d = 32, K = 4,
    k = 3, 8 seeds x 8 anisotropy values (64 grid points), batch 64 or 256,
    `--steps` steps. Each is trained four ways:
      sweep: the engine, all 64 points in one call of its compiled program;
      per_config_jit: the same `train.train`, jitted, called once per
        configuration on the first `--subset` points;
      torch_eager: a plain PyTorch loop doing the same training, one
        configuration at a time, on the first `--subset` points (needs
        torch: pip install -e .[bench]);
      floor: only the InfoNCE forward and backward passes on embeddings
        already in memory, vmapped over the 64 points in one scan, with no
        sampling and no optimizer: what the engine cannot beat.
  grid10k: 10,000 points (10 seeds x 1000 anisotropy values), d = 16, K = 4,
    k = 3, batch 64, 200 steps, chunks sized by the engine from its memory
    budget. It runs in a fresh process so that its peak memory is its own.

Like the main job, the script splits a CPU host into one JAX device per
core (`--cpu_devices`), so the engine and the floor run their points on
every core; the one-at-a-time loop runs on one device, as a user would.
Throughput is in configuration-steps per second (points * steps / seconds),
the median over `--repeats` timed calls; compilation is timed apart.
"""

import functools
import json
import math
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging

from ssl_gmm import (
  compilation,
  configs,
  losses,
  results,
  sweep,
  synthetic,
  validation,
)
from ssl_gmm import train as training
from ssl_gmm.mixture import Mixture

WORKLOADS = ("batch64", "batch256", "grid10k")
BATCHES = {"batch64": 64, "batch256": 256}
METHOD = "infonce"

_OUT = flags.DEFINE_string("out", "results/benchmark.json", "Output JSON.")
_STEPS = flags.DEFINE_integer(
  "steps", 500, "Training steps of the batch workloads."
)
_REPEATS = flags.DEFINE_integer(
  "repeats", 3, "Timed calls per measurement; the median is reported."
)
_SUBSET = flags.DEFINE_integer(
  "subset", 8, "Configurations trained one at a time (jit and torch)."
)
_WORKLOADS = flags.DEFINE_list(
  "workloads", list(WORKLOADS), f"Workloads to run, of {WORKLOADS}."
)
_CPU_DEVICES = flags.DEFINE_integer(
  "cpu_devices",
  0,
  "JAX devices to split a CPU host into; 0: one per core, as the main job.",
)
_PRINT_TABLE = flags.DEFINE_bool(
  "print_table",
  False,
  "Print the README table of the JSON at --out instead of measuring.",
)


def flops_per_config_step(
  batch: int, dim: int, num_components: int, k: int, rank: int
) -> int:
  """Useful FLOPs of one training step of one configuration.

  Counts the matrix products of the embedding sampler and of the InfoNCE
  logits, forward and backward, and nothing else (no random numbers, no
  softmax, no Cholesky, no optimizer update). With n = batch, d = dim,
  K = num_components, k the embedding dimension and r the rank of the
  nuisance factors U and W ([d, r]), the forward pass computes

    A S = A + (A U) W^T             2 * (2 k d r)
    C = (A S)(A S)^T                2 k k d
    the means' embedding M A^T      2 K k d
    both views' L h                 2 * (2 n k k)
    the logits z z'^T               2 n n k

  and the backward pass costs about twice the forward, so the total is
  three times the forward count.
  """
  forward = (
    2 * (2 * k * dim * rank)
    + 2 * k * k * dim
    + 2 * num_components * k * dim
    + 2 * (2 * batch * k * k)
    + 2 * batch * batch * k
  )
  return 3 * forward


def peak_rss_mib() -> float:
  """The process's peak resident memory so far, in MiB.

  A process-wide high-water mark (getrusage's ru_maxrss, in KiB on Linux):
  it never goes down, so a workload's value includes every workload that
  ran before it in the same process.
  """
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(fn, repeats: int) -> float:
  """The median wall time of `repeats` calls of fn (which must block)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def matmul_peak_gflops(sizes=(1024, 2048), runs: int = 5) -> float:
  """The float32 matmul rate of the first device, in GFLOP/s.

  A jitted n x n @ n x n product for each size, the median of `runs` calls
  (2 n^3 / seconds), the best over the sizes.
  """
  best = 0.0
  for n in sizes:
    keys = jax.random.split(jax.random.PRNGKey(n))
    a = jax.random.normal(keys[0], (n, n), jnp.float32)
    b = jax.random.normal(keys[1], (n, n), jnp.float32)
    product = jax.jit(jnp.matmul)
    jax.block_until_ready(product(a, b))
    seconds = median_seconds(
      lambda a=a, b=b, product=product: jax.block_until_ready(product(a, b)),
      runs,
    )
    best = max(best, 2 * n**3 / seconds / 1e9)
  return best


def torch_module():
  """torch, or None when it is not installed."""
  try:
    import torch
  except ImportError:
    return None
  return torch


def machine() -> dict:
  """What the numbers were measured on."""
  torch = torch_module()
  return {
    "devices": len(jax.devices()),
    "device_kind": jax.devices()[0].device_kind,
    "matmul_peak_gflops": matmul_peak_gflops(),
    "cpu_count": os.cpu_count(),
    "jax_version": jax.__version__,
    "torch_version": None if torch is None else torch.__version__,
  }


def engine_config(
  *,
  seeds: int,
  anisotropies: int,
  steps: int,
  batch: int,
  dim: int,
  num_components: int = 4,
  k: int = 3,
  chunk_width: int | None = None,
  memory_budget_mib: int | None = None,
) -> ml_collections.ConfigDict:
  """The anisotropy experiment, InfoNCE only, on a grid of this size.

  The grid is `seeds` replicates x `anisotropies` values logspaced from 1
  to 1000.
  """
  config = configs.get_config("anisotropy", "quick")
  with config.unlocked():
    config.methods = (METHOD,)
    config.claims = ()
    config.seeds = seeds
    config.sweep.anisotropy = tuple(np.logspace(0, 3, anisotropies).tolist())
    config.train.steps = steps
    config.train.batch = batch
    config.mixture.dim = dim
    config.mixture.num_components = num_components
    config.k = k
    config.engine.chunk_width = chunk_width
    if memory_budget_mib is not None:
      config.engine.memory_budget_mib = memory_budget_mib
  validation.validate(config)
  return config


def batch_config(
  batch: int, steps: int, seeds: int = 8, anisotropies: int = 8, dim: int = 32
) -> ml_collections.ConfigDict:
  """A batch workload's config: all its points in one chunk when they split
  evenly over the devices."""
  points, devices = seeds * anisotropies, len(jax.devices())
  return engine_config(
    seeds=seeds,
    anisotropies=anisotropies,
    steps=steps,
    batch=batch,
    dim=dim,
    chunk_width=points // devices if points % devices == 0 else None,
  )


def device_index(points: int, devices: int) -> np.ndarray:
  """Every point once, filled up (by repeating the last) to split evenly."""
  width = devices * -(-points // devices)
  return sweep.chunk_indices(points, width)[0]


def time_sweep(
  config: ml_collections.ConfigDict, padded: synthetic.Padded, repeats: int
) -> dict:
  """The engine on every point at once: throughput, compile_s, compilations."""
  grid_mesh = sweep.mesh()
  grid_programs = synthetic.make_programs(config, padded.padding, grid_mesh)
  index = device_index(padded.grid.size, grid_mesh.devices.size)
  keys = synthetic.Keys(*(k[index] for k in padded.keys))
  mixtures = jax.tree.map(lambda a: a[index], padded.mixtures)
  settings = {n: v[index] for n, v in padded.grid.settings.items()}
  masks = padded.masks[index]

  def call():
    return synthetic.train_chunk(
      config, grid_programs, grid_mesh, keys, mixtures, settings, masks
    )

  with compilation.count_compilations() as compiled:
    call()
  seconds = median_seconds(call, repeats)
  return {
    "throughput": padded.grid.size * config.train.steps / seconds,
    "compile_s": grid_programs[METHOD].compile_s,
    "compilations": dict(compiled),
  }


def own_point(padded: synthetic.Padded, i: int) -> tuple:
  """Point i's (init key, data key, unpadded mixture, Hyper)."""
  shape = padded.grid.shapes[i]
  own = padded.own[shape]
  position = padded.position[i]
  settings = padded.grid.settings
  hyper = training.Hyper(
    *(
      np.asarray(settings[n][i], np.float32)
      for n in ("learning_rate", "temperature", "p_same")
    )
  )
  mixture = Mixture(*(a[position] for a in own))
  return padded.keys.init[i], padded.keys.data[i], mixture, hyper


def time_per_config_jit(
  config: ml_collections.ConfigDict,
  padded: synthetic.Padded,
  subset: int,
  repeats: int,
) -> dict:
  """`train.train` jitted and called once per configuration: throughput
  over the first `subset` points and its compile time."""
  t = config.train
  dim, _, k = padded.grid.shapes[0]
  fn = jax.jit(
    functools.partial(
      training.train,
      method=METHOD,
      k=k,
      steps=t.steps,
      batch=t.batch,
      sampler="embedding",
    )
  )
  subset = min(subset, padded.grid.size)
  points = [own_point(padded, i) for i in range(subset)]
  start = time.perf_counter()
  # The executable is cached: the calls below reuse it.
  fn.lower(*points[0]).compile()
  compile_s = time.perf_counter() - start
  jax.block_until_ready(fn(*points[0]))

  def loop():
    for point in points:
      jax.block_until_ready(fn(*point))

  seconds = median_seconds(loop, repeats)
  return {"throughput": subset * t.steps / seconds, "compile_s": compile_s}


def torch_train(torch, point: tuple, config, seed: int) -> float:
  """One configuration trained the plain PyTorch way; returns the last loss.

  A [k, d] encoder ~ N(0, 1/d) and Adam; every step draws fresh pairs
  (a uniform component, both views from it, x = m_c + S eps with
  S = I + U W^T), embeds them and takes the cosine InfoNCE loss.
  """
  _, _, mixture, hyper = point
  functional = torch.nn.functional
  generator = torch.manual_seed(seed)
  means, left, right = (
    torch.tensor(np.asarray(a, np.float32))
    for a in (mixture.means, mixture.sqrt_left, mixture.sqrt_right)
  )
  num_components, dim = means.shape
  sqrt_t = (torch.eye(dim) + left @ right.T).T.contiguous()  # S^T
  k, batch = config.k, config.train.batch
  temperature = float(hyper.temperature)
  encoder = torch.randn(k, dim, generator=generator) / math.sqrt(dim)
  encoder.requires_grad_(True)
  optimizer = torch.optim.Adam([encoder], lr=float(hyper.learning_rate))
  targets = torch.arange(batch)
  for _ in range(config.train.steps):
    labels = torch.randint(num_components, (batch,), generator=generator)
    centres = means[labels]
    x = centres + torch.randn(batch, dim, generator=generator) @ sqrt_t
    x_pos = centres + torch.randn(batch, dim, generator=generator) @ sqrt_t
    z = functional.normalize(x @ encoder.T, dim=1)
    z_pos = functional.normalize(x_pos @ encoder.T, dim=1)
    loss = functional.cross_entropy(z @ z_pos.T / temperature, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
  return float(loss.detach())


def time_torch_eager(
  config: ml_collections.ConfigDict,
  padded: synthetic.Padded,
  subset: int,
  repeats: int,
) -> float | None:
  """PyTorch eager throughput on the first `subset` points, or None."""
  torch = torch_module()
  if torch is None:
    return None
  subset = min(subset, padded.grid.size)
  points = [own_point(padded, i) for i in range(subset)]
  # The first training of a process pays torch's one-time set-up.
  torch_train(torch, points[0], config, seed=0)

  def loop():
    for i, point in enumerate(points):
      torch_train(torch, point, config, seed=i)

  seconds = median_seconds(loop, repeats)
  return subset * config.train.steps / seconds


def time_floor(
  config: ml_collections.ConfigDict, padded: synthetic.Padded, repeats: int
) -> dict:
  """The InfoNCE forward and backward passes alone, as the engine runs them.

  Every point evaluates infonce(z, z_pos) and its gradient with respect to
  both embeddings `steps` times in one scan, on [batch, k] embeddings made
  beforehand. The carry adds a tiny multiple of the gradient's sum to z and
  subtracts it from z_pos at every step: both inputs change at every step,
  as in training, so that XLA can hoist no part of an evaluation (such as
  normalising a constant z_pos) out of the loop.
  """
  t = config.train
  k = padded.padding.k
  grid_mesh = sweep.mesh()
  index = device_index(padded.grid.size, grid_mesh.devices.size)
  loss = functools.partial(losses.infonce, similarity="cosine")
  grad = jax.grad(loss, argnums=(0, 1))

  def one(z, z_pos, temperature):
    def step(drift, _):
      g, g_pos = grad(z + drift, z_pos - drift, temperature)
      return drift + 1e-9 * (jnp.sum(g) + jnp.sum(g_pos)), None

    drift, _ = jax.lax.scan(step, jnp.zeros((), z.dtype), length=t.steps)
    return drift

  fn = jax.jit(sweep.sharded(jax.vmap(one), grid_mesh))
  rng = np.random.default_rng(0)
  shape = (len(index), t.batch, k)
  args = sweep.shard(
    (
      rng.standard_normal(shape, np.float32),
      rng.standard_normal(shape, np.float32),
      padded.grid.settings["temperature"][index],
    ),
    grid_mesh,
  )
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - start
  jax.block_until_ready(compiled(*args))
  seconds = median_seconds(
    lambda: jax.block_until_ready(compiled(*args)), repeats
  )
  return {
    "throughput": padded.grid.size * t.steps / seconds,
    "compile_s": compile_s,
  }


def ratio(a: float | None, b: float | None) -> float | None:
  return None if a is None or b is None else a / b


def batch_workload(
  name: str,
  config: ml_collections.ConfigDict,
  repeats: int,
  subset: int,
) -> dict:
  """One batch workload's record: every way of training its grid, timed."""
  padded = synthetic.pad_grid(config)
  if len(padded.own) != 1:
    raise ValueError(f"{name}: a batch workload has one shape.")
  dim, num_components, _ = padded.grid.shapes[0]
  engine = time_sweep(config, padded, repeats)
  jitted = time_per_config_jit(config, padded, subset, repeats)
  torch_rate = time_torch_eager(config, padded, subset, repeats)
  floor = time_floor(config, padded, repeats)
  flops = flops_per_config_step(
    config.train.batch,
    dim,
    num_components,
    config.k,
    padded.own[padded.grid.shapes[0]].sqrt_left.shape[-1],
  )
  record = {
    "name": name,
    "grid_points": padded.grid.size,
    "steps": config.train.steps,
    "batch": config.train.batch,
    "d": dim,
    "K": num_components,
    "throughput": {
      "sweep": engine["throughput"],
      "per_config_jit": jitted["throughput"],
      "torch_eager": torch_rate,
      "floor": floor["throughput"],
    },
    "compile_s": {
      "sweep": engine["compile_s"],
      "per_config_jit": jitted["compile_s"],
      "floor": floor["compile_s"],
    },
    "speedup_vs_per_config_jit": ratio(
      engine["throughput"], jitted["throughput"]
    ),
    "speedup_vs_torch_eager": ratio(engine["throughput"], torch_rate),
    "floor_fraction": ratio(engine["throughput"], floor["throughput"]),
    "achieved_gflops": flops * engine["throughput"] / 1e9,
    "compilations": engine["compilations"],
    "peak_rss_mib": peak_rss_mib(),
  }
  if torch_rate is None:
    record["torch_eager_note"] = "torch not installed: pip install -e .[bench]"
  rates = record["throughput"]
  logging.info(
    "%s: engine %.0f, per-config jit %.0f, torch %s, floor %.0f "
    "configuration-steps/s; %.1fx vs jit, floor fraction %.2f, %.2f GFLOP/s",
    name,
    rates["sweep"],
    rates["per_config_jit"],
    "n/a" if torch_rate is None else f"{torch_rate:.0f}",
    rates["floor"],
    record["speedup_vs_per_config_jit"],
    record["floor_fraction"],
    record["achieved_gflops"],
  )
  return record


# grid10k: the chunk width is left to the engine's memory budget.
GRID10K = dict(seeds=10, anisotropies=1000, steps=200, batch=64, dim=16)


def grid_config(**changes) -> ml_collections.ConfigDict:
  """grid10k's config, with any of `engine_config`'s arguments changed."""
  return engine_config(**{**GRID10K, **changes})


def grid_workload(name: str, config: ml_collections.ConfigDict) -> dict:
  """A large grid through the engine's training loop, chunk by chunk.

  Chunks are sized as `synthetic.run_grid` sizes them; nothing is scored.
  wall_s runs from building the grid to the last chunk's encoders on the
  host, compilation included; peak_rss_mib is the process's high-water
  mark, so run this in a process of its own.
  """
  start = time.perf_counter()
  padded = synthetic.pad_grid(config)
  grid, padding = padded.grid, padded.padding
  grid_mesh = sweep.mesh()
  devices = grid_mesh.devices.size
  t = config.train
  width = synthetic.chunk_width(config, padding, -(-grid.size // devices))
  grid_programs = synthetic.make_programs(config, padding, grid_mesh)
  chunks = sweep.chunk_indices(grid.size, width * devices)
  with compilation.count_compilations() as compiled:
    for index in chunks:
      synthetic.train_chunk(
        config,
        grid_programs,
        grid_mesh,
        synthetic.Keys(*(k[index] for k in padded.keys)),
        jax.tree.map(lambda a, index=index: a[index], padded.mixtures),
        {n: v[index] for n, v in grid.settings.items()},
        padded.masks[index],
      )
  wall_s = time.perf_counter() - start
  dim, num_components, _ = grid.shapes[0]
  record = {
    "name": name,
    "grid_points": grid.size,
    "steps": t.steps,
    "batch": t.batch,
    "d": dim,
    "K": num_components,
    "chunks": len(chunks),
    "chunk_width": width,
    "peak_rss_mib": peak_rss_mib(),
    "compilations": dict(compiled),
    "wall_s": wall_s,
  }
  logging.info(
    "%s: %d points x %d steps in %d chunks of %d per device, %.1fs, "
    "peak RSS %.0f MiB",
    name,
    grid.size,
    t.steps,
    len(chunks),
    width,
    wall_s,
    record["peak_rss_mib"],
  )
  return record


def grid_in_subprocess(name: str) -> dict:
  """Runs the grid workload in a fresh process of this script."""
  with tempfile.TemporaryDirectory() as folder:
    out = pathlib.Path(folder) / "benchmark.json"
    subprocess.run(
      [
        sys.executable,
        __file__,
        f"--workloads={name}",
        f"--out={out}",
        f"--cpu_devices={_CPU_DEVICES.value}",
      ],
      check=True,
    )
    report = json.loads(out.read_text())
  (record,) = report["workloads"]
  return record


def run(workloads, steps: int, repeats: int, subset: int) -> dict:
  """Every requested workload's record, then the machine's description."""
  unknown = [w for w in workloads if w not in WORKLOADS]
  if unknown:
    raise ValueError(f"workloads={unknown}; expected some of {WORKLOADS}.")
  records = []
  for name in workloads:
    if name in BATCHES:
      config = batch_config(BATCHES[name], steps)
      records.append(batch_workload(name, config, repeats, subset))
    elif list(workloads) == [name]:
      records.append(grid_workload(name, grid_config()))
    else:
      records.append(grid_in_subprocess(name))
  # Last, so that a grid run in this process has its own peak memory.
  return {
    **machine(),
    "steps": steps,
    "repeats": repeats,
    "subset": subset,
    "workloads": records,
  }


def _number(value: float | None, unit: str = "") -> str:
  if value is None:
    return "n/a"
  if unit == "x":
    return f"{value:.1f}x"
  if unit == "f":
    return f"{value:.2f}"
  return f"{value:,.0f}"


def table(report: dict) -> str:
  """The README table of a benchmark report (markdown).

  One row per workload; throughputs in configuration-steps per second.
  A grid row shows its peak memory and chunks instead of throughputs.
  """
  lines = [
    f"{report['devices']} x {report['device_kind']}, "
    f"matmul peak {report['matmul_peak_gflops']:.0f} GFLOP/s; "
    "throughput in configuration-steps per second; peak RSS is a "
    "process's high-water mark, so rows measured in one process add up; "
    "width is points per device.",
    "",
    "| workload | points x steps | engine | one-at-a-time jit | torch eager "
    "| floor | vs jit | vs torch | floor fraction | GFLOP/s "
    "| peak RSS (MiB) | chunks x width |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
    "| ---: | ---: |",
  ]
  for w in report["workloads"]:
    size = f"{w['grid_points']:,} x {w['steps']}"
    rss = f"{w['peak_rss_mib']:,.0f}"
    if "throughput" in w:
      rates = w["throughput"]
      cells = [
        _number(rates["sweep"]),
        _number(rates["per_config_jit"]),
        _number(rates["torch_eager"]),
        _number(rates["floor"]),
        _number(w["speedup_vs_per_config_jit"], "x"),
        _number(w["speedup_vs_torch_eager"], "x"),
        _number(w["floor_fraction"], "f"),
        _number(w["achieved_gflops"], "f"),
        rss,
        f"1 x {-(-w['grid_points'] // report['devices']):,}",
      ]
    else:
      cells = ["—"] * 8 + [rss, f"{w['chunks']} x {w['chunk_width']:,}"]
    lines.append(f"| {w['name']} | {size} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv):
  del argv
  sweep.use_cpu_devices(_CPU_DEVICES.value)
  out = pathlib.Path(_OUT.value)
  if _PRINT_TABLE.value:
    print(table(json.loads(out.read_text())))
    return
  report = run(_WORKLOADS.value, _STEPS.value, _REPEATS.value, _SUBSET.value)
  results.write_json(out, report)
  logging.info("wrote %s", out)


if __name__ == "__main__":
  app.run(main)
