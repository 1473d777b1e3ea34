"""The heteroscedastic mixture, its Bayes and QDA scores, claims and checks.

Reference values: the closed forms of the model in
ssl_gmm/heteroscedastic.py (means of norm `separation`, Sigma_c = I +
(anisotropy - 1) Q_c Q_c^T for orthonormal Q_c, P(c' = c) = p_same +
(1 - p_same) sum_i pi_i^2), scipy.stats.multivariate_normal for the
log-densities, scipy.linalg.eigh for the Fisher subspace; statistical
checks use five standard errors. One tiny grid (module fixture) is built
and scored without training: the trained and fitted programs run in the
smoke profile of tests/test_scripts.py.
"""

import functools

import jax
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from conftest import set_dotted

from ssl_gmm import (
  baselines,
  claims,
  compilation,
  experiment,
  results,
  synthetic,
)
from ssl_gmm import heteroscedastic as hetero
from ssl_gmm import train as training
from ssl_gmm.configs import heteroscedastic as hetero_config
from ssl_gmm.mixture import make_mixture

DIM, K, R, EMBED = 6, 3, 2, 2
ANISOTROPY = (1.0, 100.0)
N = 20_000  # Pairs for the statistical checks.
EPS32 = float(np.finfo(np.float32).eps)


def _tiny_config(**changes):
  """The smoke profile at d = 6, K = 3, r = 2, k = 2; dotted names."""
  config = hetero_config.get_config("smoke")
  config.mixture.dim = DIM
  config.mixture.num_components = K
  config.mixture.n_nuisance = R
  config.k = EMBED
  config.n_eval = 400
  config.n_baseline = 64
  config.sweep.anisotropy = ANISOTROPY
  config.methods = ("infonce", "lda", "oracle")
  with config.unlocked():
    for name, value in changes.items():
      set_dotted(config, name, value)
  return config


def _f64(a) -> np.ndarray:
  return np.asarray(a, np.float64)


def _scipy_fisher(means, cov, weights) -> np.ndarray:
  """[d, K - 1] top generalised eigenvectors of (S_B, cov), from scipy."""
  centred = means - weights @ means
  between = (centred.T * weights) @ centred
  return scipy.linalg.eigh(between, cov)[1][:, ::-1][:, : K - 1]


@pytest.fixture(scope="module")
def grid():
  """2 seeds x 2 anisotropies of the tiny config, with their mixtures."""
  config = _tiny_config()
  points = synthetic.build_grid(config)
  keys = synthetic.make_keys(config.seed, points)
  return config, points, keys, hetero.make_mixtures(config, keys, points)


@pytest.fixture(scope="module")
def scored(grid):
  """Rows of hand-made encoders: a random one, a diverged one, and F.

  `oracle`'s encoder is the Fisher subspace of (S_B, Sigma_W) from scipy,
  an implementation independent of the pipeline's reference.
  """
  config, points, keys, mixtures = grid
  encoders = []
  for p in range(points.size):
    m = hetero.at_point(mixtures, p)
    within = np.einsum("k,kde->de", m.weights, m.covs)
    encoders.append(_scipy_fisher(m.means, within, m.weights).T)
  shape = (points.size, EMBED, DIM)
  random = np.random.default_rng(0).normal(size=shape)
  fine, failed = np.zeros(points.size, bool), np.ones(points.size, bool)
  outputs = {
    "infonce": {"encoder": random, "diverged": fine},
    "lda": {"encoder": np.full(shape, np.nan), "diverged": failed},
    "oracle": {"encoder": np.stack(encoders), "diverged": fine},
  }
  with compilation.count_compilations() as compiled:
    rows = hetero.evaluate(config, points, keys, mixtures, outputs)
  return rows, compiled


# The mixture -----------------------------------------------------------------


@pytest.mark.parametrize(
  "changes, named",
  [
    (dict(num_components=1), "num_components=1"),  # K < 2
    (dict(dim=2), "dim=2"),  # d < K = 3
    (dict(n_nuisance=7), "n_nuisance=7"),  # > d = 6
    (dict(n_nuisance=0), "n_nuisance=0"),  # Every Sigma_c = I: no contrast.
    (dict(anisotropy=-1.0), "anisotropy=-1.0"),  # Sigma_c indefinite.
    (dict(separation=0.0), "separation=0.0"),
  ],
)
def test_make_hetero_mixture_names_a_bad_argument(changes, named):
  arguments = dict(dim=DIM, num_components=K, anisotropy=10.0) | changes
  with pytest.raises(ValueError, match=f"^{named} is invalid"):
    hetero.make_hetero_mixture(jax.random.PRNGKey(0), **arguments)


