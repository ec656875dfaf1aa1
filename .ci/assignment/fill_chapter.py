"""Write the seed calibration's numbers into the chapter (book/08_assignment.ipynb): TOL, the number of
seeds, the table of the solution's gains, the finding and the key point (verdicts.py computes them from
calibration.json). tests/test_claims.py::test_chapter8_calibration checks that the chapter says what
calibration.json gives.

    python .ci/assignment/fill_chapter.py
"""
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import verdicts  # noqa: E402

NOTEBOOK = HERE.parents[1] / "book" / "08_assignment.ipynb"


def main():
    cal = json.loads((HERE / "calibration.json").read_text())
    tol, _ = verdicts.tol_of(cal)
    nb = json.loads(NOTEBOOK.read_text())
    for c in nb["cells"]:
        s = "".join(c["source"])
        s = re.sub(r"TOL = [\d.]+  # dB", f"TOL = {tol}  # dB", s)
        s = re.sub(r"over the solution run with \w+ values of(\s+)`SEED`",
                   lambda m: f"over the solution run with {len(cal)} values of{m.group(1)}`SEED`", s)
        s = re.sub(r"ran this solution with \w+ values of `SEED`",
                   f"ran this solution with {len(cal)} values of `SEED`", s)
        if c["id"] == "fig1-solution":
            head, rest = s.split("[min, max]:\n\n", 1)
            tail = rest[rest.index("\n\nSo at this training budget"):]
            s = f"{head}[min, max]:\n\n{verdicts.gain_table(cal)}\n\n{verdicts.finding(cal)}{tail}"
        if c["id"] == "52a90b57":
            s = re.sub(r"- (KP_FINDING|Over \d+ seeds of the CPU preset.*?)\n```",
                       lambda m: "- " + wrap(verdicts.key_point(cal)) + "\n```", s, flags=re.S)
        c["source"] = s.splitlines(keepends=True)
    NOTEBOOK.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def wrap(text, width=110):
    import textwrap

    return "\n  ".join(textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False))


if __name__ == "__main__":
    main()
