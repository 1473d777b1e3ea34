"""The quick-start notebook runs, and still shows what it claims.

The notebook is executed once, in a kernel of the running interpreter, from
the examples folder, as a reader would run it. Its last cell asserts the
finding itself, so a failed claim fails the run.
"""

import pathlib
import re
import sys

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
NOTEBOOK = EXAMPLES / "quickstart.ipynb"
# "infonce  distance 0.059  fisher_ratio 0.993", one line per encoder.
SCORE = re.compile(r"^(\w+)\s+distance (\S+)\s+fisher_ratio (\S+)$", re.M)


def _stored():
  return nbformat.read(NOTEBOOK, as_version=4)


@pytest.fixture(scope="module")
def executed():
  notebook = _stored()
  # Appended to the copy under test only: which interpreter ran the cells.
  notebook.cells.append(
    nbformat.v4.new_code_cell("import sys\nprint(sys.executable)")
  )
  client = NotebookClient(
    notebook,
    timeout=120,
    kernel_name="python3",
    resources={"metadata": {"path": str(EXAMPLES)}},
  )
  client.execute()  # Raises CellExecutionError if any cell fails.
  return notebook


def _text(cell) -> str:
  return "".join(
    output.get("text", "")
    for output in cell.outputs
    if output.output_type == "stream" and output.name == "stdout"
  )


def test_notebook_is_stored_without_outputs():
  notebook = _stored()
  assert notebook.metadata.kernelspec.name == "python3"
  for cell in notebook.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None


def test_notebook_runs_in_this_interpreter(executed):
  assert _text(executed.cells[-1]).strip() == sys.executable


def test_notebook_prints_infonce_closer_to_fisher_than_pca(executed):
  text = "".join(_text(c) for c in executed.cells if c.cell_type == "code")
  scores = {
    name: (float(dist), float(ratio))
    for name, dist, ratio in SCORE.findall(text)
  }
  assert set(scores) == {"infonce", "pca"}
  assert scores["infonce"][0] < scores["pca"][0]
  assert scores["infonce"][1] > scores["pca"][1]
  assert "InfoNCE recovers F; PCA misses it." in text


def test_notebook_draws_both_figures(executed):
  figures = [
    output
    for cell in executed.cells
    if cell.cell_type == "code"
    for output in cell.outputs
    if "image/png" in output.get("data", {})
  ]
  assert len(figures) == 2
