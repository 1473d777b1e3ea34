"""The main job: runs experiments and rebuilds the report.

  python scripts/reproduce.py                       # every experiment, quick
  python scripts/reproduce.py --experiments=anisotropy --profile=full

Writes results/<experiment>/ (config.json, results.csv, summary.json, a
figure) and results/REPORT.md.
"""

import pathlib
import time

from absl import app, flags, logging

from ssl_gmm import configs, experiment, report, sweep

_EXPERIMENTS = flags.DEFINE_list(
  "experiments", list(configs.EXPERIMENTS), "Experiments to run."
)
_PROFILE = flags.DEFINE_enum(
  "profile",
  "quick",
  list(configs.PROFILES),
  "quick (two CPU cores), full (paper scale, one GPU) or smoke (seconds, "
  "for tests; its verdicts mean nothing).",
)
_OUT = flags.DEFINE_string("out", "results", "Results folder.")


_CPU_DEVICES = flags.DEFINE_integer(
  "cpu_devices",
  0,
  "JAX devices to split a CPU host into; 0: one per core. Results agree "
  "across counts in distribution, not bit for bit.",
  lower_bound=0,
)


@flags.validator("experiments")
def _known_once(names: list[str]) -> bool:
  """Raises a flags.ValidationError naming the first bad experiment name."""
  if not names:
    raise flags.ValidationError("experiments=[] is invalid: name at least one.")
  known = configs.EXPERIMENTS
  for i, name in enumerate(names):
    if name not in known:
      raise flags.ValidationError(
        f"experiment={name!r} is invalid: expected one of {known}."
      )
    if name in names[:i]:
      raise flags.ValidationError(
        f"experiment={name!r} is invalid: named twice."
      )
  return True


def main(argv):
  del argv
  sweep.use_cpu_devices(_CPU_DEVICES.value)
  # Every config is built and checked before anything is compiled.
  chosen = [configs.get_config(n, _PROFILE.value) for n in _EXPERIMENTS.value]
  for config in chosen:
    experiment.validate(config)
  out = pathlib.Path(_OUT.value)
  start = time.perf_counter()
  for config in chosen:
    experiment.run(config, out)
  path = report.write_report(out, configs.EXPERIMENTS)
  logging.info("wrote %s in %.0fs", path, time.perf_counter() - start)


if __name__ == "__main__":
  app.run(main)
