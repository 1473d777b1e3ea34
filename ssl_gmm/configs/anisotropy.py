"""Anisotropy: does InfoNCE find the Fisher subspace where PCA cannot?

Sweeps the variance of the K nuisance directions of Sigma from 1 (isotropic)
to 1e3, at d = 32, K = 4, k = 3, and compares every trained encoder and
baseline with the analytic Fisher subspace. Claims C1, C2 and C3.

Run:
  python scripts/reproduce.py --experiments=anisotropy

Expected: cosine InfoNCE within distance 0.2 of F and fisher_ratio 0.9 at
the largest anisotropy (where C1 is checked; the figure shows the rest),
while PCA's distance climbs to 1 as the nuisance variance overtakes the
means' spread.
"""

import ml_collections
import numpy as np

from ssl_gmm.configs import common


def get_config(profile: str = "quick") -> ml_collections.ConfigDict:
  config = common.base_config("anisotropy", profile)
  config.mixture.dim = 32
  config.mixture.num_components = 4
  config.k = 3
  config.methods = common.UNIMODAL_METHODS
  if profile == "smoke":  # What C1, C2 and C3 read, and one baseline more.
    config.methods = ("infonce", "infonce_dot", "simsiam", "pca", "lda")
  config.claims = ("C1", "C2", "C3")
  sweeps = {
    "quick": np.logspace(0, 3, 7),
    "full": np.logspace(0, 4, 13),
    "smoke": np.array([1.0, 1000.0]),
  }
  config.sweep.anisotropy = tuple(sweeps[profile].tolist())
  config.figure.x = "anisotropy"
  config.figure.log_x = True
  config.lock()
  return config
