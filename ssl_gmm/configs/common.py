"""Settings shared by every experiment, and its profiles.

The quick profile runs on two CPU cores in minutes; the full profile is
paper scale, sized for one GPU; the smoke profile is a few seconds of the
same code path for end-to-end tests, and its verdicts mean nothing.

Optimiser settings are fixed here, before any verdict is read, and are the
same at every grid point of an experiment.
"""

import ml_collections

PROFILES = ("quick", "full", "smoke")

UNIMODAL_METHODS = (
  "infonce",
  "infonce_dot",
  "ntxent",
  "simsiam",
  "spectral",
  "barlow_twins",
  "vicreg",
  "byol",
  "pca",
  "whitened_pca",
  "lda",
  "oracle",
)
# The objectives beyond the paper's, trained where every objective is.
NEW_OBJECTIVES = ("spectral", "barlow_twins", "vicreg", "byol")


def quick_methods(profile: str, kept: tuple[str, ...]) -> tuple[str, ...]:
  """The methods of an experiment that is not `anisotropy`.

  Two cores cannot train every method over every grid within the quick
  profile's ten minutes, so the quick profile keeps the methods the
  experiment's claim reads (`kept`) and the baselines, and the smoke
  profile the first of them; the full profile and `anisotropy` train them
  all.
  """
  if profile == "full":
    return UNIMODAL_METHODS
  if profile == "smoke":
    kept = kept[:1]
  return tuple(m for m in UNIMODAL_METHODS if m in kept or m in BASELINES)


BASELINES = ("pca", "whitened_pca", "lda", "oracle")


def base_config(name: str, profile: str) -> ml_collections.ConfigDict:
  """The defaults every experiment starts from.

  Raises:
    ValueError: for an unknown profile.
  """
  if profile not in PROFILES:
    raise ValueError(f"profile={profile!r}; expected one of {PROFILES}.")
  config = ml_collections.ConfigDict()
  config.name = name
  config.profile = profile
  config.pipeline = "synthetic"  # The function that produces the rows.
  config.seed = 0  # Root seed; replicate i uses fold_in(root, i).
  config.seeds = {"quick": 3, "full": 10, "smoke": 2}[profile]

  config.mixture = ml_collections.ConfigDict()
  config.mixture.dim = 32
  config.mixture.num_components = 4
  config.mixture.separation = 3.0  # Norm of every mean.
  config.mixture.anisotropy = 100.0  # Variance of the nuisance directions.
  # Number of nuisance directions; None means K.
  config.mixture.n_nuisance = ml_collections.config_dict.placeholder(int)

  # Embedding dimension; None means K - 1.
  config.k = ml_collections.config_dict.placeholder(int)
  config.k = 3
  config.p_same = 1.0  # Probability that a positive shares the component.

  config.train = ml_collections.ConfigDict()
  config.train.optimizer = "adam"
  config.train.learning_rate = 1e-2
  config.train.temperature = 0.5
  config.train.steps = {"quick": 2000, "full": 5000, "smoke": 20}[profile]
  config.train.batch = {"quick": 256, "full": 1024, "smoke": 32}[profile]
  # "embedding" draws a linear encoder's embeddings of the mixture directly,
  # the same distribution as embedding plain draws ("plain") at k normals
  # per sample instead of d.
  config.train.sampler = "embedding"

  # The encoder of the `_mlp` methods: hidden GELU layers of this width.
  config.mlp = ml_collections.ConfigDict()
  config.mlp.width = 64
  config.mlp.depth = 2

  # The sweep engine: points per device in one chunk (None: as many as fit
  # the memory budget, from the arithmetic of one training step).
  config.engine = ml_collections.ConfigDict()
  config.engine.chunk_width = ml_collections.config_dict.placeholder(int)
  config.engine.memory_budget_mib = 1024.0

  # Held-out labelled samples per grid point: half fit the class means of
  # the nearest-mean classifier, half are classified and clustered.
  config.n_eval = {"quick": 4000, "full": 20000, "smoke": 200}[profile]
  # Whether to score accuracy, NMI and ARI on them (k-means per point).
  config.downstream = True

  # Swept settings: name -> tuple of values, crossed with the seeds. A name
  # may be a traced setting (anisotropy, p_same, temperature, learning_rate)
  # or a shape setting (dim, num_components, k), one program per shape.
  config.sweep = ml_collections.ConfigDict()
  config.methods = UNIMODAL_METHODS

  config.thresholds = ml_collections.ConfigDict()
  config.thresholds.distance_max = 0.2  # C1: distance <= this.
  config.thresholds.fisher_ratio_min = 0.9  # C1: fisher_ratio >= this.
  config.thresholds.pca_distance_min = 0.8  # C2: pca distance >= this.
  config.claims = ()

  config.figure = ml_collections.ConfigDict()
  # "sweep": lines over x; "bars": per group; "heatmap": over x and y;
  # "ranking": methods ranked by the first metric.
  config.figure.kind = "sweep"
  config.figure.x = ""
  config.figure.y = ""
  config.figure.log_x = False
  config.figure.metrics = ("distance", "fisher_ratio")
  return config
