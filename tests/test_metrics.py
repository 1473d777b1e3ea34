"""Tests of the subspace and downstream metrics.

Reference values come from float64 NumPy/SciPy (scipy.linalg.subspace_angles,
scipy.linalg.eigh, numpy.linalg.matrix_rank, numpy.linalg.pinv) and closed
forms. The metrics are wrapped in jax.jit so that each shape compiles once;
a separate test checks that jit, eager and a map over points agree.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from ssl_gmm import metrics, programs

_distance = jax.jit(metrics.distance)
_rank = jax.jit(metrics.rank)
_fisher_ratio = jax.jit(metrics.fisher_ratio)
_nuisance_share = jax.jit(metrics.nuisance_share)
_subspace_angle = jax.jit(metrics.subspace_angle)

DIM, NUM_COMPONENTS = 10, 4
R = NUM_COMPONENTS - 1  # dimension of the Fisher subspace F


@pytest.fixture(autouse=True)
def _x64():
  """Runs every test in 64-bit mode, without which float64 is float32."""
  with jax.enable_x64(True):  # Silent float32
    yield


@pytest.fixture(scope="module")
def problem():
  """A float64 mixture with unequal weights and its Fisher subspace."""
  rng = np.random.default_rng(0)
  means = 3.0 * rng.normal(size=(NUM_COMPONENTS, DIM))
  weights = np.array([0.4, 0.3, 0.2, 0.1])
  q = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0]
  cov = (q * np.geomspace(1.0, 100.0, DIM)) @ q.T
  centred = means - weights @ means
  between = (centred.T * weights) @ centred
  # Reference: scipy.linalg.eigh(S_B, Sigma), in decreasing order.
  values, vectors = scipy.linalg.eigh(between, cov)
  return {
    "means": means,
    "cov": cov,
    "weights": weights,
    "centred": centred,
    "between": between,
    "basis": vectors[:, ::-1][:, :R],  # [d, r], spans F
    "values": values[::-1][:R],
    # Rows a with a^T m_i = 0 for every centred mean: Sigma-orthogonal to F.
    "sigma_perp": scipy.linalg.null_space(centred),  # [d, d - r]
    # Rows Euclidean-orthogonal to F: principal angles of 90 degrees.
    "perp": scipy.linalg.null_space(vectors[:, ::-1][:, :R].T),
  }


def _j(*arrays):
  return tuple(jnp.asarray(a) for a in arrays)


def _sine_of_largest_angle(a, b):
  """sin of the largest of scipy.linalg.subspace_angles(a, b).

  subspace_angles returns min(dim a, dim b) angles: with the smaller space
  first, they ask whether it lies inside the larger one.
  """
  return float(np.sin(np.max(scipy.linalg.subspace_angles(a, b))))


def _residual_norm(inner, outer):
  """||(I - P_outer) Q_inner||_2: sine of the largest angle of `inner`.

  Closed form of how far span(inner) is from lying inside span(outer).
  """
  q_in, q_out = scipy.linalg.orth(inner), scipy.linalg.orth(outer)
  return float(np.linalg.norm(q_in - q_out @ (q_out.T @ q_in), ord=2))


# distance


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distance_matches_scipy(problem, k, seed):
  encoder = np.random.default_rng(seed).normal(size=(k, DIM))
  basis = problem["basis"]
  if k <= R:  # is row(A) inside F?
    inner, outer = encoder.T, basis
  else:  # is F inside row(A)?
    inner, outer = basis, encoder.T
  reference = _sine_of_largest_angle(inner, outer)  # scipy subspace_angles
  closed = _residual_norm(inner, outer)  # closed form
  np.testing.assert_allclose(reference, closed, rtol=0, atol=1e-12)
  got = float(_distance(*_j(encoder, basis)))
  np.testing.assert_allclose(got, reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_distance_is_zero_when_recovered(problem, k):
  """Rows in F (k <= K - 1), or F inside the row space (k > K - 1)."""
  rng = np.random.default_rng(k)
  mixing = rng.normal(size=(min(k, R), R))
  encoder = mixing @ problem["basis"].T
  if k > R:
    encoder = np.concatenate([encoder, rng.normal(size=(k - R, DIM))])
  # scipy.linalg.subspace_angles: the largest angle is 0 up to round-off.
  assert _sine_of_largest_angle(encoder.T, problem["basis"]) < 1e-12
  got = float(_distance(*_j(encoder, problem["basis"])))
  np.testing.assert_allclose(got, 0.0, rtol=0, atol=1e-10)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_distance_is_one_for_a_row_space_orthogonal_to_f(problem, k):
  mixing = np.random.default_rng(k).normal(size=(k, DIM - R))
  encoder = mixing @ problem["perp"].T  # rows Euclidean-orthogonal to F
  # Closed form: every principal angle is 90 degrees.
  got = float(_distance(*_j(encoder, problem["basis"])))
  np.testing.assert_allclose(got, 1.0, rtol=0, atol=1e-12)


def test_a_non_finite_or_misshapen_encoder_is_refused(problem):
  # A diverged encoder holds NaN: its distance would be NaN, not a score.
  encoder = np.array(problem["basis"].T)
  encoder[0, 0] = np.nan
  for measure in (
    lambda a: metrics.distance(a, problem["basis"]),
    lambda a: metrics.nuisance_share(a, problem["basis"], problem["cov"]),
  ):
    with pytest.raises(ValueError, match="^encoder holds a value"):
      measure(jnp.asarray(encoder))
    with pytest.raises(ValueError, match=r"^encoder has shape \(4,\)"):
      measure(jnp.ones(4))


def test_rank_deficient_encoder_scores_one(problem):
  """Rank-deficient encoder: two identical rows in F, k = K - 1 = 3, rank 2."""
  f = problem["basis"].T
  encoder = np.stack([f[0], f[0], f[1]])
  # scipy.linalg.subspace_angles silently drops the missing direction: it
  # returns 2 angles, both 0, as if the encoder had recovered F.
  angles = scipy.linalg.subspace_angles(encoder.T, problem["basis"])
  assert angles.shape == (2,)
  np.testing.assert_allclose(angles, 0.0, rtol=0, atol=1e-12)

  assert int(_rank(jnp.asarray(encoder))) == 2
  # Closed form: the missing direction counts as 90 degrees.
  got = float(_distance(*_j(encoder, problem["basis"])))
  np.testing.assert_allclose(got, 1.0, rtol=0, atol=1e-12)


def test_zero_encoder_scores_as_collapsed(problem):
  encoder = jnp.zeros((R, DIM))
  p = problem
  scores = {
    "rank": _rank(encoder),
    "distance": _distance(encoder, jnp.asarray(p["basis"])),
    "fisher_ratio": _fisher_ratio(
      encoder, *_j(p["means"], p["cov"], p["weights"])
    ),
    "nuisance_share": _nuisance_share(encoder, *_j(p["basis"], p["cov"])),
  }
  for name, value in scores.items():
    assert np.isfinite(value), name
  # Closed form: a collapsed encoder has rank 0, misses every direction and
  # carries neither information nor nuisance.
  assert int(scores["rank"]) == 0
  np.testing.assert_allclose(scores["distance"], 1.0, rtol=0, atol=0)
  np.testing.assert_allclose(scores["fisher_ratio"], 0.0, rtol=0, atol=0)
  np.testing.assert_allclose(scores["nuisance_share"], 0.0, rtol=0, atol=0)


# rank


@pytest.mark.parametrize("true_rank", [0, 1, 2, 3, 5])
def test_rank_matches_numpy(true_rank):
  rng = np.random.default_rng(true_rank)
  encoder = rng.normal(size=(5, true_rank)) @ rng.normal(size=(true_rank, 8))
  # Reference: numpy.linalg.matrix_rank.
  assert int(_rank(jnp.asarray(encoder))) == np.linalg.matrix_rank(encoder)
  assert np.linalg.matrix_rank(encoder) == true_rank


def test_rank_counts_float32_round_off_as_zero():
  """The documented tolerance: max(k, d) float32 eps times the largest."""
  rng = np.random.default_rng(7)
  u = np.linalg.qr(rng.normal(size=(4, 4)))[0][:, :3]
  v = np.linalg.qr(rng.normal(size=(9, 9)))[0][:, :3]
  encoder = (u * np.array([1.0, 1e-3, 1e-9])) @ v.T
  tolerance = max(encoder.shape) * np.finfo(np.float32).eps
  # Reference: numpy.linalg.matrix_rank with the package's tolerance; its
  # float64 default keeps the 1e-9 singular value.
  expected = np.linalg.matrix_rank(encoder, rtol=tolerance)
  assert expected == 2 and np.linalg.matrix_rank(encoder) == 3
  assert int(_rank(jnp.asarray(encoder))) == expected


# fisher_ratio


def _fisher_ratio_reference(encoder, p):
  """trace(pinv(A Sigma A^T) A S_B A^T) / J*_k in float64 NumPy."""
  within = encoder @ p["cov"] @ encoder.T
  between = encoder @ p["between"] @ encoder.T
  criterion = np.trace(np.linalg.pinv(within) @ between)
  k = encoder.shape[0]
  # J*_k: top min(k, K - 1) eigenvalues of scipy.linalg.eigh(S_B, Sigma).
  return criterion / np.sum(p["values"][: min(k, R)])


def _ratio(encoder, p):
  return float(
    _fisher_ratio(jnp.asarray(encoder), *_j(p["means"], p["cov"], p["weights"]))
  )


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_fisher_ratio_of_oracle_is_one(problem, k):
  # Closed form: J(A) = J*_k for the top min(k, K - 1) eigenvectors of
  # scipy.linalg.eigh(S_B, Sigma), and for any rows added to all of them.
  encoder = problem["basis"][:, : min(k, R)].T
  if k > R:
    extra = np.random.default_rng(k).normal(size=(k - R, DIM))
    encoder = np.concatenate([encoder, extra])
  np.testing.assert_allclose(_ratio(encoder, problem), 1.0, rtol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_fisher_ratio_matches_numpy(problem, k):
  rng = np.random.default_rng(10 + k)
  for _ in range(3):
    encoder = rng.normal(size=(k, DIM))
    got = _ratio(encoder, problem)
    reference = _fisher_ratio_reference(encoder, problem)  # NumPy float64
    np.testing.assert_allclose(got, reference, rtol=1e-10, atol=0)
    assert 0.0 <= got <= 1.0


@pytest.mark.parametrize("k", [2, 3, 5])
def test_fisher_ratio_invariant_to_row_transformations(problem, k):
  rng = np.random.default_rng(20 + k)
  encoder = rng.normal(size=(k, DIM))
  mixing = rng.normal(size=(k, k)) + 3 * np.eye(k)
  assert np.linalg.cond(mixing) < 1e3  # invertible
  # Closed form: J(A) depends only on row(A).
  np.testing.assert_allclose(
    _ratio(mixing @ encoder, problem),
    _ratio(encoder, problem),
    rtol=1e-10,
    atol=0,
  )


def test_fisher_ratio_of_rank_deficient_encoder_matches_numpy(problem):
  f = problem["basis"].T
  encoder = np.stack([f[0], f[0], f[1]])
  # numpy.linalg.pinv ignores the repeated row, as the package does.
  np.testing.assert_allclose(
    _ratio(encoder, problem),
    _fisher_ratio_reference(encoder, problem),
    rtol=1e-10,
    atol=0,
  )


# nuisance_share


def _nuisance_share_reference(encoder, p):
  """Float64 NumPy share from the direct sum R^d = F + null(M).

  Each row a = F c + N e, with N a basis of {a : a^T m_i = 0}, the
  Sigma-orthogonal complement of F; the nuisance part is N e.
  """
  blocks = np.concatenate([p["basis"], p["sigma_perp"]], axis=1)  # [d, d]
  coefficients = np.linalg.solve(blocks, encoder.T)
  perp = (p["sigma_perp"] @ coefficients[R:]).T
  total = np.trace(encoder @ p["cov"] @ encoder.T)
  return np.trace(perp @ p["cov"] @ perp.T) / total


def _share(encoder, p):
  return float(_nuisance_share(*_j(encoder, p["basis"], p["cov"])))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_nuisance_share_is_zero_for_rows_in_f(problem, k):
  mixing = np.random.default_rng(k).normal(size=(k, R))
  encoder = mixing @ problem["basis"].T
  # Closed form: no row has a nuisance part.
  np.testing.assert_allclose(_share(encoder, problem), 0.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_nuisance_share_is_one_for_rows_sigma_orthogonal_to_f(problem, k):
  mixing = np.random.default_rng(k).normal(size=(k, DIM - R))
  encoder = mixing @ problem["sigma_perp"].T  # a^T m_i = 0 for every i
  np.testing.assert_allclose(
    encoder @ problem["centred"].T, 0.0, rtol=0, atol=1e-12
  )
  # Closed form: every row is all nuisance.
  np.testing.assert_allclose(_share(encoder, problem), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_nuisance_share_matches_numpy(problem, k):
  rng = np.random.default_rng(30 + k)
  for _ in range(3):
    encoder = rng.normal(size=(k, DIM))
    got = _share(encoder, problem)
    reference = _nuisance_share_reference(encoder, problem)  # NumPy
    np.testing.assert_allclose(got, reference, rtol=1e-10, atol=1e-12)
    assert 0.0 <= got <= 1.0


# subspace_angle


@pytest.mark.parametrize("dims", [(3, 3), (2, 4), (4, 2)])
def test_subspace_angle_matches_scipy(dims):
  rng = np.random.default_rng(sum(dims))
  a, b = rng.normal(size=(8, dims[0])), rng.normal(size=(8, dims[1]))
  # Reference: scipy.linalg.subspace_angles, largest angle, in degrees.
  reference = np.degrees(np.max(scipy.linalg.subspace_angles(a, b)))
  got = float(_subspace_angle(*_j(a, b)))
  np.testing.assert_allclose(got, reference, rtol=0, atol=1e-8)


def _orthonormal(seed):
  return np.linalg.qr(np.random.default_rng(seed).normal(size=(8, 8)))[0]


def test_subspace_angle_of_equal_spans_is_zero():
  q = _orthonormal(3)
  a, b = q[:, :3], q[:, :3] @ np.random.default_rng(4).normal(size=(3, 3))
  # Closed form: 0 degrees; scipy.linalg.subspace_angles agrees to round-off.
  assert np.degrees(np.max(scipy.linalg.subspace_angles(a, b))) < 1e-12
  np.testing.assert_allclose(
    float(_subspace_angle(*_j(a, b))), 0.0, rtol=0, atol=1e-9
  )


def test_subspace_angle_of_orthogonal_spans_is_90():
  q = _orthonormal(5)
  # Closed form: orthogonal spans are 90 degrees apart.
  np.testing.assert_allclose(
    float(_subspace_angle(*_j(q[:, :3], q[:, 3:6]))), 90.0, rtol=0, atol=1e-9
  )


# downstream


def _clusters(rng, n, spread):
  """n 2-dimensional embeddings of 3 classes centred 10 apart."""
  labels = np.arange(n) % 3
  centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
  return centres[labels] + spread * rng.normal(size=(n, 2)), labels


def test_downstream_of_separated_embeddings_is_perfect():
  rng = np.random.default_rng(0)
  embed_fit, labels_fit = _clusters(rng, 300, spread=0.1)
  embed_test, labels_test = _clusters(rng, 300, spread=0.1)
  scores = metrics.downstream(
    embed_fit, labels_fit, embed_test, labels_test, num_components=3
  )
  # Closed form: clusters 10 apart with spread 0.1 are separated exactly.
  np.testing.assert_allclose(scores.accuracy, 1.0, rtol=0, atol=0)
  np.testing.assert_allclose(scores.nmi, 1.0, rtol=0, atol=1e-12)
  np.testing.assert_allclose(scores.ari, 1.0, rtol=0, atol=1e-12)


def test_a_component_missing_from_the_fitting_half_is_never_predicted():
  # Few held-out samples can leave a component out of the fitting half; its
  # mean is then undefined and must not turn into a NaN centroid.
  rng = np.random.default_rng(2)
  embed_fit, labels_fit = _clusters(rng, 300, spread=0.1)
  embed_test, labels_test = _clusters(rng, 300, spread=0.1)
  kept = labels_fit != 2
  scores = metrics.downstream(
    embed_fit[kept], labels_fit[kept], embed_test, labels_test, 3
  )
  # Closed form: classes 0 and 1 are right, class 2 (a third) goes to the
  # nearer of their centres, so accuracy is exactly 2 / 3; k-means still
  # finds all three clusters.
  np.testing.assert_allclose(scores.accuracy, 2 / 3, rtol=0, atol=1e-12)
  np.testing.assert_allclose(scores.nmi, 1.0, rtol=0, atol=1e-12)


def test_downstream_without_information_is_near_chance():
  rng = np.random.default_rng(1)
  n, num_components = 3000, 3
  labels_fit = np.arange(n) % num_components
  labels_test = rng.permutation(labels_fit)
  embed_fit, embed_test = rng.normal(size=(2, n, 2))  # independent of labels
  scores = metrics.downstream(
    embed_fit, labels_fit, embed_test, labels_test, num_components
  )
  # Closed form: chance accuracy 1 / K, NMI and ARI 0, up to sampling error
  # (the standard error of the accuracy is about 0.009 here).
  np.testing.assert_allclose(scores.accuracy, 1 / 3, rtol=0, atol=0.04)
  np.testing.assert_allclose(scores.nmi, 0.0, rtol=0, atol=0.01)
  np.testing.assert_allclose(scores.ari, 0.0, rtol=0, atol=0.01)


def test_chance_downstream():
  scores = metrics.chance_downstream(np.array([0.2, 0.5, 0.3]))
  # Closed form: always guess the heaviest component; NMI = ARI = 0.
  assert scores == metrics.Downstream(accuracy=0.5, nmi=0.0, ari=0.0)


# jit and a map over points


@pytest.fixture(scope="module")
def encoder_stack(problem):
  """[4, K - 1, d] encoders: two random, one rank deficient, one zero."""
  rng = np.random.default_rng(4)
  f = problem["basis"].T
  return np.stack(
    [
      rng.normal(size=(R, DIM)),
      rng.normal(size=(R, DIM)),
      np.stack([f[0], f[0], f[1]]),
      np.zeros((R, DIM)),
    ]
  )


def _metric_call(name, p):
  """The metric, its jitted twin, and its arguments after the encoder."""
  if name == "distance":
    return metrics.distance, _distance, _j(p["basis"])
  if name == "rank":
    return metrics.rank, _rank, ()
  if name == "fisher_ratio":
    params = _j(p["means"], p["cov"], p["weights"])
    return metrics.fisher_ratio, _fisher_ratio, params
  return metrics.nuisance_share, _nuisance_share, _j(p["basis"], p["cov"])


@pytest.mark.parametrize(
  "name", ["distance", "rank", "fisher_ratio", "nuisance_share"]
)
def test_metrics_agree_under_jit_and_a_map_over_points(
  problem, encoder_stack, name
):
  eager, jitted, args = _metric_call(name, problem)
  # jit(map_points(.)) over the stack, as the experiments call the metrics
  # (a sequential map: batched LAPACK can deadlock XLA's CPU thread pool).
  batched = jax.jit(
    lambda stack: programs.map_points(lambda a: eager(a, *args), stack)
  )(encoder_stack)
  for i, encoder in enumerate(jnp.asarray(encoder_stack)):
    # Reference: the same metric on one encoder, eager.
    value = eager(encoder, *args)
    assert value.dtype in (jnp.float64, jnp.int64)
    np.testing.assert_allclose(batched[i], value, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
      jitted(encoder, *args), value, rtol=0, atol=1e-12
    )
