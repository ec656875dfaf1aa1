"""The Colab path, simulated offline: build the wheel, install it into a fresh virtual environment that holds only
the package's declared dependencies and what Colab provides (ipykernel, IPython, ipywidgets 7.7; .ci/setup builds it
as .venv/colab), and execute every chapter of the book there from an empty folder, with no network and no view of the
checkout, jupyter-book or myst-nb. Also: the package carries the shipped checkpoints and the astronaut image (a pip
install downloads nothing), an editable install finds them too, every chapter asks Colab for a GPU, and every place
that names the repository and the release agrees with mslcp.REPOSITORY_PIP.

A fresh environment reuses a base environment's packages through a .pth line (offline: nothing to download), but not
its .pth files (among them an editable install of mslcp), so only the installed wheel provides mslcp.
"""
import concurrent.futures
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mslcp
from mslcp import pretrained

pytest.importorskip("setuptools", minversion="77", reason="building the wheel needs setuptools>=77 (the test extra)")
pytestmark = pytest.mark.colab
ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": "", "PIP_NO_INDEX": "1"}
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")) + [ROOT / "book" / "intro.ipynb"]


def run(cmd, cwd, env=None, timeout=120):
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def clean_env(tmp):
    """No PYTHONPATH (the checkout must not be importable), no network, no user kernels or caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MSLCP_", "JUPYTER", "VIRTUAL_ENV"))}
    env.update(OFFLINE, HOME=str(tmp / "home"), JUPYTER_PATH=str(tmp / "jupyter"), MSLCP_PRESET="cpu",
               JUPYTER_DATA_DIR=str(tmp / "jupyter"), MSLCP_CACHE=str(tmp / "cache"), OMP_NUM_THREADS="1")
    return env


def fresh_venv(path, base=None):
    """A venv without mslcp that sees the third-party packages of `base` (a venv; default: this environment),
    not its .pth files."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    target = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], path).strip())
    if base is None:
        paths = site.getsitepackages()
    else:
        paths = [run([str(base / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     path).strip()]
    (target / "_mslcp_test_base.pth").write_text("\n".join(paths) + "\n")
    return python


def source_copy(tmp):
    """What a pip install from the repository sees, copied (the build writes build/ and *.egg-info into it)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src)
    for name in ("mslcp", "data"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = source_copy(tmp)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(src),
         "-w", str(tmp / "dist")], tmp, env={**os.environ, **OFFLINE})
    (whl,) = (tmp / "dist").glob("mslcp-*.whl")
    return whl


def test_wheel_carries_the_assets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted((ROOT / "data" / "checkpoints").glob("*.safetensors"))
    assert shipped, "no shipped checkpoints in data/checkpoints"
    for path in shipped:
        assert f"mslcp/assets/checkpoints/{path.name}" in names, path.name
    assert "mslcp/assets/astronaut_face.png" in names


COLAB = ROOT / ".venv" / "colab"  # .ci/setup: the declared dependencies + Colab's ipykernel, IPython, ipywidgets 7.7
# One chapter, executed as Colab would from an empty folder: a first cell checks that mslcp is the installed wheel (so
# the chapter's own first cell must not pip install it), then every cell, with a cell timeout well inside the
# command's so a hang names its cell (bookfixes.mute_output_widget_sync: see book/_ext/bookfixes.py).
EXECUTE = """
import importlib.util, json, sys, nbformat, nbclient
spec = importlib.util.spec_from_file_location("bookfixes", sys.argv[1])
bookfixes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bookfixes)
bookfixes.mute_output_widget_sync()
nb = nbformat.read(sys.argv[2], 4)
nb.cells.insert(0, nbformat.v4.new_code_cell("import mslcp; assert 'venv' in mslcp.__file__, mslcp.__file__"))
try:
    nbclient.NotebookClient(nb, timeout=900, startup_timeout=300, kernel_name="python3").execute()
finally:
    nbformat.write(nb, sys.argv[3])
"""


@pytest.fixture(scope="module")
def colab(wheel, tmp_path_factory):
    """A fresh venv that sees only .venv/colab's packages, with the wheel installed offline and its declared
    dependencies resolved against what is there (pip fails if the wheel wants what Colab lacks, or would replace
    Colab's ipywidgets). Returns (python, env, tmp)."""
    if not (COLAB / "bin" / "python").exists():
        pytest.skip(f"no Colab-like environment at {COLAB}: .ci/setup builds it")
    tmp = tmp_path_factory.mktemp("colab")
    python = fresh_venv(tmp / "venv", base=COLAB)
    env = clean_env(tmp)
    run([str(python), "-m", "pip", "install", "-q", "--no-index", str(wheel)], tmp, env)
    return python, env, tmp


def test_the_wheel_keeps_colabs_ipywidgets(colab):
    python, env, tmp = colab
    out = run([str(python), "-c", "import ipywidgets, mslcp; print(ipywidgets.__version__, mslcp.__file__)"],
              tmp, env).split()
    assert out[0].startswith("7.7."), f"installing the wheel replaced Colab's ipywidgets 7.7 with {out[0]}"
    assert out[1].startswith(str(tmp / "venv")), out
    probe = ("import importlib.util as u; print([m for m in ('myst_nb', 'jupyter_book', 'sphinx') if u.find_spec(m)])")
    assert run([str(python), "-c", probe], tmp, env).strip() == "[]", "the Colab-like venv sees the book's tools"


def test_the_wheel_loads_its_assets_without_a_download(colab):
    python, env, tmp = colab
    work = tmp / "assets"
    work.mkdir()
    probe = ("from mslcp import data, pretrained; [pretrained.shipped(n) for n in pretrained.SHIPPED]; "
             "pretrained.celeba80_table(); print(list(data.astronaut().shape))")
    assert run([str(python), "-c", probe], work, env).strip() == "[1, 1, 160, 160]"
    assert not (tmp / "cache").exists(), "something was downloaded"


@pytest.fixture(scope="module")
def colab_runs(colab):
    """Every chapter of the toc executed in the Colab-like venv, two at a time (the machine's two cores), from empty
    folders, offline: {chapter: (returncode, stderr, executed notebook or None)}."""
    python, env, tmp = colab

    def execute(path):
        work = tmp / "run" / path.stem  # an empty folder: no checkout around
        work.mkdir(parents=True)
        out = work / "executed.ipynb"
        try:
            fixes = ROOT / "book" / "_ext" / "bookfixes.py"
            r = subprocess.run([str(python), "-c", EXECUTE, str(fixes), str(path), str(out)],
                               cwd=work, env=env, capture_output=True, text=True, timeout=2400)
            code, err = r.returncode, r.stderr[-3000:]
        except subprocess.TimeoutExpired:
            code, err = "timeout", "the chapter ran past 2400 s"
        return path.stem, (code, err, json.loads(out.read_text()) if out.exists() else None)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(execute, CHAPTERS))


def _outputs(nb):
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_chapter_runs_in_colab_from_the_wheel(colab_runs, chapter):
    code, err, nb = colab_runs[chapter]
    errors = [f"{o['ename']}: {o['evalue']}" for o in _outputs(nb or {"cells": []}) if o["output_type"] == "error"]
    assert code == 0, f"{chapter} failed in the Colab-like venv ({code}): {errors or err}"
    text = "".join("".join(o.get("text", "")) for o in _outputs(nb))
    assert "pip install" not in text and "Successfully installed" not in text
    # what the book glues for its pages is shown where it is made here: every figure a chapter glues is a picture
    source = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    pictures = sum("image/png" in o.get("data", {}) for o in _outputs(nb))
    if "glue(" in source and pretrained.SKIPPED not in text:  # (a page of the authors' nets only shows the line)
        assert pictures > 0, f"{chapter}: it glues figures, but none is shown outside the book build"
    # explorers are live ipywidgets 7.7 sliders here, each with a drawn figure in its Output widget
    if "book.explore(" in source:
        views = [o for o in _outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert views, f"{chapter}: an explorer showed no widget"
        state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        drawn = [m for m in state.get("state", {}).values() if m.get("model_name") == "OutputModel"
                 and any("image/png" in o.get("data", {}) for o in m["state"].get("outputs", []))]
        assert drawn, f"{chapter}: no explorer drew its figure with ipywidgets 7.7"


def test_every_chapter_asks_colab_for_a_gpu():
    for path in CHAPTERS:
        meta = json.loads(path.read_text())["metadata"]
        assert meta.get("accelerator") == "GPU" and meta.get("colab", {}).get("gpuType"), path.name


def test_editable_install_finds_the_assets_where_told(tmp_path):
    """pip install -e of a checkout: the assets load from MSLCP_ASSETS (the checkout's data/); without it the error
    says so (an editable install does not make mslcp.assets importable)."""
    python = fresh_venv(tmp_path / "venv")
    env = clean_env(tmp_path)
    src = source_copy(tmp_path)
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", "-e",
         str(src)], tmp_path, env)
    work = tmp_path / "run"
    work.mkdir()
    probe = ("import mslcp; from mslcp import data, pretrained; print(mslcp.__file__); "
             "[pretrained.shipped(n) for n in pretrained.SHIPPED]; pretrained.celeba80_table(); "
             "print(list(data.astronaut().shape))")
    alone = subprocess.run([str(python), "-c", probe], cwd=work, env=env, capture_output=True, text=True)
    assert alone.returncode != 0 and "set MSLCP_ASSETS to a checkout's data/ folder" in alone.stderr, alone.stderr
    out = run([str(python), "-c", probe], work, dict(env, MSLCP_ASSETS=str(src / "data"))).splitlines()
    assert out == [str(src / "mslcp" / "__init__.py"), "[1, 1, 160, 160]"], out


