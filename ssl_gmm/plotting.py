"""Figures: one line per method over a swept setting, spread shaded."""

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_LABELS = {
  "s_accuracy": "held-out accuracy predicting s",
  "ari": "held-out k-means ARI",
  "nuisance_share": "nuisance_share of embedding variance",
  "dim": "input dimension d",
  "num_components": "number of components K",
  "k": "embedding dimension k",
  "n": "training pairs n",
  "distance": "distance to F (sin of largest angle)",
  "fisher_ratio": "fisher_ratio J(A) / J*",
  "accuracy": "held-out nearest-mean accuracy",
  "nmi": "held-out k-means NMI",
  "anisotropy": "anisotropy (variance of nuisance directions)",
  "p_same": "p_same",
  "temperature": "temperature",
  "learning_rate": "learning rate",
  "qda_accuracy": "held-out QDA accuracy of the embedding",
  "bayes_accuracy": "Bayes-optimal accuracy on x",
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
  "clip": dict(color="tab:olive"),
  "clip_y": dict(color="tab:brown"),
  "spectral": dict(color="tab:pink"),
  "barlow_twins": dict(color="darkgoldenrod"),
  "vicreg": dict(color="teal"),
  "byol": dict(color="indigo"),
  "infonce_mlp": dict(color="navy", linestyle="-."),
}


def sweep_figure(
  rows: Sequence[dict],
  x: str,
  methods: Sequence[str],
  metrics: Sequence[str] = ("distance", "fisher_ratio"),
  *,
  facet: str | None = None,
  log_x: bool = False,
  title: str = "",
  thresholds: dict[str, float] | None = None,
  references: dict[str, str] | None = None,
) -> bytes:
  """A PNG with one panel per metric: mean over seeds, min-max shaded.

  Args:
    rows: rows of results.csv.
    x: the swept column on the horizontal axis.
    methods: one line each, in this order.
    metrics: one panel each.
    facet: another swept column; each of its values gets a row of panels,
      so lines never average over it.
    log_x: logarithmic horizontal axis (for values spanning decades).
    title: the figure's title.
    thresholds: metric -> a value drawn as a dashed horizontal line.
    references: metric -> a column drawn over x on that metric's panel as a
      black dash-dotted line, its mean over all rows at each x (a ceiling
      that every method shares, such as bayes_accuracy).

  Returns:
    The PNG's bytes.
  """
  thresholds = thresholds or {}
  references = references or {}
  facets = sorted({r[facet] for r in rows}) if facet else [None]
  fig, axes = plt.subplots(
    len(facets),
    len(metrics),
    figsize=(4.6 * len(metrics) + 1.4, 3.6 * len(facets) + 0.4),
    squeeze=False,
    layout="constrained",
  )
  for panels, value in zip(axes, facets):
    mine = rows if facet is None else [r for r in rows if r[facet] == value]
    for ax, metric in zip(panels, metrics):
      for method in methods:
        _plot_method(ax, mine, x, method, metric)
      if metric in references:
        _plot_reference(ax, mine, x, references[metric])
      if metric in thresholds:
        ax.axhline(thresholds[metric], color="gray", linewidth=0.8, ls="--")
      if log_x:
        ax.set_xscale("log")
      ax.set_xlabel(_LABELS.get(x, x))
      ax.set_ylabel(_LABELS.get(metric, metric))
      if facet is not None:
        ax.set_title(f"{facet} = {value:g}", fontsize=10)
      ax.set_ylim(-0.03, 1.03)
      ax.grid(alpha=0.3)
  return _finish(fig, axes, title)


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


def _plot_reference(ax, rows, x, column):
  """One line of a column shared by every method: its mean at each x."""
  values = sorted({float(r[x]) for r in rows})
  means = [
    np.mean([float(r[column]) for r in rows if float(r[x]) == v])
    for v in values
  ]
  ax.plot(values, means, color="black", linestyle="-.", label=column)


