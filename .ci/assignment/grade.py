"""Grade a folder of submissions of the assignment (book/08_assignment.ipynb) into a CSV.

    python .ci/assignment/grade.py SUBMISSIONS/ grades.csv [--set "STEPS = 30"] [--reference REF.pt]

A submission is a student version (.ci/student_version.py) with the student's code in the stub cells. Only
those cells (found by cell id) are taken from it; everything else, the check cells included, comes from the
solved notebook (--master, default book/08_assignment.ipynb), so an edited or deleted check changes nothing.
A submission is graded in two notebooks, each executed with nbclient in a fresh kernel (CPU preset, one thread),
errors allowed (a failing cell does not stop the later ones):

- Task 1: the setup, the student's `build` and Check 1a, the student's training cell, the figure, Check 1;
- Tasks 2, 3, 4: the setup, the student's Task 1 cells with `train.train` replaced by a no-op (so that their
  helper functions exist), then for each task the reference results of Task 1 (`build`, `flat`, `cond`,
  `flat_table`, `cond_table` of the solved notebook, trained once and cached in --reference; loaded again
  before each task, so one task's code cannot spoil the next), the task's cells with the student's code and
  the task's check; Task 4 also gets the solved notebook's `saturation`. A failing Task 1 therefore does not
  fail Tasks 2-4.

A notebook whose cells are the same as one graded before in this run (e.g. two submissions with the same Task
1 code) is not executed again: its verdicts are reused.

A check passes when its cell runs without an error. Points: Check 1a 2, Check 1 3, Check 2 2, Check 3 2,
Check 4 2 (11 automatic points); Task 3's written answers (8 points, the instructor note's rubric) are
copied into the CSV column `task3_answers` for grading by hand. Columns: submission, one column of points per
check, its message (the first line of the error, empty when it passed), total, task3_answers.

--set CODE (repeatable) runs CODE right after the setup cell in every notebook, e.g. "STEPS = 30" or
"RFS = (3, 5)" for a quick run (the tests); --reference is computed with the same settings.
"""
import argparse
import csv
import json
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
MASTER = ROOT / "book" / "08_assignment.ipynb"
SETUP = ["5725742f", "a9bbb4d3", "task1-given"]  # the import cell, the setup cell, the given evaluation code
TASK1 = ["task1-build", "bc605969"]  # the student's cells of Task 1
CHECKS = {"check1a": 2, "check1": 3, "check2": 2, "check3": 2, "check4": 2}
CELL = {"check1a": "check1a", "check1": "24764320", "check2": "1d4cb1c5", "check3": "1ba45f98",
        "check4": "bc03ef1b"}
TASKS = {  # the cells of each task after the setup (master's, the student's replacing solutions)
    "task1": ["task1-build", "check1a", "bc605969", "72d51eca", "24764320"],  # with the figures
    "task2": ["e457d2ba", "8d2f8818", "f1b46c9b", "1d4cb1c5"],
    "task3": ["ce829ada", "1e569bee", "5b1d187c", "1ba45f98"],
    "task4": ["ce829ada", "master:1e569bee", "5b1d187c", "d67aa6f3", "22ccb72f", "bc03ef1b"],
}
NOTEBOOKS = [["task1"], ["task2", "task3", "task4"]]  # tasks graded together, in one kernel
ANSWERS = "task3-answers"
NO_TRAIN = """import mslcp.train as _train_module
_real_train = _train_module.train
def _no_training(model, *args, **kwargs):  # the grader: Task 1's nets come from the reference results
    model.eval()
    return {}
_train_module.train = _no_training"""
SAVE = """torch.save({{"flat": {{rf: n.state_dict() for rf, n in flat.items()}},
            "cond": {{rf: n.state_dict() for rf, n in cond.items()}},
            "flat_table": flat_table, "cond_table": cond_table}}, {path!r})"""
LOAD = """_train_module.train = _real_train
train.train = _real_train
{build}
_ref = torch.load({path!r})
flat, cond = {{}}, {{}}
for _rf, _sd in _ref["flat"].items():
    flat[_rf] = build("flat", _rf)
    flat[_rf].load_state_dict(_sd)
    flat[_rf].eval()
for _rf, _sd in _ref["cond"].items():
    cond[_rf] = build("cond", _rf)
    cond[_rf].load_state_dict(_sd)
    cond[_rf].eval()
flat_table, cond_table = _ref["flat_table"], _ref["cond_table"]
if "fit" not in globals():
{fit}"""


def sources(nb):
    return {c.get("id"): c for c in nb.cells}


def code_cell(source, cid=None):
    cell = nbformat.v4.new_code_cell(source)
    if cid:
        cell.id = cid
    return cell


