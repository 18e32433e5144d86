"""The book as JupyterLab runs it: a chapter executed top to bottom in a real Jupyter kernel (nbclient + ipykernel,
the machinery JupyterLab uses), not only through nbdev's executor."""
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDGET = 'application/vnd.jupyter.widget-view+json'


def test_chapter_runs_in_a_jupyter_kernel(monkeypatch):
    monkeypatch.delenv('MPLBACKEND', raising=False)  # CI sets Agg for scripts; JupyterLab's kernel uses the inline backend
    nbformat, nbclient = pytest.importorskip('nbformat'), pytest.importorskip('nbclient')
    path = ROOT/'nbs'/'03_embeddings.ipynb'          # figures, math, an ipywidgets explorer; no slow cells
    committed = nbformat.read(path, as_version=4)
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    outs = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs]
    assert not [o for o in outs if o.output_type == 'error']
    figures = lambda cells: sum('image/png' in o.get('data', {}) for c in cells if c.cell_type == 'code' for o in c.outputs)
    assert figures(nb.cells) == figures(committed.cells) > 0
    assert any(WIDGET in o.get('data', {}) for o in outs), "the explorer's widget did not render as a live widget"
