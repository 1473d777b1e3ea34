"""The benchmark's measurements on a tiny workload, and its table."""

import importlib.util
import math
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def benchmark():
  spec = importlib.util.spec_from_file_location(
    "benchmark", ROOT / "scripts" / "benchmark.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _positive(value) -> bool:
  return isinstance(value, float) and math.isfinite(value) and value > 0


def test_flop_count_adds_up_the_documented_products(benchmark):
  n, d, num_components, k, r = 8, 5, 3, 2, 3
  forward = 4 * k * d * r + 2 * k * k * d + 2 * num_components * k * d
  forward += 4 * n * k * k + 2 * n * n * k
  assert benchmark.flops_per_config_step(n, d, num_components, k, r) == (
    3 * forward
  )


def test_a_tiny_batch_workload_times_every_way(benchmark):
  config = benchmark.batch_config(8, 3, seeds=2, anisotropies=2, dim=8)
  record = benchmark.batch_workload("tiny", config, repeats=1, subset=2)
  assert set(record) >= {
    "name",
    "grid_points",
    "steps",
    "batch",
    "d",
    "K",
    "throughput",
    "compile_s",
    "speedup_vs_per_config_jit",
    "speedup_vs_torch_eager",
    "floor_fraction",
    "achieved_gflops",
    "compilations",
    "peak_rss_mib",
  }
  assert (record["grid_points"], record["steps"], record["batch"]) == (4, 3, 8)
  assert (record["d"], record["K"]) == (8, 4)
  rates = record["throughput"]
  assert set(rates) == {"sweep", "per_config_jit", "torch_eager", "floor"}
  assert set(record["compile_s"]) == {"sweep", "per_config_jit", "floor"}
  if benchmark.torch_module() is None:
    assert rates.pop("torch_eager") is None
    assert record["speedup_vs_torch_eager"] is None
    assert "pip install" in record["torch_eager_note"]
  else:
    assert _positive(record["speedup_vs_torch_eager"])
  for value in (
    *rates.values(),
    *record["compile_s"].values(),
    record["speedup_vs_per_config_jit"],
    record["floor_fraction"],
    record["achieved_gflops"],
    record["peak_rss_mib"],
  ):
    assert _positive(value)
  assert record["compilations"] == {"jit(train_grid)": 1}


def test_a_tiny_grid_runs_in_chunks_of_one_program(benchmark):
  config = benchmark.grid_config(
    seeds=2, anisotropies=3, steps=3, batch=8, dim=8, chunk_width=2
  )
  record = benchmark.grid_workload("grid", config)
  assert record["grid_points"] == 6
  assert record["chunk_width"] == 2
  chunks = -(-6 // (2 * len(benchmark.jax.devices())))
  assert record["chunks"] == chunks
  assert record["compilations"] == {"jit(train_grid)": 1}
  assert _positive(record["wall_s"]) and _positive(record["peak_rss_mib"])

  report = {
    "devices": 1,
    "device_kind": "cpu",
    "matmul_peak_gflops": 100.0,
    "workloads": [record],
  }
  row = benchmark.table(report).splitlines()[-1]
  assert row.startswith("| grid | 6 x 3 |") and f"| {chunks} x 2 |" in row
