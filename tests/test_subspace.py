"""Tests of the Fisher subspace, its solver and the spectral baselines.

Reference values come from float64 NumPy/SciPy and scikit-learn; subspaces
are compared by principal angles, never by coefficients. The
package's functions are wrapped in jax.jit only to compile once per test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from ssl_gmm import baselines, mixture, programs, subspace

_fisher_subspace = jax.jit(subspace.fisher_subspace)
_make_mixture = jax.jit(
  mixture.make_mixture, static_argnums=(1, 2), static_argnames=("dtype",)
)


@pytest.fixture(autouse=True)
def _x64():
  """Runs every test in 64-bit mode, without which float64 is float32."""
  with jax.enable_x64(True):  # Silent float32
    yield


def _random_spd(rng, dim, condition=100.0):
  """A random [d, d] SPD matrix with eigenvalues from 1 to `condition`."""
  q = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
  return (q * np.geomspace(1.0, condition, dim)) @ q.T


def _params(mix):
  """The mixture's means, cov and weights as float64 NumPy arrays."""
  return tuple(
    np.asarray(a, np.float64) for a in (mix.means, mix.cov, mix.weights)
  )


def _fisher_reference(means, cov, weights):
  """Float64 Fisher basis and eigenvalues from scipy.linalg.eigh(S_B, Sigma).

  Returns:
    basis: [d, K - 1] top generalised eigenvectors; values: [d] every
    generalised eigenvalue in decreasing order.
  """
  centred = means - weights @ means
  between = (centred.T * weights) @ centred
  values, vectors = scipy.linalg.eigh(between, cov)
  rank = means.shape[0] - 1
  return vectors[:, ::-1][:, :rank], values[::-1]


def _closed_form_fisher(means, cov, weights):
  """Float64 basis of F = span{Sigma^{-1} m_i}, m_i the centred means.

  sum_i pi_i m_i = 0 when the weights sum to 1, so the first K - 1 centred
  means already span F.
  """
  centred = means - weights @ means
  return np.linalg.solve(cov, centred[:-1].T)


def _largest_angle(a, b):
  """Largest principal angle in radians (scipy.linalg.subspace_angles)."""
  return float(np.max(scipy.linalg.subspace_angles(a, b)))


def _nonzero_rows(encoder):
  encoder = np.asarray(encoder)
  return encoder[np.any(encoder != 0, axis=1)]


# generalized_eigh


def test_generalized_eigh_matches_scipy():
  rng = np.random.default_rng(0)
  dim = 7
  cov = _random_spd(rng, dim)
  half = rng.normal(size=(dim, dim))
  scatter = half @ half.T  # full rank, so every eigenvalue is simple
  # Reference: scipy.linalg.eigh(S, Sigma), reordered to decreasing.
  ref_values, ref_vectors = scipy.linalg.eigh(scatter, cov)
  ref_values, ref_vectors = ref_values[::-1], ref_vectors[:, ::-1]

  values, vectors = jax.jit(subspace.generalized_eigh)(
    jnp.asarray(scatter), jnp.asarray(cov)
  )
  values, vectors = np.asarray(values), np.asarray(vectors)
  assert vectors.dtype == np.float64
  np.testing.assert_allclose(values, ref_values, rtol=1e-10, atol=1e-12)
  for i in range(dim):
    # Each eigenvector's span, compared by scipy.linalg.subspace_angles.
    angle = _largest_angle(vectors[:, i : i + 1], ref_vectors[:, i : i + 1])
    assert angle < 1e-8, (i, angle)
  # Closed form: W^T Sigma W = I and W^T S W = diag(lambda).
  np.testing.assert_allclose(
    vectors.T @ cov @ vectors, np.eye(dim), rtol=0, atol=1e-10
  )
  np.testing.assert_allclose(
    vectors.T @ scatter @ vectors, np.diag(ref_values), rtol=0, atol=1e-9
  )


# fisher_subspace


def _uniform_mixture():
  return _params(
    _make_mixture(jax.random.key(0), 10, 4, 30.0, dtype=jnp.float64)
  )


