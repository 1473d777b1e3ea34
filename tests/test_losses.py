"""Tests of ssl_gmm.losses against float64 NumPy references and closed forms.

The references below (`_ref_*`) are written independently of the package, in
float64 NumPy with a max-shifted logsumexp; the closed forms pin each loss's
convention, and the fault kinds listed in the README each have a test.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssl_gmm import losses
from ssl_gmm.train import TRAINED_METHODS, method_loss

SIMILARITIES = ("cosine", "dot")
CONTRASTIVE = ("infonce", "ntxent", "clip")

# Float32 shapes (n, k) shared between tests, so each program compiles once.
SHAPES = ((1, 3), (4, 3), (8, 5))


# The package's losses, compiled: one program per input shape evaluates all
# six (loss, similarity) pairs, keyed "name/similarity". Eager dispatch
# compiles every primitive on its own and is several times slower on 2 cores;
# test_jit_agrees_with_eager covers eager calls.
@jax.jit
def _all_losses(z, z_pos, temperature):
  return {
    f"{name}/{sim}": getattr(losses, name)(z, z_pos, temperature, sim)
    for name in CONTRASTIVE
    for sim in SIMILARITIES
  }


@jax.jit
def _all_losses_and_grads(z, z_pos, temperature):
  """{"name/similarity": (loss, (d loss / d z, d loss / d z_pos))}."""
  out = {}
  for name in CONTRASTIVE:
    for sim in SIMILARITIES:
      fn = functools.partial(
        getattr(losses, name), temperature=temperature, similarity=sim
      )
      out[f"{name}/{sim}"] = jax.value_and_grad(fn, argnums=(0, 1))(z, z_pos)
  return out


SIMSIAM = jax.jit(losses.simsiam)


# float64 NumPy references ----------------------------------------------------


def _f64(a) -> np.ndarray:
  return np.asarray(a, np.float64)


def _ref_logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
  top = np.max(a, axis=axis, keepdims=True)
  out = top + np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True))
  return np.squeeze(out, axis=axis)


def _ref_unit(z: np.ndarray) -> np.ndarray:
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def _ref_logits(a, b, temperature, similarity) -> np.ndarray:
  a, b = _f64(a), _f64(b)
  if similarity == "cosine":
    a, b = _ref_unit(a), _ref_unit(b)
  return a @ b.T / temperature


def _ref_infonce(z, z_pos, temperature, similarity) -> float:
  """Anchor i against candidates z_pos[j] for all j, target j = i."""
  logits = _ref_logits(z, z_pos, temperature, similarity)
  return float(np.mean(_ref_logsumexp(logits, 1) - np.diag(logits)))


def _ref_ntxent(z, z_pos, temperature, similarity) -> float:
  """SimCLR: 2n anchors, each against the 2n - 1 others, a loop per anchor."""
  both = np.concatenate([_f64(z), _f64(z_pos)])
  n2 = both.shape[0]
  logits = _ref_logits(both, both, temperature, similarity)
  total = 0.0
  for i in range(n2):
    partner = (i + n2 // 2) % n2
    others = np.delete(logits[i], i)
    total += _ref_logsumexp(others, 0) - logits[i, partner]
  return total / n2


def _ref_clip(z_x, z_y, temperature, similarity) -> float:
  """Mean of the row-wise and the column-wise cross entropies."""
  logits = _ref_logits(z_x, z_y, temperature, similarity)
  rows = np.mean(_ref_logsumexp(logits, 1) - np.diag(logits))
  cols = np.mean(_ref_logsumexp(logits, 0) - np.diag(logits))
  return float(0.5 * (rows + cols))


def _ref_simsiam(p, p_pos, z, z_pos) -> float:
  """-(cos(p, z_pos) + cos(p_pos, z)) / 2, averaged over rows."""

  def cos(a, b):
    return np.sum(_ref_unit(_f64(a)) * _ref_unit(_f64(b)), axis=1)

  return float(-0.5 * (np.mean(cos(p, z_pos)) + np.mean(cos(p_pos, z))))


REFERENCES = {
  "infonce": _ref_infonce,
  "ntxent": _ref_ntxent,
  "clip": _ref_clip,
}


def _ref_softmax(a: np.ndarray, axis: int) -> np.ndarray:
  return np.exp(a - _ref_logsumexp(a, axis)[..., None].swapaxes(-1, axis))


def _ref_unit_backward(z: np.ndarray, grad_unit: np.ndarray) -> np.ndarray:
  """Pulls a gradient with respect to z / |z| back to z."""
  unit = _ref_unit(z)
  radial = np.sum(unit * grad_unit, axis=1, keepdims=True)
  return (grad_unit - unit * radial) / np.linalg.norm(z, axis=1, keepdims=True)


def _ref_grads(name, z, z_pos, temperature, similarity):
  """Analytic float64 gradients of a contrastive loss w.r.t. (z, z_pos).

  With logits L = s(u, v) / tau, the loss's gradient in L is G (softmax minus
  one-hot targets, averaged), so du = G v / tau and dv = G^T u / tau, then
  through the normalisation u = z / |z| for the cosine similarity.
  """
  z, z_pos = _f64(z), _f64(z_pos)
  n = z.shape[0]
  u, v = z, z_pos
  if similarity == "cosine":
    u, v = _ref_unit(z), _ref_unit(z_pos)
  eye = np.eye(n)
  if name in ("infonce", "clip"):
    logits = u @ v.T / temperature
    g_rows = (_ref_softmax(logits, 1) - eye) / n
    g = g_rows
    if name == "clip":
      g_cols = (_ref_softmax(logits, 0) - eye) / n
      g = 0.5 * (g_rows + g_cols)
    du, dv = g @ v / temperature, g.T @ u / temperature
  else:  # ntxent
    both = np.concatenate([u, v])
    logits = both @ both.T / temperature
    np.fill_diagonal(logits, -np.inf)
    partner = np.roll(np.eye(2 * n), n, axis=1)  # row i: one-hot of i +- n
    g = (_ref_softmax(logits, 1) - partner) / (2 * n)
    d_both = (g + g.T) @ both / temperature
    du, dv = d_both[:n], d_both[n:]
  if similarity == "cosine":
    du, dv = _ref_unit_backward(z, du), _ref_unit_backward(z_pos, dv)
  return du, dv


def _float32_atol(name, z, z_pos, temperature, similarity) -> float:
  """An absolute tolerance for a float32 loss against the float64 one.

  float32 rounds each logit (a k-term dot product over tau, k <= 5 here) to
  within a few eps32 of the largest |logit|; a loss built from logsumexp and
  the target logit inherits that error. 1e-5 (~80 eps32) times
  max(1, max |logit|) bounds it with margin.
  """
  if name == "ntxent":
    both = np.concatenate([_f64(z), _f64(z_pos)])
    logits = _ref_logits(both, both, temperature, similarity)
  else:
    logits = _ref_logits(z, z_pos, temperature, similarity)
  return 1e-5 * max(1.0, float(np.abs(logits).max()))


def _random_pair(seed, n, k, dtype=np.float32):
  """Two [n, k] embeddings, the second correlated with the first."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, k)) / np.sqrt(k)
  z_pos = z + 0.5 * rng.normal(size=(n, k)) / np.sqrt(k)
  return z.astype(dtype), z_pos.astype(dtype)


