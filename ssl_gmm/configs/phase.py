"""Phase diagram: where InfoNCE and whitened PCA recover F, over a plane.

A grid of 40 anisotropies (1 to 1e3, log-spaced) by 25 values of p_same (0
to 1) at d = 32, K = 4, k = 3: 1,000 points, one compiled program per
method, run by the sweep engine in chunks. The figure draws each method's
distance to F as a heatmap over the plane, with the distance-0.2 contour.

Run:
  python scripts/reproduce.py --experiments=phase

Expected (the `phase` claim): InfoNCE's distance stays <= 0.2 at every
anisotropy wherever p_same >= 0.5, the C5 regime of noisy positives across
the whole anisotropy range. At p_same = 0 positives carry no information
and every method is at chance. Downstream scores are not computed here, as
1,000 points of k-means would cost more than the training.
"""

import ml_collections
import numpy as np

from ssl_gmm.configs import common


def get_config(profile: str = "quick") -> ml_collections.ConfigDict:
  config = common.base_config("phase", profile)
  config.mixture.dim = 32
  config.mixture.num_components = 4
  config.k = 3
  config.methods = ("infonce", "whitened_pca")
  config.claims = ("phase",)
  config.seeds = {"quick": 1, "full": 3, "smoke": 1}[profile]
  config.train.steps = {"quick": 600, "full": 3000, "smoke": 20}[profile]
  config.train.batch = {"quick": 128, "full": 512, "smoke": 32}[profile]
  config.downstream = False
  sizes = {"quick": (40, 25), "full": (60, 41), "smoke": (3, 2)}[profile]
  config.sweep.anisotropy = tuple(np.logspace(0, 3, sizes[0]).tolist())
  config.sweep.p_same = tuple(np.linspace(0, 1, sizes[1]).tolist())
  config.thresholds.p_same_min = 0.5  # phase: the claim applies at p >= this.
  config.figure.kind = "heatmap"
  config.figure.x = "anisotropy"
  config.figure.y = "p_same"
  config.figure.log_x = True
  config.figure.metrics = ("distance",)
  config.lock()
  return config
