"""Runs one experiment: its pipeline, verdicts, figure and files.

An experiment is a config (ssl_gmm/configs) naming a pipeline, the function
that turns the config into rows of results.csv: `synthetic` for every
Gaussian-mixture grid. The runner checks the config before anything is
compiled, counts the compilations, applies the config's claims to the rows,
and publishes the folder atomically (ssl_gmm/results).
"""

import json
import pathlib
import time

import ml_collections
from absl import logging

from ssl_gmm import (
  claims,
  compilation,
  heteroscedastic,
  multimodal,
  plotting,
  real_data,
  results,
  samples,
  synthetic,
)
from ssl_gmm.validation import validate

PIPELINES = {
  "synthetic": synthetic.run_grid,
  "samples": samples.run_grid,
  "real_data": real_data.run_grid,
  "multimodal": multimodal.run_grid,
  "heteroscedastic": heteroscedastic.run_grid,
}


def _resolved(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json())


def run(config: ml_collections.ConfigDict, out: pathlib.Path) -> dict:
  """Runs an experiment and publishes its folder `out/<name>/`.

  Writes config.json, results.csv, summary.json and `<name>.png` into a
  partial folder, then moves them into place; the previous results stay
  whole until then.

  Args:
    config: the experiment's config (see ssl_gmm/configs).
    out: the results folder.

  Returns:
    The summary: experiment name, claims with verdicts, timings.

  Raises:
    ValueError: if a setting is invalid (before anything is compiled).
  """
  validate(config)
  out = pathlib.Path(out)
  start = time.perf_counter()
  with compilation.count_compilations() as compiled:
    pipeline = PIPELINES[config.pipeline]
    if config.pipeline == "synthetic":
      # Finished chunks live in the partial folder, so that a rerun of the
      # same config resumes from them and publishing removes them.
      chunks = out / f"{config.name}.partial" / results.CHUNKS
      rows, swept, timings = pipeline(config, chunks)
    else:
      rows, swept, timings = pipeline(config)
  points = len(rows) // len(config.methods)
  logging.info("%s: %d grid points scored", config.name, points)
  # The table of the report: every method at the largest value of each
  # swept number (the first value of a swept name, such as a data set).
  at = {}
  for name in swept:
    values = [r[name] for r in rows]
    at[name] = values[0] if isinstance(values[0], str) else max(values)
  summary = {
    "experiment": config.name,
    "profile": config.profile,
    "claims": claims.verdicts(rows, config),
    "table": {"at": at, "rows": claims.method_means(rows, config.methods, at)},
    "grid_points": points,
    "timings": timings,
    # Compilations of the grid programs: one per trained method and one for
    # the baselines, however many grid points.
    "compilations": {
      name: n for name, n in compiled.items() if name.endswith("_grid)")
    },
    "wall_s": time.perf_counter() - start,
    "figure": f"{config.name}/{config.name}.png",
  }
  _publish(config, out, rows, summary, swept)
  for verdict in summary["claims"]:
    logging.info(
      "%s %s: %s", verdict["name"], _word(verdict["holds"]), verdict["detail"]
    )
  return summary


def _word(holds: bool) -> str:
  return "holds" if holds else "does not hold"


def _publish(config, out, rows, summary, swept) -> None:
  partial = results.partial_dir(out, config.name)
  columns = list(results.LEADING_COLUMNS) + swept + list(results.METRIC_COLUMNS)
  extra = {c: None for row in rows for c in row if c not in columns}
  columns += list(extra)
  results.atomic_write_text(
    partial / "results.csv", results.csv_text(rows, columns)
  )
  results.write_json(
    partial / "config.json",
    {"config": _resolved(config), **results.run_metadata()},
  )
  results.atomic_write_bytes(
    partial / f"{config.name}.png", figure(config, rows, swept)
  )
  results.write_json(partial / "summary.json", summary)
  results.publish(partial, out / config.name)
  logging.info("%s: wrote %s", config.name, out / config.name)


def figure(config: ml_collections.ConfigDict, rows, swept) -> bytes:
  """The experiment's PNG: lines over its swept setting, or grouped bars."""
  title = config.name
  if config.pipeline in ("synthetic", "samples", "heteroscedastic"):
    title += (
      f": d={config.mixture.dim}, K={config.mixture.num_components}, "
      f"k={config.k if config.k is not None else 'K-1'}"
    )
  thresholds = {
    "distance": config.thresholds.distance_max,
    "fisher_ratio": config.thresholds.fisher_ratio_min,
  }
  if "s_accuracy_max" in config.thresholds:
    thresholds["s_accuracy"] = config.thresholds.s_accuracy_max
  if config.figure.kind == "heatmap":
    return plotting.heatmap_figure(
      rows,
      config.figure.x,
      config.figure.y,
      config.methods,
      config.figure.metrics[0],
      log_x=config.figure.log_x,
      title=title,
      threshold=thresholds.get(config.figure.metrics[0]),
    )
  if config.figure.kind == "ranking":
    return plotting.ranking_figure(
      rows,
      config.methods,
      config.figure.metrics,
      title=title,
      thresholds=thresholds,
    )
  if config.figure.kind == "bars":
    return plotting.bars_figure(
      rows,
      swept,
      config.methods,
      config.figure.metrics,
      title=title,
      thresholds=thresholds,
    )
  # A run whose sweep was changed plots against its first swept setting.
  x = config.figure.x if config.figure.x in swept else (swept or ["seed"])[0]
  others = [name for name in swept if name != x]
  return plotting.sweep_figure(
    rows,
    x,
    config.methods,
    config.figure.metrics,
    facet=others[0] if others else None,
    log_x=config.figure.log_x and x == config.figure.x,
    title=title,
    thresholds=thresholds,
    references=dict(config.figure.get("references", {})),
  )
