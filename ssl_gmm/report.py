"""REPORT.md: every claim, its verdict, the numbers behind it, the figures.

The report is rebuilt from every summary.json present in the results
folder, so a run of some experiments keeps the others' verdicts.
"""

import pathlib

from ssl_gmm import results

_HEADER = """# ssl_gmm report

Each claim of "Understanding Self-Supervised Learning via Gaussian Mixture
Models" (arXiv 2411.03517), as this workbench formulates it, checked against
thresholds fixed in the experiment's config before the run. Numbers are
means over seeds; a diverged run counts as a failure.
"""


def claims_table(summaries: list[dict], link_prefix: str = "") -> str:
  """A markdown table with one line per claim of every summary."""
  lines = [
    "| experiment | claim | verdict | numbers |",
    "| --- | --- | --- | --- |",
  ]
  for summary in summaries:
    name = summary["experiment"]
    for claim in summary["claims"]:
      verdict = "holds" if claim["holds"] else "**does not hold**"
      link = f"[{name}]({link_prefix}{name}/)"
      lines.append(
        f"| {link} | {claim['name']} | {verdict} | {claim['detail']} |"
      )
  return "\n".join(lines)


def _method_table(table: dict) -> str:
  """Mean (standard deviation) over seeds of every method at one point."""
  where = ", ".join(
    f"{k} = {v}" if isinstance(v, str) else f"{k} = {v:g}"
    for k, v in table["at"].items()
  )
  columns = [c for c in results.TABLE_COLUMNS if c in table["rows"][0]]
  lines = [
    f"\nEvery method at {where or 'the fixed settings'}:\n",
    "| method | " + " | ".join(columns) + " |",
    "| --- |" + " ---: |" * len(columns),
  ]
  for row in table["rows"]:
    cells = [f"{row[c]:.3f} ({row[c + '_std']:.3f})" for c in columns]
    lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def render(summaries: list[dict]) -> str:
  sections = [_HEADER, "## Verdicts\n", claims_table(summaries), ""]
  for summary in summaries:
    name = summary["experiment"]
    sections.append(f"## {name}\n")
    sections.append(
      f"Profile `{summary['profile']}`, {summary['grid_points']} grid points, "
      f"{summary['wall_s']:.0f} s. Rows: [{name}/results.csv]"
      f"({name}/results.csv); settings: [{name}/config.json]"
      f"({name}/config.json).\n"
    )
    for claim in summary["claims"]:
      verdict = "holds" if claim["holds"] else "does not hold"
      sections.append(f"- **{claim['name']} {verdict}.** {claim['detail']}")
    sections.append(_method_table(summary["table"]))
    sections.append(f"\n![{name}]({summary['figure']})\n")
  return "\n".join(sections)


def write_report(out: pathlib.Path, order=()) -> pathlib.Path:
  """Rebuilds `out/REPORT.md` from every summary present; returns its path."""
  path = pathlib.Path(out) / "REPORT.md"
  results.atomic_write_text(path, render(results.summaries(out, order)))
  return path
