"""The two-modality mixture, CLIP training and the multimodal pipeline."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from conftest import set_dotted
from sklearn import linear_model

from ssl_gmm import (
  claims,
  compilation,
  experiment,
  multimodal,
  results,
  subspace,
  synthetic,
)
from ssl_gmm.configs import multimodal as multimodal_config
from ssl_gmm.train import Hyper

DIM_X, DIM_Y, K = 6, 5, 3
N = 20_000  # Samples for the statistical tests.


# Jitted once per dtype: op by op, the small test programs compile slowly.
_make = jax.jit(
  functools.partial(
    multimodal.make_two_modal, dim_x=DIM_X, dim_y=DIM_Y, num_components=K
  ),
  static_argnames="dtype",
)


def _mixture(seed=0, anisotropy_x=10.0, anisotropy_y=10.0, dtype=jnp.float32):
  key = jax.random.PRNGKey(seed)
  return _make(
    key, anisotropy_x=anisotropy_x, anisotropy_y=anisotropy_y, dtype=dtype
  )


@pytest.fixture(scope="module")
def drawn():
  """A float32 mixture as float64 NumPy arrays, and N samples of it."""
  mixture = _mixture()
  sample = jax.jit(functools.partial(multimodal.sample_two_modal, n=N))
  x, y, c, s = sample(jax.random.PRNGKey(1), mixture)
  as64 = functools.partial(np.asarray, dtype=np.float64)
  mixture = multimodal.TwoModalMixture(*map(as64, mixture))
  return mixture, as64(x), as64(y), np.asarray(c), np.asarray(s)


def _held_out_s_accuracy(features: np.ndarray, s: np.ndarray) -> float:
  half = len(s) // 2
  model = linear_model.LogisticRegression().fit(features[:half], s[:half])
  return model.score(features[half:], s[half:])


@pytest.mark.parametrize(
  "changes, named",
  [
    (dict(anisotropy_x=-1.0), "anisotropy_x=-1.0"),  # Sigma_x indefinite.
    (dict(anisotropy_y=0.0), "anisotropy_y=0.0"),
    (dict(private_norm=-2.0), "private_norm=-2.0"),
    # Its shift, squared in the covariance of x, would overflow float32.
    (dict(private_norm=1e30), "private_norm=1e\\+30"),
    (dict(num_components=1), "num_components=1"),
    (dict(dim_y=2), "dim_y=2"),  # < K = 3
  ],
)
def test_make_two_modal_names_a_bad_argument(changes, named):
  arguments = dict(
    dim_x=DIM_X,
    dim_y=DIM_Y,
    num_components=K,
    anisotropy_x=10.0,
    anisotropy_y=10.0,
  )
  with pytest.raises(ValueError, match=f"^{named} is invalid"):
    multimodal.make_two_modal(jax.random.PRNGKey(0), **arguments | changes)


def test_s_is_a_fair_sign_independent_of_c(drawn):
  _, _, _, c, s = drawn
  assert set(np.unique(s)) == {-1, 1}
  for group in [np.ones_like(c, bool)] + [c == i for i in range(K)]:
    n = group.sum()
    # Binomial(n, 1/2): the share of +1 has standard error sqrt(1/4n).
    share = np.mean(s[group] == 1)
    assert abs(share - 0.5) <= 5 * np.sqrt(0.25 / n)


def test_y_carries_no_information_about_s(drawn):
  _, x, y, _, s = drawn
  plus, minus = y[s == 1], y[s == -1]
  gap = plus.mean(0) - minus.mean(0)
  standard_error = np.sqrt(plus.var(0) / len(plus) + minus.var(0) / len(minus))
  np.testing.assert_array_less(np.abs(gap), 5 * standard_error)
  # Held-out accuracy of a predictor that knows nothing of s is
  # Binomial(n_test, 1/2) / n_test, of standard error sqrt(1/(4 n_test)).
  tolerance = 5 * np.sqrt(0.25 / (N // 2))
  assert abs(_held_out_s_accuracy(y, s) - 0.5) <= tolerance
  # x's mean moves by 2 ||u|| = 8 with s, against noise of variance <= 10
  # along u: s is nearly separable (seed 0 gives 1.0 here).
  assert _held_out_s_accuracy(x, s) >= 0.75


def _assert_moments(samples, mean, cov, rtol_se=5.0):
  """Sample mean and covariance within rtol_se standard errors of the truth.

  The standard errors are estimated from the samples themselves (of the
  mean, std / sqrt(n); of each covariance entry, the std of the centred
  products / sqrt(n)), so they hold for non-Gaussian data too.
  """
  n = len(samples)
  centred = samples - samples.mean(0)
  se_mean = samples.std(0) / np.sqrt(n)
  np.testing.assert_array_less(
    np.abs(samples.mean(0) - mean), rtol_se * se_mean
  )
  products = centred[:, :, None] * centred[:, None, :]
  se_cov = products.std(0) / np.sqrt(n)
  np.testing.assert_array_less(np.abs(products.mean(0) - cov), rtol_se * se_cov)


def test_x_given_c_and_s_has_mean_mu_c_plus_s_u_and_covariance_sigma_x(drawn):
  mixture, x, y, c, s = drawn
  u = mixture.private
  np.testing.assert_allclose(np.linalg.norm(u), 4.0, rtol=1e-6)
  for i in range(K):
    for sign in (-1, 1):
      group = x[(c == i) & (s == sign)]
      _assert_moments(group, mixture.means_x[i] + sign * u, mixture.cov_x)
    # Blind to s, x's within-class covariance for c is Sigma_x + u u^T.
    _assert_moments(
      x[c == i], mixture.means_x[i], mixture.cov_x + np.outer(u, u)
    )
    _assert_moments(y[c == i], mixture.means_y[i], mixture.cov_y)


def test_x_pairs_share_c_and_s_and_their_anchors_are_clips_x():
  mixture = _mixture()
  key = jax.random.PRNGKey(3)
  both = jax.jit(
    lambda key, mixture: (
      multimodal.sample_x_pairs(key, mixture, 64),
      multimodal.sample_two_modal(key, mixture, 64),
    )
  )
  (x, x_pos, c, s), (x_clip, _, c_clip, s_clip) = both(key, mixture)
  np.testing.assert_array_equal(x, x_clip)
  np.testing.assert_array_equal(c, c_clip)
  np.testing.assert_array_equal(s, s_clip)
  # Key reuse: the positive is an independent draw, never the anchor.
  assert np.all(np.any(np.asarray(x) != np.asarray(x_pos), axis=1))


def _scipy_fisher(means, cov, weights):
  """Top K - 1 generalised eigenpairs of (S_B, cov) from scipy (float64)."""
  centred = means - weights @ means
  between = (centred.T * weights) @ centred
  values, vectors = scipy.linalg.eigh(between, cov)
  return values[::-1][: K - 1], vectors[:, ::-1][:, : K - 1]


def test_shared_fisher_subspaces_match_scipy():
  with jax.enable_x64(True):
    mixture = _mixture(anisotropy_x=100.0, dtype=jnp.float64)
    fishers = jax.jit(
      lambda m: (
        multimodal.x_shared_fisher(m),
        multimodal.y_fisher(m),
        subspace.fisher_subspace(m.means_x, m.cov_x, m.weights),
      )
    )
    (basis_x, values_x), (basis_y, values_y), (without_u, _) = jax.tree.map(
      np.asarray, fishers(mixture)
    )
  m = multimodal.TwoModalMixture(*map(np.asarray, mixture))
  within = m.cov_x + np.outer(m.private, m.private)
  reference_x = _scipy_fisher(m.means_x, within, m.weights)
  reference_y = _scipy_fisher(m.means_y, m.cov_y, m.weights)
  for found, values, (ref_values, ref_basis) in (
    (basis_x, values_x, reference_x),
    (basis_y, values_y, reference_y),
  ):
    np.testing.assert_allclose(values, ref_values, rtol=1e-10)
    angles = scipy.linalg.subspace_angles(found, ref_basis)
    assert len(angles) == K - 1
    np.testing.assert_allclose(angles, 0.0, atol=1e-8)
  # The private direction matters: ignoring u gives another subspace.
  assert scipy.linalg.subspace_angles(np.asarray(without_u), basis_x)[0] > 1e-2


def _tiny_config(**changes):
  """The smoke profile at d1 = 6, d2 = 5, K = 3, k = 2 (20 steps)."""
  config = multimodal_config.get_config("smoke")
  config.multimodal.dim_x = DIM_X
  config.multimodal.dim_y = DIM_Y
  config.mixture.num_components = K
  config.k = 2
  config.n_eval = 120
  for name, value in changes.items():
    set_dotted(config, name, value)
  return config


# Every row's columns; final_loss only on the trained methods' rows.
COLUMNS = {
  *results.LEADING_COLUMNS,
  "anisotropy_x",
  "anisotropy_y",
  *results.METRIC_COLUMNS,
  "s_accuracy",
} - {"final_loss"}


# Two values of anisotropy_x: 2 seeds x 2 values = 4 grid points.
SWEEP_X = {"sweep.anisotropy_x": (10.0, 100.0)}


@pytest.fixture(scope="module")
def pipeline():
  """run_grid on 2 seeds x 2 values of anisotropy_x, compilations counted."""
  config = _tiny_config(**SWEEP_X)
  with compilation.count_compilations() as compiled:
    outcome = multimodal.run_grid(config)
  return config, outcome, compiled


def test_run_grid_rows_carry_every_contracted_column(pipeline):
  config, outcome, _ = pipeline
  rows = outcome.rows
  assert outcome.swept == ["anisotropy_x", "anisotropy_y"]
  assert set(outcome.timings) == {"clip", "infonce", "baselines"}
  points = config.seeds * 2
  expected = [m for m in config.methods for _ in range(points)]
  assert [r["method"] for r in rows] == expected
  trained = ("clip", "clip_y", "infonce")
  for row in rows:
    assert set(row) >= COLUMNS
    assert ("final_loss" in row) == (row["method"] in trained)
    assert 0 <= row["s_accuracy"] <= 1
    assert 0 <= row["distance"] <= 1
    assert not row["diverged"]
    if row["method"] == "oracle":
      assert row["distance"] == pytest.approx(0, abs=1e-6)
      assert row["fisher_ratio"] == pytest.approx(1, abs=1e-6)
  # clip and clip_y are the two encoders of one training run.
  clip = [r["final_loss"] for r in rows if r["method"] == "clip"]
  clip_y = [r["final_loss"] for r in rows if r["method"] == "clip_y"]
  assert clip == clip_y


def test_run_grid_rows_give_a_figure_and_verdicts(pipeline):
  # What experiment.run does with the rows, short of writing them.
  config, outcome, _ = pipeline
  png = experiment.figure(config, outcome.rows, outcome.swept)
  assert png.startswith(b"\x89PNG")
  verdicts = claims.verdicts(outcome.rows, config)
  assert [v["name"] for v in verdicts] == list(config.claims)
  for verdict in verdicts:
    assert isinstance(verdict["holds"], bool) and verdict["detail"]


def test_one_compilation_per_grid_program_for_a_sweep(pipeline):
  # Recompilation: the two anisotropies are traced values of one program.
  _, _, compiled = pipeline
  for name in ("train_clip_grid", "train_grid", "x_baseline_grid"):
    assert compiled[f"jit({name})"] == 1


def _stacked(seeds, anisotropies):
  mixtures = [_mixture(seed, a, a) for seed, a in zip(seeds, anisotropies)]
  keys = jnp.stack([jax.random.PRNGKey(seed) for seed in seeds])
  return keys, jax.tree.map(lambda *a: jnp.stack(a), *mixtures)


def test_clip_training_repeats_exactly_for_identical_seeds(pipeline):
  config, _, _ = pipeline
  static = dict(k=config.k, steps=config.train.steps, batch=config.train.batch)
  full = functools.partial(jnp.full, (4,), dtype=jnp.float32)
  hyper = Hyper(full(1e-2), full(0.5), full(1.0))
  keys, mixtures = _stacked([0, 0, 1, 1], [10.0, 100.0, 10.0, 100.0])
  run = functools.partial(multimodal.train_clip_grid, **static)
  first = run(keys, keys, mixtures, hyper)
  second = run(keys, keys, mixtures, hyper)
  assert first.encoder_x.shape == (4, config.k, DIM_X)
  assert first.encoder_y.shape == (4, config.k, DIM_Y)
  assert not np.any(first.diverged)
  for name in ("encoder_x", "encoder_y", "final_loss"):
    np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
  other = run(keys[::-1], keys[::-1], mixtures, hyper)
  assert not np.allclose(first.encoder_x, other.encoder_x)


def test_a_diverged_point_scores_as_a_failure(pipeline):
  # The pipeline's grid, so that every program is already compiled.
  config = _tiny_config(methods=("clip",), **SWEEP_X)
  grid = synthetic.build_grid(config)
  keys = synthetic.make_keys(config.seed, grid)
  mixtures = multimodal.make_mixtures(config, keys, grid)
  nan = np.full((grid.size, config.k, DIM_X), np.nan)
  outputs = {
    "clip": {
      "encoder": nan,
      "diverged": np.ones(grid.size, bool),
      "final_loss": np.full(grid.size, np.nan),
    }
  }
  rows = multimodal.evaluate(config, grid, keys, mixtures, outputs)
  assert len(rows) == grid.size
  for row in rows:
    assert row["diverged"]
    assert (row["distance"], row["fisher_ratio"], row["rank"]) == (1, 0, 0)
    assert (row["nmi"], row["ari"], row["s_accuracy"]) == (0, 0, 0.5)
    assert row["accuracy"] == pytest.approx(1 / K, rel=1e-6)


def test_the_valid_config_passes_validation():
  multimodal.validate(_tiny_config())
  for profile in ("quick", "full", "smoke"):
    multimodal.validate(multimodal_config.get_config(profile))


@pytest.mark.parametrize(
  "setting, value, named",
  [
    ("k", 6, "k=6"),  # k <= d1 = 6 but k > d2 = 5.
    ("k", 0, "k=0"),
    ("multimodal.dim_y", 2, "dim_y=2"),  # d2 < K = 3
    ("multimodal.dim_x", 2, "dim_x=2"),
    ("mixture.num_components", 1, "num_components=1"),
    ("multimodal.private_norm", -1.0, "private_norm=-1.0"),
    ("sweep.anisotropy_x", (0.0,), "anisotropy_x=0.0"),
    ("sweep.anisotropy_y", (10.0, -1.0), "anisotropy_y=-1.0"),
    ("methods", ("clip", "pca"), "method='pca'"),
    ("claims", ("C1",), "claim='C1'"),
  ],
)
def test_validate_refuses_by_name(setting, value, named):
  with pytest.raises(ValueError, match=f"^{named} is invalid"):
    multimodal.validate(_tiny_config(**{setting: value}))
