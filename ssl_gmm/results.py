"""Writing results so that nothing already written is lost or half-written.

Every file is written whole to a temporary name in the destination folder
and renamed into place (an atomic replace on POSIX file systems). A run
builds its files in `<out>/<experiment>.partial/` and moves each one into
`<out>/<experiment>/` only when all of them are finished, so an interrupted
run leaves the previous results as they were.
"""

import csv
import io
import json
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from importlib import metadata

import jax

# Columns of results.csv, in order; swept settings follow `seed`.
LEADING_COLUMNS = ("method", "seed")
METRIC_COLUMNS = (
  "distance",
  "fisher_ratio",
  "nuisance_share",
  "rank",
  "diverged",
  "accuracy",
  "nmi",
  "ari",
  "final_loss",
  "means_fisher_angle",
)
# The columns of a summary's table of every method, where a run has them.
TABLE_COLUMNS = (
  "distance",
  "fisher_ratio",
  "accuracy",
  "nmi",
  "qda_accuracy",
  "bayes_accuracy",
)
_PACKAGES = (
  "jax",
  "jaxlib",
  "optax",
  "flax",
  "numpy",
  "scipy",
  "scikit-learn",
  "ml_collections",
  "matplotlib",
)


def atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
  """Writes data to path through a temporary file and a rename."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
  try:
    with os.fdopen(handle, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except BaseException:
    pathlib.Path(temporary).unlink(missing_ok=True)
    raise


def atomic_write_text(path: pathlib.Path, text: str) -> None:
  atomic_write_bytes(path, text.encode())


def write_json(path: pathlib.Path, obj) -> None:
  atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
  """Renders rows as CSV with the given columns (missing values empty)."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
  writer.writeheader()
  for row in rows:
    writer.writerow({c: _cell(row.get(c)) for c in columns})
  return buffer.getvalue()


def _cell(value):
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{value:.6g}"
  return value


def read_csv(path: pathlib.Path) -> list[dict]:
  """Reads results.csv back, numbers as floats, booleans as bools."""
  with open(path, newline="") as f:
    return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse(value: str):
  if value in ("True", "False"):
    return value == "True"
  try:
    return float(value)
  except ValueError:
    return value if value else None


def run_metadata() -> dict:
  """Package versions, git commit and devices, for config.json."""
  versions = {}
  for package in _PACKAGES:
    try:
      versions[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      versions[package] = None
  return {
    "packages": versions,
    "python": platform.python_version(),
    "git_commit": _git_commit(),
    "devices": [str(d) for d in jax.devices()],
  }


def _git_commit() -> str | None:
  try:
    out = subprocess.run(
      ["git", "rev-parse", "HEAD"],
      capture_output=True,
      text=True,
      check=True,
      cwd=pathlib.Path(__file__).parent,
    )
  except (OSError, subprocess.CalledProcessError):
    return None
  return out.stdout.strip()


# The folder of a run's finished chunks inside its partial folder: kept
# until the run is published, so that an interrupted run resumes from them.
CHUNKS = "chunks"


def partial_dir(out: pathlib.Path, experiment: str) -> pathlib.Path:
  """The folder where a run of `experiment` builds its files.

  Files an earlier, interrupted run left there are removed; its finished
  chunks (`CHUNKS`) are kept until `publish` succeeds.
  """
  path = pathlib.Path(out) / f"{experiment}.partial"
  path.mkdir(parents=True, exist_ok=True)
  for entry in path.iterdir():
    if entry.is_dir() and entry.name != CHUNKS:
      shutil.rmtree(entry)
    elif entry.is_file():
      entry.unlink()
  return path


def publish(partial: pathlib.Path, final: pathlib.Path) -> None:
  """Moves every finished file of `partial` into `final`, one rename each.

  The old summary.json goes first and the new one last, so that a summary
  present always describes the files beside it, even if the moves are
  interrupted (the folder then has none until a rerun publishes again).
  Files of `final` that the new run did not write stay. The finished chunks
  and `partial` are removed only once everything is in place.
  """
  final.mkdir(parents=True, exist_ok=True)
  (final / "summary.json").unlink(missing_ok=True)
  files = [p for p in partial.iterdir() if p.is_file()]
  last = lambda path: (path.name == "summary.json", path.name)  # noqa: E731
  for source in sorted(files, key=last):
    os.replace(source, final / source.name)
  shutil.rmtree(partial / CHUNKS, ignore_errors=True)
  partial.rmdir()


def summaries(out: pathlib.Path, order: Iterable[str] = ()) -> list[dict]:
  """Every summary.json under `out`, in `order` first, then by name."""
  found = {
    p.parent.name: json.loads(p.read_text())
    for p in pathlib.Path(out).glob("*/summary.json")
  }
  names = [n for n in order if n in found]
  names += sorted(set(found) - set(names))
  return [found[n] for n in names]
