"""The sweep engine: a whole grid as one program, in chunks, on all devices.

A grid's points may differ in shape (d, K, k). The engine pads every point
to the grid's largest shape: a padded mixture has zero means and weights on
its padded components, zero nuisance factors and an identity covariance on
its padded coordinates, and a [k, d] mask zeroes the encoder's padded rows
and columns (see `train.train`). Padded coordinates and components are then
inert: no draw lands in a padded component, no encoder reads a padded
coordinate, and no embedding has a padded dimension. So a grid is one
compiled training program per method and one for the baselines, whatever
shapes it mixes.

The grid runs as an outer loop over chunks of equal width, each one call of
the same compiled programs, so that memory stays bounded by the chunk. A
chunk is laid out over every device on a one-axis mesh and each device
trains its slice with `shard_map`: every device runs the same per-device
program on `chunk_width` points, so a run on four devices computes what a
run on one device computes with the same per-device width. Every finished
chunk's rows are written to a `ChunkStore`; a run restarted with the same
resolved config (its fingerprint) loads them instead of recomputing.

Memory per point is estimated from the arithmetic of one training step
(`point_bytes`); `chunk_width` divides a budget by it.

On a CPU host, `use_cpu_devices` gives JAX one device per core, so that the
cores run their slices side by side.

Several hosts: call `jax.distributed.initialize()` before the run (see the
README); `jax.devices()` then spans every host, each host feeds its own
devices' slices of every chunk (`make_array_from_callback`), and every host
gathers the results (`process_allgather`).
"""

import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import shutil
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ssl_gmm import results
from ssl_gmm.mixture import Mixture

AXIS = "grid"
_FLOAT = 4  # Bytes of a float32.


class Padding(NamedTuple):
  """The padded shape of a grid: the largest of its points' shapes.

  Attributes:
    dim: input dimension d.
    num_components: number of components K.
    rank: columns of the nuisance factors U and W.
    k: embedding dimension.
  """

  dim: int
  num_components: int
  rank: int
  k: int


def padding_of(
  shapes: Sequence[tuple[int, int, int]], ranks: Sequence[int]
) -> Padding:
  """The padded shape of points of shapes (d, K, k) and nuisance ranks r."""
  dims, components, ks = zip(*shapes, strict=True)
  return Padding(max(dims), max(components), max(ranks), max(ks))


def pad_mixtures(mixtures: Mixture, padding: Padding) -> Mixture:
  """Pads stacked [P, ...] mixtures of one shape to `padding` (NumPy).

  Padded components get zero means and zero weight; padded coordinates get
  zero means and nuisance factors, and the identity in the covariance, so
  that Sigma stays positive definite and the Fisher subspace of the padded
  mixture is the unpadded one with zeros appended.
  """
  means, cov, left, right, weights = (np.asarray(a) for a in mixtures)
  points, num_components, dim = means.shape
  rank = left.shape[-1]
  pad = padding

  def zeros(*shape):
    return np.zeros((points, *shape), np.float32)

  padded_means = zeros(pad.num_components, pad.dim)
  padded_means[:, :num_components, :dim] = means
  padded_cov = np.broadcast_to(
    np.eye(pad.dim, dtype=np.float32), (points, pad.dim, pad.dim)
  ).copy()
  padded_cov[:, :dim, :dim] = cov
  padded_left, padded_right = zeros(pad.dim, pad.rank), zeros(pad.dim, pad.rank)
  padded_left[:, :dim, :rank] = left
  padded_right[:, :dim, :rank] = right
  padded_weights = zeros(pad.num_components)
  padded_weights[:, :num_components] = weights
  return Mixture(
    padded_means, padded_cov, padded_left, padded_right, padded_weights
  )


def encoder_masks(
  shapes: Sequence[tuple[int, int, int]], padding: Padding
) -> np.ndarray:
  """[P, k, d] float32 masks: ones on each point's own rows and columns."""
  masks = np.zeros((len(shapes), padding.k, padding.dim), np.float32)
  for p, (dim, _, k) in enumerate(shapes):
    masks[p, :k, :dim] = 1
  return masks


