"""Shared fixtures: a tiny anisotropy config that trains in seconds."""

import ml_collections
import pytest

from ssl_gmm import configs


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
