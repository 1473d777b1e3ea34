"""Dimension: does C1 hold as the input dimension grows?

Sweeps d from 8 to 256 at K = 4, k = 3 and anisotropy 100, and applies C1's
thresholds (distance <= 0.2, fisher_ratio >= 0.9 for cosine InfoNCE) at
every d. Each d is its own shape, so each compiles its own programs.

Run:
  python scripts/reproduce.py --experiments=dimension

Expected: InfoNCE's distance stays under 0.2 at every d, while PCA, which
sees only the nuisance directions at this anisotropy, stays near 1.
"""

import ml_collections

from ssl_gmm.configs import common


def get_config(profile: str = "quick") -> ml_collections.ConfigDict:
  config = common.base_config("dimension", profile)
  config.mixture.num_components = 4
  config.mixture.anisotropy = 100.0
  config.k = 3
  config.methods = common.quick_methods(profile, ("infonce",))
  config.claims = ("C1_all",)
  sweeps = {
    "quick": (8, 16, 32, 64, 128, 256),
    "full": (8, 16, 32, 64, 128, 256, 512, 1024),
    "smoke": (8, 16),
  }
  config.sweep.dim = sweeps[profile]
  config.figure.x = "dim"
  config.figure.log_x = True
  config.lock()
  return config
