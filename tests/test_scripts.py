"""Tiny end-to-end runs of the entry points, as a user would call them."""

import json
import pathlib
import subprocess
import sys

from ssl_gmm import configs, results

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(script: str, *flags: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, str(ROOT / "scripts" / script), *flags],
    capture_output=True,
    text=True,
    cwd=ROOT,
    timeout=300,
  )


def test_reproduce_runs_every_experiment_and_writes_the_report(tmp_path):
  done = _run("reproduce.py", "--profile=smoke", f"--out={tmp_path}")
  assert done.returncode == 0, done.stderr
  report = (tmp_path / "REPORT.md").read_text()
  for name in configs.EXPERIMENTS:
    folder = tmp_path / name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["profile"] == "smoke"
    assert (folder / f"{name}.png").stat().st_size > 0
    assert results.read_csv(folder / "results.csv")
    for claim in summary["claims"]:
      assert isinstance(claim["holds"], bool)
      assert f"| [{name}]({name}/) | {claim['name']} |" in report
  assert "compiled in" in done.stderr  # Progress is logged.


def test_reproduce_refuses_an_unknown_experiment_by_name(tmp_path):
  done = _run("reproduce.py", "--experiments=anisotropy,spectral")
  assert done.returncode != 0
  assert "experiment='spectral'" in done.stderr
  assert "compiled in" not in done.stderr


def test_run_experiment_applies_a_changed_setting(tmp_path):
  done = _run(
    "run_experiment.py",
    "--config=ssl_gmm/configs/anisotropy.py:smoke",
    "--config.k=2",
    "--config.methods=('infonce','oracle')",
    "--config.claims=()",
    f"--out={tmp_path}",
  )
  assert done.returncode == 0, done.stderr
  config = json.loads((tmp_path / "anisotropy" / "config.json").read_text())
  assert config["config"]["k"] == 2
  assert config["config"]["methods"] == ["infonce", "oracle"]
  assert (tmp_path / "REPORT.md").exists()
