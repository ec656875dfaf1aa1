import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from mslcp import data

BENCH = Path(__file__).parents[1] / "benchmarks"
# the shipped assets (hub.asset) of this checkout, for the tests and the scripts and kernels they start
os.environ.setdefault("MSLCP_ASSETS", str(Path(__file__).parents[1] / "data"))


def script(name):
    """benchmarks/NAME.py as a module, loaded from its file (the scripts are not put on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

# the half-resolution CelebA copy ($MSLCP_HALFRES, set by .ci/setup when ../shared has it): the real-face tests need it
HALFRES_ROOT = data.halfres_root()
HALFRES = HALFRES_ROOT is not None and (HALFRES_ROOT / "img_align_celeba").is_dir()
needs_halfres = pytest.mark.skipif(not HALFRES,
                                   reason=f"no half-resolution CelebA copy at MSLCP_HALFRES={HALFRES_ROOT}")


def assert_refused(case):
    """A row of the error tables (tests/test_errors*.py): (name, call, exception type, words the message names)."""
    _, call, exc, words = case
    with pytest.raises(exc) as e:
        call()
    assert type(e.value) is exc, f"{type(e.value).__name__}: {e.value}"
    missing = [w for w in words if w.lower() not in str(e.value).lower()]
    assert not missing, f"message {str(e.value)!r} lacks {missing}"


@pytest.fixture
def one_thread():
    """Run a test on one thread: tiny nets on a shared 2-core machine lose 10-20x to OpenMP threads waiting on
    each other. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


ROOT = Path(__file__).parents[1]
BUILD = ROOT / "_build"


@pytest.fixture(scope="session")
def build():
    """Build the book into _build/html exactly as .ci/book does (CPU preset unless MSLCP_PRESET says otherwise),
    once per test session: the book tests and the claim tests read the same executed chapters
    (_build/jupyter_execute). Returns (returncode, log)."""
    import os
    import re
    import shutil
    import subprocess
    import time

    if os.environ.get("MSLCP_REUSE_BUILD") == "1" and (BUILD / "jupyter_execute").is_dir():
        return 0, "(MSLCP_REUSE_BUILD=1: the executed chapters already in _build/jupyter_execute are used)"
    shutil.rmtree(BUILD / "html", ignore_errors=True)  # no stale pages from an earlier build
    shutil.rmtree(BUILD / "jupyter_execute", ignore_errors=True)  # nor stale executed chapters
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", "--all", "-W", "-n", "--keep-going", "."]
    # no MPLBACKEND: "Agg" there would override the kernels' inline backend and silently drop every figure
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["MSLCP_PRESET"] = os.environ.get("MSLCP_PRESET", "cpu")
    start = time.perf_counter()
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    log = run.stdout + run.stderr
    times = re.findall(r"(\S+): Executed notebook in ([\d.]+) seconds", log)
    report = "\n".join(f"{name}: {float(s):.1f} s" for name, s in times) + f"\nwhole build: {seconds:.1f} s\n"
    BUILD.mkdir(exist_ok=True)
    (BUILD / "timings.txt").write_text(report)
    print(report)
    return run.returncode, log


def read_glued(path):
    """{name: text} of every value a chapter glued (mslcp.book.glue) in its executed copy `path`: the Markdown
    of a glued sentence, else the plain-text form (a number's repr, a figure's '<Figure ...>'). The book build keeps
    glued outputs beside the notebook (NAME.glue.json, myst-nb); a notebook executed elsewhere keeps them inline."""
    import json

    def text(data, prefix=""):
        value = data.get(prefix + "text/markdown", data.get(prefix + "text/plain"))
        return "".join(value) if isinstance(value, list) else value

    out = {}
    store = Path(path).with_suffix(".glue.json")
    if store.exists():
        for name, o in json.loads(store.read_text()).items():
            out[name] = text(o["data"])
    for cell in json.loads(Path(path).read_text())["cells"]:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                out[name] = text(o["data"], "application/papermill.record/")
    return out


@pytest.fixture(scope="session")
def glued(build):
    """glued("book/06_synthesis") -> {name: text} of what that chapter glued in this session's book build."""
    def read(chapter):
        path = BUILD / "jupyter_execute" / f"{chapter}.ipynb"
        if not path.exists():
            pytest.fail(f"{chapter} was not executed by the book build (no {path}): see test_book")
        return read_glued(path)
    return read
