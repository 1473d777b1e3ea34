"""Verdicts: the paper's claims checked against measured results.

Each check reads the rows of results.csv and the thresholds fixed in the
experiment's config before the run, and returns a verdict whose `detail`
gives the numbers behind it. Means are over seeds; a diverged point already
carries failing metrics (distance 1, fisher_ratio 0), so it is never dropped.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import ml_collections
import numpy as np

from ssl_gmm import results
from ssl_gmm.train import TRAINED_METHODS

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
    f"{t.fisher_ratio_min}); meets them at "
    + (f"anisotropy {', '.join(met)}" if met else "no anisotropy of the grid")
    + "."
  )
  return _verdict("C3", holds, detail, distance=distance, fisher_ratio=ratio)


def _means_by(rows: Rows, column: str, method: str) -> dict[float, dict]:
  """Per value of `column`, the method's mean distance and fisher_ratio."""
  mine = select(rows, method=method)
  values = sorted({float(r[column]) for r in mine})
  return {
    v: {
      "distance": mean(select(mine, **{column: v}), "distance"),
      "fisher_ratio": mean(select(mine, **{column: v}), "fisher_ratio"),
    }
    for v in values
  }


def claim_c1_all(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """C1 at every value of the swept setting (dimension, components)."""
  t = config.thresholds
  column = next(iter(config.sweep.keys()))
  found = _means_by(rows, column, "infonce")
  met = {
    v: m["distance"] <= t.distance_max
    and m["fisher_ratio"] >= t.fisher_ratio_min
    for v, m in found.items()
  }
  parts = [
    f"{column} {v:g}: {m['distance']:.3f} / {m['fisher_ratio']:.3f}"
    + ("" if met[v] else " (fails)")
    for v, m in found.items()
  ]
  detail = (
    f"infonce (cosine) distance / fisher_ratio, needing <= {t.distance_max}"
    f" and >= {t.fisher_ratio_min} at every {column}: " + "; ".join(parts) + "."
  )
  failed = [v for v, ok in met.items() if not ok]
  return _verdict("C1", not failed, detail, failed_at=failed)


def claim_c5(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """C5: with noisy positives InfoNCE matches LDA; p_same = 0 is chance."""
  t = config.thresholds
  low = min(float(v) for v in config.sweep.anisotropy)
  at = select(rows, anisotropy=low)
  checked = sorted(
    {float(r["p_same"]) for r in at if r["p_same"] >= t.control_p_same_min},
    reverse=True,
  )
  parts, ok = [], True
  for p in checked:
    ours = mean(select(at, method="infonce", p_same=p), "fisher_ratio")
    lda = mean(select(at, method="lda", p_same=p), "fisher_ratio")
    ok &= ours >= lda - t.lda_margin
    parts.append(f"p_same {p:g}: infonce {ours:.3f} vs lda {lda:.3f}")
  control = []
  for method in ("infonce", "ntxent", "whitened_pca"):
    found = select(at, method=method, p_same=0.0)
    if found:
      distance = mean(found, "distance")
      ok &= distance >= t.pca_distance_min
      control.append(f"{method} {distance:.3f}")
  findings = []
  high = max(float(v) for v in config.sweep.anisotropy)
  for method in ("infonce", "whitened_pca", "lda"):
    found = _means_by(select(rows, anisotropy=high), "p_same", method)
    findings.append(
      f"{method} "
      + ", ".join(f"{m['fisher_ratio']:.2f}" for m in found.values())
    )
  detail = (
    f"at anisotropy {low:g}, fisher_ratio (needs infonce >= lda - "
    f"{t.lda_margin}): " + "; ".join(parts) + ". Control at p_same 0, "
    f"distance (needs >= {t.pca_distance_min}): "
    + ", ".join(control)
    + f". Finding at anisotropy {high:g}, fisher_ratio for p_same "
    + ", ".join(f"{p:g}" for p in sorted({float(r["p_same"]) for r in rows}))
    + ": "
    + "; ".join(findings)
    + "."
  )
  return _verdict("C5", ok, detail)


def claim_embedding_dim(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """InfoNCE within distance_max of F (or F within it) at every k."""
  t = config.thresholds
  mine = select(rows, method="infonce")
  parts, ok = [], True
  for k in sorted({int(r["k"]) for r in mine}):
    at = select(mine, k=float(k))
    distance, share = mean(at, "distance"), mean(at, "nuisance_share")
    ok &= distance <= t.distance_max
    parts.append(f"k {k}: distance {distance:.3f}, nuisance_share {share:.3f}")
  detail = (
    f"infonce (cosine), needing distance <= {t.distance_max} at every k "
    "(inside F for k < K - 1, containing F for k >= K - 1): "
    + "; ".join(parts)
    + "."
  )
  return _verdict("embedding_dim", ok, detail)


def claim_samples(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """Per method, the fewest training pairs reaching fisher_ratio_min."""
  floor = config.thresholds.fisher_ratio_min
  reached = {}
  for method in config.methods:
    found = _means_by(rows, "n", method)
    reached[method] = next(
      (n for n, m in found.items() if m["fisher_ratio"] >= floor), None
    )
  parts = [
    f"{m} {'not within the grid' if n is None else f'n = {n:g}'}"
    for m, n in reached.items()
  ]
  detail = (
    f"smallest number of training pairs with mean fisher_ratio >= {floor}: "
    + "; ".join(parts)
    + "."
  )
  holds = reached.get("infonce") is not None
  return _verdict("samples", holds, detail, reached=reached)


def claim_c4(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """C4: CLIP's x encoder finds x's shared F and drops the private s."""
  t = config.thresholds
  points = sorted(
    {(float(r["anisotropy_x"]), float(r["anisotropy_y"])) for r in rows}
  )
  parts, ok = [], True
  for ax, ay in points:
    at = select(rows, anisotropy_x=ax, anisotropy_y=ay)
    clip_d = mean(select(at, method="clip"), "distance")
    clip_s = mean(select(at, method="clip"), "s_accuracy")
    uni_s = mean(select(at, method="infonce"), "s_accuracy")
    ok &= clip_d <= t.distance_max and clip_s <= t.s_accuracy_max
    ok &= uni_s >= t.s_accuracy_min
    parts.append(
      f"anisotropy x {ax:g}, y {ay:g}: clip distance {clip_d:.3f}, "
      f"s_accuracy {clip_s:.3f}; infonce s_accuracy {uni_s:.3f}"
    )
  detail = (
    f"needs clip distance <= {t.distance_max} and s_accuracy <= "
    f"{t.s_accuracy_max}, unimodal infonce s_accuracy >= {t.s_accuracy_min}"
    ": " + "; ".join(parts) + "."
  )
  return _verdict("C4", ok, detail)


def claim_c6(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """C6: InfoNCE's NMI is within nmi_margin of LDA's on claim_dataset.

  claim_dataset is digits but in the smoke profile; the other data sets are
  reported beside it.
  """
  margin, target = config.thresholds.nmi_margin, config.claim_dataset
  parts, holds = [], False
  for dataset in config.datasets:
    at = select(rows, dataset=dataset)
    nmi = {m: mean(select(at, method=m), "nmi") for m in config.methods}
    if dataset == target:
      holds = nmi["infonce"] >= nmi["lda"] - margin
    parts.append(
      f"{dataset}: " + ", ".join(f"{m} {v:.3f}" for m, v in nmi.items())
    )
  detail = (
    f"held-out k-means NMI; needs infonce >= lda - {margin} on {target}. "
    + "; ".join(parts)
    + "."
  )
  return _verdict("C6", holds, detail)


def claim_phase(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """InfoNCE within distance_max of F at every anisotropy for p >= p_min.

  For each method the detail also gives the smallest p_same from which the
  method's mean distance stays within distance_max at every anisotropy
  above, and the share of the plane's cells within it.
  """
  t = config.thresholds
  parts, holds = [], False
  for method in config.methods:
    cells = {}
    for row in select(rows, method=method):
      key = (float(row["p_same"]), float(row["anisotropy"]))
      cells.setdefault(key, []).append(float(row["distance"]))
    means = {key: float(np.mean(v)) for key, v in cells.items()}
    good = {key: d <= t.distance_max for key, d in means.items()}
    p_values = sorted({p for p, _ in means})
    # The smallest p from which every cell at p' >= p is within the bound.
    boundary = None
    for p in reversed(p_values):
      if not all(ok for (q, _), ok in good.items() if q >= p):
        break
      boundary = p
    above = [d for (p, _), d in means.items() if p >= t.p_same_min]
    worst = max(above)
    if method == "infonce":
      holds = worst <= t.distance_max
    parts.append(
      f"{method}: worst distance {worst:.3f} over p_same >= {t.p_same_min}, "
      "within the bound at every anisotropy "
      + (
        "at no p_same of the grid"
        if boundary is None
        else f"from p_same {boundary:.3g}"
      )
      + f", {np.mean(list(good.values())):.0%} of cells within it"
    )
  detail = (
    f"needs infonce's distance <= {t.distance_max} at every anisotropy "
    f"wherever p_same >= {t.p_same_min}. " + "; ".join(parts) + "."
  )
  return _verdict("phase", holds, detail)


def _ranked(rows: Rows, methods: Sequence[str]) -> list[tuple[str, dict]]:
  """(method, mean distance, fisher_ratio and accuracy) by distance."""
  means = []
  for method in methods:
    mine = select(rows, method=method)
    if mine:
      columns = ("distance", "fisher_ratio", "accuracy")
      means.append(
        (method, {c: mean(mine, c) for c in columns if c in mine[0]})
      )
  return sorted(means, key=lambda entry: entry[1]["distance"])


def linear_objectives(methods: Sequence[str]) -> list[str]:
  """The trained methods with a linear encoder, which `objectives` judges."""
  return [
    m
    for m in methods
    if m in TRAINED_METHODS and TRAINED_METHODS[m].encoder == "linear"
  ]


def claim_objectives(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """Every trained objective with a linear encoder meets C1's thresholds."""
  t = config.thresholds
  linear = linear_objectives(config.methods)
  failing = [m for m in linear if not _meets_c1(select(rows, method=m), t)[0]]
  ranking = "; ".join(
    f"{i}. {method} {m['distance']:.3f} / {m['fisher_ratio']:.3f}"
    + (f" / {m['accuracy']:.3f}" if "accuracy" in m else "")
    for i, (method, m) in enumerate(_ranked(rows, config.methods), 1)
  )
  detail = (
    f"needs every linear objective at distance <= {t.distance_max} and "
    f"fisher_ratio >= {t.fisher_ratio_min}; "
    + (f"not met by {', '.join(failing)}" if failing else "all meet them")
    + f". Ranked by distance (distance / fisher_ratio / accuracy): {ranking}."
  )
  return _verdict("objectives", not failing, detail, failing=failing)


def claim_mlp(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """InfoNCE with an MLP encoder recovers F, as accurate as the linear one."""
  t = config.thresholds
  mlp = select(rows, method="infonce_mlp")
  holds, distance, ratio = _meets_c1(mlp, t)
  accuracy = mean(mlp, "accuracy")
  linear = mean(select(rows, method="infonce"), "accuracy")
  holds = holds and accuracy >= linear - t.accuracy_margin
  detail = (
    f"infonce_mlp's effective encoder: distance {distance:.3f} (needs <= "
    f"{t.distance_max}), fisher_ratio {ratio:.3f} (needs >= "
    f"{t.fisher_ratio_min}); held-out accuracy {accuracy:.3f} against "
    f"linear infonce's {linear:.3f} (needs >= linear - {t.accuracy_margin})."
  )
  return _verdict(
    "mlp",
    holds,
    detail,
    distance=distance,
    fisher_ratio=ratio,
    accuracy=accuracy,
    linear_accuracy=linear,
  )


def _accuracies(rows: Rows, method: str) -> dict[float, tuple[float, float]]:
  """Per anisotropy, the method's mean qda_accuracy and bayes_accuracy."""
  mine = select(rows, method=method)
  values = sorted({float(r["anisotropy"]) for r in mine})
  return {
    v: (
      mean(select(mine, anisotropy=v), "qda_accuracy"),
      mean(select(mine, anisotropy=v), "bayes_accuracy"),
    )
    for v in values
  }


def claim_hetero_lda_gap(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """At the largest anisotropy, LDA's subspace is not Bayes-sufficient.

  Holds when lda's mean qda_accuracy trails the mean bayes_accuracy by at
  least lda_gap_min there; the detail gives the gap at every anisotropy,
  and the oracle's (the exact pooled F) when it ran.
  """
  floor = config.thresholds.lda_gap_min
  found = _accuracies(rows, "lda")
  top = max(found)
  qda, bayes = found[top]
  gap = bayes - qda
  detail = (
    f"at anisotropy {top:g}: lda qda_accuracy {qda:.3f}, bayes_accuracy "
    f"{bayes:.3f}, gap {gap:.3f} (needs >= {floor}). Gap at anisotropy "
    + ", ".join(f"{v:g}: {b - q:.3f}" for v, (q, b) in found.items())
  )
  oracle = _accuracies(rows, "oracle")
  if top in oracle:
    detail += f"; oracle qda_accuracy at {top:g}: {oracle[top][0]:.3f}"
  return _verdict(
    "hetero_lda_gap", gap >= floor, detail + ".", gap=gap, anisotropy=top
  )


def claim_hetero_infonce(rows: Rows, config: ml_collections.ConfigDict) -> dict:
  """InfoNCE's qda_accuracy is within accuracy_margin of LDA's, or above.

  Checked at every anisotropy; the detail says where InfoNCE beats or
  trails LDA, beside the Bayes ceiling.
  """
  margin = config.thresholds.accuracy_margin
  ours, lda = _accuracies(rows, "infonce"), _accuracies(rows, "lda")
  parts, failed = [], []
  for v, (qda, bayes) in ours.items():
    theirs = lda[v][0]
    if qda < theirs - margin:
      failed.append(v)
    word = "beats" if qda > theirs else "trails"
    parts.append(
      f"anisotropy {v:g}: infonce {qda:.3f} {word} lda {theirs:.3f} by "
      f"{abs(qda - theirs):.3f}, bayes {bayes:.3f}"
      + (" (fails)" if v in failed else "")
    )
  detail = (
    f"held-out qda_accuracy, needing infonce >= lda - {margin} at every "
    "anisotropy: " + "; ".join(parts) + "."
  )
  return _verdict("hetero_infonce", not failed, detail, failed_at=failed)


def method_means(
  rows: Rows,
  methods: Sequence[str],
  where: dict,
  columns: Sequence[str] = results.TABLE_COLUMNS,
) -> list[dict]:
  """Per method, the mean and spread over seeds of each column at `where`."""
  table = []
  for method in methods:
    mine = select(rows, method=method, **where)
    if not mine:
      continue
    entry = {"method": method, "seeds": len(mine)}
    for column in columns:
      if mine[0].get(column) is None:  # Not computed by this experiment.
        continue
      values = [float(r[column]) for r in mine]
      entry[column] = float(np.mean(values))
      entry[f"{column}_std"] = float(np.std(values))
    table.append(entry)
  return table


class Reads(NamedTuple):
  """What a claim reads from a run, checked before the run starts.

  Attributes:
    methods: methods whose rows it reads.
    sweep: settings it reads as swept.
    any_sweep: whether it reads the first swept setting, whichever it is.
    metrics: the downstream metrics it reads (which a run may skip).
    axes: the settings it tells apart when swept, beyond `sweep` (and the
      first swept setting, for `any_sweep`). It averages over every other
      one, so a run may not sweep another over more than one value.
  """

  methods: tuple[str, ...] = ()
  sweep: tuple[str, ...] = ()
  any_sweep: bool = False
  metrics: tuple[str, ...] = ()
  axes: tuple[str, ...] = ()


READS = {
  "C1": Reads(("infonce", "infonce_dot"), axes=("anisotropy",)),
  "C1_all": Reads(("infonce",), any_sweep=True),
  "C2": Reads(("pca",), axes=("anisotropy",)),
  "C3": Reads(("simsiam",), axes=("anisotropy",)),
  "C4": Reads(("clip", "infonce"), axes=("anisotropy_x", "anisotropy_y")),
  "C5": Reads(("infonce", "lda"), ("anisotropy", "p_same")),
  "C6": Reads(("infonce", "lda"), metrics=("nmi",)),
  "embedding_dim": Reads(("infonce",), axes=("k",)),
  "samples": Reads(("infonce",), ("n",)),
  "phase": Reads(("infonce",), ("anisotropy", "p_same")),
  "objectives": Reads(),
  "mlp": Reads(("infonce_mlp", "infonce"), metrics=("accuracy",)),
  "hetero_lda_gap": Reads(("lda",), ("anisotropy",)),
  "hetero_infonce": Reads(("infonce", "lda"), ("anisotropy",)),
}


CLAIMS: dict[str, Callable[[Rows, ml_collections.ConfigDict], dict]] = {
  "C1": claim_c1,
  "C1_all": claim_c1_all,
  "C2": claim_c2,
  "C3": claim_c3,
  "C4": claim_c4,
  "C5": claim_c5,
  "C6": claim_c6,
  "embedding_dim": claim_embedding_dim,
  "samples": claim_samples,
  "phase": claim_phase,
  "objectives": claim_objectives,
  "mlp": claim_mlp,
  "hetero_lda_gap": claim_hetero_lda_gap,
  "hetero_infonce": claim_hetero_infonce,
}


def verdicts(rows: Rows, config: ml_collections.ConfigDict) -> list[dict]:
  """Every claim the config names, checked on its rows."""
  return [CLAIMS[name](rows, config) for name in config.claims]