# Random inputs against the references ----------------------------------------


@pytest.mark.parametrize(
  "n, k, temperature", [(1, 3, 0.5), (2, 1, 1.0), (5, 3, 0.1), (9, 16, 0.07)]
)
def test_contrastive_matches_float64_reference(n, k, temperature):
  z, z_pos = _random_pair(n * 100 + k, n, k, np.float64)
  with jax.enable_x64(True):
    got = _all_losses(jnp.asarray(z), jnp.asarray(z_pos), temperature)
    got = {key: np.asarray(value) for key, value in got.items()}
  for name in CONTRASTIVE:
    for similarity in SIMILARITIES:
      value = got[f"{name}/{similarity}"]
      assert value.dtype == np.float64
      expected = REFERENCES[name](z, z_pos, temperature, similarity)
      # float64 reference (above); both sides compute in float64.
      np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n, k", [(1, 2), (4, 3), (10, 8)])
def test_simsiam_matches_float64_reference(n, k):
  rng = np.random.default_rng(n + k)
  p, p_pos, z, z_pos = rng.normal(size=(4, n, k))
  expected = _ref_simsiam(p, p_pos, z, z_pos)
  with jax.enable_x64(True):
    got = float(SIMSIAM(*map(jnp.asarray, (p, p_pos, z, z_pos))))
  # float64 reference (above); both sides compute in float64.
  np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(
  shape=st.sampled_from(SHAPES),
  temperature=st.floats(0.05, 2.0),
  seed=st.integers(0, 2**31 - 1),
)
def test_float32_losses_match_float64_reference(shape, temperature, seed):
  n, k = shape
  z, z_pos = _random_pair(seed, n, k)
  got_all = _all_losses(z, z_pos, temperature)
  for name in CONTRASTIVE:
    for similarity in SIMILARITIES:
      got = float(got_all[f"{name}/{similarity}"])
      # float64 reference (above) on the same float32 inputs.
      expected = REFERENCES[name](z, z_pos, temperature, similarity)
      atol = _float32_atol(name, z, z_pos, temperature, similarity)
      np.testing.assert_allclose(got, expected, rtol=1e-5, atol=atol)
  rng = np.random.default_rng(seed)
  p, p_pos = rng.normal(size=(2, n, k)).astype(np.float32)
  # float64 reference (above); cosines are in [-1, 1], float32 eps ~1e-7.
  np.testing.assert_allclose(
    float(SIMSIAM(p, p_pos, z, z_pos)),
    _ref_simsiam(p, p_pos, z, z_pos),
    rtol=1e-5,
    atol=1e-6,
  )


