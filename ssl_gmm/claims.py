"""Verdicts: the paper's claims checked against measured results.

Each check reads the rows of results.csv and the thresholds fixed in the
experiment's config before the run, and returns a verdict whose `detail`
gives the numbers behind it. Means are over seeds; a diverged point already
carries failing metrics (distance 1, fisher_ratio 0), so it is never dropped.
"""

from collections.abc import Callable, Sequence

import ml_collections
import numpy as np

Rows = Sequence[dict]


def select(rows: Rows, **where) -> list[dict]:
  """Rows whose columns equal every given value."""
  return [r for r in rows if all(r[k] == v for k, v in where.items())]


def mean(rows: Rows, column: str) -> float:
  if not rows:
    raise ValueError(f"no rows to average {column!r} over.")
  return float(np.mean([float(r[column]) for r in rows]))


def _meets_c1(rows: Rows, thresholds) -> tuple[bool, float, float]:
  distance, ratio = mean(rows, "distance"), mean(rows, "fisher_ratio")
  holds = (
    distance <= thresholds.distance_max and ratio >= thresholds.fisher_ratio_min
  )
  return holds, distance, ratio


def _verdict(name: str, holds: bool, detail: str, **numbers) -> dict:
  return {"name": name, "holds": bool(holds), "detail": detail, **numbers}


def _largest(rows: Rows, column: str) -> float:
  return max(float(r[column]) for r in rows)


def claim_c1(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """C1: cosine InfoNCE recovers F at the largest anisotropy."""
  t = config.thresholds
  top = _largest(rows, "anisotropy")
  holds, distance, ratio = _meets_c1(
    select(rows, method="infonce", anisotropy=top), t
  )
  _, dot_distance, dot_ratio = _meets_c1(
    select(rows, method="infonce_dot", anisotropy=top), t
  )
  detail = (
    f"infonce (cosine) at anisotropy {top:g}: distance {distance:.3f} "
    f"(needs <= {t.distance_max}), fisher_ratio {ratio:.3f} (needs >= "
    f"{t.fisher_ratio_min}); infonce_dot beside it: distance "
    f"{dot_distance:.3f}, fisher_ratio {dot_ratio:.3f}."
  )
  return _verdict(
    "C1", holds, detail, distance=distance, fisher_ratio=ratio, anisotropy=top
  )


def claim_c2(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """C2: PCA fails at the largest anisotropy; where it first fails."""
  floor = config.thresholds.pca_distance_min
  pca = select(rows, method="pca")
  values = sorted({float(r["anisotropy"]) for r in pca})
  means = [mean(select(pca, anisotropy=v), "distance") for v in values]
  crossing = next((v for v, m in zip(values, means) if m >= floor), None)
  holds = means[-1] >= floor
  where = (
    f"first reaches {floor} at anisotropy {crossing:g}"
    if crossing is not None
    else f"never reaches {floor} within the grid"
  )
  detail = (
    f"pca at anisotropy {values[-1]:g}: distance {means[-1]:.3f} (needs >= "
    f"{floor}); its mean distance {where}."
  )
  return _verdict(
    "C2", holds, detail, distance=means[-1], first_failure=crossing
  )


def claim_c3(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """C3: SimSiam meets C1's thresholds; over which anisotropies it does."""
  t = config.thresholds
  simsiam = select(rows, method="simsiam")
  values = sorted({float(r["anisotropy"]) for r in simsiam})
  results = [_meets_c1(select(simsiam, anisotropy=v), t) for v in values]
  holds, distance, ratio = results[-1]
  met = [f"{v:g}" for v, r in zip(values, results) if r[0]]
  detail = (
    f"simsiam at anisotropy {values[-1]:g}: distance {distance:.3f}, "
    f"fisher_ratio {ratio:.3f} (C1's thresholds {t.distance_max} and "
    f"{t.fisher_ratio_min}); meets them at anisotropy "
    f"{', '.join(met) if met else 'none of the grid'}."
  )
  return _verdict("C3", holds, detail, distance=distance, fisher_ratio=ratio)


def method_means(
  rows: Rows,
  methods: Sequence[str],
  where: dict,
  columns: Sequence[str] = ("distance", "fisher_ratio", "accuracy", "nmi"),
) -> list[dict]:
  """Per method, the mean and spread over seeds of each column at `where`."""
  table = []
  for method in methods:
    mine = select(rows, method=method, **where)
    if not mine:
      continue
    entry = {"method": method, "seeds": len(mine)}
    for column in columns:
      values = [float(r[column]) for r in mine]
      entry[column] = float(np.mean(values))
      entry[f"{column}_std"] = float(np.std(values))
    table.append(entry)
  return table


CLAIMS: dict[str, Callable[[Rows, ml_collections.ConfigDict], dict]] = {
  "C1": claim_c1,
  "C2": claim_c2,
  "C3": claim_c3,
}


def verdicts(rows: Rows, config: ml_collections.ConfigDict) -> list[dict]:
  """Every claim the config names, checked on its rows."""
  return [CLAIMS[name](rows, config) for name in config.claims]