def test_each_covariance_has_the_stated_eigenvalues_and_square_root(grid):
  _, points, _, mixtures = grid
  for p, anisotropy in enumerate(points.swept["anisotropy"]):
    m = hetero.at_point(mixtures, p)
    # Every mean has norm `separation`; the weights are uniform.
    np.testing.assert_allclose(np.linalg.norm(m.means, axis=1), 3.0, rtol=1e-6)
    np.testing.assert_allclose(m.weights, 1 / K, rtol=1e-7)
    expected = np.r_[np.ones(DIM - R), np.full(R, anisotropy)]
    # float32 parameters: Weyl's bound on a rounding of size d eps32 a.
    atol = 4 * DIM * EPS32 * anisotropy
    for c in range(K):
      eigenvalues = np.linalg.eigvalsh(m.covs[c])
      np.testing.assert_allclose(eigenvalues, expected, rtol=0, atol=atol)
      q = m.sqrt_left[c]
      np.testing.assert_allclose(q.T @ q, np.eye(R), rtol=0, atol=1e-6)
      sqrt = np.eye(DIM) + m.sqrt_left[c] @ m.sqrt_right[c].T
      np.testing.assert_allclose(sqrt @ sqrt.T, m.covs[c], rtol=0, atol=atol)
    # Nuisance directions drawn per component: in general position.
    angles = scipy.linalg.subspace_angles(m.sqrt_left[0], m.sqrt_left[1])
    assert angles.max() > 0.1


def test_anisotropy_one_gives_equal_identity_covariances(grid):
  config, points, keys, mixtures = grid
  p = int(np.flatnonzero(points.swept["anisotropy"] == 1.0)[0])
  m = hetero.at_point(mixtures, p)
  np.testing.assert_allclose(m.covs, np.broadcast_to(np.eye(DIM), m.covs.shape))
  np.testing.assert_allclose(m.sqrt_right, 0.0)
  # The homoscedastic control: make_mixture's mixture of the same key.
  same = make_mixture(keys.mixture[p], DIM, K, 1.0, n_nuisance=R)
  np.testing.assert_allclose(m.means, _f64(same.means), rtol=1e-6)
  for cov in m.covs:
    np.testing.assert_allclose(cov, _f64(same.cov), rtol=0, atol=1e-6)


def test_the_mixture_of_a_seed_is_shared_across_anisotropies(grid):
  _, points, _, mixtures = grid
  # Points: seed 0 at both anisotropies, then seed 1.
  np.testing.assert_array_equal(points.seed, [0, 0, 1, 1])
  for name in ("means", "sqrt_left"):
    a = np.asarray(getattr(mixtures, name))
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.allclose(a[0], a[2])


def test_pairs_follow_each_components_law_and_the_p_same_rule(grid):
  _, _, _, mixtures = grid
  m32 = jax.tree.map(lambda a: a[1], mixtures)  # anisotropy 100, seed 0
  p_same = 0.5
  draw = jax.jit(functools.partial(hetero.sample_pairs, n=N, p_same=p_same))
  x, x_pos, c, c_pos = map(np.asarray, draw(jax.random.PRNGKey(3), m32))
  m = hetero.at_point(mixtures, 1)
  # Key reuse would make the positive the anchor itself.
  assert np.all(np.any(x != x_pos, axis=1))
  for i in range(K):
    for samples in (x[c == i], x_pos[c_pos == i]):
      _assert_moments(_f64(samples), m.means[i], m.covs[i])
  # P(c' = c) = p_same + (1 - p_same) / K for uniform weights.
  share = p_same + (1 - p_same) / K
  error = 5 * np.sqrt(share * (1 - share) / N)
  assert abs(np.mean(c == c_pos) - share) <= error


def _assert_moments(samples, mean, cov):
  """Sample mean and covariance within five standard errors of the truth.

  The standard errors come from the samples themselves (of the mean,
  std / sqrt(n); of each covariance entry, the std of the centred products
  / sqrt(n)).
  """
  n = len(samples)
  se_mean = samples.std(0) / np.sqrt(n)
  np.testing.assert_array_less(np.abs(samples.mean(0) - mean), 5 * se_mean)
  centred = samples - mean
  products = centred[:, :, None] * centred[:, None, :]
  se_cov = products.std(0) / np.sqrt(n)
  np.testing.assert_array_less(np.abs(products.mean(0) - cov), 5 * se_cov)


# Bayes and QDA ---------------------------------------------------------------


def test_log_densities_and_the_bayes_classifier_match_scipy(grid):
  _, _, _, mixtures = grid
  m = hetero.at_point(mixtures, 3)
  x = np.random.default_rng(1).normal(scale=4.0, size=(50, DIM))
  found = hetero.log_densities(x, m.means, m.covs)
  reference = np.stack(
    [
      scipy.stats.multivariate_normal(mean, cov).logpdf(x)
      for mean, cov in zip(m.means, m.covs)
    ],
    axis=1,
  )
  np.testing.assert_allclose(found, reference, rtol=1e-10, atol=1e-10)
  chosen = np.argmax(np.log(m.weights) + reference, axis=1)
  np.testing.assert_array_equal(hetero.bayes_predict(x, m), chosen)
  assert len(set(chosen.tolist())) > 1  # Not a constant classifier.


