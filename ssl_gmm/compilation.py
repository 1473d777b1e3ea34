"""Counting XLA compilations, to check that a sweep compiles once.

A listener on jax.monitoring's backend-compile event counts compilations by
the jitted function's name; `count_compilations` reports those made inside
a `with` block. A grid that recompiled per point (a swept value passed as a
Python float or a static argument) shows up as a count above one.
"""

import collections
import contextlib

import jax

_EVENT = "/jax/core/compile/backend_compile_duration"
_COUNTS: collections.Counter = collections.Counter()


def _listen(event: str, duration: float, **kwargs) -> None:
  del duration
  if event == _EVENT:
    _COUNTS[kwargs.get("fun_name", "?")] += 1


jax.monitoring.register_event_duration_secs_listener(_listen)


@contextlib.contextmanager
def count_compilations():
  """Yields a Counter, filled on exit with compilations per function name.

  Names look like "jit(train_grid)".
  """
  before = collections.Counter(_COUNTS)
  found: collections.Counter = collections.Counter()
  try:
    yield found
  finally:
    found.update(_COUNTS - before)
