"""One ml_collections config per experiment, at each of common.PROFILES."""

import importlib

import ml_collections

from ssl_gmm.configs.common import PROFILES

EXPERIMENTS = (
  "anisotropy",
  "dimension",
  "components",
  "noisy_positives",
  "embedding_dim",
  "multimodal",
  "samples",
  "real_data",
  "phase",
  "objectives",
  "heteroscedastic",
)


def get_config(name: str, profile: str = "quick") -> ml_collections.ConfigDict:
  """The config of experiment `name` at `profile`.

  Raises:
    ValueError: for an unknown experiment or profile.
  """
  if name not in EXPERIMENTS:
    raise ValueError(f"experiment={name!r}; expected one of {EXPERIMENTS}.")
  if profile not in PROFILES:
    raise ValueError(f"profile={profile!r}; expected one of {PROFILES}.")
  module = importlib.import_module(f"ssl_gmm.configs.{name}")
  return module.get_config(profile)