@pytest.mark.parametrize("temperature", [0.1, 0.5])
@pytest.mark.parametrize("n, k", SHAPES)
def test_ntxent_equals_optax(n, k, temperature):
  # optax.losses.ntxent takes [2n, k] embeddings and labels; rows sharing a
  # label are positives, and for each (anchor, positive) pair the candidates
  # are that positive plus every row with another label, averaged over the
  # pairs. With labels [0..n-1, 0..n-1] each label has exactly two rows, so
  # the candidates are the 2n - 1 other rows and the average is over 2n
  # anchors: SimCLR's convention, which ours follows. optax only has the
  # cosine similarity (its eps clip on |z|^2 is inert for norms ~1), so only
  # similarity="cosine" is matched.
  z, z_pos = _random_pair(n, n, k)
  embeddings = jnp.concatenate([z, z_pos])
  labels = jnp.concatenate([jnp.arange(n), jnp.arange(n)])
  expected = float(
    jax.jit(optax.losses.ntxent)(embeddings, labels, temperature)
  )
  got = float(_all_losses(z, z_pos, temperature)["ntxent/cosine"])
  # optax.losses.ntxent; both float32, logits <= 1 / tau = 10.
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# Closed forms ----------------------------------------------------------------


@pytest.mark.parametrize("n, k", SHAPES)
def test_identical_embeddings(n, k):
  rng = np.random.default_rng(n)
  z = np.tile(rng.normal(size=(1, k)), (n, 1)).astype(np.float32)
  got = _all_losses(z, z, 0.3)
  for similarity in SIMILARITIES:
    # Closed form: all logits equal, so each anchor's softmax is uniform over
    # its n candidates (infonce, clip) or 2n - 1 candidates (ntxent).
    for name, expected in (
      ("infonce", np.log(n)),
      ("clip", np.log(n)),
      ("ntxent", np.log(2 * n - 1)),
    ):
      np.testing.assert_allclose(
        float(got[f"{name}/{similarity}"]), expected, rtol=1e-6, atol=1e-6
      )


