"""Tests of ssl_gmm.losses against float64 NumPy references and closed forms.

The references below (`_ref_*`) are written independently of the package, in
float64 NumPy (cross entropies with a max-shifted logsumexp, gradients of the
non-cross-entropy losses by central differences); the closed forms pin each
loss's convention, and the fault kinds listed in the README each have a test.
"""

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssl_gmm import losses, train
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

# The four losses that are not cross entropies, in the argument order of
# _new_losses: BYOL's predictions are p, p_pos and its targets z (for p_pos)
# and z_pos (for p).
NEW_LOSSES = ("spectral_contrastive", "barlow_twins", "vicreg", "byol")

# The papers' weights (the defaults): Barlow Twins' off_diagonal_weight
# lambda = 5e-3, VICReg's (lambda, mu, nu, epsilon) = (25, 25, 1, 1e-4).
PAPER_WEIGHTS = (5e-3, (25.0, 25.0, 1.0, 1e-4))
# Other weights, each distinct, so that a weight on the wrong term shows.
OTHER_WEIGHTS = (0.7, (2.0, 3.0, 0.5, 1e-3))


def _new_loss_fns(off_diagonal_weight, vicreg_weights):
  """{"name": fn(z, z_pos, p, p_pos)} for NEW_LOSSES at the given weights."""
  return {
    "spectral_contrastive": lambda z, z_pos, p, p_pos: (
      losses.spectral_contrastive(z, z_pos)
    ),
    "barlow_twins": lambda z, z_pos, p, p_pos: losses.barlow_twins(
      z, z_pos, off_diagonal_weight
    ),
    "vicreg": lambda z, z_pos, p, p_pos: losses.vicreg(
      z, z_pos, *vicreg_weights
    ),
    "byol": lambda z, z_pos, p, p_pos: losses.byol(p, p_pos, z, z_pos),
  }


# The new losses, compiled together: one program per input shape (the weights
# are arguments, so changing them does not recompile). _new_losses gives
# {"name": loss}; _new_losses_and_grads gives {"name": (loss, gradients in
# (z, z_pos, p, p_pos))}.
@jax.jit
def _new_losses(z, z_pos, p, p_pos, off_diagonal_weight, vicreg_weights):
  fns = _new_loss_fns(off_diagonal_weight, vicreg_weights)
  return {name: fn(z, z_pos, p, p_pos) for name, fn in fns.items()}


@jax.jit
def _new_losses_and_grads(
  z, z_pos, p, p_pos, off_diagonal_weight, vicreg_weights
):
  fns = _new_loss_fns(off_diagonal_weight, vicreg_weights)
  return {
    name: jax.value_and_grad(fn, argnums=(0, 1, 2, 3))(z, z_pos, p, p_pos)
    for name, fn in fns.items()
  }


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


def _ref_spectral_contrastive(z, z_pos) -> float:
  """HaoChen et al. 2021's -2 E[f(x)^T f(x+)] + E[(f(x)^T f(x'))^2] on a
  batch, the pairs i != j as the negatives: a double loop."""
  z, z_pos = _f64(z), _f64(z_pos)
  n = z.shape[0]
  positive = sum(z[i] @ z_pos[i] for i in range(n)) / n
  negative = sum(
    (z[i] @ z_pos[j]) ** 2 for i in range(n) for j in range(n) if i != j
  )
  return float(-2 * positive + negative / (n * (n - 1)))


def _ref_barlow_twins(z, z_pos, off_diagonal_weight) -> float:
  """Zbontar et al. 2021, as in facebookresearch/barlowtwins main.py:
  c = bn(z1).T @ bn(z2) / n with BatchNorm1d(affine=False), i.e. columns
  standardised with the population std (its eps of 1e-5 left out), then
  sum (1 - c_ii)^2 + lambda sum_{i != j} c_ij^2."""

  def standardize(a):
    a = _f64(a)
    return (a - a.mean(axis=0)) / a.std(axis=0)  # np.std: ddof=0

  c = standardize(z).T @ standardize(z_pos) / z.shape[0]
  off_diagonal = c[~np.eye(c.shape[0], dtype=bool)]
  return float(
    np.sum((np.diag(c) - 1) ** 2)
    + off_diagonal_weight * np.sum(off_diagonal**2)
  )


