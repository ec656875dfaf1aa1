"""The assignment chapter (book/08_assignment.ipynb) and its student version (.ci/student_version.py).

The solved notebook, with its check cells, is executed by the book build in CI
(tests/test_book.py::test_chapter_executes); here: the student version has no solution left, runs every cell
before the first task and stops there with NotImplementedError, and the script is deterministic; and the GPU
preset's sizes run through Tasks 1-2 on the CPU."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "08_assignment.ipynb"
SCRIPT = ROOT / ".ci" / "student_version.py"


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "assignment.ipynb"
    subprocess.run([sys.executable, str(SCRIPT), str(NOTEBOOK), str(out)], check=True)
    return out


def test_student_version_has_no_solutions(student):
    solved = json.loads(NOTEBOOK.read_text())
    nb = json.loads(student.read_text())
    solutions = [c for c in solved["cells"] if "solution" in c["metadata"].get("tags", [])]
    stubs = [c for c in nb["cells"] if "NotImplementedError" in _source(c)]
    n_code = sum(c["cell_type"] == "code" for c in solutions)
    assert n_code >= 4 and len(stubs) == n_code  # one stub per solution code cell, nothing else
    assert [_source(c).splitlines()[-1] for c in stubs] == [
        f'raise NotImplementedError("Task {n}")' for n in (1, 2, 3, 4)]
    for c in nb["cells"]:
        tags = c["metadata"].get("tags", [])
        assert "solution" not in tags and "instructor" not in tags
        assert c["cell_type"] != "code" or (c["outputs"] == [] and c["execution_count"] is None)
    text = "\n".join(_source(c) for c in nb["cells"])
    assert "{admonition} Solution" not in text and "{admonition} Instructor" not in text
    for c in solutions:  # no line of solution code survives
        if c["cell_type"] == "code":
            lines = [ln for ln in _source(c).splitlines() if len(ln.strip()) > 20]
            assert lines and not any(ln in text for ln in lines)
    # everything else is kept, in order
    kept = [_source(c) for c in solved["cells"]
            if not {"solution", "instructor"} & set(c["metadata"].get("tags", []))]
    assert [_source(c) for c in nb["cells"] if "NotImplementedError" not in _source(c)] == kept


def test_student_version_is_deterministic(student, tmp_path):
    again = tmp_path / "again.ipynb"
    subprocess.run([sys.executable, str(SCRIPT), str(NOTEBOOK), str(again)], check=True)
    assert again.read_bytes() == student.read_bytes()
    spec = importlib.util.spec_from_file_location("student_version", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nb = json.loads(NOTEBOOK.read_text())
    assert module.student_version(nb) == module.student_version(json.loads(NOTEBOOK.read_text()))


def test_student_version_stops_at_task_1(student, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MSLCP_PRESET", "cpu")
    monkeypatch.setenv("MSLCP_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's mslcp
    nb = nbformat.read(student, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if "NotImplementedError" in c.source)
    nb.cells = nb.cells[:first + 1]  # run only up to the first stub
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3")
    with pytest.raises(nbclient.exceptions.CellExecutionError) as err:
        client.execute()
    assert "NotImplementedError" in str(err.value) and "Task 1" in str(err.value)
    code = [c for c in nb.cells[:first] if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code)  # every cell before the stub ran
    assert not any(o.output_type == "error" for c in code for o in c.outputs)


def test_gpu_preset_runs_through_check_2(monkeypatch):
    """The GPU preset's own sizes (RF up to 17, width 32, depth 8, 100 test faces) through Tasks 1-2 and their
    checks, on the CPU with 80 training steps per net instead of 3000 (Check 2 does not depend on training
    length; Check 3 does, so the run stops before it). Catches settings that only the GPU preset reaches."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MSLCP_PRESET", "gpu")
    monkeypatch.setenv("MSLCP_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (params,) = [c for c in nb.cells if "STEPS, N_TRAIN = (3000, 4096) if GPU" in c.source]
    params.source = params.source.replace("(3000, 4096) if GPU", "(80, 512) if GPU")
    last = next(i for i, c in enumerate(nb.cells) if 'print("Check 2 passed.")' in c.source)
    nb.cells = nb.cells[:last + 1]
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "preset 'gpu'" in out and "receptive fields (3, 5, 9, 13, 17)" in out and "Check 2 passed." in out