def _weighted_mixture():
  rng = np.random.default_rng(1)
  means = 3.0 * rng.normal(size=(4, 10))
  weights = np.array([0.5, 0.25, 0.15, 0.1])
  cov = _random_spd(rng, 10, 50.0)
  return _params(mixture.mixture_from_params(means, cov, weights))


@pytest.mark.parametrize(
  "make", [_uniform_mixture, _weighted_mixture], ids=["uniform", "weighted"]
)
def test_fisher_subspace_spans_closed_form(make):
  means, cov, weights = make()
  num_components, dim = means.shape
  rank = num_components - 1
  basis, values = _fisher_subspace(
    jnp.asarray(means), jnp.asarray(cov), jnp.asarray(weights)
  )
  basis, values = np.asarray(basis), np.asarray(values)

  assert basis.dtype == np.float64
  assert basis.shape == (dim, rank) and values.shape == (rank,)
  closed = _closed_form_fisher(means, cov, weights)  # closed form
  assert _largest_angle(basis, closed) < 1e-9

  _, ref_values = _fisher_reference(means, cov, weights)
  # scipy.linalg.eigh(S_B, Sigma): the top K - 1 eigenvalues are ours and
  # the rest vanish, so F has dimension K - 1 and truncating loses nothing.
  np.testing.assert_allclose(values, ref_values[:rank], rtol=1e-10, atol=0)
  assert ref_values[rank - 1] > 1e-3
  np.testing.assert_allclose(ref_values[rank:], 0.0, rtol=0, atol=1e-10)
  # Closed form: the basis is Sigma-orthonormal.
  np.testing.assert_allclose(
    basis.T @ cov @ basis, np.eye(rank), rtol=0, atol=1e-10
  )


def test_fisher_subspace_matches_sklearn_lda_on_samples():
  dim, num_components, n = 12, 4, 100_000
  mix = _make_mixture(jax.random.key(1), dim, num_components, 100.0)
  sample = jax.jit(mixture.sample, static_argnums=2)
  x, labels = sample(jax.random.key(2), mix, n)
  means, cov, weights = _params(mix)
  basis, _ = _fisher_subspace(
    jnp.asarray(means), jnp.asarray(cov), jnp.asarray(weights)
  )

  # Reference: sklearn LinearDiscriminantAnalysis fitted on 100k samples.
  lda = LinearDiscriminantAnalysis(solver="eigen")
  lda.fit(np.asarray(x, np.float64), np.asarray(labels))
  estimate = lda.scalings_[:, : num_components - 1]
  bound = 3 * np.sqrt(dim / n)  # sampling error of a d-dimensional estimate
  assert np.sin(_largest_angle(estimate, np.asarray(basis))) < bound
  # The bound can fail: at anisotropy 100 the means' span is far from F.
  centred = means - weights @ means
  assert np.sin(_largest_angle(estimate, centred[:-1].T)) > 3 * bound


@pytest.mark.parametrize(
  "means, cov, named",
  [
    # Sigma singular: Cholesky whitening would fill F with NaN.
    (np.eye(3)[:2], np.diag([1.0, 1.0, 0.0]), "cov is not positive definite"),
    (np.eye(3)[:2], np.diag([1.0, np.nan, 1.0]), "cov holds"),
    # S_B = 0: every direction has criterion 0, and any basis would do.
    (np.ones((2, 3)), np.eye(3), "means are all equal"),
    (np.full((2, 3), np.nan), np.eye(3), "means holds"),
    (np.eye(3)[:2], np.triu(np.ones((3, 3))), "cov is not symmetric"),
  ],
)
def test_fisher_subspace_refuses_an_undefined_f(means, cov, named):
  weights = np.full(2, 0.5)
  with pytest.raises(ValueError, match=f"^{named}"):
    subspace.fisher_subspace(jnp.asarray(means), jnp.asarray(cov), weights)


def test_top_rows_names_a_k_beyond_the_columns():
  with pytest.raises(ValueError, match=r"^k=4 is invalid: 1 <= k <= 3"):
    subspace.top_rows(jnp.eye(5)[:, :3], 4)


