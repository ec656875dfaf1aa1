"""The assignment chapter (book/08_assignment.ipynb), its student version (.ci/student_version.py) and its
grading kit (.ci/assignment/).

The solved notebook, with its check cells, is executed by the book build in CI
(tests/test_book.py::test_chapter_executes); here: the student version has no solution left, no MyST markup,
runs every cell before the first task and stops there with NotImplementedError, and the script is
deterministic; the GPU preset's sizes run through Tasks 1-2 on the CPU; the grader grades three fake
submissions (correct, σ/2 mistake, checks deleted) into the expected CSV; and the committed seed calibration
says that the solution passed every check for every seed and that each common mistake failed its check."""
import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "08_assignment.ipynb"
SCRIPT = ROOT / ".ci" / "student_version.py"
KIT = ROOT / ".ci" / "assignment"


def _module(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
        f'raise NotImplementedError("Task {n}")' for n in (1, 1, 2, 3, 4)]
    ids = {c["id"] for c in solutions}
    assert {c["id"] for c in stubs} <= ids  # the grader finds the student's code by cell id
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
    # everything else is kept, in order: code as it is, Markdown without MyST markup
    kept = [c for c in solved["cells"] if not {"solution", "instructor"} & set(c["metadata"].get("tags", []))]
    assert [c["id"] for c in nb["cells"] if "NotImplementedError" not in _source(c)] == [
        c["id"] for c in kept if c["cell_type"] == "code" or "{glue:md}" not in _source(c)
        or _source(c).split("```")[-1].strip()]
    student_code = {c["id"]: _source(c) for c in nb["cells"] if c["cell_type"] == "code"}
    assert all(student_code[c["id"]] == _source(c) for c in kept if c["cell_type"] == "code")
    for role in ("{cite:p}", "{numref}", "{admonition}", "{glue:", ":class:", ":name:"):
        assert role not in text, role
    assert "(Kadkhodaie et al., 2023)" in text and "**Figure 1.**" in text and "Figure 2" in text
    assert "TFLOP" not in text and "CPU-minutes" not in text  # developer notes stay out
    (answers,) = [c for c in nb["cells"] if "answer" in c["metadata"].get("tags", [])]
    assert answers["cell_type"] == "markdown" and "Task 3" in _source(answers)


def test_student_version_is_deterministic(student, tmp_path):
    again = tmp_path / "again.ipynb"
    subprocess.run([sys.executable, str(SCRIPT), str(NOTEBOOK), str(again)], check=True)
    assert again.read_bytes() == student.read_bytes()
    module = _module(SCRIPT)
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
    setup = next(i for i, c in enumerate(nb.cells) if "presets.setup()" in c.source)  # the chapter's preset
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell("preset.assignment.update(steps=80, n_train=512)"))
    last = next(i for i, c in enumerate(nb.cells) if 'print("Check 2 passed.")' in c.source)
    nb.cells = nb.cells[:last + 1]
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    from mslcp import presets

    gpu = presets.get("gpu").assignment  # the sizes the chapter read
    assert "preset 'gpu'" in out and "Check 2 passed." in out
    assert f"nets: width {gpu['width']}, depth {gpu['depth']}, receptive fields {gpu['rfs']}; 80 steps" in out


def _submission(student, edit=lambda cid, source: source, drop=()):
    """The student version with every stub filled with the solved notebook's code (edited), cells dropped."""
    solved = {c["id"]: _source(c) for c in json.loads(NOTEBOOK.read_text())["cells"]}
    nb = json.loads(student.read_text())
    nb["cells"] = [dict(c, source=edit(c["id"], solved[c["id"]])) if "NotImplementedError" in _source(c) else c
                   for c in nb["cells"] if c["id"] not in drop]
    return nb


def test_grading_kit(student, tmp_path):
    """Three fake submissions graded at reduced sizes (RFS (3, 5), 120 steps): the correct one gets every
    point; the σ/2 mistake (conditional nets trained with detail noise in [0, 0.25]) fails Check 1 alone;
    one with every check cell deleted and saturation taken at the best RF fails Check 3 alone (the grader's
    checks are the solved notebook's). Tasks 2-4 run from the reference results of Task 1."""
    pytest.importorskip("nbclient")
    grade = _module(KIT / "grade.py")
    subs = tmp_path / "submissions"
    subs.mkdir()
    checks = ["check1a", "24764320", "1d4cb1c5", "1ba45f98", "bc03ef1b"]
    assert set(checks) == set(grade.CELL.values())
    fakes = {
        "correct": _submission(student),
        "sigma_half": _submission(student, lambda cid, s: s.replace(
            'level=0, sigma_range=(0, 0.125)', 'level=0, sigma_range=(0, 0.25)') if cid == "bc605969" else s),
        "checks_deleted": _submission(student, lambda cid, s: s.replace(
            "min(rf for rf in RFS if gain(table, rf)[i] >= best - TOL)",
            "max(RFS, key=lambda rf: gain(table, rf)[i])") if cid == "1e569bee" else s, drop=checks),
    }
    assert fakes["sigma_half"] != fakes["correct"] and fakes["checks_deleted"] != fakes["correct"]
    for name, nb in fakes.items():
        (subs / f"{name}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    out = tmp_path / "grades.csv"
    kept = tmp_path / "executed"
    grade.main([str(subs), str(out), "--set", "STEPS = 120", "--set", "RFS = (3, 5)", "--timeout", "600",
                "--keep", str(kept)])
    rows = {r["submission"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    points = {name: {c: int(rows[f"{name}.ipynb"][c]) for c in grade.CHECKS} for name in fakes}
    full = dict(grade.CHECKS)
    assert points["correct"] == full, rows["correct.ipynb"]
    assert points["sigma_half"] == {**full, "check1": 0}, rows["sigma_half.ipynb"]
    assert "cond RF 3" in rows["sigma_half.ipynb"]["check1_message"]
    assert points["checks_deleted"] == {**full, "check3": 0}, rows["checks_deleted.ipynb"]
    assert "saturation" in rows["checks_deleted.ipynb"]["check3_message"]
    assert int(rows["correct.ipynb"]["total"]) == sum(full.values()) == 11
    assert "Your answers (Task 3)" in rows["correct.ipynb"]["task3_answers"]
    # outside the book build (no MSLCP_BOOK_BUILD) the figures are shown where they are made
    # (a notebook the same as one graded before is not run again: the first of each kind is kept)
    for pattern, cell in (("*.task1.ipynb", "72d51eca"), ("*.task2-task3-task4.ipynb", "f1b46c9b")):
        for path in kept.glob(pattern):
            (c,) = [c for c in json.loads(path.read_text())["cells"] if c.get("id") == cell]
            assert any("image/png" in o.get("data", {}) for o in c["outputs"]), (path.name, c["outputs"])
    assert len(list(kept.glob("*.task1.ipynb"))) == 2 and len(list(kept.glob("*.task2-*.ipynb"))) == 3