def bars_figure(
  rows: Sequence[dict],
  groups: Sequence[str],
  methods: Sequence[str],
  metrics: Sequence[str],
  *,
  title: str = "",
  thresholds: dict[str, float] | None = None,
) -> bytes:
  """A PNG with one panel per metric: bars per method within each group.

  Args:
    rows: rows of results.csv.
    groups: columns whose distinct values make the groups on the x axis
      (e.g. ["dataset"]).
    methods: one bar each per group, in this order.
    metrics: one panel each.
    title: the figure's title.
    thresholds: metric -> a value drawn as a dashed horizontal line.

  Returns:
    The PNG's bytes; bar heights are means over seeds, whiskers the min-max.
  """
  thresholds = thresholds or {}
  keys = list(dict.fromkeys(tuple(r[g] for g in groups) for r in rows))
  fig, axes = plt.subplots(
    1,
    len(metrics),
    figsize=(max(4.6, 1.2 * len(keys) + 2) * len(metrics) + 1.4, 4.0),
    squeeze=False,
    layout="constrained",
  )
  width = 0.8 / len(methods)
  for ax, metric in zip(axes[0], metrics):
    for i, method in enumerate(methods):
      heights, low, high = [], [], []
      for key in keys:
        ys = [
          float(r[metric])
          for r in rows
          if r["method"] == method and tuple(r[g] for g in groups) == key
        ]
        heights.append(np.mean(ys) if ys else np.nan)
        low.append(heights[-1] - (np.min(ys) if ys else np.nan))
        high.append((np.max(ys) if ys else np.nan) - heights[-1])
      color = _STYLES.get(method, {}).get("color")
      ax.bar(
        np.arange(len(keys)) + (i - (len(methods) - 1) / 2) * width,
        heights,
        width,
        yerr=[low, high],
        label=method,
        color=color,
        capsize=2,
      )
    if metric in thresholds:
      ax.axhline(thresholds[metric], color="gray", linewidth=0.8, ls="--")
    ax.set_xticks(np.arange(len(keys)))
    ax.set_xticklabels(
      [
        "\n".join(
          f"{g}={v:g}" if isinstance(v, float) else str(v)
          for g, v in zip(groups, key)
        )
        for key in keys
      ],
      fontsize=8,
    )
    ax.set_ylabel(_LABELS.get(metric, metric))
    ax.set_ylim(0, 1.03)
    ax.grid(alpha=0.3, axis="y")
  return _finish(fig, axes, title)


def ranked(rows: Sequence[dict], methods: Sequence[str], metric: str) -> list:
  """The methods with rows, best first by their mean of `metric`.

  Lowest first for distance, highest first for every other metric; ties
  keep the given order.
  """
  sign = 1.0 if metric == "distance" else -1.0
  means = {}
  for method in methods:
    ys = [float(r[metric]) for r in rows if r["method"] == method]
    if ys:
      means[method] = sign * float(np.mean(ys))
  return sorted(means, key=means.get)


def ranking_figure(
  rows: Sequence[dict],
  methods: Sequence[str],
  metrics: Sequence[str],
  *,
  title: str = "",
  thresholds: dict[str, float] | None = None,
) -> bytes:
  """A PNG with one panel per metric: a horizontal bar per method.

  Methods are ranked by the first metric's mean over seeds, best at the
  top (lowest for distance, highest otherwise), in the same order on
  every panel; whiskers span the seeds' min to max.

  Args:
    rows: rows of results.csv.
    methods: the methods to rank; those without rows are skipped.
    metrics: one panel each; the first orders the methods.
    title: the figure's title.
    thresholds: metric -> a value drawn as a dashed vertical line.
  """
  thresholds = thresholds or {}

  def values(method, metric):
    return [float(r[metric]) for r in rows if r["method"] == method]

  order = ranked(rows, methods, metrics[0])
  fig, axes = plt.subplots(
    1,
    len(metrics),
    figsize=(3.6 * len(metrics) + 1.4, 0.32 * len(order) + 1.6),
    squeeze=False,
    sharey=True,
    layout="constrained",
  )
  places = np.arange(len(order))[::-1]
  for ax, metric in zip(axes[0], metrics):
    for place, method in zip(places, order):
      ys = values(method, metric)
      middle = np.mean(ys)
      ax.barh(
        place,
        middle,
        xerr=[[middle - np.min(ys)], [np.max(ys) - middle]],
        color=_STYLES.get(method, {}).get("color", "tab:gray"),
        capsize=2,
      )
    if metric in thresholds:
      ax.axvline(thresholds[metric], color="gray", linewidth=0.8, ls="--")
    ax.set_yticks(places)
    ax.set_yticklabels(order, fontsize=8)
    ax.set_xlabel(_LABELS.get(metric, metric))
    ax.set_xlim(0, 1.03)
    ax.grid(alpha=0.3, axis="x")
  return _finish(fig, axes, title)


