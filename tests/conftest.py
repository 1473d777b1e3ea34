"""Shared fixtures: a tiny anisotropy config that trains in seconds.

The tests run short programs, so their time goes to compiling them: XLA's
backend is asked for no optimisation (LLVM -O0), which halves compile time
and changes no result beyond float rounding. Set here, before JAX starts
its backend, it holds for this process and every process the tests start.
"""

import os

import ml_collections
import pytest

from ssl_gmm import configs

XLA_TEST_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = " ".join(
  filter(None, [os.environ.get("XLA_FLAGS"), XLA_TEST_FLAGS])
)


def set_dotted(config, dotted: str, value) -> ml_collections.ConfigDict:
  """Sets a setting by its dotted name ("train.temperature"); returns config."""
  *parents, leaf = dotted.split(".")
  node = config
  for name in parents:
    node = node[name]
  node[leaf] = value
  return config


def tiny_config(**changes) -> ml_collections.ConfigDict:
  """The smoke profile of `anisotropy` at d = 8, K = 3, k = 2.

  Keyword arguments replace top-level settings; dotted names are not needed
  by the tests that use this.
  """
  config = configs.get_config("anisotropy", "smoke")
  config.mixture.dim = 8
  config.mixture.num_components = 3
  config.k = 2
  config.n_eval = 120
  for name, value in changes.items():
    config[name] = value
  return config


@pytest.fixture
def tiny():
  return tiny_config()