def test_fisher_subspace_float64_at_condition_1e6():
  """At condition number 1e6 the Fisher subspace needs float64."""
  mix = _make_mixture(jax.random.key(3), 32, 4, 1e6, dtype=jnp.float64)
  means, cov, weights = _params(mix)
  assert np.linalg.cond(cov) == pytest.approx(1e6, rel=1e-6)
  ref, _ = _fisher_reference(means, cov, weights)  # scipy eigh, float64

  basis64, values64 = _fisher_subspace(
    jnp.asarray(means), jnp.asarray(cov), jnp.asarray(weights)
  )
  assert basis64.dtype == jnp.float64
  assert np.all(np.isfinite(basis64)) and np.all(np.isfinite(values64))
  error64 = _largest_angle(np.asarray(basis64), ref)
  assert error64 < 1e-9
  # The closed form span{Sigma^{-1} m_i}, float64 NumPy, agrees as well.
  closed = _closed_form_fisher(means, cov, weights)
  assert _largest_angle(np.asarray(basis64), closed) < 1e-8

  with jax.enable_x64(False):
    basis32, values32 = _fisher_subspace(
      *(jnp.asarray(a, jnp.float32) for a in (means, cov, weights))
    )
  assert basis32.dtype == jnp.float32
  assert np.all(np.isfinite(basis32)) and np.all(np.isfinite(values32))
  error32 = _largest_angle(np.asarray(basis32, np.float64), ref)
  # float32 round-off times the condition number is about 0.1: float32 is
  # off by a fraction of a degree or more, float64 by round-off.
  assert error64 < 1e-6 * error32


# Baselines


@pytest.fixture(scope="module")
def grid():
  """Baseline encoders on a stacked grid of two mixtures, K = 3 and k = 3.

  k > K - 1, so the LDA and oracle encoders have a zero last row.
  """
  dim, num_components, k = 8, 3, 3
  keys = jnp.stack([jax.random.fold_in(jax.random.key(7), i) for i in (0, 1)])
  data_keys = jnp.stack(
    [jax.random.fold_in(jax.random.key(8), i) for i in (0, 1)]
  )

  def build(key, a):
    return mixture.make_mixture(key, dim, num_components, a)

  make = jax.jit(lambda *args: programs.map_points(build, *args))
  with jax.enable_x64(True):
    mixtures = make(keys, jnp.full((2,), 100.0, jnp.float32))
    encoders = baselines.baseline_grid(
      data_keys, mixtures, jnp.ones(2), k=k, steps=50, batch=256
    )
  fisher = []
  for i in range(2):
    params = _params(jax.tree.map(lambda a, i=i: a[i], mixtures))
    # scipy.linalg.eigh(S_B, Sigma) of the float32 parameters in float64.
    # (Not span{Sigma^{-1} m_i}: float32 weights do not sum to 1 exactly.)
    fisher.append(_fisher_reference(*params)[0])
  return {
    "encoders": jax.tree.map(np.asarray, encoders),
    "fisher": fisher,
    "mixtures": mixtures,
    "data_keys": data_keys,
  }


def test_baseline_grid_against_analytic_fisher(grid):
  encoders, fisher = grid["encoders"], grid["fisher"]
  for name in baselines.BASELINE_METHODS:
    assert encoders[name].shape == (2, 3, 8), name
    assert encoders[name].dtype == np.float64, name
    assert np.all(np.isfinite(encoders[name])), name
  for i, analytic in enumerate(fisher):
    # scipy.linalg.subspace_angles against F; with k > K - 1 the K - 1
    # angles ask whether F lies inside the encoder's row space.
    oracle = _largest_angle(_nonzero_rows(encoders["oracle"][i]).T, analytic)
    assert oracle < 1e-10
    for name in ("lda", "whitened_pca"):
      angle = _largest_angle(_nonzero_rows(encoders[name][i]).T, analytic)
      assert np.degrees(angle) < 5.0, (name, i, np.degrees(angle))
    pca = _largest_angle(encoders["pca"][i].T, analytic)
    assert np.sin(pca) > 0.8, (i, np.sin(pca))


