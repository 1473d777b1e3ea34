"""Host-side checks of settings, raising a ValueError that names the value.

Shared by the config validation (ssl_gmm/validation.py) and the public
functions that take a setting directly (`mixture.make_mixture`,
`train.train`, ...), so that both refuse the same values with the same words
before anything is compiled. A value that is traced (an argument of a
function under jit or vmap) cannot be read on the host and is not checked
here: its config was checked before the trace began.
"""

import math

import jax
import numpy as np


def require(ok: bool, name: str, value, rule: str) -> None:
  if not ok:
    raise ValueError(f"{name}={value!r} is invalid: {rule}.")


def is_int(value) -> bool:
  """An integer, and not a bool (which Python counts as one)."""
  return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_finite(value) -> bool:
  """A finite real number (a 0-d NumPy or JAX array too), and not a bool."""
  if isinstance(value, jax.Array | np.ndarray) and value.ndim == 0:
    if value.dtype.kind not in "iuf":
      return False
    value = value.item()
  number = isinstance(value, int | float | np.integer | np.floating)
  return number and not isinstance(value, bool) and math.isfinite(value)


# The range each positive setting may take. Training and sampling run in
# float32, whose normal numbers span about 1e-38 to 3e38: outside these
# ranges an anisotropy's variances (and their squares) or a temperature's
# logits underflow or overflow there, and the run would report NaN or
# diverge for a reason that is not the method's. A learning rate needs only
# to be a float32 number: too large a one diverges, which a sweep records.
# Any other positive setting gets DEFAULT_RANGE.
RANGES = {
  "anisotropy": (1e-6, 1e6),
  # Norms of means: LDA's scatter squares them against unit noise.
  "separation": (1e-6, 1e3),
  "temperature": (1e-4, 1e4),
  "learning_rate": (1e-30, 1e35),
}
DEFAULT_RANGE = (1e-6, 1e6)


def check_traced(name: str, value) -> None:
  """Checks one number: p_same lies in [0, 1], any other setting in its range.

  Named for the settings a sweep may trace (anisotropy, p_same, temperature,
  learning rate), it serves every positive real setting alike (`RANGES`).
  """
  require(is_finite(value), name, value, "must be a finite number")
  if name == "p_same":
    require(0 <= value <= 1, name, value, "must lie in [0, 1]")
  else:
    require(value > 0, name, value, "must be > 0")
    low, high = RANGES.get(name, DEFAULT_RANGE)
    rule = f"must lie in [{low:g}, {high:g}], where float32 holds its effects"
    require(low <= value <= high, name, value, rule)


def check_values(name: str, value, scalar: bool = False) -> None:
  """`check_traced` on every entry of a scalar or array, unless it is traced.

  With `scalar`, the value must be one number (its shape is checked even
  when it is traced).

  Raises:
    ValueError: naming the first entry that fails.
  """
  if scalar:
    shape = np.shape(value)
    require(shape == (), f"{name}.shape", shape, "expected one number, ()")
  if isinstance(value, jax.core.Tracer):
    return
  number = not isinstance(value, bool | str) and value is not None
  require(number, name, value, "must be a number")
  flat = np.ravel(np.asarray(value, np.float64))
  if name == "p_same":
    low, high = 0.0, 1.0
  else:
    low, high = RANGES.get(name, DEFAULT_RANGE)
  ok = (flat >= low) & (flat <= high)  # False at NaN.
  if not np.all(ok):
    check_traced(name, float(flat[np.argmin(ok)]))


def check_norm(name: str, value) -> None:
  """Checks a norm that may be 0 (a shift), up to separation's largest."""
  high = RANGES["separation"][1]
  ok = is_finite(value) and 0 <= value <= high
  require(ok, name, value, f"must lie in [0, {high:g}]")


def check_count(name: str, value, least: int = 1) -> None:
  """Checks a count (a number of samples, steps, ...): an int >= least."""
  require(is_int(value) and value >= least, name, value, f"an int >= {least}")


def check_shape(dim: int, num_components: int, k: int) -> None:
  """Checks d, K and k of one mixture and encoder."""
  require(
    is_int(num_components) and num_components >= 2,
    "num_components",
    num_components,
    "K >= 2",
  )
  require(is_int(dim), "dim", dim, "must be an int")
  require(dim >= num_components, "dim", dim, f"d >= K (K = {num_components})")
  require(is_int(k) and 1 <= k <= dim, "k", k, f"1 <= k <= d (d = {dim})")


def check_n_eval(n_eval: int, num_components: int) -> None:
  """Held-out samples enough for k-means to find K clusters in either half.

  The first half of the n_eval held-out samples fits the class means, the
  second is classified and clustered.
  """
  rule = f"an int >= 2 K = {2 * num_components}: K clusters in either half"
  require(n_eval >= 2 * num_components, "n_eval", n_eval, rule)


def check_covariance(name: str, cov: np.ndarray, dtype) -> None:
  """Checks that cov is finite, symmetric and positive definite in `dtype`.

  Relative to the largest eigenvalue, as numpy.linalg.matrix_rank does: a
  smallest eigenvalue below d eps times it is one that `dtype` cannot tell
  from 0. Within [sqrt(tiny), sqrt(max)] a variance's square neither
  underflows nor overflows in `dtype`.

  Raises:
    ValueError: naming `name` and, when it is not positive definite, its
      smallest and largest eigenvalues.
  """
  cov = np.asarray(cov, np.float64)
  if not np.all(np.isfinite(cov)):
    raise ValueError(f"{name} holds a value that is not finite: {cov}.")
  if not np.allclose(cov, cov.T):
    raise ValueError(f"{name} is not symmetric.")
  info = np.finfo(dtype)
  smallest, largest = np.linalg.eigvalsh(cov)[[0, -1]]
  tolerance = cov.shape[0] * info.eps * max(largest, 0.0)
  low, high = np.sqrt(info.tiny), np.sqrt(info.max)
  if smallest <= tolerance or not low <= smallest <= largest <= high:
    raise ValueError(
      f"{name} is not positive definite in {info.dtype}: smallest eigenvalue "
      f"{smallest:.3g}, largest {largest:.3g} (needs smallest > "
      f"{tolerance:.3g} and both within [{low:.3g}, {high:.3g}])."
    )
