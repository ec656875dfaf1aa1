"""Write the student version of an assignment notebook (book/08_assignment.ipynb).

    python .ci/student_version.py book/08_assignment.ipynb assignment.ipynb

Every code cell tagged `solution` becomes a stub (`# YOUR CODE HERE` and `raise NotImplementedError("Task N")`,
N from the last "## Task N" heading above it); every other cell tagged `solution` (the solution dropdowns) or
`instructor` (the instructor notes) is deleted; outputs and execution counts are cleared. The check cells stay.
The output depends only on the input (deterministic). Uses the standard library only.
"""
import json
import re
import sys

STUB = '# YOUR CODE HERE\nraise NotImplementedError("Task {}")'


def student_version(nb):
    """The student version of a notebook given as a dict (nbformat 4) -> a new dict."""
    cells, task = [], None
    for cell in nb["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "markdown" and (m := re.search(r"^## Task (\d+)", source, re.M)):
            task = m.group(1)
        if "solution" in tags and cell["cell_type"] == "code":
            if task is None:
                raise ValueError("a solution cell comes before any '## Task N' heading")
            meta = {k: v for k, v in cell["metadata"].items() if k != "tags"}
            cell = dict(cell, source=STUB.format(task), metadata=meta)
        elif "solution" in tags or "instructor" in tags:
            continue
        if cell["cell_type"] == "code":
            cell = dict(cell, outputs=[], execution_count=None)
        cells.append(cell)
    return dict(nb, cells=cells)


def main(argv):
    if len(argv) != 3:
        sys.exit(f"usage: python {argv[0]} NOTEBOOK.ipynb STUDENT.ipynb")
    with open(argv[1], encoding="utf-8") as f:
        nb = json.load(f)
    with open(argv[2], "w", encoding="utf-8") as f:
        json.dump(student_version(nb), f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv)