def test_one_repository_url():
    """mslcp.REPOSITORY is the one place; _config.yml, the README and every chapter's first cell repeat it."""
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == mslcp.REPOSITORY
    assert f'pip install "{mslcp.REPOSITORY_PIP}"' in (ROOT / "README.md").read_text()
    for path in CHAPTERS:
        first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        source = "".join(first["source"])
        assert f'%pip install -q "{mslcp.REPOSITORY_PIP}"' in source, path.name
        assert source.startswith("try:\n    import mslcp\nexcept ImportError:"), path.name


def test_the_install_line_pins_this_release(wheel):
    assert mslcp.REPOSITORY_PIP.endswith(f"@v{mslcp.__version__}")
    assert wheel.name.startswith(f"mslcp-{mslcp.__version__}-"), wheel.name  # pyproject reads mslcp.__version__


def test_release_script_moves_every_install_line(tmp_path):
    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in ("README.md", ".ci", "book", "mslcp"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, copy / name)
    run([sys.executable, str(copy / ".ci" / "release.py"), "9.8.7"], copy)
    assert f'pip install "git+{mslcp.REPOSITORY}@v9.8.7"' in (copy / "README.md").read_text()
    assert '__version__ = "9.8.7"' in (copy / "mslcp" / "__init__.py").read_text()
    for path in CHAPTERS:
        first = next(c for c in json.loads((copy / "book" / path.name).read_text())["cells"] if c["cell_type"] == "code")
        assert f'%pip install -q "git+{mslcp.REPOSITORY}@v9.8.7"' in "".join(first["source"]), path.name
    out = subprocess.run([sys.executable, str(copy / ".ci" / "release.py"), "v1"], capture_output=True, text=True)
    assert out.returncode != 0 and "error: version must look like 1.2.3" in out.stderr


def test_binder_uses_the_cpu_build_of_torch():
    text = (ROOT / "environment.yml").read_text()
    assert "https://download.pytorch.org/whl/cpu" in text