def test_ntxent_log_7():
  # Self-similarity masking, closed form: N = 4 identical embeddings give
  # log(2N - 1) = log 7 (masking the wrong entries gives log 8 or log 4).
  z = jnp.ones((4, 3))
  got = _all_losses(z, z, 0.5)
  for similarity in SIMILARITIES:
    np.testing.assert_allclose(
      float(got[f"ntxent/{similarity}"]), np.log(7.0), rtol=1e-6, atol=0
    )


def test_simsiam_identical_inputs_identity_predictor():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(6, 3)).astype(np.float32)
  # Closed form: every prediction equals its target, cos = 1, loss -1.
  np.testing.assert_allclose(
    float(SIMSIAM(z, z, z, z)), -1.0, rtol=1e-6, atol=0
  )
  # The same through method_loss: x = x', predictor P = I.
  x = rng.normal(size=(6, 5)).astype(np.float32)
  params = {"encoder": rng.normal(size=(3, 5)), "predictor": np.eye(3)}
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  loss = jax.jit(method_loss, static_argnums=4)(params, x, x, 0.1, "simsiam")
  np.testing.assert_allclose(float(loss), -1.0, rtol=1e-6, atol=0)


def test_mean_of_log_probabilities():
  # Mean of log-probabilities: anchors e_1, e_2 and positives chosen so that,
  # with the dot similarity and tau = 1, the logits are [[log 9, 0],
  # [0, -log 9]]: the positives' probabilities are 9/10 and 1/10.
  log9 = np.log(9.0)
  z = np.eye(2, dtype=np.float32)
  z_pos = np.array([[log9, 0.0], [0.0, -log9]], np.float32)
  logits = np.asarray(losses.similarity_logits(z, z_pos, 1.0, "dot"))
  # Closed form: z = I, so the logits are z_pos^T (= z_pos).
  np.testing.assert_allclose(
    logits, [[log9, 0.0], [0.0, -log9]], rtol=1e-6, atol=1e-7
  )
  # Closed form: -(log .9 + log .1) / 2 = 1.2040 (a mean of probabilities
  # would give -log .5 = 0.693). The columns of these logits also have
  # probabilities .9 and .1, so clip's average is the same.
  expected = -(np.log(0.9) + np.log(0.1)) / 2
  np.testing.assert_allclose(expected, 1.2040, rtol=0, atol=5e-5)
  got = _all_losses(z, z_pos, 1.0)
  for name in ("infonce", "clip"):
    np.testing.assert_allclose(
      float(got[f"{name}/dot"]), expected, rtol=1e-6, atol=0
    )


# Overflow at small temperature, in float32 ---------------------------------


def _unit_pair(seed, n=8, k=4):
  """Unit-norm [n, k] float32 embeddings with cos(z_i, z'_i) ~ 0.98."""
  rng = np.random.default_rng(seed)
  z = _ref_unit(rng.normal(size=(n, k)))
  z_pos = _ref_unit(z + 0.2 * rng.normal(size=(n, k)))
  return z.astype(np.float32), z_pos.astype(np.float32)


