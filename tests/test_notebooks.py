"""The notebooks run top to bottom (executed, not just parsed)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: Notebooks that need the real scenes of ../shared/data.
REAL_DATA = {"train_your_own.ipynb", "review_loop.ipynb"}


@pytest.mark.parametrize("name", ["quickstart.ipynb", "train_your_own.ipynb", "review_loop.ipynb"])
def test_notebook_executes(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name in REAL_DATA:
        request.getfixturevalue("shared_data")  # skips, with the reason, without ../shared/data
    # the notebooks write into tempfile.mkdtemp() folders a user keeps to look at; under test
    # the kernel inherits this TMPDIR, so pytest's tmp_path holds them and nothing piles up
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    images = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert images, "the notebook should draw the map"
    assert any(tmp_path.glob("geoseg-*")), "the notebook's outputs should be under TMPDIR"
