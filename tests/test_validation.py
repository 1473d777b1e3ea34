"""Bad settings are refused by name, before anything is compiled."""

import pytest
from conftest import set_dotted, tiny_config

from ssl_gmm import compilation, configs, experiment


@pytest.mark.parametrize(
  "setting, value, named",
  [
    ("k", 9, "k=9"),  # k > d = 8
    ("k", 0, "k=0"),
    ("mixture.num_components", 1, "num_components=1"),  # K < 2
    ("mixture.dim", 2, "dim=2"),  # d < K = 3
    ("train.temperature", 0.0, "temperature=0.0"),
    ("train.temperature", -0.5, "temperature=-0.5"),
    ("p_same", 1.5, "p_same=1.5"),
    ("p_same", -0.1, "p_same=-0.1"),
    ("mixture.anisotropy", 0.0, "anisotropy=0.0"),
    ("mixture.separation", -1.0, "separation=-1.0"),
    ("mixture.n_nuisance", 9, "n_nuisance=9"),
    ("train.learning_rate", float("nan"), "learning_rate=nan"),
    ("train.steps", 0, "steps=0"),
    ("train.batch", 1, "batch=1"),
    ("train.optimizer", "sgdd", "optimizer='sgdd'"),
    ("seeds", 0, "seeds=0"),
    ("methods", ("infonce", "moco"), "method='moco'"),
    ("claims", ("C1", "C9"), "claim='C9'"),
    ("seeds", True, "seeds=True"),  # A bool, though Python counts it an int.
    ("methods", (), "methods=()"),
    ("methods", ("infonce", "lda", "infonce"), r"methods=.*named twice"),
    # C3 reads simsiam's rows, so a run without simsiam cannot judge it.
    ("methods", ("infonce", "infonce_dot", "pca"), r"methods=.*C3 reads"),
    ("profile", "huge", "profile='huge'"),
    ("thresholds.distance_max", float("nan"), "thresholds.distance_max=nan"),
    ("figure.kind", "pie", "figure.kind='pie'"),
    ("figure.metrics", ("distance", "loss"), "figure.metrics='loss'"),
    ("figure.metrics", (), "figure.metrics=()"),
    # Outside float32's reach: variances of 1e-8 or 1e40 would underflow or
    # overflow when squared, a temperature of 1e-46 rounds to 0.
    ("mixture.anisotropy", 1e-8, "anisotropy=1e-08"),
    ("mixture.anisotropy", 1e40, "anisotropy=1e\\+40"),
    ("train.temperature", 1e-46, "temperature=1e-46"),
    # Means 1e6 apart against unit noise: LDA's scatter loses float32.
    ("mixture.separation", 1e6, "separation=1000000.0"),
    ("n_eval", 5, "n_eval=5"),  # K = 3: k-means needs 3 in either half.
    ("seed", -1, "seed=-1"),
    ("seed", 2**32, "seed=4294967296"),  # PRNGKey would repeat seed 0.
    ("name", "../escape", "name='../escape'"),  # A folder outside --out.
    ("name", "", "name=''"),
  ],
)
def test_invalid_setting_is_named_before_compiling(setting, value, named):
  config = set_dotted(tiny_config(), setting, value)
  with (
    compilation.count_compilations() as compiled,
    pytest.raises(ValueError, match=f"^{named}"),
  ):
    experiment.run(config, "unused")
  assert not compiled


@pytest.mark.parametrize(
  "name, values, named",
  [
    ("anisotropy", [1.0, -3.0], "anisotropy=-3.0"),
    ("p_same", [1.0, 2.0], "p_same=2.0"),
    ("temperature", [0.5, 0.0], "temperature=0.0"),
  ],
)
def test_invalid_swept_value_is_named(name, values, named):
  config = tiny_config()
  with config.unlocked():
    config.sweep[name] = values
  with pytest.raises(ValueError, match=f"^{named}"):
    experiment.validate(config)


def test_unknown_sweep_setting_is_named():
  config = tiny_config()
  with config.unlocked():
    config.sweep.batch = [8, 16]
  with pytest.raises(ValueError, match="^sweep='batch'"):
    experiment.validate(config)


def test_unknown_experiment_and_profile_are_named():
  with pytest.raises(ValueError, match="experiment='moco'"):
    configs.get_config("moco")
  with pytest.raises(ValueError, match="profile='huge'"):
    configs.get_config("anisotropy", "huge")


def test_every_shipped_config_is_valid():
  for name in configs.EXPERIMENTS:
    for profile in configs.PROFILES:
      experiment.validate(configs.get_config(name, profile))


