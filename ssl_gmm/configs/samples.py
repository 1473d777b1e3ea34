"""Samples: how many training pairs does each method need?

Every method learns from n pairs drawn once (n from 50 to 10^4) at d = 32,
K = 4, k = 3, anisotropy 100: encoders for the same number of steps at every
n with batch min(256, n), LDA on the same n labelled anchors, whitened PCA
on the same n pairs. The finding is, per method, the smallest n at which
fisher_ratio reaches 0.9.

Run:
  python scripts/reproduce.py --experiments=samples

Expected: the spectral methods and LDA need a few hundred samples; the
trained encoders need more, since they also have to overcome their own
optimisation noise.
"""

import ml_collections

from ssl_gmm.configs import common


def get_config(profile: str = "quick") -> ml_collections.ConfigDict:
  config = common.base_config("samples", profile)
  config.pipeline = "samples"
  config.mixture.anisotropy = 100.0
  config.k = 3
  # Fewer steps than the other experiments keep the eight quick experiments
  # within ten minutes on two cores; every n gets the same steps.
  config.train.steps = {"quick": 1000, "full": 5000, "smoke": 20}[profile]
  config.train.batch = 256
  config.methods = common.quick_methods(profile, ("infonce",))
  config.claims = ("samples",)
  sweeps = {
    "quick": (50, 100, 200, 500, 1000, 2000, 5000, 10000),
    "full": (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000),
    "smoke": (50, 300),
  }
  config.sweep.n = sweeps[profile]
  config.figure.x = "n"
  config.figure.log_x = True
  # Draws from fixed pools of samples: the plain way.
  config.train.sampler = "plain"
  config.lock()
  return config
