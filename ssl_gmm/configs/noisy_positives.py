"""Noisy positives: InfoNCE against LDA when positives may be wrong.

A positive shares its anchor's component with probability p_same and is
otherwise drawn from a random component. Sweeps p_same over 1, 0.75, 0.5,
0.25 and 0 at anisotropy 10 and 1000 (d = 32, K = 4, k = 3). LDA is fitted
on as many labelled samples as InfoNCE saw pairs. Claim C5.

Run:
  python scripts/reproduce.py --experiments=noisy_positives

Expected: down to p_same = 0.25 InfoNCE's fisher_ratio stays within 0.05 of
LDA's; at p_same = 0 positives are independent of anchors and every method
that learns from pairs is at chance (distance >= 0.8). The anisotropy-1000
rows are findings, as are the rows of the objectives beyond the paper's
(spectral contrastive, Barlow Twins, VICReg, BYOL). whitened_pca's
estimate of Sigma absorbs (1 - p_same) S_B, which leaves its generalised
eigenvectors unchanged (see ssl_gmm/baselines.py), so it should recover F
at every p_same > 0.
"""

import ml_collections

from ssl_gmm.configs import common


def get_config(profile: str = "quick") -> ml_collections.ConfigDict:
  config = common.base_config("noisy_positives", profile)
  config.k = 3
  config.methods = common.quick_methods(
    profile, ("infonce", "ntxent", *common.NEW_OBJECTIVES)
  )
  config.claims = ("C5",)
  p_same = {
    "quick": (1.0, 0.75, 0.5, 0.25, 0.0),
    "full": (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0),
    "smoke": (1.0, 0.0),
  }
  config.sweep.p_same = p_same[profile]
  config.sweep.anisotropy = (10.0, 1000.0)
  config.thresholds.lda_margin = 0.05  # C5: infonce >= lda - this.
  config.thresholds.control_p_same_min = 0.25  # C5 applies at p >= this.
  config.figure.x = "p_same"
  config.lock()
  return config
