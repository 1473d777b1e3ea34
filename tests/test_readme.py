"""The README's verdict table matches the committed results, numbers too."""

import pathlib
import re

from ssl_gmm import configs, results

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_table_matches_every_committed_summary():
  readme = (ROOT / "README.md").read_text()
  found = results.summaries(ROOT / "results", configs.EXPERIMENTS)
  assert {s["experiment"] for s in found} == set(configs.EXPERIMENTS)
  for summary in found:
    name = summary["experiment"]
    for claim in summary["claims"]:
      verdict = "holds" if claim["holds"] else r"\*\*does not hold\*\*"
      detail = re.escape(claim["detail"])
      line = (
        rf"\| \[{name}\]\(results/{name}/\) \| {claim['name']} \| {verdict} "
        rf"\| {detail} \|"
      )
      assert re.search(line, readme), (name, claim["name"])