def test_baseline_grid_lda_rows_past_k_minus_1_are_zero(grid):
  encoders = grid["encoders"]
  for name in ("lda", "oracle"):
    # K = 3, k = 3: the embedding has K - 1 = 2 dimensions.
    np.testing.assert_array_equal(encoders[name][:, 2], 0.0)
    assert np.all(np.linalg.norm(encoders[name][:, :2], axis=-1) > 0.1)
  for name in ("pca", "whitened_pca"):
    assert np.all(np.linalg.matrix_rank(encoders[name]) == 3), name


@pytest.fixture(scope="module")
def replayed_moments(grid):
  """accumulate_moments and NumPy's moments of the same replayed pairs."""
  steps, batch, num_components = 4, 64, 3
  mix = jax.tree.map(lambda a: a[0], grid["mixtures"])
  data_key = grid["data_keys"][0]
  p_same = 0.5  # so that x - x' also carries between-class spread
  accumulate = jax.jit(
    baselines.accumulate_moments, static_argnames=("steps", "batch")
  )
  sample_pairs = jax.jit(mixture.sample_pairs, static_argnums=2)
  with jax.enable_x64(True):
    moments = accumulate(
      data_key, mix, jnp.asarray(p_same), steps=steps, batch=batch
    )
    # Replay the very pairs training draws: step t uses fold_in(key, t).
    pairs = [
      sample_pairs(jax.random.fold_in(data_key, t), mix, batch, p_same)
      for t in range(steps)
    ]
  x = np.concatenate([np.asarray(p[0], np.float64) for p in pairs])
  x_pos = np.concatenate([np.asarray(p[1], np.float64) for p in pairs])
  labels = np.concatenate([np.asarray(p[2]) for p in pairs])
  diff = x - x_pos
  onehot = np.eye(num_components)[labels]
  # Reference: NumPy float64 moments of those pairs.
  expected = {
    "count": np.float64(steps * batch),
    "sum_xx": x.T @ x,
    "class_count": onehot.sum(0),
    "class_sum": onehot.T @ x,
    "sum_diff": diff.sum(0),
    "sum_diff2": diff.T @ diff,
  }
  return moments, expected


@pytest.mark.parametrize("name", baselines.Moments._fields)
def test_accumulate_moments_match_numpy_on_replayed_pairs(
  replayed_moments, name
):
  moments, expected = replayed_moments
  got, value = np.asarray(getattr(moments, name)), expected[name]
  assert got.dtype == np.float64
  scale = np.max(np.abs(value))
  # Each batch of 256 is summed in float32 (relative error at most about
  # 256 * 2^-24 = 1.5e-5, in practice ~1e-6) and batches are added in
  # float64, so the totals agree to float32-batch precision.
  np.testing.assert_allclose(got, value, rtol=2e-5, atol=2e-5 * scale)


# fit_lda


@pytest.fixture(scope="module")
def labelled():
  """2000 labelled float64 samples of a 7-dimensional, 3-component mixture."""
  rng = np.random.default_rng(5)
  dim = 7
  means = 2.0 * rng.normal(size=(3, dim))
  labels = rng.integers(0, 3, size=2000)
  root = np.linalg.cholesky(_random_spd(rng, dim, 30.0))
  x = means[labels] + rng.normal(size=(2000, dim)) @ root.T
  return x, labels


def test_fit_lda_matches_sklearn_span(labelled):
  x, labels = labelled
  encoder = baselines.fit_lda(x, labels, num_components=3, k=2)
  assert encoder.dtype == jnp.float64 and encoder.shape == (2, 7)
  # Reference: sklearn LinearDiscriminantAnalysis on the same samples; both
  # solve the same eigenproblem, so the spans agree to round-off.
  lda = LinearDiscriminantAnalysis(solver="eigen").fit(x, labels)
  angle = _largest_angle(np.asarray(encoder).T, lda.scalings_[:, :2])
  assert angle < 1e-8


def _singular_samples(labelled, kind):
  x, labels = labelled
  if kind == "duplicated":
    return np.concatenate([x, x[:, :1]], axis=1), labels
  return x[:6], np.arange(6) % 3  # d = 7 > n = 6


