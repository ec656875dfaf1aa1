"""One-off conversion (kept for the chapters still being written): the chapters' exercises, written as
"**Exercise N — Title.** *Easy, 5 minutes.* ..." paragraphs or as a numbered list "N. *Title* (easy, 5 min) ...",
each followed by a ":::{admonition} Solution" dropdown, become sphinx-exercise directives:
::::{exercise} Title / :label: chK-exN and ::::{solution} chK-exN / :class: dropdown, and the prose's
"Exercise N" becomes {numref}`chK-exN`. Idempotent: a converted chapter is left as it is.

    python .ci/exercises.py book/05_receptive_fields.ipynb ...
"""
import json
import re
import sys
import textwrap
from pathlib import Path

HEAD_A = re.compile(r"^\*\*Exercise (\d+) — (.+?)\.?\*\* ?(?:\*(\([^)]*\))\*\.? ?)?(?:\*([^*]+?)\.?\*)? ?", re.M)
HEAD_B = re.compile(r"^(\d+)\. \*(.+?)\* \(([^)]*)\)\.? ?", re.M)
SOLUTION = re.compile(r"^( *)(:{3,}|`{3,})\{admonition\} Solution\s*\n", re.M)


def prefix(path):
    m = re.match(r"(\d+)_", path.name)
    return f"ch{int(m.group(1))}" if m else path.stem


def split_solution(text, list_item=False):
    """(exercise text, solution text or None) of one item; a list item's lines lose their 3-space indent."""
    unindent = (lambda t: re.sub(r"^ {1,3}", "", t, flags=re.M)) if list_item else (lambda t: t)
    m = SOLUTION.search(text)
    if not m:
        return unindent(text).strip(), None
    indent, fence = m.group(1), m.group(2)
    close = re.compile(rf"^{indent}{re.escape(fence)}\s*$", re.M)
    end = close.search(text, m.end())
    if not end:
        raise ValueError(f"unclosed solution block: {text[:200]!r}")
    body = textwrap.dedent(text[m.end():end.start()])
    body = re.sub(r"^:class: dropdown\s*\n", "", body.lstrip("\n")).strip()
    rest = unindent(text[:m.start()] + text[end.end():]).strip()
    if SOLUTION.search(rest):
        raise ValueError(f"two solutions in one exercise (a heading not recognised?): {rest[:300]!r}")
    return rest, body


def directive(label, title, difficulty, body, solution):
    head = f"*{difficulty[0].upper()}{difficulty[1:]}.* " if difficulty else ""
    out = f"::::{{exercise}} {title}\n:label: {label}\n\n{head}{body}\n::::\n"
    if solution is not None:
        out += f"\n::::{{solution}} {label}\n:class: dropdown\n\n{solution}\n::::\n"
    return out


def convert_cell(text, pre):
    if "{exercise}" in text or "## Exercises" not in text:
        return text
    start = text.index("## Exercises")
    section, after = text[start:], ""
    if (m := re.search(r"^## (?!Exercises)", section, re.M)):
        section, after = section[:m.start()], section[m.start():]
    heads = list(HEAD_A.finditer(section)) or list(HEAD_B.finditer(section))
    if not heads:
        return text
    out = section[:heads[0].start()]
    for k, h in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(section)
        body, solution = split_solution(section[h.end():end], list_item=h.re is HEAD_B)
        if h.re is HEAD_A:
            title = h.group(2).rstrip(".") + (f" {h.group(3)}" if h.group(3) else "")
            difficulty = h.group(4)
        else:
            title, difficulty = h.group(2).rstrip("."), h.group(3)
        out += directive(f"{pre}-ex{h.group(1)}", title, difficulty, body, solution) + "\n"
    return text[:start] + out.rstrip() + "\n" + ("\n" + after if after else "")


def convert_refs(text, pre):
    text = re.sub(r"Chapter (\d+) \(Exercise (\d+)\)", lambda m: f"Chapter {m.group(1)} ({{numref}}`ch{m.group(1)}-ex{m.group(2)}`)", text)
    return re.sub(r"(?<![`{])\bExercise (\d+)\b(?! —)", lambda m: f"{{numref}}`{pre}-ex{m.group(1)}`", text)


def convert(path):
    nb = json.loads(path.read_text())
    pre = prefix(path)
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        new = convert_cell(text, pre)
        new = "".join(convert_refs(part, pre) if i % 2 == 0 else part
                      for i, part in enumerate(re.split(r"(::::\{exercise\}[^\n]*\n:label:[^\n]*\n)", new)))
        if new != text:
            cell["source"] = new.splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        convert(Path(arg))