def _ref_vicreg(z, z_pos, weights) -> float:
  """Bardes et al. 2022, following facebookresearch/vicreg main_vicreg.py
  (VICReg.forward); weights = (sim_coeff, std_coeff, cov_coeff, eps)."""
  sim_coeff, std_coeff, cov_coeff, eps = weights
  x, y = _f64(z), _f64(z_pos)
  n, k = x.shape
  repr_loss = np.mean((x - y) ** 2)  # F.mse_loss: mean over all entries
  x, y = x - x.mean(axis=0), y - y.mean(axis=0)
  std_x = np.sqrt(x.var(axis=0, ddof=1) + eps)  # torch .var(): unbiased
  std_y = np.sqrt(y.var(axis=0, ddof=1) + eps)
  std_loss = (
    np.mean(np.maximum(1 - std_x, 0)) / 2
    + np.mean(np.maximum(1 - std_y, 0)) / 2
  )
  off = ~np.eye(k, dtype=bool)
  cov_x, cov_y = x.T @ x / (n - 1), y.T @ y / (n - 1)
  cov_loss = np.sum(cov_x[off] ** 2) / k + np.sum(cov_y[off] ** 2) / k
  return float(
    sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss
  )


def _ref_byol(p, p_pos, target, target_pos) -> float:
  """Grill et al. 2020, Eq. 2: |q^ - z^'|^2 per row of unit vectors (not
  via 2 - 2 cos), averaged over rows; the mean (BYOL: the sum) of the two
  directions, p against target_pos and p_pos against target."""

  def normalized_mse(a, b):
    diff = _ref_unit(_f64(a)) - _ref_unit(_f64(b))
    return np.mean(np.sum(diff**2, axis=1))

  return float(
    0.5 * (normalized_mse(p, target_pos) + normalized_mse(p_pos, target))
  )


def _ref_new_loss_fns(weights) -> dict:
  """{"name": float64 reference fn(z, z_pos, p, p_pos)} for NEW_LOSSES."""
  off_diagonal_weight, vicreg_weights = weights
  return {
    "spectral_contrastive": lambda z, z_pos, p, p_pos: (
      _ref_spectral_contrastive(z, z_pos)
    ),
    "barlow_twins": lambda z, z_pos, p, p_pos: _ref_barlow_twins(
      z, z_pos, off_diagonal_weight
    ),
    "vicreg": lambda z, z_pos, p, p_pos: _ref_vicreg(z, z_pos, vicreg_weights),
    "byol": lambda z, z_pos, p, p_pos: _ref_byol(p, p_pos, z, z_pos),
  }


def _ref_numerical_grads(fn, *args, step=1e-6):
  """Central differences of a float64 reference fn(*args), entry by entry.

  Truncation error ~step^2 times fn's third derivative, ~1e-12; rounding
  ~1e-16 |fn| / step, under 1e-8 for the losses here.
  """
  args = [_f64(a).copy() for a in args]
  grads = []
  for arg in args:
    grad = np.zeros_like(arg)
    for index in np.ndindex(arg.shape):
      value = arg[index]
      arg[index] = value + step
      up = fn(*args)
      arg[index] = value - step
      down = fn(*args)
      arg[index] = value
      grad[index] = (up - down) / (2 * step)
    grads.append(grad)
  return grads


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


# The loss of a zero encoder, whose embeddings are all zero (n = 8, k = 3):
# contrastive logits all equal give log n (log(2n - 1) for NT-Xent); the
# other closed forms are those of test_new_losses_collapsed_embeddings.
_ZERO_ENCODER_LOSS = {
  "infonce": np.log(8),
  "infonce_dot": np.log(8),
  "infonce_mlp": np.log(8),
  "ntxent": np.log(15),
  "spectral": 0.0,
  "barlow_twins": 3.0,  # k: every standardised column is zero.
  "vicreg": 25.0 * (1.0 - np.sqrt(1e-4)),  # The variance hinge alone.
  "byol": 2.0,  # Zero predictions and targets have cosine 0.
  "simsiam": 0.0,  # Cosine 0 in both directions.
}


