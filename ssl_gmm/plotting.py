"""Figures: one line per method over a swept setting, spread shaded."""

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_LABELS = {
  "distance": "distance to F (sin of largest angle)",
  "fisher_ratio": "fisher_ratio J(A) / J*",
  "accuracy": "held-out nearest-mean accuracy",
  "nmi": "held-out k-means NMI",
  "anisotropy": "anisotropy (variance of nuisance directions)",
  "p_same": "p_same",
  "temperature": "temperature",
  "learning_rate": "learning rate",
}
_STYLES = {
  "oracle": dict(color="black", linestyle=":"),
  "lda": dict(color="tab:gray", linestyle="--"),
  "pca": dict(color="tab:red"),
  "whitened_pca": dict(color="tab:orange"),
  "infonce": dict(color="tab:blue", linewidth=2.2, zorder=4),
  "infonce_dot": dict(color="tab:cyan"),
  "ntxent": dict(color="tab:green"),
  "simsiam": dict(color="tab:purple"),
}


def sweep_figure(
  rows: Sequence[dict],
  x: str,
  methods: Sequence[str],
  metrics: Sequence[str] = ("distance", "fisher_ratio"),
  *,
  log_x: bool = False,
  title: str = "",
  thresholds: dict[str, float] | None = None,
) -> bytes:
  """A PNG with one panel per metric: mean over seeds, min-max shaded.

  Args:
    rows: rows of results.csv.
    x: the swept column on the horizontal axis.
    methods: one line each, in this order.
    metrics: one panel each.
    log_x: logarithmic horizontal axis (for values spanning decades).
    title: the figure's title.
    thresholds: metric -> a value drawn as a dashed horizontal line.

  Returns:
    The PNG's bytes.
  """
  thresholds = thresholds or {}
  fig, axes = plt.subplots(
    1,
    len(metrics),
    figsize=(4.6 * len(metrics) + 1.4, 4.0),
    squeeze=False,
    layout="constrained",
  )
  for ax, metric in zip(axes[0], metrics):
    for method in methods:
      _plot_method(ax, rows, x, method, metric)
    if metric in thresholds:
      ax.axhline(thresholds[metric], color="gray", linewidth=0.8, ls="--")
    if log_x:
      ax.set_xscale("log")
    ax.set_xlabel(_LABELS.get(x, x))
    ax.set_ylabel(_LABELS.get(metric, metric))
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
  fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside right")
  if title:
    fig.suptitle(title)
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=110)
  plt.close(fig)
  return buffer.getvalue()


def _plot_method(ax, rows, x, method, metric):
  mine = [r for r in rows if r["method"] == method]
  if not mine:
    return
  values = sorted({float(r[x]) for r in mine})
  stats = []
  for v in values:
    ys = [float(r[metric]) for r in mine if float(r[x]) == v]
    stats.append((np.mean(ys), np.min(ys), np.max(ys)))
  mean, low, high = map(np.array, zip(*stats))
  style = _STYLES.get(method, {})
  (line,) = ax.plot(values, mean, marker="o", ms=3, label=method, **style)
  ax.fill_between(values, low, high, color=line.get_color(), alpha=0.15)
