"""The objectives experiment: its verdicts and its ranking figure."""

import ml_collections
import pytest

from ssl_gmm import claims, configs, plotting


def _rows(scores: dict[str, tuple[float, float, float]], seeds=2) -> list:
  """Rows at anisotropy 100: method -> (distance, fisher_ratio, accuracy)."""
  return [
    {
      "method": method,
      "seed": seed,
      "anisotropy": 100.0,
      "distance": distance,
      "fisher_ratio": ratio,
      "accuracy": accuracy,
    }
    for method, (distance, ratio, accuracy) in scores.items()
    for seed in range(seeds)
  ]


@pytest.fixture
def config() -> ml_collections.ConfigDict:
  return configs.get_config("objectives", "quick")


GOOD = (0.05, 0.97, 0.92)


def test_objectives_holds_when_every_linear_objective_meets_c1(config):
  scores = {m: GOOD for m in config.methods}
  scores["pca"] = (1.0, 0.0, 0.3)  # A baseline failing changes nothing.
  scores["infonce_mlp"] = (0.9, 0.2, 0.5)  # Nor does the MLP.
  verdict = claims.claim_objectives(_rows(scores), config)
  assert verdict["holds"] and verdict["failing"] == []
  assert "all meet them" in verdict["detail"]


def test_objectives_names_each_objective_that_fails(config):
  scores = {m: GOOD for m in config.methods}
  scores["vicreg"] = (0.5, 0.95, 0.9)  # Distance too large.
  scores["byol"] = (0.1, 0.85, 0.9)  # fisher_ratio too small.
  verdict = claims.claim_objectives(_rows(scores), config)
  assert not verdict["holds"]
  assert verdict["failing"] == ["vicreg", "byol"]
  assert "not met by vicreg, byol" in verdict["detail"]


def test_objectives_detail_ranks_by_distance(config):
  scores = {m: GOOD for m in config.methods}
  scores["lda"] = (0.01, 1.0, 0.93)
  scores["pca"] = (1.0, 0.0, 0.3)
  detail = claims.claim_objectives(_rows(scores), config)["detail"]
  assert "1. lda 0.010 / 1.000 / 0.930" in detail
  assert detail.rstrip(".").endswith("pca 1.000 / 0.000 / 0.300")


@pytest.mark.parametrize(
  "mlp, holds",
  [
    ((0.1, 0.95, 0.91), True),  # Within 0.02 of linear infonce's 0.92.
    ((0.1, 0.95, 0.89), False),  # Accuracy 0.03 below.
    ((0.3, 0.95, 0.95), False),  # Distance above 0.2.
    ((0.1, 0.85, 0.95), False),  # fisher_ratio below 0.9.
  ],
)
def test_mlp_verdict(config, mlp, holds):
  verdict = claims.claim_mlp(
    _rows({"infonce": GOOD, "infonce_mlp": mlp}), config
  )
  assert verdict["holds"] is holds
  assert verdict["linear_accuracy"] == pytest.approx(0.92)


def test_ranked_orders_best_first():
  rows = _rows({"a": (0.5, 0.6, 0.7), "b": (0.1, 0.9, 0.6), "c": GOOD})
  assert plotting.ranked(rows, ["a", "b", "c", "absent"], "distance") == [
    "c",
    "b",
    "a",
  ]
  assert plotting.ranked(rows, ["a", "b", "c"], "accuracy") == ["c", "a", "b"]


def test_ranking_figure_renders_a_png():
  rows = _rows({"infonce": GOOD, "pca": (1.0, 0.0, 0.3)})
  rows[0]["distance"] = 0.0  # Seeds differ: whiskers are drawn.
  png = plotting.ranking_figure(
    rows,
    ["infonce", "pca"],
    ["distance", "fisher_ratio", "accuracy"],
    title="objectives",
    thresholds={"distance": 0.2},
  )
  assert png.startswith(b"\x89PNG") and len(png) > 1000
