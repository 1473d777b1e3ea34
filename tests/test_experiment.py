"""The experiment runner: grid, keys, files, verdicts, safety of results."""

import json
import os
import pathlib

import jax
import numpy as np
import pytest
from conftest import tiny_config

from ssl_gmm import experiment, plotting, report, results, sweep, synthetic
from ssl_gmm.train import TRAINED_METHODS


def test_grid_is_seeds_times_swept_values_with_fixed_settings_broadcast():
  config = tiny_config()
  with config.unlocked():
    config.sweep.p_same = [1.0, 0.5]
  grid = synthetic.build_grid(config)
  assert grid.size == config.seeds * 2 * 2
  np.testing.assert_array_equal(grid.seed, [0, 0, 0, 0, 1, 1, 1, 1])
  np.testing.assert_array_equal(grid.swept["p_same"], [1, 0.5] * 4)
  np.testing.assert_array_equal(
    grid.settings["temperature"], np.full(8, config.train.temperature)
  )


def test_one_seed_shares_its_mixture_across_swept_values():
  config = tiny_config()
  grid = synthetic.build_grid(config)
  keys = synthetic.make_keys(config.seed, grid)
  mixtures = synthetic.make_mixtures(config, keys, grid)
  means = np.asarray(mixtures.means)
  np.testing.assert_array_equal(means[0], means[1])  # seed 0, two values
  assert not np.allclose(means[0], means[2])  # seed 1
  # Every point draws its own data.
  assert len({tuple(np.asarray(k).ravel()) for k in keys.data}) == grid.size


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  sweep.clear_compiled()  # Its compilations are counted below.
  out = tmp_path_factory.mktemp("results")
  summary = experiment.run(tiny_config(), out)
  return out, summary


def test_run_writes_every_file_with_the_contracted_columns(tiny_run):
  out, summary = tiny_run
  folder = out / "anisotropy"
  names = {p.name for p in folder.iterdir()}
  assert names == {
    "config.json",
    "results.csv",
    "summary.json",
    "anisotropy.png",
  }
  rows = results.read_csv(folder / "results.csv")
  config = tiny_config()
  assert len(rows) == len(config.methods) * config.seeds * 2
  expected = ["method", "seed", "anisotropy", *results.METRIC_COLUMNS]
  assert list(rows[0]) == expected
  written = json.loads((folder / "summary.json").read_text())
  assert written["experiment"] == "anisotropy"
  assert [c["name"] for c in written["claims"]] == ["C1", "C2", "C3"]
  assert all(isinstance(c["holds"], bool) for c in written["claims"])
  meta = json.loads((folder / "config.json").read_text())
  assert meta["config"]["train"]["steps"] == config.train.steps
  assert meta["packages"]["jax"] == jax.__version__
  assert not (out / "anisotropy.partial").exists()


def test_run_compiles_each_grid_program_once(tiny_run):
  _, summary = tiny_run
  assert summary["compilations"] == {
    "jit(train_grid)": len(
      [m for m in tiny_config().methods if m in TRAINED_METHODS]
    ),
    "jit(baseline_grid)": 1,
  }


def test_oracle_and_metrics_ranges(tiny_run):
  out, _ = tiny_run
  rows = results.read_csv(out / "anisotropy" / "results.csv")
  for row in rows:
    assert 0 <= row["distance"] <= 1
    assert -1e-9 <= row["fisher_ratio"] <= 1 + 1e-6
    if row["method"] == "oracle":
      assert row["distance"] == pytest.approx(0, abs=1e-6)
      assert row["fisher_ratio"] == pytest.approx(1, abs=1e-6)


def test_identical_seeds_give_identical_files(tiny_run, tmp_path):
  out, _ = tiny_run
  experiment.run(tiny_config(), tmp_path)
  first = (out / "anisotropy" / "results.csv").read_text()
  assert (tmp_path / "anisotropy" / "results.csv").read_text() == first


def test_a_failed_run_leaves_previous_results_whole(tmp_path, monkeypatch):
  config = tiny_config(methods=("infonce", "lda"), claims=())
  experiment.run(config, tmp_path)
  before = {p.name: p.read_bytes() for p in (tmp_path / "anisotropy").iterdir()}

  def broken(*args, **kwargs):
    raise RuntimeError("figure failed")

  monkeypatch.setattr(plotting, "sweep_figure", broken)
  with config.unlocked():
    config.seed = 7
  with pytest.raises(RuntimeError, match="figure failed"):
    experiment.run(config, tmp_path)
  after = {p.name: p.read_bytes() for p in (tmp_path / "anisotropy").iterdir()}
  assert after == before


def test_a_summary_never_sits_beside_files_it_does_not_describe(
  tmp_path, monkeypatch
):
  # Publishing renames file by file; interrupted between two renames, the
  # folder may hold new and old files, but never the old summary with them.
  config = tiny_config(methods=("lda",), claims=())
  experiment.run(config, tmp_path)
  folder = tmp_path / "anisotropy"
  replace, moved = os.replace, []

  def interrupted(source, target):
    if pathlib.Path(target).parent == folder:  # A publishing move.
      if moved:
        raise KeyboardInterrupt
      moved.append(target)
    replace(source, target)

  monkeypatch.setattr(os, "replace", interrupted)
  with config.unlocked():
    config.seed = 7
  with pytest.raises(KeyboardInterrupt):
    experiment.run(config, tmp_path)
  assert moved and not (folder / "summary.json").exists()
  monkeypatch.setattr(os, "replace", replace)
  summary = experiment.run(config, tmp_path)
  written = json.loads((folder / "summary.json").read_text())
  assert written == json.loads(json.dumps(summary))  # What run returned.


def test_diverged_points_are_recorded_as_failures(tmp_path):
  config = tiny_config(methods=("infonce_dot", "oracle"), claims=())
  with config.unlocked():
    del config.sweep["anisotropy"]
    config.sweep.learning_rate = [1e-2, 1e30]
  experiment.run(config, tmp_path)
  rows = results.read_csv(tmp_path / "anisotropy" / "results.csv")
  dot = [r for r in rows if r["method"] == "infonce_dot"]
  diverged = [r for r in dot if r["learning_rate"] == 1e30]
  assert diverged and all(r["diverged"] for r in diverged)
  for row in diverged:
    assert (row["distance"], row["fisher_ratio"], row["nmi"]) == (1, 0, 0)
    assert row["accuracy"] == pytest.approx(1 / 3)
  assert not any(r["diverged"] for r in dot if r["learning_rate"] == 1e-2)


def test_report_gathers_every_summary_present(tiny_run, tmp_path):
  out, summary = tiny_run
  other = dict(summary, experiment="elsewhere", figure="elsewhere/e.png")
  other["claims"] = [{"name": "CX", "holds": False, "detail": "x = 0.5."}]
  results.write_json(out / "elsewhere" / "summary.json", other)
  text = report.write_report(out, ["anisotropy"]).read_text()
  assert "| [anisotropy](anisotropy/) | C1 |" in text
  assert (
    "| [elsewhere](elsewhere/) | CX | **does not hold** | x = 0.5. |" in text
  )
  assert text.index("## anisotropy") < text.index("## elsewhere")