def point_bytes(
  method: str,
  batch: int,
  dim: int,
  k: int,
  steps: int,
  sampler: str,
  mlp: tuple[int, int] | None = None,
) -> int:
  """Bytes one grid point holds while one training step runs.

  The arithmetic: the two views' samples ([n, d] each, or [n, k] drawn
  directly in the embedding), their embeddings, the [n, n] logits with
  their softmax and gradient ([2n, 2n] for NT-Xent), four copies of the
  parameters for Adam (parameters, gradient, two moments) and the loss
  trace; everything float32, and every array doubled for the backward
  pass's residuals. An MLP encoder (`mlp` = (width, depth)) adds its
  weights and, for both views, every hidden layer's input and output.
  """
  width = k if sampler == "embedding" else dim
  samples = 2 * batch * width + 2 * batch * k
  side = 2 * batch if method == "ntxent" else batch
  logits = 3 * side * side
  weights = k * dim
  if mlp is not None:
    hidden, depth = mlp
    if depth > 0:
      weights = dim * hidden + (depth - 1) * hidden * hidden + hidden * k
      samples += 2 * 2 * batch * hidden * depth
  params = 4 * (weights + k * k)
  return 2 * _FLOAT * (samples + logits + params) + _FLOAT * steps


def chunk_width(budget_bytes: int, per_point: int, points: int) -> int:
  """Points per device that fit the budget, at least one, at most all."""
  return max(1, min(points, budget_bytes // max(per_point, 1)))


def use_cpu_devices(count: int | None = None) -> None:
  """Splits the host's CPU into `count` JAX devices (default: one per core).

  JAX sees one CPU device by default, and XLA runs a grid's many small
  per-point operations on it with little use of a second core. With one
  device per core, every core trains its own slice of each chunk, as the
  devices of an accelerator host do. This changes nothing on a host whose
  default devices are accelerators. Call it before JAX first uses a device
  (it configures the CPU backend, which starts on first use).
  """
  count = count or os.cpu_count() or 1
  jax.config.update("jax_num_cpu_devices", count)


def mesh() -> Mesh:
  """A one-axis mesh over every device (of every host)."""
  return Mesh(np.array(jax.devices()), (AXIS,))


def shard(tree, grid_mesh: Mesh):
  """Places every [W, ...] leaf on the mesh, split along its leading axis.

  Every host holds the whole chunk and provides its own devices' slices,
  so this works unchanged on one host or many.
  """
  sharding = NamedSharding(grid_mesh, P(AXIS))

  def place(leaf):
    leaf = np.asarray(leaf)
    return jax.make_array_from_callback(
      leaf.shape, sharding, lambda index: leaf[index]
    )

  return jax.tree.map(place, tree)


def gather(tree):
  """Every leaf of a sharded output as one NumPy array on every host."""
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree.map(np.asarray, tree)


def sharded(fn: Callable, grid_mesh: Mesh) -> Callable:
  """fn, mapped over the mesh: each device applies it to its own slice."""
  return jax.shard_map(
    fn, mesh=grid_mesh, in_specs=P(AXIS), out_specs=P(AXIS), check_vma=False
  )


# Compiled grid programs of this process, by program key and input avals:
# a second run of the same shapes (a resumed run, a notebook rerunning a
# cell) reuses them instead of compiling again.
_EXECUTABLES: dict = {}


def clear_compiled() -> None:
  """Forgets every compiled grid program of this process."""
  _EXECUTABLES.clear()


@dataclasses.dataclass
class Program:
  """A grid program, compiled on first use (or reused) and timed by chunk.

  Attributes:
    name: label of its log lines and timings.
    jitted: the jitted function.
    steps: training steps per point, for the throughput.
    key: what, besides its inputs' shapes, dtypes and shardings, identifies
      the compiled program (static settings and devices).
  """

  name: str
  jitted: Callable
  steps: int
  key: tuple = ()
  compiled: Callable | None = None
  compile_s: float = 0.0
  run_s: float = 0.0
  point_steps: int = 0

  def __call__(self, *args):
    if self.compiled is None:
      avals = tuple(
        (a.shape, a.dtype, getattr(a, "sharding", None))
        for a in jax.tree.leaves(args)
      )
      cache_key = (self.key, jax.tree.structure(args), avals)
      self.compiled = _EXECUTABLES.get(cache_key) if self.key else None
      if self.compiled is None:
        start = time.perf_counter()
        self.compiled = self.jitted.lower(*args).compile()
        self.compile_s = time.perf_counter() - start
        logging.info("%s: compiled in %.1fs", self.name, self.compile_s)
        if self.key:
          _EXECUTABLES[cache_key] = self.compiled
    start = time.perf_counter()
    out = jax.block_until_ready(self.compiled(*args))
    self.run_s += time.perf_counter() - start
    self.point_steps += jax.tree.leaves(args)[0].shape[0] * self.steps
    return out

  def timing(self) -> dict:
    return {
      "compile_s": self.compile_s,
      "run_s": self.run_s,
      "steps_per_s": self.point_steps / max(self.run_s, 1e-9),
    }


@functools.cache
def code_digest() -> str:
  """A hash of this package's source files.

  Part of every chunk fingerprint, so that changed code never resumes from
  chunks that older code computed.
  """
  digest = hashlib.sha256()
  package = pathlib.Path(__file__).parent
  for path in sorted(package.rglob("*.py")):
    digest.update(path.relative_to(package).as_posix().encode())
    digest.update(path.read_bytes())
  return digest.hexdigest()


def fingerprint(resolved: dict, width: int) -> str:
  """A hash of a resolved config, the chunk width and the package's source."""
  text = json.dumps(
    {"config": resolved, "chunk": width, "code": code_digest()}, sort_keys=True
  )
  return hashlib.sha256(text.encode()).hexdigest()[:16]


class ChunkStore:
  """Finished chunks' rows on disk, kept for one config fingerprint.

  A folder holds `fingerprint.txt` and one `chunk-<i>.json` per finished
  chunk, each written atomically. A store opened with another fingerprint
  starts empty: chunks of a different config or width are removed.
  """

  def __init__(self, folder: pathlib.Path, key: str):
    self.folder = pathlib.Path(folder)
    marker = self.folder / "fingerprint.txt"
    if not marker.exists() or marker.read_text().strip() != key:
      shutil.rmtree(self.folder, ignore_errors=True)
      results.atomic_write_text(marker, key + "\n")

  def _path(self, index: int) -> pathlib.Path:
    return self.folder / f"chunk-{index:05d}.json"

  def load(self, index: int) -> list[dict] | None:
    path = self._path(index)
    return json.loads(path.read_text()) if path.exists() else None

  def save(self, index: int, rows: list[dict]) -> None:
    results.write_json(self._path(index), rows)

  def remove(self) -> None:
    shutil.rmtree(self.folder, ignore_errors=True)


def chunk_indices(points: int, width: int) -> list[np.ndarray]:
  """Indices of each chunk; the last is filled up by repeating its last
  point, so every chunk has the same width (and shape)."""
  chunks = []
  for start in range(0, points, width):
    index = np.arange(start, min(start + width, points))
    fill = np.full(width - len(index), index[-1])
    chunks.append(np.concatenate([index, fill]))
  return chunks


def run_chunks(
  points: int,
  width: int,
  work: Callable[[np.ndarray, int], list[dict]],
  store: ChunkStore | None,
  name: str,
) -> list[dict]:
  """Runs work(index, real) on every chunk, or loads the finished ones.

  Args:
    points: grid points.
    width: points per chunk (over all devices).
    work: the rows of one chunk: its `width` indices, of which the first
      `real` are distinct points (the rest repeat the last).
    store: where finished chunks are kept, or None.
    name: the label of the progress lines.

  Returns:
    The rows of every chunk, in chunk order.
  """
  chunks = chunk_indices(points, width)
  rows, done, start, computed = [], 0, time.perf_counter(), 0
  for i, index in enumerate(chunks):
    real = min(width, points - i * width)
    found = store.load(i) if store is not None else None
    if found is not None:
      rows += found
      done += real
      logging.info(
        "%s: chunk %d/%d loaded, %d/%d points",
        name,
        i + 1,
        len(chunks),
        done,
        points,
      )
      continue
    found = work(index, real)
    computed += real
    if store is not None:
      store.save(i, found)
    rows += found
    done += real
    elapsed = time.perf_counter() - start
    rate = computed / max(elapsed, 1e-9)
    eta = (points - done) / rate if rate > 0 else math.inf
    logging.info(
      "%s: chunk %d/%d, %d/%d points, %.1f points/s, ETA %.0f s",
      name,
      i + 1,
      len(chunks),
      done,
      points,
      rate,
      eta,
    )
  return rows