@pytest.mark.parametrize("method", sorted(TRAINED_METHODS))
def test_zero_encoder_through_method_loss(method):
  k, dim, n = 3, 6, 8
  rng = np.random.default_rng(0)
  x, x_pos = rng.normal(size=(2, n, dim)).astype(np.float32)
  params = train.init_params(jax.random.PRNGKey(0), k, dim, method)
  # A zero encoder: every weight (and an MLP's every bias) zero.
  params = {
    name: value if name == "predictor" else jax.tree.map(jnp.zeros_like, value)
    for name, value in params.items()
  }
  value_and_grad = jax.value_and_grad(method_loss)
  loss, grads = jax.jit(value_and_grad, static_argnums=4)(
    params, x, x_pos, jnp.float32(0.1), method
  )
  assert np.isfinite(float(loss))
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(g)), method
  np.testing.assert_allclose(
    float(loss), _ZERO_ENCODER_LOSS[method], rtol=1e-6, atol=1e-6
  )


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


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan"), np.inf])
def test_a_bad_temperature_is_named(temperature):
  # A concrete temperature is checked on the host; under jit it is traced.
  z = jnp.ones((2, 3))
  for loss in (losses.infonce, losses.ntxent, losses.clip):
    with pytest.raises(ValueError, match=f"^temperature={temperature!r}"):
      loss(z, z, temperature)
  with pytest.raises(ValueError, match="^temperature=0.0"):
    losses.infonce(z, z, jnp.array(0.0))  # A 0-d array known on the host.


# Spectral contrastive, Barlow Twins, VICReg and BYOL -------------------------

# Every float32 test below uses [8, 4] inputs, so _new_losses_and_grads
# compiles once for them.
NEW_SHAPE = (8, 4)

# Columns 1-4 of the 8 x 8 Sylvester Hadamard matrix: entries +-1, so each
# column has mean 0 and population variance 1, and the columns are orthogonal.
_SYLVESTER_2 = np.array([[1, 1], [1, -1]])
HADAMARD_8_4 = np.kron(np.kron(_SYLVESTER_2, _SYLVESTER_2), _SYLVESTER_2)[
  :, 1:5
].astype(np.float32)


def _random_views(seed, n, k, dtype=np.float32):
  """[n, k] z, z_pos (correlated) and predictions p, p_pos.

  z's and z_pos's column scales run from 0.3 to 2, which puts VICReg's hinge
  relu(1 - std) on both sides of its kink.
  """
  rng = np.random.default_rng(seed)
  scale = np.linspace(0.3, 2.0, k)
  z = rng.normal(size=(n, k)) * scale
  z_pos = z + 0.5 * rng.normal(size=(n, k)) * scale
  p, p_pos = rng.normal(size=(2, n, k))
  return tuple(a.astype(dtype) for a in (z, z_pos, p, p_pos))


def _new_f32(z, z_pos, p=None, p_pos=None, weights=PAPER_WEIGHTS):
  """{"name": (loss, grads)} of the new losses on [8, 4] float32 inputs."""
  p = z if p is None else p
  p_pos = z_pos if p_pos is None else p_pos
  args = [np.asarray(a, np.float32) for a in (z, z_pos, p, p_pos)]
  assert args[0].shape == NEW_SHAPE
  return _new_losses_and_grads(*args, *weights)


@pytest.mark.parametrize("n, k", [(2, 1), (5, 3), (12, 4)])
def test_new_losses_match_float64_reference(n, k):
  views = _random_views(10 * n + k, n, k, np.float64)
  for weights in (PAPER_WEIGHTS, OTHER_WEIGHTS):
    with jax.enable_x64(True):
      got = _new_losses(*map(jnp.asarray, views), *weights)
      got = {name: np.asarray(value) for name, value in got.items()}
    for name, reference in _ref_new_loss_fns(weights).items():
      assert got[name].dtype == np.float64
      # float64 reference (above); both sides compute in float64.
      np.testing.assert_allclose(
        got[name], reference(*views), rtol=1e-10, atol=1e-12, err_msg=name
      )


