"""Tiny end-to-end runs of the entry points, as a user would call them."""

import json
import pathlib
import subprocess
import sys

import pytest

from ssl_gmm import configs, experiment, results

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(script: str, *flags: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    # One CPU device: the tests already run two processes on two cores.
    [sys.executable, str(ROOT / "scripts" / script), "--cpu_devices=1", *flags],
    capture_output=True,
    text=True,
    cwd=ROOT,
    timeout=300,
  )


def test_reproduce_writes_results_and_the_report(tmp_path):
  done = _run(
    "reproduce.py",
    "--profile=smoke",
    "--experiments=phase",
    f"--out={tmp_path}",
  )
  assert done.returncode == 0, done.stderr
  report = (tmp_path / "REPORT.md").read_text()
  for name in ("phase",):
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert summary["profile"] == "smoke"
    for claim in summary["claims"]:
      assert f"| [{name}]({name}/) | {claim['name']} |" in report
  assert "compiled in" in done.stderr  # Progress is logged.
  assert "chunk 1/1, " in done.stderr and "points/s, ETA" in done.stderr


# phase runs end to end above; anisotropy in tests/test_experiment.py; the
# pipelines of multimodal and real_data run in their own tests, which also
# draw their figures and check their claims.
COVERED = ("phase", "anisotropy", "multimodal", "real_data")


@pytest.mark.parametrize(
  "name", [n for n in configs.EXPERIMENTS if n not in COVERED]
)
def test_every_experiment_runs_end_to_end(name, tmp_path):
  summary = experiment.run(configs.get_config(name, "smoke"), tmp_path)
  folder = tmp_path / name
  assert (folder / f"{name}.png").stat().st_size > 0
  rows = results.read_csv(folder / "results.csv")
  assert len(rows) == summary["grid_points"] * len(
    configs.get_config(name, "smoke").methods
  )
  assert summary["claims"]
  for claim in summary["claims"]:
    assert isinstance(claim["holds"], bool) and claim["detail"]


@pytest.mark.parametrize(
  "names, named",
  [
    ("anisotropy,spectral", "experiment='spectral' is invalid"),
    ("phase,anisotropy,phase", "experiment='phase' is invalid: named twice"),
  ],
)
def test_reproduce_refuses_a_bad_experiment_list_by_name(names, named):
  done = _run("reproduce.py", f"--experiments={names}")
  assert done.returncode != 0
  assert named in done.stderr
  assert "compiled in" not in done.stderr


def test_run_experiment_applies_a_changed_setting(tmp_path):
  done = _run(
    "run_experiment.py",
    "--config=ssl_gmm/configs/anisotropy.py:smoke",
    "--config.k=2",
    # Baselines alone: the flags, not training, are under test.
    "--config.methods=('lda','oracle')",
    "--config.claims=()",
    f"--out={tmp_path}",
  )
  assert done.returncode == 0, done.stderr
  config = json.loads((tmp_path / "anisotropy" / "config.json").read_text())
  assert config["config"]["k"] == 2
  assert config["config"]["methods"] == ["lda", "oracle"]
  assert (tmp_path / "REPORT.md").exists()
