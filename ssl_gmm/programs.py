"""Compiling and running a grid program, with its time split and logged.

Compilation is timed apart from the run (ahead-of-time `lower().compile()`),
so the log says how long XLA took and how many configuration-steps per
second the grid then ran.
"""

import time

import jax
from absl import logging


def compile_and_run(fn, args: tuple, static: dict, name: str, steps: int):
  """Compiles the jitted `fn` for `args`, runs it, and times both.

  Args:
    fn: a jitted function taking `*args, **static`.
    args: its array arguments; the leading axis of the first is the grid.
    static: its static keyword arguments.
    name: the label of the log line.
    steps: steps each grid point runs, for the throughput.

  Returns:
    The output, and {"compile_s", "run_s", "steps_per_s"}.
  """
  start = time.perf_counter()
  compiled = fn.lower(*args, **static).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  out = jax.block_until_ready(compiled(*args))
  run_s = time.perf_counter() - start
  points = jax.tree.leaves(args)[0].shape[0]
  rate = points * steps / max(run_s, 1e-9)
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
  return out, {"compile_s": compile_s, "run_s": run_s, "steps_per_s": rate}


def map_points(fn, *args):
  """Applies fn to each point of the leading axis of args, one at a time.

  Use it instead of `jax.vmap` around linear algebra (eigh, cholesky, svd,
  qr): vmap turns those into batched LAPACK calls, which jaxlib spreads over
  XLA's CPU thread pool, and that pool can deadlock when it is already busy
  (seen here on two cores with a batch of three 128 x 128 problems). A
  sequential `lax.map` makes one unbatched call per point.
  """
  return jax.lax.map(lambda point: fn(*point), args)