def test_qda_separates_a_trivial_toy_and_reads_only_the_row_space():
  rng = np.random.default_rng(2)
  labels = np.repeat([0, 1], 100)
  z = rng.normal(size=(200, 2)) + 10.0 * (2 * labels[:, None] - 1)
  order = rng.permutation(200)
  z, labels = z[order], labels[order]
  assert hetero.qda_accuracy(z[:100], labels[:100], z[100:], labels[100:]) == 1
  # Equal means, variances swapped: chance for a linear rule, not for QDA.
  scale = np.where(labels[:, None] == 0, [5.0, 0.2], [0.2, 5.0])
  z = rng.normal(size=(200, 2)) * scale
  assert hetero.qda_accuracy(z[:100], labels[:100], z[100:], labels[100:]) > 0.9
  # Two encoders of one row space score alike; rank 0 scores chance.
  x = rng.normal(size=(200, 4)) * np.array([1.0, 1.0, 3.0, 0.1])
  encoder = rng.normal(size=(2, 4))
  mixed = np.array([[2.0, 1.0], [0.5, -3.0]]) @ encoder
  weights = np.full(2, 0.5)
  one = hetero.embedding_qda(encoder, 2, x, labels, weights)
  other = hetero.embedding_qda(mixed, 2, x, labels, weights)
  assert one == pytest.approx(other, abs=1e-12)
  assert hetero.embedding_qda(0 * encoder, 0, x, labels, weights) == 0.5


# Scoring ---------------------------------------------------------------------


def test_rows_carry_every_column_and_the_oracle_is_f(scored, grid):
  rows, compiled = scored
  config, points, _, _ = grid
  assert [r["method"] for r in rows] == [
    m for m in config.methods for _ in range(points.size)
  ]
  columns = {
    *results.LEADING_COLUMNS,
    "anisotropy",
    *results.METRIC_COLUMNS,
    "qda_accuracy",
    "bayes_accuracy",
  } - {"final_loss"}
  for row in rows:
    assert set(row) == columns
    assert 0 <= row["qda_accuracy"] <= 1 and 0 <= row["bayes_accuracy"] <= 1
  for row in (r for r in rows if r["method"] == "oracle"):
    # Sigma_W's Fisher subspace from scipy is the pipeline's reference.
    assert row["distance"] == pytest.approx(0, abs=1e-8)
    assert row["fisher_ratio"] == pytest.approx(1, abs=1e-8)
    assert row["rank"] == EMBED
    # The true parameters beat a classifier fitted on 200 samples.
    assert row["bayes_accuracy"] >= row["qda_accuracy"] - 0.05
  # One compilation of each scoring program for the whole grid.
  assert compiled["jit(subspace_metrics)"] <= 1


def test_the_bayes_ceiling_is_one_per_point(scored, grid):
  rows, _ = scored
  _, points, _, _ = grid
  for p in range(points.size):
    at = rows[p :: points.size]
    assert len({r["bayes_accuracy"] for r in at}) == 1
  # Unequal covariances make the ceiling higher (seed 0: 1 vs 100).
  assert rows[1]["bayes_accuracy"] > rows[0]["bayes_accuracy"]


def test_a_diverged_point_scores_as_a_failure(scored):
  rows, _ = scored
  for row in (r for r in rows if r["method"] == "lda"):
    assert row["diverged"]
    assert (row["distance"], row["fisher_ratio"], row["rank"]) == (1, 0, 0)
    assert (row["nmi"], row["ari"]) == (0, 0)
    assert row["accuracy"] == pytest.approx(1 / K, rel=1e-6)
    assert row["qda_accuracy"] == pytest.approx(1 / K, rel=1e-6)


def test_the_baselines_replay_the_anchors_training_drew(grid):
  _, _, keys, mixtures = grid
  m32 = jax.tree.map(lambda a: a[1], mixtures)
  key = keys.data[1]
  with jax.enable_x64(True):
    replay = jax.jit(
      functools.partial(hetero.replay_moments, steps=2, batch=16)
    )
    found = replay(key, m32, 1.0)
    # The pairs of train.train_grid's steps 0 and 1, drawn op by op.
    drawn = [
      hetero.sample_pairs(jax.random.fold_in(key, t), m32, 16, 1.0)
      for t in range(2)
    ]
  x, x_pos, c = (_f64(np.concatenate([d[i] for d in drawn])) for i in range(3))
  onehot = np.eye(K)[c.astype(int)]
  diff = x - x_pos
  # Baselines.Moments' definitions, summed in NumPy.
  expected = baselines.Moments(
    count=32.0,
    sum_xx=x.T @ x,
    class_count=onehot.sum(0),
    class_sum=onehot.T @ x,
    sum_diff=diff.sum(0),
    sum_diff2=diff.T @ diff,
  )
  # Another stream would differ by O(1); compiled and op-by-op float32
  # arithmetic may differ in the last bits.
  for a, b in zip(found, expected):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


