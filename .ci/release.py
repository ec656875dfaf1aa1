"""Prepare a release: `python .ci/release.py 0.2.0` sets mslcp.__version__ and rewrites the install line of every
chapter's first cell and of the README to `pip install "git+<repository>@v0.2.0"`. Then commit, tag v0.2.0 and push
the tag (README: "Making a release"); tests/test_colab.py checks that the lines and the version agree."""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r'(pip install (?:-q )?"git\+[^"@]+)(@v[^"]*)?"')


def main(version):
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        sys.exit(f"error: version must look like 1.2.3, got {version!r}")
    init = ROOT / "mslcp" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]*"', f'__version__ = "{version}"', init.read_text(), count=1))
    readme = ROOT / "README.md"
    readme.write_text(LINE.sub(rf'\1@v{version}"', readme.read_text()))
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        first = next(c for c in nb["cells"] if c["cell_type"] == "code")
        first["source"] = [LINE.sub(rf'\1@v{version}"', line) for line in first["source"]]
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    print(f"version {version}: commit, then `git tag v{version}` and push the tag")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python .ci/release.py VERSION")
    main(sys.argv[1])
