"""Heteroscedastic: where the theory stops.

Each of the K = 4 components has its own covariance Sigma_c = I +
(anisotropy - 1) Q_c Q_c^T, with K nuisance directions Q_c drawn
independently per component (ssl_gmm/heteroscedastic.py), at d = 32, k = 3.
Sweeps the anisotropy from 1 (every Sigma_c = I, where LDA is optimal) to
1e3. The reference F is the Fisher subspace of (S_B, Sigma_W), with the
pooled Sigma_W = sum_c pi_c Sigma_c: what LDA estimates. Each embedding is
scored by a QDA classifier fitted on held-out samples (qda_accuracy), beside
the Bayes-optimal classifier on raw x with the true parameters
(bayes_accuracy), the ceiling.

Run:
  python scripts/reproduce.py --experiments=heteroscedastic

Expected: at anisotropy 1 lda's qda_accuracy matches bayes_accuracy within
sampling error. As the anisotropy grows the Bayes classifier reads each
component's own high-variance directions, and its accuracy climbs towards
1, while F, which minimises the pooled within-class variance, discards
exactly those directions: at anisotropy 1e3 lda trails the ceiling by at
least 0.02 (hetero_lda_gap). A positive's nuisance coordinates are
independent of its anchor's, so a linear encoder trained on pairs gains
nothing from them either: InfoNCE is expected to track LDA, within 0.02 of
its qda_accuracy at every anisotropy (hetero_infonce).
"""

import ml_collections
import numpy as np

from ssl_gmm.configs import common


def get_config(profile: str = "quick") -> ml_collections.ConfigDict:
  config = common.base_config("heteroscedastic", profile)
  config.pipeline = "heteroscedastic"
  config.mixture.dim = 32
  config.mixture.num_components = 4
  config.k = 3
  # Labelled samples the baselines fit, in whole batches of the stream the
  # encoders trained on: an estimate of realistic size, not the whole
  # stream (steps x batch).
  config.n_baseline = {"quick": 4096, "full": 20480, "smoke": 256}[profile]
  # Every method with a linear encoder: the pipeline scores an encoder by
  # QDA on its row space, which an MLP does not have.
  config.methods = common.UNIMODAL_METHODS
  if profile == "smoke":
    config.methods = ("infonce", "lda", "pca", "whitened_pca", "oracle")
  config.claims = ("hetero_lda_gap", "hetero_infonce")
  sweeps = {
    "quick": (1.0, 10.0, 100.0, 1000.0),
    "full": tuple(np.logspace(0, 4, 9).tolist()),
    "smoke": (1.0, 1000.0),
  }
  config.sweep.anisotropy = sweeps[profile]
  # hetero_lda_gap: at the largest anisotropy, lda's qda_accuracy is at
  # least this far below bayes_accuracy.
  config.thresholds.lda_gap_min = 0.02
  # hetero_infonce: infonce's qda_accuracy >= lda's minus this.
  config.thresholds.accuracy_margin = 0.02
  config.figure.x = "anisotropy"
  config.figure.log_x = True
  config.figure.metrics = ("qda_accuracy", "distance")
  # The Bayes ceiling drawn on the qda_accuracy panel.
  config.figure.references = {"qda_accuracy": "bayes_accuracy"}
  # Components with covariances of their own: the pipeline's own sampler.
  config.train.sampler = "plain"
  config.lock()
  return config
