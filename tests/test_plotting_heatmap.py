"""Tests of heatmap_figure and its cell averaging."""

import numpy as np
import pytest

from ssl_gmm import plotting

_LEARNING_RATES = (1e-3, 1e-2, 1e-1)
_TEMPERATURES = (0.1, 0.5)


def _rows():
  """2 methods x 3 learning rates x 2 temperatures x 2 seeds.

  distance = 0.1 * (i + 1) + 0.2 * j + 0.02 * seed for the infonce rows,
  with i, j the learning rate's and temperature's positions; the pca row at
  (1e-1, 0.5, seed 1) diverged and carries the failure distance 1.0.
  """
  rows = []
  for method in ("infonce", "pca"):
    for i, lr in enumerate(_LEARNING_RATES):
      for j, temperature in enumerate(_TEMPERATURES):
        for seed in (0, 1):
          distance = 0.1 * (i + 1) + 0.2 * j + 0.02 * seed
          diverged = method == "pca" and (i, j, seed) == (2, 1, 1)
          if method == "pca":
            distance = 1.0 if diverged else 0.5 * distance
          rows.append(
            {
              "method": method,
              "seed": seed,
              "learning_rate": lr,
              "temperature": temperature,
              "distance": distance,
              "diverged": diverged,
            }
          )
  return rows


def test_cell_means_average_over_seeds():
  xs, ys, values = plotting._cell_means(
    _rows(), "learning_rate", "temperature", "infonce", "distance"
  )
  np.testing.assert_allclose(xs, [1e-3, 1e-2, 1e-1])
  np.testing.assert_allclose(ys, [0.1, 0.5])
  # Mean of seeds 0 and 1 adds 0.01 to 0.1 * (i + 1) + 0.2 * j.
  np.testing.assert_allclose(
    values, [[0.11, 0.21, 0.31], [0.31, 0.41, 0.51]], atol=1e-12
  )


def test_a_diverged_row_counts_with_its_failure_value():
  _, _, values = plotting._cell_means(
    _rows(), "learning_rate", "temperature", "pca", "distance"
  )
  # Halved infonce values, except (1e-1, 0.5): (0.5 * 0.5 + 1.0) / 2.
  np.testing.assert_allclose(
    values, [[0.055, 0.105, 0.155], [0.155, 0.205, 0.625]], atol=1e-12
  )


def test_cell_means_read_csv_strings_and_leave_gaps_nan():
  rows = [
    {"method": "a", "x": "1", "y": "2", "distance": "0.25"},
    {"method": "a", "x": "3", "y": "4", "distance": "0.75"},
    {"method": "b", "x": "3", "y": "2", "distance": "0.5"},
  ]
  xs, ys, values = plotting._cell_means(rows, "x", "y", "a", "distance")
  np.testing.assert_allclose(xs, [1.0, 3.0])
  np.testing.assert_allclose(ys, [2.0, 4.0])
  np.testing.assert_allclose(values, [[0.25, np.nan], [np.nan, 0.75]])


def test_cell_edges_put_values_at_cell_centres():
  np.testing.assert_allclose(
    plotting._cell_edges(np.array([1e-3, 1e-2, 1e-1]), True),
    [10**-3.5, 10**-2.5, 10**-1.5, 10**-0.5],
  )
  np.testing.assert_allclose(
    plotting._cell_edges(np.array([0.1, 0.5]), False), [-0.1, 0.3, 0.7]
  )


def test_heatmap_figure_renders_a_png():
  png = plotting.heatmap_figure(
    _rows(),
    "learning_rate",
    "temperature",
    ["infonce", "pca"],
    log_x=True,
    title="distance over learning rate and temperature",
    threshold=0.2,
  )
  assert png.startswith(b"\x89PNG")


def test_an_absent_method_is_skipped():
  png = plotting.heatmap_figure(
    _rows(), "learning_rate", "temperature", ["simsiam", "pca"], log_x=True
  )
  assert png.startswith(b"\x89PNG")


def test_no_method_present_is_an_error():
  with pytest.raises(ValueError, match="no rows"):
    plotting.heatmap_figure(_rows(), "learning_rate", "temperature", ["clip"])


def test_a_large_grid_with_a_metric_of_its_own_range():
  rng = np.random.default_rng(0)
  rows = [
    {"method": "infonce", "x": x, "y": y, "anisotropy": rng.uniform(2, 5)}
    for x in np.geomspace(1e-4, 1.0, 40)
    for y in np.linspace(0.0, 1.0, 25)
  ]
  png = plotting.heatmap_figure(
    rows, "x", "y", ["infonce"], "anisotropy", log_x=True, threshold=3.0
  )
  assert png.startswith(b"\x89PNG")