def test_new_loss_gradients_match_float64_reference():
  views = _random_views(0, *NEW_SHAPE)
  got = _new_f32(*views, weights=OTHER_WEIGHTS)
  for name, reference in _ref_new_loss_fns(OTHER_WEIGHTS).items():
    loss, grads = got[name]
    # float64 reference (above) on the same float32 inputs: sums of float32
    # products of size ~1-10 (spectral's two terms cancel), errors ~1e-6.
    np.testing.assert_allclose(
      float(loss), reference(*views), rtol=1e-5, atol=1e-5, err_msg=name
    )
    # Central differences of the float64 reference (above) in the arguments
    # that carry the gradient: z, z_pos, or BYOL's predictions p, p_pos (its
    # targets z, z_pos are stop-gradient, tested below).
    wrt = (2, 3) if name == "byol" else (0, 1)

    def moved(a, b, wrt=wrt, reference=reference):
      args = list(views)
      args[wrt[0]], args[wrt[1]] = a, b
      return reference(*args)

    expected = _ref_numerical_grads(moved, *(views[i] for i in wrt))
    scale = max(np.abs(e).max() for e in expected)
    assert scale > 1e-2, name  # a gradient that is not zero
    for i, e in zip(wrt, expected):
      # float32 rounding through a few matrix products and the
      # standardisations (observed <~4e-7 of the largest entry): 1e-5 of it.
      np.testing.assert_allclose(
        grads[i], e, rtol=1e-4, atol=1e-5 * scale, err_msg=name
      )


def test_new_loss_defaults_are_the_papers_weights():
  # The papers' weights (PAPER_WEIGHTS, above); the closed forms below use
  # them as well. Barlow Twins' official code defaults to 0.0051.
  off_diagonal_weight, (invariance, variance, covariance, eps) = PAPER_WEIGHTS
  defaults = {
    "barlow_twins": {"off_diagonal_weight": off_diagonal_weight},
    "vicreg": {
      "invariance_weight": invariance,
      "variance_weight": variance,
      "covariance_weight": covariance,
      "eps": eps,
    },
  }
  for name, expected in defaults.items():
    parameters = inspect.signature(getattr(losses, name)).parameters
    assert {key: parameters[key].default for key in expected} == expected


def test_spectral_contrastive_closed_forms():
  rng = np.random.default_rng(7)
  v = rng.normal(size=4).astype(np.float32)
  rows = np.tile(v, (8, 1))
  squared = float(np.sum(_f64(v) ** 2))
  loss, _ = _new_f32(rows, rows)["spectral_contrastive"]
  # Closed form: every row of both views is v, so every product is |v|^2:
  # -2 |v|^2 + |v|^4.
  np.testing.assert_allclose(
    float(loss), -2 * squared + squared**2, rtol=1e-5, atol=1e-6
  )
  # Closed form: rows e_(i mod 4), so each basis vector is in the batch
  # twice; z_i . z_pos_j is 1 for j = i and for the one j != i with the same
  # basis vector, else 0: -2 + n / (n (n - 1)) = -2 + 1/7. Counting i = j
  # among the negatives would give -2 + 16/56; dividing by n^2, -2 + 8/64.
  basis = np.tile(np.eye(4, dtype=np.float32), (2, 1))
  loss, _ = _new_f32(basis, basis)["spectral_contrastive"]
  np.testing.assert_allclose(float(loss), -2 + 1 / 7, rtol=1e-6, atol=0)


def test_barlow_twins_closed_forms():
  h = HADAMARD_8_4

  def barlow(z_pos, weights=PAPER_WEIGHTS):
    return float(_new_f32(h, z_pos, weights=weights)["barlow_twins"][0])

  # Closed form: h's columns are standardised and orthogonal, so C = I and
  # the loss is 0 (the unbiased std would give C = 7/8 I, loss 4/64).
  np.testing.assert_allclose(barlow(h), 0.0, rtol=0, atol=1e-6)
  # Closed form: standardising removes a positive scale and a shift per
  # column, so C = I again.
  shifted = 3 * h + np.arange(1, 5, dtype=np.float32)
  np.testing.assert_allclose(barlow(shifted), 0.0, rtol=0, atol=1e-5)
  # Closed form: z_pos = -z gives C = -I, (1 - (-1))^2 per column: 4k = 16.
  np.testing.assert_allclose(barlow(-h), 16.0, rtol=1e-6, atol=0)
  # Closed form: swapping z_pos's first two columns makes C_00 = C_11 = 0 and
  # C_01 = C_10 = 1: 2 + 2 lambda, for the papers' 5e-3 and for 0.7.
  swapped = h[:, [1, 0, 2, 3]]
  for weights in (PAPER_WEIGHTS, OTHER_WEIGHTS):
    np.testing.assert_allclose(
      barlow(swapped, weights), 2 + 2 * weights[0], rtol=1e-6, atol=0
    )