@pytest.mark.parametrize(
  "kind, cause",
  [("duplicated", "duplicated"), ("wide", "fewer samples than dimensions")],
)
def test_fit_lda_singular_within_covariance_raises(labelled, kind, cause):
  """A duplicated feature, or d > n, makes Sigma_W singular."""
  x, labels = _singular_samples(labelled, kind)
  with pytest.raises(ValueError, match="singular") as error:
    baselines.fit_lda(x, labels, num_components=3, k=2)
  assert "shrinkage" in str(error.value)  # names a remedy
  assert cause in str(error.value)  # and the cause


@pytest.mark.parametrize(
  "change, named",
  [
    (dict(shrinkage=1.5), "shrinkage=1.5"),
    (dict(shrinkage=-0.1), "shrinkage=-0.1"),
    (dict(k=8), "k=8"),  # > d = 7
    (dict(num_components=1), "num_components=1"),
  ],
)
def test_fit_lda_names_a_bad_argument(labelled, change, named):
  x, labels = labelled
  arguments = dict(num_components=3, k=2) | change
  with pytest.raises(ValueError, match=f"^{named} is invalid"):
    baselines.fit_lda(x, labels, **arguments)


def test_fit_lda_names_bad_samples_and_labels(labelled):
  x, labels = labelled
  bad = np.array(x)
  bad[3, 2] = np.nan
  with pytest.raises(ValueError, match=r"^x\[3, 2\]=.*nan.* is invalid"):
    baselines.fit_lda(bad, labels, num_components=3, k=2)
  # A label of 3 with K = 3 would be dropped from every class mean.
  with pytest.raises(ValueError, match=r"^label=\[3\] is invalid"):
    baselines.fit_lda(x, np.where(labels == 2, 3, labels), 3, 2)
  # A class without samples leaves S_B short of a direction.
  with pytest.raises(ValueError, match=r"^labels='no samples of \[2\]'"):
    baselines.fit_lda(x[labels < 2], labels[labels < 2], 3, 2)
  # Labels that are not [n] integers would be misread as classes.
  with pytest.raises(ValueError, match="^labels='float64"):
    baselines.fit_lda(x, labels + 0.3, 3, 2)
  with pytest.raises(ValueError, match=r"^labels='int64\[100\]'"):
    baselines.fit_lda(x, labels[:100], 3, 2)


@pytest.mark.parametrize("kind", ["duplicated", "wide"])
def test_fit_lda_with_shrinkage_succeeds_when_singular(labelled, kind):
  x, labels = _singular_samples(labelled, kind)
  encoder = np.asarray(
    baselines.fit_lda(x, labels, num_components=3, k=2, shrinkage=0.1)
  )
  assert encoder.shape == (2, x.shape[1])
  assert np.all(np.isfinite(encoder))
  assert np.linalg.matrix_rank(encoder) == 2


# shrink


@pytest.mark.parametrize("shrinkage", [0.0, 0.3, 1.0])
def test_shrink_preserves_trace(shrinkage):
  dim = 5
  cov = _random_spd(np.random.default_rng(4), dim, 1e3)
  shrunk = np.asarray(subspace.shrink(jnp.asarray(cov), shrinkage))
  # Closed form: (1 - s) cov + s trace(cov) / d I has the trace of cov.
  np.testing.assert_allclose(
    np.trace(shrunk), np.trace(cov), rtol=1e-12, atol=0
  )
  target = np.trace(cov) / dim * np.eye(dim)
  expected = (1 - shrinkage) * cov + shrinkage * target
  np.testing.assert_allclose(shrunk, expected, rtol=1e-12, atol=1e-12)


def test_shrink_one_is_scaled_identity():
  cov = _random_spd(np.random.default_rng(5), 5, 1e3)
  shrunk = np.asarray(subspace.shrink(jnp.asarray(cov), 1.0))
  # Closed form: trace(cov) / d times the identity.
  np.testing.assert_allclose(
    shrunk, np.trace(cov) / 5 * np.eye(5), rtol=1e-12, atol=1e-12
  )
