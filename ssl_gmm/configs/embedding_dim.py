"""Embedding dimension: a subset of F for k < K - 1, F inside for k >= K - 1.

Sweeps k from 1 to 6 at d = 32, K = 4 (so K - 1 = 3) and anisotropy 100.
For k < K - 1 the distance asks whether the row space lies inside F; for
k >= K - 1 whether F lies inside the row space. nuisance_share says how much
of the embedding's variance the directions past K - 1 carry.

Run:
  python scripts/reproduce.py --experiments=embedding_dim

Expected: InfoNCE's distance <= 0.2 at every k.
"""

import ml_collections

from ssl_gmm.configs import common


def get_config(profile: str = "quick") -> ml_collections.ConfigDict:
  config = common.base_config("embedding_dim", profile)
  config.mixture.anisotropy = 100.0
  config.methods = common.quick_methods(profile, ("infonce",))
  config.claims = ("embedding_dim",)
  sweeps = {"quick": (1, 2, 3, 4, 5, 6), "full": tuple(range(1, 9))}
  config.sweep.k = sweeps.get(profile, (2, 4))
  config.figure.x = "k"
  config.lock()
  return config
