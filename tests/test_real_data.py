"""Real data: pairs, splits that never see held-out rows, the reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import train_test_split

from ssl_gmm import (
  claims,
  compilation,
  experiment,
  metrics,
  real_data,
  results,
  subspace,
  validation,
)
from ssl_gmm.configs import real_data as real_data_config
from ssl_gmm.train import TRAINED_METHODS


def _labelled_source():
  """Rows whose first feature is their row id and second their class.

  Unbalanced on purpose, with a class of one row (class 1).
  """
  labels = np.repeat(np.arange(4), [5, 1, 7, 3]).astype(np.int32)
  labels = np.random.default_rng(0).permutation(labels)
  x = np.stack([np.arange(len(labels)), labels], axis=1).astype(np.float32)
  return real_data.pair_source(x, labels, 4)


def _draws(source, p_same, times=8, batch=512):
  """[times * batch] anchor and positive rows, from several keys."""
  draw = jax.jit(real_data.draw_rows, static_argnames="batch")
  keys = jax.random.split(jax.random.PRNGKey(1), times)
  pairs = [draw(k, source, batch=batch, p_same=p_same) for k in keys]
  return (np.concatenate([np.asarray(p[i]) for p in pairs]) for i in (0, 1))


def test_positives_share_the_anchor_class_and_are_other_rows_at_p_same_1():
  source = _labelled_source()
  labels, count = np.asarray(source.labels), np.asarray(source.count)
  anchor, positive = _draws(source, 1.0)
  np.testing.assert_array_equal(labels[positive], labels[anchor])
  alone = count[labels[anchor]] == 1
  assert alone.any() and (~alone).any()
  assert np.all(positive[~alone] != anchor[~alone])
  np.testing.assert_array_equal(positive[alone], anchor[alone])
  # Every row is drawn as an anchor and as a positive of its class.
  assert set(anchor) == set(positive) == set(range(len(labels)))


def test_positives_never_share_the_anchor_class_at_p_same_0():
  source = _labelled_source()
  labels = np.asarray(source.labels)
  anchor, positive = _draws(source, 0.0)
  assert np.all(labels[positive] != labels[anchor])
  assert set(positive) == set(range(len(labels)))


def test_draw_returns_the_drawn_rows_and_replays_them_in_64_bit_mode():
  source = _labelled_source()
  key = jax.random.fold_in(jax.random.PRNGKey(3), 17)
  p_same = jnp.float32(0.5)
  x, x_pos = jax.jit(real_data.draw, static_argnums=2)(key, source, 64, p_same)
  rows = jax.jit(real_data.draw_rows, static_argnums=2)
  anchor, positive = rows(key, source, 64, p_same)
  np.testing.assert_array_equal(x, source.x[anchor])
  np.testing.assert_array_equal(x_pos, source.x[positive])
  with jax.enable_x64(True):
    replayed = rows(key, source, 64, p_same)
  np.testing.assert_array_equal(replayed[0], anchor)
  np.testing.assert_array_equal(replayed[1], positive)


def _held_out_rows(y, seed, fraction):
  # The split depends only on the labels and the seed, not on x.
  _, labels = np.unique(y, return_inverse=True)
  rows = np.arange(len(y))
  return train_test_split(
    rows, test_size=fraction, stratify=labels, random_state=seed
  )


def test_standardisation_never_sees_held_out_rows():
  x, y = real_data.load("wine")
  train_rows, test_rows = _held_out_rows(y, seed=5, fraction=0.3)
  x = x.copy()
  x[train_rows, 2] = 7.0  # constant on the training rows only
  wild = x.copy()
  wild[test_rows] = 1e6 * np.random.default_rng(0).normal(
    size=(len(test_rows), x.shape[1])
  )
  split = real_data.prepare(x, y, 5, 0.3)
  other = real_data.prepare(wild, y, 5, 0.3)
  assert 2 not in split.features and len(split.features) == x.shape[1] - 1
  for name in ("x_train", "y_train", "y_test", "features", "mean", "scale"):
    np.testing.assert_array_equal(getattr(other, name), getattr(split, name))
  assert not np.allclose(other.x_test, split.x_test)
  # Moments of the training rows alone (numpy, float64).
  kept = x[np.ix_(train_rows, split.features)]
  np.testing.assert_allclose(split.mean, kept.mean(0), rtol=1e-12)
  np.testing.assert_allclose(split.scale, kept.std(0), rtol=1e-12)
  assert split.x_train.dtype == np.float32
  np.testing.assert_allclose(split.x_train.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(split.x_train.std(0), 1, atol=1e-5)


def test_labels_are_remapped_and_the_split_is_stratified():
  x, y = real_data.load("wine")
  split = real_data.prepare(x, np.array(["c7", "c3", "c5"])[y], 0, 0.3)
  assert set(split.y_train) == set(split.y_test) == {0, 1, 2}
  assert len(split.y_test) == int(np.ceil(0.3 * len(y)))
  # Per-class shares of the training split within one row of the data's.
  share = np.bincount(split.y_train) / len(split.y_train)
  # c3, c5, c7 sort to 0, 1, 2: raw classes 1, 2, 0.
  expected = np.bincount(y)[[1, 2, 0]] / len(y)
  np.testing.assert_allclose(share, expected, atol=1 / len(split.y_train))


def test_load_refuses_an_unknown_data_set():
  with pytest.raises(ValueError, match="dataset='mnist'"):
    real_data.load("mnist")


@pytest.fixture(scope="module")
def wine_split():
  x, y = real_data.load("wine")
  return real_data.prepare(x, y, 0, 0.3)


def test_estimates_are_scikit_learns_shrunk_lda_moments(wine_split):
  split = wine_split
  est = real_data.estimates(split.x_train, split.y_train)
  # Reference: scikit-learn's LDA on the same float64 rows.
  lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto")
  lda.fit(split.x_train.astype(np.float64), split.y_train)
  np.testing.assert_allclose(est.cov, lda.covariance_, rtol=1e-12)
  np.testing.assert_allclose(est.means, lda.means_, rtol=1e-12)
  np.testing.assert_allclose(est.weights, lda.priors_, rtol=1e-12)
  # S_B = sum_i pi_i m_i m_i^T with centred means, written out in numpy.
  centred = lda.means_ - lda.priors_ @ lda.means_
  between = sum(p * np.outer(m, m) for p, m in zip(lda.priors_, centred))
  np.testing.assert_allclose(est.between, between, rtol=1e-10, atol=1e-14)


def _angle(a, b) -> float:
  """Largest principal angle in radians (scipy), spans not coefficients."""
  return float(np.max(scipy.linalg.subspace_angles(a, b)))


def test_reference_is_the_fisher_subspace_of_the_estimates(wine_split):
  split = wine_split
  est = real_data.estimates(split.x_train, split.y_train)
  basis, eigenvalues = real_data.reference(est)
  assert basis.shape == (split.x_train.shape[1], 2)
  # Reference: scipy's generalised eigensolver on the same (S_B, Sigma).
  values, vectors = scipy.linalg.eigh(est.between, est.cov)
  assert _angle(basis, vectors[:, -2:]) < 1e-8
  np.testing.assert_allclose(eigenvalues, values[::-1][:2], rtol=1e-9)
  # scikit-learn's eigen solver takes S_B as a shrunk total covariance
  # minus Sigma, not from the means, so with shrinkage its scalings_ span
  # a nearby subspace (2.7 degrees away on this split, measured).
  lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto")
  lda.fit(split.x_train.astype(np.float64), split.y_train)
  assert np.degrees(_angle(basis, lda.scalings_[:, :2])) < 5
  # Without shrinkage its S_B is exactly the means' scatter: same span.
  plain = LinearDiscriminantAnalysis(solver="eigen").fit(
    split.x_train.astype(np.float64), split.y_train
  )
  unshrunk = real_data.Estimates(
    plain.means_, plain.covariance_, plain.priors_, est.between
  )
  assert _angle(real_data.reference(unshrunk)[0], plain.scalings_[:, :2]) < 1e-6


@jax.jit
def _scores(encoder, m):
  """distance, fisher_ratio, nuisance_share of an encoder on a Mixture."""
  basis, _ = subspace.fisher_subspace(m.means, m.cov, m.weights)
  return jnp.stack(
    [
      metrics.distance(encoder, basis),
      metrics.fisher_ratio(encoder, m.means, m.cov, m.weights),
      metrics.nuisance_share(encoder, basis, m.cov),
    ]
  )


def test_padding_leaves_every_metric_unchanged(wine_split):
  split = wine_split
  est = real_data.estimates(split.x_train, split.y_train)
  dim = est.means.shape[1]
  encoder = np.random.default_rng(1).normal(size=(2, dim))
  with jax.enable_x64(True):
    own = _scores(encoder, real_data.padded_mixture(est, dim))
    padded = _scores(
      np.pad(encoder, ((0, 0), (0, 3))), real_data.padded_mixture(est, dim + 3)
    )
  # Same numbers from d and from d + 3 coordinates (float64 round-off).
  np.testing.assert_allclose(padded, own, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def tiny_run():
  config = real_data_config.get_config("smoke")
  real_data.validate(config)
  with compilation.count_compilations() as compiled:
    outcome = real_data.run_grid(config)
  return config, outcome, compiled


def test_run_grid_returns_every_contracted_column(tiny_run):
  config, outcome, _ = tiny_run
  assert outcome.swept == ["dataset"]
  assert len(outcome.rows) == len(config.methods) * config.seeds
  order = [(r["method"], r["dataset"], r["seed"]) for r in outcome.rows]
  assert order == [
    (m, d, s)
    for m in config.methods
    for d in config.datasets
    for s in range(config.seeds)
  ]
  trained = set(TRAINED_METHODS)
  for row in outcome.rows:
    columns = set(results.METRIC_COLUMNS) - {"final_loss"}
    assert columns <= set(row)
    assert ("final_loss" in row) == (row["method"] in trained)
    assert row["dataset"] == "wine" and not row["diverged"]
    assert 0 <= row["distance"] <= 1 and row["rank"] == 2


def test_run_grid_rows_give_a_figure_and_verdicts(tiny_run):
  # What experiment.run does with the rows, short of writing them.
  config, outcome, _ = tiny_run
  png = experiment.figure(config, outcome.rows, outcome.swept)
  assert png.startswith(b"\x89PNG")
  (verdict,) = claims.verdicts(outcome.rows, config)
  assert verdict["name"] == "C6" and isinstance(verdict["holds"], bool)
  assert "infonce_mlp" in verdict["detail"]


def test_lda_row_is_the_reference(tiny_run):
  _, outcome, _ = tiny_run
  for row in outcome.rows:
    if row["method"] == "lda":
      # The encoder is the reference subspace itself: exact up to float64.
      assert row["distance"] == pytest.approx(0, abs=1e-6)
      assert row["fisher_ratio"] == pytest.approx(1, abs=1e-6)
      assert row["nuisance_share"] == pytest.approx(0, abs=1e-9)


def test_run_grid_compiles_once_per_trained_method_and_data_set(tiny_run):
  config, _, compiled = tiny_run
  trained = [m for m in config.methods if m in TRAINED_METHODS]
  assert compiled["jit(train_grid)"] == len(trained) * len(config.datasets)
  assert compiled["jit(pair_moments_grid)"] == len(config.datasets)


@pytest.mark.parametrize(
  "setting, value, named",
  [
    ("datasets", ("wine", "mnist"), "dataset='mnist'"),
    ("test_fraction", 1.0, "test_fraction=1.0"),
    ("test_fraction", 0.0, "test_fraction=0.0"),
    ("methods", ("infonce", "oracle"), "method='oracle'"),
    ("p_same", 1.5, "p_same=1.5"),
    ("k", 0, "k=0"),
    ("k", 14, "k=14"),  # Wine has 13 features (UCI wine data set).
    ("datasets", ("wine", "wine"), r"datasets=\('wine', 'wine'\)"),
    ("claim_dataset", "digits", "claim_dataset='digits'"),  # Not in the run.
    # Wine has 178 rows of 3 classes: 0.01 holds out 2, 0.99 trains on 1.
    ("test_fraction", 0.01, "test_fraction=0.01"),
    ("test_fraction", 0.99, "test_fraction=0.99"),
    ("sweep", {"anisotropy": (1.0, 10.0)}, "sweep='anisotropy'"),  # No Sigma.
  ],
)
def test_validate_names_the_bad_setting(setting, value, named):
  config = real_data_config.get_config("smoke")
  config[setting] = value
  with pytest.raises(ValueError, match=f"^{named} is invalid"):
    validation.validate(config)  # Shared checks, then real_data's own.


def test_k_is_checked_against_the_data_not_the_synthetic_mixture():
  # digits keeps 61 of its 64 pixels; the synthetic mixture.dim of the shared
  # defaults (32) has nothing to do with it.
  config = real_data_config.get_config("quick")
  with config.unlocked():
    config.datasets = ("digits",)
    config.k = 40
  validation.validate(config)
  with config.unlocked():
    config.k = 62
  with pytest.raises(ValueError, match="^k=62 is invalid: digits has 61"):
    validation.validate(config)


def test_validate_refuses_a_non_positive_temperature():
  config = real_data_config.get_config("smoke")
  config.train.temperature = 0.0
  with pytest.raises(ValueError, match="^temperature=0.0 is invalid"):
    validation.validate(config)
