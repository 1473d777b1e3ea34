"""Tiny end-to-end runs of the entry points, as a user would call them."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(script: str, *flags: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, str(ROOT / "scripts" / script), *flags],
    capture_output=True,
    text=True,
    cwd=ROOT,
    timeout=300,
  )


def test_reproduce_writes_results_and_report(tmp_path):
  done = _run("reproduce.py", "--profile=smoke", f"--out={tmp_path}")
  assert done.returncode == 0, done.stderr
  summary = json.loads((tmp_path / "anisotropy" / "summary.json").read_text())
  assert summary["profile"] == "smoke"
  report = (tmp_path / "REPORT.md").read_text()
  for claim in ("C1", "C2", "C3"):
    assert f"| [anisotropy](anisotropy/) | {claim} |" in report
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