def test_vicreg_closed_forms():
  h = 2 * HADAMARD_8_4  # unbiased variance 4 * 8/7 per column: std > 1

  def vicreg(z, z_pos):
    return float(_new_f32(z, z_pos)["vicreg"][0])

  # Closed form: z == z_pos (invariance 0), every std above 1 (variance 0),
  # columns orthogonal (covariance 0): 0.
  np.testing.assert_allclose(vicreg(h, h), 0.0, rtol=0, atol=1e-6)
  # Closed form: z_pos = z + 1 adds (z - z_pos)^2 = 1 to every entry and
  # changes neither view's covariance: invariance weight 25 times 1.
  np.testing.assert_allclose(vicreg(h, h + 1), 25.0, rtol=1e-6, atol=0)
  # Closed form: repeating column 0 in column 1 puts the unbiased variance
  # 32/7 at C_01 = C_10 of each view's covariance: 2 (32/7)^2 / k per view,
  # k = 4, summed over the two views, weight 1: (32/7)^2. (A biased
  # covariance would give 16, and no division by k 4 (32/7)^2.)
  repeated = h[:, [0, 0, 2, 3]]
  np.testing.assert_allclose(
    vicreg(repeated, repeated), (32 / 7) ** 2, rtol=1e-6, atol=0
  )


@pytest.mark.parametrize("kind", ["zeros", "constant rows", "constant column"])
def test_new_losses_collapsed_embeddings(kind):
  n, k = NEW_SHAPE
  v = np.zeros(k) if kind == "zeros" else np.array([0.3, -1.2, 0.7, 2.0])
  z = z_pos = np.tile(v, (n, 1)).astype(np.float32)
  if kind == "constant column":
    rng = np.random.default_rng(3)
    z, z_pos = rng.normal(size=(2, n, k)).astype(np.float32)
    z[:, 0] = 0.3
  # BYOL on the same embeddings: predictions z_pos, z for targets z, z_pos.
  got = _new_f32(z, z_pos, z_pos, z)
  for name in NEW_LOSSES:
    loss, grads = got[name]
    assert np.isfinite(float(loss)), name
    for g in grads:
      assert np.all(np.isfinite(g)), name
  if kind == "constant column":
    return
  squared = float(np.sum(v**2))
  # Closed forms, every row of both views v: spectral -2 |v|^2 + |v|^4;
  # Barlow Twins C = 0, so k (float32 column means of a constant may round,
  # leaving centred values ~1e-7 that the variance floor 1e-8 scales to
  # ~1e-3: C ~ 1e-6); VICReg invariance and covariance 0 and every std
  # sqrt(eps): 25 (1 - 1e-2); BYOL 0, or 2 for zeros (normalised to zero:
  # cos = 0).
  expected = {
    "spectral_contrastive": -2 * squared + squared**2,
    "barlow_twins": float(k),
    "vicreg": 25 * (1 - 1e-2),
    "byol": 2.0 if kind == "zeros" else 0.0,
  }
  for name, value in expected.items():
    np.testing.assert_allclose(
      float(got[name][0]), value, rtol=1e-6, atol=1e-4, err_msg=name
    )


def test_byol_stop_gradient():
  rng = np.random.default_rng(11)
  target, target_pos, p, p_pos = rng.normal(size=(4, *NEW_SHAPE))
  _, grads = _new_f32(target, target_pos, p, p_pos)["byol"]
  g_target, g_target_pos, g_p, g_p_pos = map(np.asarray, grads)
  # The targets get exactly no gradient (jax.lax.stop_gradient).
  np.testing.assert_array_equal(g_target, 0.0)
  np.testing.assert_array_equal(g_target_pos, 0.0)
  # The predictions do, as the float64 reference says: the mean over the two
  # directions of mean_i (2 - 2 cos(p_i, t_i)) has gradient
  # -(t^ - p^ (p^ . t^)) / (n |p|) in p_i.
  n = p.shape[0]
  for pred, tgt, got in ((p, target_pos, g_p), (p_pos, target, g_p_pos)):
    expected = -_ref_unit_backward(_f64(pred), _ref_unit(_f64(tgt))) / n
    assert np.abs(expected).max() > 1e-2  # a gradient that is not zero
    # float32 cosines: errors ~1e-7 relative to entries of size ~0.1.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_byol_closed_forms():
  rng = np.random.default_rng(12)
  p, p_pos = rng.normal(size=(2, *NEW_SHAPE)).astype(np.float32)

  def byol(target, target_pos):
    return float(_new_f32(target, target_pos, p, p_pos)["byol"][0])

  # Closed form: each prediction equals its target, cos = 1: loss 0.
  np.testing.assert_allclose(byol(p_pos, p), 0.0, rtol=0, atol=1e-6)
  # Closed form: cosine ignores positive scale, so 3 * target still gives 0.
  np.testing.assert_allclose(byol(3 * p_pos, 3 * p), 0.0, rtol=0, atol=1e-6)
  # Closed form: opposite targets, cos = -1: 2 + 2 = 4 (the sum of the two
  # directions, BYOL's own convention, would be 8).
  np.testing.assert_allclose(byol(-p_pos, -p), 4.0, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
  "name", ["spectral_contrastive", "vicreg", "barlow_twins"]
)
def test_needs_two_pairs(name):
  z = jnp.ones((1, 3))
  loss = getattr(losses, name)
  with pytest.raises(ValueError, match="n=1"):
    loss(z, z)
  # Shapes are static, so the check also fires when tracing under jit.
  with pytest.raises(ValueError, match="n=1"):
    jax.jit(loss)(z, z)


