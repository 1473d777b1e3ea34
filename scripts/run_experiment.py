"""Runs one experiment from its config file, with any setting changed.

  python scripts/run_experiment.py \
    --config=ssl_gmm/configs/anisotropy.py:quick \
    --config.train.steps=4000 --config.seeds=5 --out=results/mine

Writes <out>/<experiment>/ and rebuilds <out>/REPORT.md.
"""

import pathlib

from absl import app, flags
from ml_collections import config_flags

from ssl_gmm import configs, experiment, report, sweep

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Experiment config file, optionally ':profile'."
)
_OUT = flags.DEFINE_string("out", "results", "Results folder.")
_CPU_DEVICES = flags.DEFINE_integer(
  "cpu_devices",
  0,
  "JAX devices to split a CPU host into; 0: one per core. Results agree "
  "across counts in distribution, not bit for bit.",
  lower_bound=0,
)
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  sweep.use_cpu_devices(_CPU_DEVICES.value)
  out = pathlib.Path(_OUT.value)
  experiment.run(_CONFIG.value, out)
  report.write_report(out, configs.EXPERIMENTS)


if __name__ == "__main__":
  app.run(main)