def execute(cells, timeout, keep=None):
    """Run cells in a fresh kernel (errors allowed) -> the executed cells; keep: a path to write them to."""
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env = {"MSLCP_PRESET": "cpu", "MSLCP_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    os.environ.pop("MSLCP_BOOK_BUILD", None)
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(MASTER.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if keep is not None:
            nbformat.write(nb, keep)
    return nb.cells


def error_of(cell):
    """The first line of the cell's error, '' if it ran cleanly, 'not run' if it did not run."""
    if cell.get("execution_count") is None:
        return "not run"
    for o in cell.get("outputs", []):
        if o.output_type == "error":
            return f"{o.ename}: {o.evalue}".splitlines()[0][:300]
    return ""


def reference(master, overrides, path, timeout):
    """Train the solved notebook's Task 1 once (with the overrides) and save its results to path."""
    m = sources(master)
    cells = ([code_cell(m[c].source, c) for c in SETUP[:2]] + [code_cell(o) for o in overrides]
             + [code_cell(m[c].source, c) for c in SETUP[2:] + TASK1]
             + [code_cell(SAVE.format(path=str(path)))])
    errors = [e for e in map(error_of, execute(cells, timeout)) if e]
    if errors or not Path(path).exists():
        raise RuntimeError(f"the reference run of Task 1 failed: {errors}")


def graded_notebook(tasks, master, student, overrides, ref_path):
    m, s = sources(master), sources(student)
    mine = lambda c: s[c].source if c in s else "raise RuntimeError('this cell is missing')"
    solution = lambda c: "solution" in m[c].metadata.get("tags", [])
    pick = lambda c: (code_cell(m[c[7:]].source, c[7:]) if c.startswith("master:")
                      else code_cell(mine(c) if solution(c) else m[c].source, c))
    cells = [code_cell(m[c].source, c) for c in SETUP[:2]] + [code_cell(o) for o in overrides]
    cells += [code_cell(m[SETUP[2]].source, SETUP[2])]
    if tasks != ["task1"]:
        cells.append(code_cell(NO_TRAIN))
        for c in TASK1:
            cell = code_cell(mine(c), c)
            cell.metadata["tags"] = ["raises-exception"]
            cells.append(cell)
    fit = "\n".join("    " + ln for ln in m["bc605969"].source.split("\n\n\n")[0].splitlines())
    load = LOAD.format(build=m["task1-build"].source, path=str(ref_path), fit=fit)
    for task in tasks:
        if task != "task1":
            cells.append(code_cell(load))
        cells += [pick(c) for c in TASKS[task]]
    seen = set()
    for c in cells:  # a cell used by two tasks (TOL, the summary) gets a new id the second time
        if c.id in seen:
            c.id = nbformat.v4.new_code_cell().id
        seen.add(c.id)
    return cells


def grade(path, master, overrides, ref_path, timeout, cache, keep=None):
    student = nbformat.read(path, as_version=4)
    row = {"submission": Path(path).name}
    for tasks in NOTEBOOKS:
        cells = graded_notebook(tasks, master, student, overrides, ref_path)
        key = json.dumps([c.source for c in cells])
        if key not in cache:
            out = None if keep is None else Path(keep) / f"{Path(path).stem}.{'-'.join(tasks)}.ipynb"
            ran = {c.get("id"): c for c in execute(cells, timeout, out)}
            cache[key] = {check: error_of(ran[CELL[check]]) for t in tasks for check in CHECKS
                          if CELL[check] in TASKS[t]}
        for check, msg in cache[key].items():
            row[check], row[check + "_message"] = (CHECKS[check] if not msg else 0), msg
    row["total"] = sum(row[c] for c in CHECKS)
    answers = sources(student).get(ANSWERS)
    row["task3_answers"] = answers.source if answers is not None else "(no answer cell)"
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("submissions", type=Path, help="folder of .ipynb submissions")
    p.add_argument("csv", type=Path, help="the CSV to write")
    p.add_argument("--master", type=Path, default=MASTER, help="the solved notebook")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="CODE",
                   help="code run after the setup cell (repeatable)")
    p.add_argument("--reference", type=Path, help="Task 1's reference results (made when missing)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    p.add_argument("--keep", type=Path, help="a folder to write the executed notebooks to")
    a = p.parse_args(argv)
    files = sorted(a.submissions.glob("*.ipynb"))
    if not files:
        sys.exit(f"no .ipynb submissions in {a.submissions}")
    master = nbformat.read(a.master, as_version=4)
    ref = a.reference or a.csv.with_suffix(".reference.pt")
    if not ref.exists():
        reference(master, a.overrides, ref.resolve(), a.timeout)
    cache = {}
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
    rows = [grade(f, master, a.overrides, ref.resolve(), a.timeout, cache, a.keep) for f in files]
    fields = ["submission"] + [k for c in CHECKS for k in (c, c + "_message")] + ["total", "task3_answers"]
    with open(a.csv, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(f"{r['submission']}: {r['total']} / {sum(CHECKS.values())}",
              *(f"{c} failed: {r[c + '_message']}" for c in CHECKS if r[c] == 0), sep="\n  ")


if __name__ == "__main__":
    main()