# Every loss, with the views it takes (2 or 4) and its other arguments.
_VIEWS = {
  "infonce": (2, (0.5,)),
  "ntxent": (2, (0.5,)),
  "clip": (2, (0.5,)),
  "spectral_contrastive": (2, ()),
  "barlow_twins": (2, ()),
  "vicreg": (2, ()),
  "simsiam": (4, ()),
  "byol": (4, ()),
}


@pytest.mark.parametrize("name", sorted(_VIEWS))
def test_a_batch_of_the_wrong_shape_is_named(name):
  views, extra = _VIEWS[name]
  loss = getattr(losses, name)
  good = [jnp.ones((8, 3))] * views
  # A second view of 5 rows against 8 would score the wrong pairs.
  with pytest.raises(ValueError, match=r"shape=\(5, 3\) is invalid"):
    loss(good[0], jnp.ones((5, 3)), *good[2:], *extra)
  # One-dimensional views are not [n, k] (a logsumexp would still run).
  flat = [jnp.ones(5)] * views
  with pytest.raises(ValueError, match=r"shape=\(5,\) is invalid"):
    loss(*flat, *extra)
  # No pair at all: the mean over zero rows is NaN.
  empty = [jnp.ones((0, 3))] * views
  with pytest.raises(ValueError, match="^n=0 is invalid"):
    jax.jit(lambda *v: loss(*v, *extra))(*empty)


@pytest.mark.parametrize(
  "name, weights, named",
  [
    ("vicreg", dict(eps=0.0), "eps=0.0"),
    ("vicreg", dict(variance_weight=-1.0), "variance_weight=-1.0"),
    ("barlow_twins", dict(off_diagonal_weight=float("nan")), "off_diagonal"),
  ],
)
def test_a_bad_loss_weight_is_named(name, weights, named):
  z = jnp.ones((8, 3))
  with pytest.raises(ValueError, match=f"^{named}"):
    getattr(losses, name)(z, z, **weights)


def test_loss_weights_may_be_arrays_known_on_the_host():
  z = jax.random.normal(jax.random.PRNGKey(0), (8, 3))
  # A 0-d array is a number like any other: the same loss as the float.
  for name, weight in (
    ("barlow_twins", "off_diagonal_weight"),
    ("vicreg", "covariance_weight"),
  ):
    loss = getattr(losses, name)
    np.testing.assert_allclose(
      loss(z, 2 * z, **{weight: jnp.asarray(0.1)}),
      loss(z, 2 * z, **{weight: 0.1}),
      rtol=1e-6,
    )


def test_a_temperature_is_one_number():
  # An array of temperatures would broadcast against the [n, n] logits.
  z = jnp.ones((4, 2))
  with pytest.raises(ValueError, match=r"^temperature.shape=\(4,\)"):
    losses.infonce(z, z, jnp.full(4, 0.5))


def test_an_embedding_without_coordinates_is_refused():
  # [n, 0] views have no variance to standardise: VICReg would give NaN.
  z = jnp.ones((8, 0))
  with pytest.raises(ValueError, match=r"^z.shape=\(8, 0\) is invalid"):
    losses.vicreg(z, z)