def heatmap_figure(
  rows: Sequence[dict],
  x: str,
  y: str,
  methods: Sequence[str],
  metric: str = "distance",
  *,
  log_x: bool = False,
  title: str = "",
  threshold: float | None = None,
) -> bytes:
  """A PNG with one heatmap per method: the metric's mean over seeds.

  Args:
    rows: rows of results.csv.
    x: the swept column on the horizontal axis.
    y: the swept column on the vertical axis.
    methods: one panel each, in this order; methods without rows are
      skipped.
    metric: the column coloured; every panel shares one colour scale.
    log_x: logarithmic horizontal axis (for values spanning decades).
    title: the figure's title.
    threshold: a value whose contour line, metric == threshold, is drawn
      on every panel.

  Returns:
    The PNG's bytes; each cell is the mean over seeds at one (x, y).
  """
  present = [m for m in methods if any(r["method"] == m for r in rows)]
  if not present:
    raise ValueError(f"no rows for any of the methods {list(methods)}")
  cells = [_cell_means(rows, x, y, method, metric) for method in present]
  if metric in ("distance", "nuisance_share", "fisher_ratio"):
    vmin, vmax = 0.0, 1.0
  else:
    vmin = min(np.nanmin(values) for _, _, values in cells)
    vmax = max(np.nanmax(values) for _, _, values in cells)
  fig, axes = plt.subplots(
    1,
    len(present),
    figsize=(4.2 * len(present) + 1.6, 3.8),
    squeeze=False,
    layout="constrained",
  )
  for ax, method, (xs, ys, values) in zip(axes[0], present, cells):
    mesh = ax.pcolormesh(
      _cell_edges(xs, log_x),
      _cell_edges(ys, False),
      np.ma.masked_invalid(values),
      vmin=vmin,
      vmax=vmax,
      cmap="viridis",
    )
    if (
      threshold is not None
      and min(values.shape) > 1
      and np.nanmin(values) < threshold < np.nanmax(values)
    ):
      ax.contour(
        xs, ys, values, levels=[threshold], colors="white", linewidths=1.2
      )
    if log_x:
      ax.set_xscale("log")
    ax.set_xlabel(_LABELS.get(x, x))
    ax.set_ylabel(_LABELS.get(y, y))
    ax.set_title(method, fontsize=10)
  label = _LABELS.get(metric, metric)
  if threshold is not None:
    label += f"\n(white line: {metric} = {threshold:g})"
  colorbar = fig.colorbar(mesh, ax=axes[0], label=label)
  if threshold is not None:
    colorbar.ax.axhline(threshold, color="white", linewidth=1.2)
  return _finish(fig, axes, title)


def _cell_means(rows, x, y, method, metric):
  """(xs, ys, values [len(ys), len(xs)]): method's metric, mean over seeds.

  Cells without rows are NaN; a diverged row counts with the failure value
  stored in it.
  """
  mine = [r for r in rows if r["method"] == method]
  xs = np.array(sorted({float(r[x]) for r in mine}))
  ys = np.array(sorted({float(r[y]) for r in mine}))
  sums = np.zeros((len(ys), len(xs)))
  counts = np.zeros((len(ys), len(xs)))
  for r in mine:
    i = np.searchsorted(ys, float(r[y]))
    j = np.searchsorted(xs, float(r[x]))
    sums[i, j] += float(r[metric])
    counts[i, j] += 1
  with np.errstate(invalid="ignore"):
    return xs, ys, sums / counts


def _cell_edges(centres, log):
  """Edges of cells centred on sorted `centres`: midpoints, extrapolated.

  Geometric midpoints when `log`, so cells look even on a log axis.
  """
  c = np.log(centres) if log else np.asarray(centres, float)
  if len(c) == 1:
    edges = np.array([c[0] - 0.5, c[0] + 0.5])
  else:
    middle = (c[1:] + c[:-1]) / 2
    first = c[0] - (middle[0] - c[0])
    last = c[-1] + (c[-1] - middle[-1])
    edges = np.concatenate([[first], middle, [last]])
  return np.exp(edges) if log else edges


def _finish(fig, axes, title: str) -> bytes:
  """Adds the legend and title, renders the PNG, and closes the figure."""
  handles, labels = axes[0][0].get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, loc="outside right")
  if title:
    fig.suptitle(title)
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=110)
  plt.close(fig)
  return buffer.getvalue()