@pytest.mark.parametrize("name", CONTRASTIVE)
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_small_temperature(name, similarity):
  tau = 0.005
  z, z_pos = _unit_pair(0)
  # The input is hard: the largest logit exceeds log(float32 max) ~ 88.7,
  # so exponentiating before the log would overflow to inf.
  largest = np.max(_ref_logits(z, z_pos, tau, similarity))
  assert largest > np.log(np.finfo(np.float32).max)

  got = _all_losses_and_grads(z, z_pos, tau)
  loss, (g_z, g_pos) = got[f"{name}/{similarity}"]
  assert loss.dtype == jnp.float32
  assert np.isfinite(float(loss))
  assert np.all(np.isfinite(g_z)) and np.all(np.isfinite(g_pos))

  # float64 logsumexp reference (above) on the same float32 inputs. The
  # logits reach 1 / tau = 200 and float32 rounds each to within ~200 k eps
  # ~ 1e-4 (worst case; ~2e-6 is typical). The loss is O(1) (asserted), so
  # rtol 1e-4 is that bound: an overflow (inf) or a wrong convention (an
  # O(1) change) cannot pass it.
  expected = REFERENCES[name](z, z_pos, tau, similarity)
  assert expected > 1.0
  np.testing.assert_allclose(float(loss), expected, rtol=1e-4, atol=0)

  # Analytic float64 gradient (above). A logit error of ~1e-4 is a relative
  # error of ~1e-4 in the softmax probabilities, and the gradient's entries
  # scale as 1 / tau: compare with 1e-4 of its largest entry.
  r_z, r_pos = _ref_grads(name, z, z_pos, tau, similarity)
  scale = max(np.abs(r_z).max(), np.abs(r_pos).max())
  assert scale > 1.0  # the gradient is far from zero at this input
  np.testing.assert_allclose(g_z, r_z, rtol=1e-4, atol=1e-4 * scale)
  np.testing.assert_allclose(g_pos, r_pos, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name", CONTRASTIVE)
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_gradients_match_float64_reference(name, similarity):
  # The same analytic reference at an ordinary temperature, in float64:
  # checks the reference and the loss's gradient together, tightly.
  z, z_pos = _random_pair(3, 6, 4, np.float64)
  with jax.enable_x64(True):
    got = _all_losses_and_grads(jnp.asarray(z), jnp.asarray(z_pos), 0.3)
    _, grads = got[f"{name}/{similarity}"]
    g_z, g_pos = map(np.asarray, grads)
  assert g_z.dtype == np.float64
  r_z, r_pos = _ref_grads(name, z, z_pos, 0.3, similarity)
  # Analytic float64 gradient (above); both sides in float64.
  np.testing.assert_allclose(g_z, r_z, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(g_pos, r_pos, rtol=1e-9, atol=1e-12)


# Collapsed encoder: zero embeddings ------------------------------------------


@pytest.mark.parametrize("name", CONTRASTIVE)
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_zero_embeddings(name, similarity):
  n = 5
  zeros = jnp.zeros((n, 3), jnp.float32)
  got = _all_losses_and_grads(zeros, zeros, 0.1)
  loss, grads = got[f"{name}/{similarity}"]
  for g in grads:
    assert np.all(np.isfinite(g))
  # Closed form: every embedding maps to the same vector, so all logits are
  # equal: log n (infonce, clip) or log(2n - 1) (ntxent).
  expected = np.log(2 * n - 1) if name == "ntxent" else np.log(n)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-6, atol=0)


def test_simsiam_zero_embeddings():
  zeros = jnp.zeros((5, 3), jnp.float32)
  value_and_grad = jax.value_and_grad(losses.simsiam, argnums=(0, 1, 2, 3))
  loss, grads = jax.jit(value_and_grad)(zeros, zeros, zeros, zeros)
  assert np.isfinite(float(loss))
  for g in grads:
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("method", sorted(TRAINED_METHODS))
def test_zero_encoder_through_method_loss(method):
  k, dim, n = 3, 6, 8
  rng = np.random.default_rng(0)
  x, x_pos = rng.normal(size=(2, n, dim)).astype(np.float32)
  params = {
    "encoder": jnp.zeros((k, dim), jnp.float32),
    "predictor": jnp.eye(k, dtype=jnp.float32),
  }
  value_and_grad = jax.value_and_grad(method_loss)
  loss, grads = jax.jit(value_and_grad, static_argnums=4)(
    params, x, x_pos, jnp.float32(0.1), method
  )
  assert np.isfinite(float(loss))
  for name, g in grads.items():
    assert g.shape == params[name].shape
    assert np.all(np.isfinite(g)), name
  if method != "simsiam":
    # Closed form: A = 0 makes every embedding equal, all logits equal.
    expected = np.log(2 * n - 1) if method == "ntxent" else np.log(n)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6, atol=0)