@pytest.mark.parametrize(
  "setting, value, named",
  [
    ("train.sampler", "embedding", "sampler='embedding'"),
    ("mlp.width", 0, "mlp.width=0"),
    ("mlp.depth", -1, "mlp.depth=-1"),
  ],
)
def test_an_mlp_setting_is_named_before_compiling(setting, value, named):
  config = set_dotted(
    tiny_config(methods=("infonce_mlp", "lda")), setting, value
  )
  if setting != "train.sampler":
    config = set_dotted(config, "train.sampler", "plain")
  with (
    compilation.count_compilations() as compiled,
    pytest.raises(ValueError, match=f"^{named}"),
  ):
    experiment.run(config, "unused")
  assert not compiled


def test_a_claim_needs_the_sweep_it_reads():
  # C5 compares InfoNCE with LDA along both the anisotropy and p_same axes.
  config = set_dotted(tiny_config(), "claims", ("C5",))
  config = set_dotted(config, "methods", ("infonce", "lda"))
  with pytest.raises(ValueError, match=r"^sweep=.*C5 reads p_same"):
    experiment.validate(config)


def test_a_claim_refuses_a_sweep_it_would_average_over():
  # C1 reads the largest anisotropy; with p_same swept too its mean would
  # mix clean and noisy positives.
  config = tiny_config()
  with config.unlocked():
    config.sweep.p_same = (1.0, 0.5)
  with pytest.raises(ValueError, match="^sweep=.*C1 would average over p_sa"):
    experiment.validate(config)
  with config.unlocked():
    config.sweep.p_same = (0.5,)  # One value: nothing is averaged.
  experiment.validate(config)


@pytest.mark.parametrize(
  "name, setting, value, named",
  [
    # phase reads p_same >= 0.5: without any, it would fail after training.
    ("phase", "sweep.p_same", (0.0, 0.25), r"sweep.p_same=\(0.0, 0.25\)"),
    # C5 compares at p_same >= 0.25 and needs its control at p_same 0;
    # without either it would hold with nothing checked.
    ("noisy_positives", "sweep.p_same", (0.1,), r"sweep.p_same=\(0.1,\)"),
    (
      "noisy_positives",
      "sweep.p_same",
      (1.0, 0.5),
      r"sweep.p_same=\(1.0, 0.5\)",
    ),
    ("objectives", "methods", ("pca", "lda"), r"methods=\('pca', 'lda'\)"),
  ],
)
def test_a_claim_refuses_a_grid_where_it_checks_nothing(
  name, setting, value, named
):
  config = set_dotted(configs.get_config(name, "smoke"), setting, value)
  with pytest.raises(ValueError, match=f"^{named} is invalid"):
    experiment.validate(config)


def test_a_claim_of_downstream_metrics_needs_downstream_scoring():
  # mlp compares held-out accuracies; without them it could only fail late.
  config = tiny_config(
    methods=("infonce_mlp", "infonce"), claims=("mlp",), downstream=False
  )
  config = set_dotted(config, "train.sampler", "plain")
  with config.unlocked():
    config.sweep.anisotropy = (100.0,)  # mlp reads one setting, averaged.
  with pytest.raises(ValueError, match="^downstream=False.*mlp reads accuracy"):
    experiment.validate(config)
  experiment.validate(set_dotted(config, "downstream", True))


@pytest.mark.parametrize("name", ["real_data", "multimodal", "heteroscedastic"])
def test_only_the_synthetic_pipelines_skip_downstream_metrics(name):
  config = set_dotted(configs.get_config(name, "smoke"), "downstream", False)
  with pytest.raises(ValueError, match="^downstream=False.*can skip"):
    experiment.validate(config)


@pytest.mark.parametrize(
  "name, setting, value, named",
  [
    ("multimodal", "n_eval", 5, "n_eval=5"),  # K = 4: 2 K = 8.
    # d = 32, K = 4, k = 3: QDA's 3x3 class covariances need 8 K (k + 1).
    ("heteroscedastic", "n_eval", 100, "n_eval=100"),
  ],
)
def test_too_few_held_out_samples_are_named(name, setting, value, named):
  config = set_dotted(configs.get_config(name, "smoke"), setting, value)
  with pytest.raises(ValueError, match=f"^{named} is invalid"):
    experiment.validate(config)


def test_figure_of_downstream_metrics_needs_downstream_scoring():
  config = set_dotted(tiny_config(), "figure.metrics", ("accuracy",))
  experiment.validate(config)
  config = set_dotted(config, "downstream", False)
  with pytest.raises(ValueError, match="^figure.metrics='accuracy'"):
    experiment.validate(config)
