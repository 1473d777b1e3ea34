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
  """A finite real number, and not a bool."""
  number = isinstance(value, int | float | np.integer | np.floating)
  return number and not isinstance(value, bool) and math.isfinite(value)


def check_traced(name: str, value) -> None:
  """Checks one number: p_same lies in [0, 1], any other setting is > 0.

  Named for the settings a sweep may trace (anisotropy, p_same, temperature,
  learning rate), it serves every positive real setting alike.
  """
  require(is_finite(value), name, value, "must be a finite number")
  if name == "p_same":
    require(0 <= value <= 1, name, value, "must lie in [0, 1]")
  else:
    require(value > 0, name, value, "must be > 0")


def check_values(name: str, value) -> None:
  """`check_traced` on every entry of a scalar or array, unless it is traced.

  Raises:
    ValueError: naming the first entry that fails.
  """
  if isinstance(value, jax.core.Tracer):
    return
  flat = np.ravel(np.asarray(value, np.float64))
  low = flat >= 0 if name == "p_same" else flat > 0
  high = flat <= 1 if name == "p_same" else flat < np.inf
  ok = low & high & np.isfinite(flat)
  if not np.all(ok):
    check_traced(name, float(flat[np.argmin(ok)]))


def check_shape(dim: int, num_components: int, k: int) -> None:
  """Checks d, K and k of one mixture and encoder."""
  require(
    is_int(num_components) and num_components >= 2,
    "num_components",
    num_components,
    "K >= 2",
  )
  require(
    is_int(dim) and dim >= num_components,
    "dim",
    dim,
    f"d >= K (K = {num_components})",
  )
  require(is_int(k) and 1 <= k <= dim, "k", k, f"1 <= k <= d (d = {dim})")