# SimSiam's stop-gradient -----------------------------------------------------


def test_simsiam_stop_gradient():
  rng = np.random.default_rng(1)
  p, p_pos, z, z_pos = rng.normal(size=(4, 6, 3)).astype(np.float32)
  grad = jax.grad(losses.simsiam, argnums=(0, 1, 2, 3))
  grads = jax.jit(grad)(p, p_pos, z, z_pos)
  g_p, g_p_pos, g_z, g_z_pos = map(np.asarray, grads)
  # The target branch gets exactly no gradient (jax.lax.stop_gradient).
  np.testing.assert_array_equal(g_z, 0.0)
  np.testing.assert_array_equal(g_z_pos, 0.0)
  # The prediction branch does, as the float64 reference says: the gradient
  # of -cos(p, t) / (2n) is -(t^ - p^ (p^ . t^)) / (2n |p|).
  n = p.shape[0]
  for pred, target, got in ((p, z_pos, g_p), (p_pos, z, g_p_pos)):
    unit_target = _ref_unit(_f64(target))
    expected = -_ref_unit_backward(_f64(pred), unit_target) / (2 * n)
    assert np.abs(expected).max() > 1e-2  # a gradient that is not zero
    # float32 cosines: errors ~1e-7 relative to entries of size ~0.1.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_simsiam_signs():
  rng = np.random.default_rng(2)
  p, p_pos = rng.normal(size=(2, 7, 4)).astype(np.float32)
  # Closed form: each prediction equals its target, cos = 1: loss -1.
  np.testing.assert_allclose(
    float(SIMSIAM(p, p_pos, p_pos, p)), -1.0, rtol=1e-6, atol=0
  )
  # Closed form: targets opposite to predictions, cos = -1: loss +1.
  np.testing.assert_allclose(
    float(SIMSIAM(p, p_pos, -p_pos, -p)), 1.0, rtol=1e-6, atol=0
  )
  # Closed form: cosine ignores positive scale, so 3 * target still gives -1.
  np.testing.assert_allclose(
    float(SIMSIAM(p, p_pos, 3 * p_pos, 3 * p)), -1.0, rtol=1e-6, atol=0
  )


# jit, and argument checks ----------------------------------------------------


@pytest.mark.parametrize("name", CONTRASTIVE)
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_jit_agrees_with_eager(name, similarity):
  z, z_pos = _random_pair(4, 7, 3)
  loss = getattr(losses, name)
  eager = float(loss(z, z_pos, 0.2, similarity))
  jitted = jax.jit(loss, static_argnames="similarity")
  compiled = float(jitted(z, z_pos, jnp.float32(0.2), similarity=similarity))
  # The same function, eager: only float32 rounding may differ.
  np.testing.assert_allclose(compiled, eager, rtol=1e-6, atol=0)


def test_jit_agrees_with_eager_simsiam():
  rng = np.random.default_rng(5)
  args = rng.normal(size=(4, 7, 3)).astype(np.float32)
  eager = float(losses.simsiam(*args))
  compiled = float(jax.jit(losses.simsiam)(*args))
  # The same function, eager: only float32 rounding may differ.
  np.testing.assert_allclose(compiled, eager, rtol=1e-6, atol=0)


@pytest.mark.parametrize("similarity", ["euclidean", "Cosine", "dot_product"])
def test_unknown_similarity_is_rejected(similarity):
  z = jnp.ones((2, 3))
  with pytest.raises(ValueError, match=repr(similarity)):
    losses.similarity_logits(z, z, 1.0, similarity)
  with pytest.raises(ValueError, match=repr(similarity)):
    losses.infonce(z, z, 1.0, similarity)