# Claims ----------------------------------------------------------------------


def _rows(qda: dict, bayes: dict) -> list[dict]:
  """Two seeds of each method at anisotropy 1 and 1000, accuracies given."""
  return [
    {
      "method": method,
      "seed": seed,
      "anisotropy": a,
      "qda_accuracy": value + (0.01 if seed else -0.01),
      "bayes_accuracy": bayes[a],
    }
    for method, by_value in qda.items()
    for a, value in by_value.items()
    for seed in (0, 1)
  ]


BAYES = {1.0: 0.9, 1000.0: 0.99}


def test_the_lda_gap_claim_reads_the_largest_anisotropy():
  config = _tiny_config()
  lda = {1.0: 0.9, 1000.0: 0.9}
  verdict = claims.CLAIMS["hetero_lda_gap"](
    _rows({"lda": lda, "oracle": lda}, BAYES), config
  )
  assert verdict["holds"]
  assert verdict["gap"] == pytest.approx(0.09)
  assert "at anisotropy 1000: lda qda_accuracy 0.900" in verdict["detail"]
  assert "bayes_accuracy 0.990, gap 0.090 (needs >= 0.02)" in verdict["detail"]
  near = {1.0: 0.9, 1000.0: 0.98}
  verdict = claims.CLAIMS["hetero_lda_gap"](_rows({"lda": near}, BAYES), config)
  assert not verdict["holds"]
  assert "gap 0.010" in verdict["detail"]


def test_the_infonce_claim_names_where_infonce_beats_or_trails_lda():
  config = _tiny_config()
  check = claims.CLAIMS["hetero_infonce"]
  lda = {1.0: 0.9, 1000.0: 0.9}
  close = {1.0: 0.89, 1000.0: 0.95}
  verdict = check(_rows({"lda": lda, "infonce": close}, BAYES), config)
  assert verdict["holds"]
  detail = verdict["detail"]
  assert "anisotropy 1: infonce 0.890 trails lda 0.900 by 0.010" in detail
  assert "anisotropy 1000: infonce 0.950 beats lda 0.900 by 0.050" in detail
  assert "bayes 0.990" in detail
  far = {1.0: 0.9, 1000.0: 0.85}
  verdict = check(_rows({"lda": lda, "infonce": far}, BAYES), config)
  assert not verdict["holds"] and verdict["failed_at"] == [1000.0]
  assert "by 0.050, bayes 0.990 (fails)" in verdict["detail"]


# Validation ------------------------------------------------------------------


def test_every_profile_passes_validation():
  for profile in ("quick", "full", "smoke"):
    experiment.validate(hetero_config.get_config(profile))
  experiment.validate(_tiny_config())


@pytest.mark.parametrize(
  "setting, value, named",
  [
    ("sweep.anisotropy", (1.0, 0.0), "anisotropy=0.0"),
    ("sweep.anisotropy", (-2.0,), "anisotropy=-2.0"),
    ("sweep.dim", (8, 16), "sweep='dim'"),
    ("k", 7, "k=7"),  # k > d = 6
    ("mixture.num_components", 1, "num_components=1"),
    ("mixture.n_nuisance", 7, "n_nuisance=7"),
    ("mixture.n_nuisance", 0, "n_nuisance=0"),
    ("n_baseline", 8, "n_baseline=8"),  # < d + K = 9
    ("train.sampler", "embedding", "sampler='embedding'"),
    ("methods", ("infonce", "clip"), "method='clip'"),
    ("methods", ("infonce", "oracle"), "methods="),  # The claims read lda.
    ("claims", ("C1",), "claim='C1'"),
  ],
)
def test_invalid_setting_is_named_before_compiling(setting, value, named):
  config = _tiny_config(**{setting: value})
  with (
    compilation.count_compilations() as compiled,
    pytest.raises(ValueError, match=f"^{named}"),
  ):
    experiment.run(config, "unused")
  assert not compiled


def test_an_mlp_method_is_refused():
  mlps = [
    m
    for m, spec in training.TRAINED_METHODS.items()
    if getattr(spec, "encoder", "linear") != "linear"
  ]
  for method in mlps:
    with pytest.raises(ValueError, match=f"^method='{method}'.*linear"):
      experiment.validate(_tiny_config(methods=("infonce", "lda", method)))
