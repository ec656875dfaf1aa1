"""Write the student version of an assignment notebook (book/08_assignment.ipynb).

    python .ci/student_version.py book/08_assignment.ipynb assignment.ipynb

Every code cell tagged `solution` becomes a stub (`# YOUR CODE HERE` and `raise NotImplementedError("Task N")`,
N from the last "## Task N" heading above it), keeping its cell id (the grader puts the student's code back
into the solved notebook by id); every other cell tagged `solution` (the solution dropdowns) or `instructor`
(the instructor notes) is deleted; outputs and execution counts are cleared. The check cells stay. The book's
MyST markup becomes plain Markdown that Jupyter and Colab render: {cite:p} roles become "(Author et al.,
year)" from references.bib, {numref} roles "Figure N", {glue:figure} directives a bold "Figure N." caption
(the figure itself is shown by the code cell that makes it, outside the book build), {glue:md} directives are
dropped (the text is shown where it is made) and admonitions become a bold title over their text. The output
depends only on the input (deterministic). Uses the standard library only.
"""
import json
import re
import sys
from pathlib import Path

STUB = '# YOUR CODE HERE\nraise NotImplementedError("Task {}")'
BIB = Path(__file__).resolve().parents[1] / "references.bib"


def citations(bib=BIB):
    """{key: "Author et al., year"} of a BibTeX file (first author's last name)."""
    out = {}
    for m in re.finditer(r"@\w+\{([^,\s]+),(.*?)\n\}", Path(bib).read_text(encoding="utf-8"), re.S):
        fields = dict(re.findall(r"(\w+)\s*=\s*\{(.*?)\},?\s*\n", m.group(2) + "\n", re.S))
        authors = fields.get("author", "?").split(" and ")
        last = re.sub(r"[{}\\'`\"^~]", "", authors[0].split(",")[0]).strip()
        out[m.group(1)] = f"{last}{' et al.' if len(authors) > 1 else ''}, {fields.get('year', 'n.d.')}"
    return out


def plain_markdown(source, figures, cite):
    """MyST source -> plain Markdown: figures {label: number}, cite {key: text}."""
    def glue_figure(m):
        label = re.search(r"^:name:\s*(\S+)", m.group(2), re.M)
        label = label.group(1) if label else m.group(1)
        caption = "\n".join(ln for ln in m.group(2).splitlines() if not ln.startswith(":")).strip()
        return f"**Figure {figures[label]}.** {caption}"

    def admonition(m):
        body = "\n".join(ln for ln in m.group(2).splitlines() if not ln.startswith(":")).strip()
        return f"**{m.group(1).strip()}.**\n\n{body}"

    s = re.sub(r"```\{glue:figure\}\s*(\S+)\n(.*?)\n```", glue_figure, source, flags=re.S)
    s = re.sub(r"```\{glue:md\}[^\n]*\n.*?```\n*", "", s, flags=re.S)
    s = re.sub(r"(?:```|:::)\{admonition\}([^\n]*)\n(.*?)\n(?:```|:::)", admonition, s, flags=re.S)
    s = re.sub(r"\{cite:p\}`([^`]+)`",
               lambda m: "(" + "; ".join(cite.get(k.strip(), k) for k in m.group(1).split(",")) + ")", s)
    s = re.sub(r"\{numref\}`([^`]+)`", lambda m: f"Figure {figures.get(m.group(1), '?')}", s)
    return s.strip("\n")


def student_version(nb, cite=None):
    """The student version of a notebook given as a dict (nbformat 4) -> a new dict."""
    cite = citations() if cite is None else cite
    text = lambda c: "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    labels = [re.search(r":name:\s*(\S+)", m).group(1) if ":name:" in m else None
              for c in nb["cells"] if c["cell_type"] == "markdown"
              for m in re.findall(r"```\{glue:figure\}.*?```", text(c), re.S)]
    figures = {label: i + 1 for i, label in enumerate(lb for lb in labels if lb)}
    cells, task = [], None
    for cell in nb["cells"]:
        source = text(cell)
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
        else:
            plain = plain_markdown(source, figures, cite)
            if not plain:
                continue
            cell = dict(cell, source=plain)
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
