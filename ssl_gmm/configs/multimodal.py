"""Multimodal: does CLIP keep what both modalities share and drop the rest?

A shared component c (K = 4) seen by x in R^32 and y in R^24, and a private
sign s that only x sees, along a direction u of norm 4 (the model of
ssl_gmm/multimodal.py). Sweeps the nuisance variance of each modality over
{10, 100} and compares CLIP's encoders (k = 3) with unimodal InfoNCE on x,
whose positives share both c and s, and with LDA of x on c. Claim C4.

Run:
  python scripts/reproduce.py --experiments=multimodal

Expected: CLIP's encoder of x (`clip`) lies within distance 0.2 of x's
shared Fisher subspace span{(Sigma_x + u u^T)^{-1} m_i} and predicts s no
better than chance (s_accuracy <= 0.55), and `clip_y` likewise on y, while
InfoNCE on x keeps s (s_accuracy >= 0.8).
"""

import ml_collections

from ssl_gmm.configs import common


def get_config(profile: str = "quick") -> ml_collections.ConfigDict:
  config = common.base_config("multimodal", profile)
  config.pipeline = "multimodal"
  config.multimodal = ml_collections.ConfigDict()
  config.multimodal.dim_x = 32  # d1, the modality that sees s.
  config.multimodal.dim_y = 24  # d2, the modality that sees only c.
  config.multimodal.private_norm = 4.0  # ||u||: x's mean is mu_c + s u.
  # The runner's figure title reads mixture.dim: it follows dim_x.
  config.mixture.dim = config.multimodal.get_ref("dim_x")
  config.mixture.num_components = 4
  config.k = 3
  config.methods = ("clip", "clip_y", "infonce", "lda", "oracle")
  config.claims = ("C4",)
  sweeps = {"quick": (10.0, 100.0), "full": (10.0, 100.0)}
  config.sweep.anisotropy_x = sweeps.get(profile, (10.0,))
  config.sweep.anisotropy_y = sweeps.get(profile, (100.0,))
  # C4: clip's s_accuracy <= max while infonce's >= min (0.5 is chance);
  # clip's distance uses the base distance_max.
  config.thresholds.s_accuracy_max = 0.55
  config.thresholds.s_accuracy_min = 0.8
  # Bars per (anisotropy_x, anisotropy_y): C4's two measures.
  config.figure.kind = "bars"
  config.figure.x = "anisotropy_x"
  config.figure.metrics = ("distance", "s_accuracy")
  # Two modalities have their own samplers; the plain way.
  config.train.sampler = "plain"
  config.lock()
  return config
