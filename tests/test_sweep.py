"""The sweep engine: padding, chunks, devices, resume, memory arithmetic.

Runs here are short (a few steps), as runs of different chunk widths or
paddings agree exactly only over a few steps: float rounding differs with
the width of the vectorised axis, and long training amplifies it. Runs
with the same per-device width must agree to 1e-4 however they are split
over chunks and devices.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from conftest import tiny_config

from ssl_gmm import baselines, experiment, results, sweep, synthetic
from ssl_gmm import train as training
from ssl_gmm.mixture import make_mixture

METRICS = ("distance", "fisher_ratio", "nuisance_share", "accuracy", "nmi")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def engine_config(width=None, **changes):
  """Two dims padded together, two anisotropies, two seeds: 8 points."""
  config = tiny_config()
  with config.unlocked():
    config.methods = ("infonce", "whitened_pca", "lda", "oracle")
    config.claims = ()
    config.mixture.num_components = 3
    config.sweep.dim = (6, 8)
    config.engine.chunk_width = width
    for name, value in changes.items():
      config.train[name] = value
  return config


def by_point(rows):
  return {(r["method"], r["seed"], r["anisotropy"], r["dim"]): r for r in rows}


def assert_rows_match(rows, reference, atol=1e-4):
  """The same rows, each metric within atol: nothing lost or repeated."""
  assert len(rows) == len(reference)
  found, expected = by_point(rows), by_point(reference)
  assert len(found) == len(rows)  # No point twice.
  assert found.keys() == expected.keys()
  for key, row in expected.items():
    for name in METRICS:
      np.testing.assert_allclose(found[key][name], row[name], atol=atol)
    assert found[key]["diverged"] == row["diverged"]


@pytest.fixture(scope="module")
def plain_run():
  """One device, two points per chunk: four chunks."""
  rows = synthetic.run_grid(engine_config(width=2)).rows
  assert len(by_point(rows)) == len(rows) == 4 * 8
  return rows


_SHARDED = """
import json, sys
import jax
from conftest import tiny_config
from test_sweep import engine_config
from ssl_gmm import synthetic
assert len(jax.devices()) == 4, jax.devices()
rows = synthetic.run_grid(engine_config(width=2)).rows
json.dump(rows, open(sys.argv[1], "w"))
"""


def test_four_devices_compute_what_one_device_computes(plain_run, tmp_path):
  # Two points per device: the plain run takes four chunks on one device,
  # this one a single chunk over four devices.
  out = tmp_path / "rows.json"
  env = dict(os.environ)
  env["XLA_FLAGS"] += " --xla_force_host_platform_device_count=4"
  env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])
  subprocess.run(
    [sys.executable, "-c", _SHARDED, str(out)],
    check=True,
    env=env,
    cwd=tmp_path,
    timeout=300,
  )
  assert_rows_match(json.loads(out.read_text()), plain_run)


def test_an_interrupted_run_resumes_from_its_finished_chunks(
  plain_run, tmp_path, monkeypatch
):
  config = engine_config(width=2)
  evaluate, calls = synthetic.evaluate, []

  def interrupted(*args):
    calls.append(args[1].point.tolist())
    if len(calls) == 3:  # Chunk 2 of 4 (two shapes per chunk).
      raise KeyboardInterrupt
    return evaluate(*args)

  monkeypatch.setattr(synthetic, "evaluate", interrupted)
  with pytest.raises(KeyboardInterrupt):
    experiment.run(config, tmp_path)
  chunks = tmp_path / "anisotropy.partial" / "chunks"
  assert sorted(p.name for p in chunks.glob("chunk-*.json")) == [
    "chunk-00000.json"
  ]
  assert not (tmp_path / "anisotropy").exists()

  calls.clear()
  monkeypatch.setattr(
    synthetic, "evaluate", lambda *a: calls.append(1) or evaluate(*a)
  )
  experiment.run(config, tmp_path)
  assert len(calls) == 6  # Chunks 1 to 3, two shapes each; chunk 0 loaded.
  assert not (tmp_path / "anisotropy.partial").exists()
  rows = results.read_csv(tmp_path / "anisotropy" / "results.csv")
  assert_rows_match(rows, plain_run)


def test_a_changed_config_does_not_reuse_chunks(tmp_path):
  store = sweep.ChunkStore(tmp_path, "first")
  store.save(0, [{"a": 1}])
  assert sweep.ChunkStore(tmp_path, "first").load(0) == [{"a": 1}]
  assert sweep.ChunkStore(tmp_path, "second").load(0) is None
  config = engine_config(width=2)
  resolved = json.loads(config.to_json())
  assert sweep.fingerprint(resolved, 2) != sweep.fingerprint(resolved, 4)


def test_changed_code_does_not_reuse_chunks(monkeypatch):
  resolved = json.loads(engine_config(width=2).to_json())
  before = sweep.fingerprint(resolved, 2)
  monkeypatch.setattr(sweep, "code_digest", lambda: "edited source")
  assert sweep.fingerprint(resolved, 2) != before


def test_a_run_interrupted_while_publishing_keeps_its_chunks(
  plain_run, tmp_path, monkeypatch
):
  # Every chunk is finished when publishing starts; losing them there
  # would make the rerun recompute the whole grid.
  config = engine_config(width=2)
  write = results.atomic_write_bytes

  def interrupted(path, data):
    if str(path).endswith(".png"):
      raise KeyboardInterrupt
    write(path, data)

  monkeypatch.setattr(results, "atomic_write_bytes", interrupted)
  with pytest.raises(KeyboardInterrupt):
    experiment.run(config, tmp_path)
  chunks = tmp_path / "anisotropy.partial" / "chunks"
  assert len(list(chunks.glob("chunk-*.json"))) == 4

  monkeypatch.setattr(results, "atomic_write_bytes", write)
  evaluate, calls = synthetic.evaluate, []
  monkeypatch.setattr(
    synthetic, "evaluate", lambda *a: calls.append(1) or evaluate(*a)
  )
  experiment.run(config, tmp_path)
  assert not calls  # Every chunk loaded, none recomputed.
  assert not (tmp_path / "anisotropy.partial").exists()
  rows = results.read_csv(tmp_path / "anisotropy" / "results.csv")
  assert_rows_match(rows, plain_run)


def test_point_bytes_follows_the_arithmetic_of_one_step():
  # InfoNCE, batch 4, d 5, k 2, plain sampler, 10 steps, float32:
  # samples 2*4*5 + embeddings 2*4*2 = 56; logits 3*4*4 = 48;
  # parameters 4 * (2*5 + 2*2) = 56; doubled for the backward pass,
  # plus a 10-step loss trace.
  assert sweep.point_bytes("infonce", 4, 5, 2, 10, "plain") == (
    2 * 4 * (56 + 48 + 56) + 4 * 10
  )
  # NT-Xent's logits are [2n, 2n]: 3*8*8 = 192.
  assert sweep.point_bytes("ntxent", 4, 5, 2, 10, "plain") == (
    2 * 4 * (56 + 192 + 56) + 4 * 10
  )
  # A batch of 4096 holds 3 x 64 MiB of InfoNCE logits per point.
  big = sweep.point_bytes("infonce", 4096, 32, 3, 1, "embedding")
  assert big > 2 * 3 * 4096**2 * 4


def test_the_chunk_count_follows_from_the_memory_budget(tmp_path):
  assert sweep.chunk_width(3 * 1000, 1000, 4) == 3
  assert sweep.chunk_width(999, 1000, 4) == 1  # At least one point.
  assert sweep.chunk_width(100 * 1000, 1000, 4) == 4  # At most all.
  # The last chunk repeats its last point up to the common width.
  assert [c.tolist() for c in sweep.chunk_indices(4, 3)] == [
    [0, 1, 2],
    [3, 3, 3],
  ]
  config = engine_config()
  with config.unlocked():
    config.methods = ("infonce",)
    config.sweep.dim = (6,)
    config.downstream = False  # Only the chunks are counted.
  t = config.train
  per_point = sweep.point_bytes("infonce", t.batch, 6, 2, t.steps, t.sampler)
  # A budget of three points' worth: 4 points run as 2 chunks of 3.
  with config.unlocked():
    config.engine.memory_budget_mib = 3.5 * per_point / 2**20
  synthetic.run_grid(config, tmp_path)
  assert len(list(tmp_path.glob("chunk-*.json"))) == 2


def test_the_engine_logs_one_line_per_chunk(tmp_path, caplog):
  # The plain run's config and width: in a process that ran it, its
  # compiled programs are reused.
  with caplog.at_level("INFO"):
    synthetic.run_grid(engine_config(width=2), tmp_path / "chunks")
  lines = [r.getMessage() for r in caplog.records if "chunk " in r.getMessage()]
  assert lines[0].startswith("anisotropy: chunk 1/4, 2/8 points, ")
  assert lines[-1].startswith("anisotropy: chunk 4/4, 8/8 points, ")
  assert all("points/s, ETA" in line for line in lines)
  assert len(list((tmp_path / "chunks").glob("chunk-*.json"))) == 4


def test_a_mixed_shape_grid_compiles_one_program_per_method(tmp_path):
  from ssl_gmm import compilation

  config = engine_config(width=8)
  with config.unlocked():
    config.sweep.dim = (8,)
    config.sweep.k = (1, 2)
    config.downstream = False  # Compilations and ranks are what is read.
  sweep.clear_compiled()
  with compilation.count_compilations() as compiled:
    rows = synthetic.run_grid(config).rows
  assert compiled["jit(train_grid)"] == 1
  assert compiled["jit(baseline_grid)"] == 1
  assert len(rows) == 4 * 8
  ranks = {(r["method"], r["k"]): r["rank"] for r in rows}
  assert ranks[("infonce", 1.0)] == 1 and ranks[("infonce", 2.0)] == 2


def _padded(mixture, dim, num_components, rank, k):
  padding = sweep.Padding(dim, num_components, rank, k)
  stacked = jax.tree.map(lambda a: np.asarray(a)[None], mixture)
  return jax.tree.map(
    lambda a: jnp.asarray(a[0]), sweep.pad_mixtures(stacked, padding)
  )


def test_padded_coordinates_and_components_are_inert_in_training():
  mixture = make_mixture(jax.random.PRNGKey(0), 6, 3, 50.0)
  padded = _padded(mixture, 9, 5, 5, 4)
  mask = sweep.encoder_masks([(6, 3, 2)], sweep.Padding(9, 5, 5, 4))[0]
  hyper = training.Hyper(*(jnp.float32(v) for v in (1e-2, 0.5, 1.0)))
  key = jax.random.PRNGKey(1)
  # SimSiam (encoder and predictor) drawing x, InfoNCE drawing embeddings.
  for sampler, method in (("plain", "simsiam"), ("embedding", "infonce")):
    out = training.train(
      key,
      key,
      padded,
      hyper,
      jnp.asarray(mask),
      method=method,
      k=4,
      steps=30,
      batch=16,
      sampler=sampler,
    )
    encoder = np.asarray(out.encoder)
    assert np.all(np.isfinite(encoder)) and not out.diverged
    assert np.all(encoder[2:] == 0) and np.all(encoder[:, 6:] == 0)
    assert np.any(encoder[:2, :6] != 0)
    predictor = np.asarray(out.predictor)
    assert np.all(predictor[2:] == 0) and np.all(predictor[:, 2:] == 0)


def test_padded_baselines_span_the_unpadded_ones():
  # Exact moments of the same samples with three zero coordinates appended:
  # every baseline of the padded problem spans what the unpadded one spans
  # (principal angles from scipy.linalg.subspace_angles), with zero padded
  # rows and columns; so does the oracle of the padded mixture.
  mixture = make_mixture(jax.random.PRNGKey(2), 6, 3, 30.0)
  padded = _padded(mixture, 9, 4, 4, 3)
  x = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (400, 6)))
  labels = np.arange(400) % 3
  x = x + 3 * np.eye(6)[labels]
  x_pos = np.roll(x, 3, axis=0)  # Same labels, other samples.
  with jax.enable_x64(True):
    plain = baselines.fit_baselines(
      baselines.moments_from_samples(x, labels, 3, x_pos),
      jax.tree.map(lambda a: a.astype(jnp.float64), mixture),
      k=2,
    )
    pad = lambda a: np.pad(a, ((0, 0), (0, 3)))  # noqa: E731
    fitted = baselines.fit_baselines(
      baselines.moments_from_samples(pad(x), labels, 4, pad(x_pos)),
      padded,
      jnp.asarray([1.0] * 6 + [0.0] * 3),
      jnp.asarray([1.0, 1.0, 0.0]),
      k=3,
    )
    for name, encoder in fitted.items():
      encoder = np.asarray(encoder)
      assert np.all(encoder[2:] == 0) and np.all(encoder[:, 6:] == 0), name
      own = np.asarray(plain[name])
      angles = scipy.linalg.subspace_angles(encoder[:2, :6].T, own.T)
      assert len(angles) == 2 and np.max(angles) < 1e-6, name


def test_a_padded_grid_agrees_with_unpadded_runs_in_distribution():
  """Padding changes the random draws, not their law.

  d = 6 alone is one unpadded program; d = 6 and 10 together are one
  program padded to 10. Over 6 seeds the mean distance at d = 6 agrees
  within three standard errors of the difference.
  """
  config = engine_config(width=None, steps=200, batch=64)
  with config.unlocked():
    config.seeds = 6
    config.methods = ("infonce",)
    config.sweep.anisotropy = (10.0,)
    config.sweep.dim = (6, 10)
    config.downstream = False  # Only distances are compared.
  together = synthetic.run_grid(config).rows
  for dim in (6,):
    with config.unlocked():
      config.sweep.dim = (dim,)
    alone = [r["distance"] for r in synthetic.run_grid(config).rows]
    padded = [r["distance"] for r in together if r["dim"] == dim]
    spread = np.sqrt(np.var(alone) / 6 + np.var(padded) / 6)
    assert abs(np.mean(alone) - np.mean(padded)) <= 3 * spread + 0.02
    assert np.mean(padded) < 0.3
