"""The Colab path, simulated offline: build the wheel, install it into a fresh virtual environment that cannot see
the checkout, and run chapter 1 there from an empty folder, with no network. Also: the package carries the shipped
checkpoints and the astronaut image (a pip install downloads nothing), an editable install finds them too, and every
place that names the repository agrees with mslcp.REPOSITORY.

The fresh environment reuses this one's third-party packages through a .pth line (offline: nothing to download), but
not its own mslcp: the .pth files of this environment (among them an editable install of mslcp) are not processed.
"""
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


def fresh_venv(path):
    """A venv without mslcp that sees this environment's third-party packages (not its .pth files)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    target = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], path).strip())
    (target / "_mslcp_test_base.pth").write_text("\n".join(site.getsitepackages()) + "\n")
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


def test_chapter1_runs_from_the_wheel_offline(wheel, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    env = clean_env(tmp_path)
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp_path, env)
    work = tmp_path / "run"  # an empty folder: no checkout around
    work.mkdir()
    # the installed package, not the checkout, and its assets: loaded without a download
    probe = ("import mslcp, sys; from mslcp import data, pretrained; print(mslcp.__file__); "
             "[pretrained.shipped(n) for n in pretrained.SHIPPED]; pretrained.celeba80_table(); "
             "print(list(data.astronaut().shape))")
    out = run([str(python), "-c", probe], work, env).splitlines()
    assert out[0].startswith(str(tmp_path / "venv")) and out[1] == "[1, 1, 160, 160]", out
    assert not (tmp_path / "cache").exists(), "something was downloaded"
    # chapter 1, executed as Colab would (its first cell must not try to pip install an importable mslcp)
    nb = json.loads((ROOT / "book" / "01_tweedie.ipynb").read_text())
    nb["cells"].insert(0, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                           "source": "import mslcp; assert 'venv' in mslcp.__file__, mslcp.__file__"})
    (work / "chapter.ipynb").write_text(json.dumps(nb))
    # a cell takes seconds: a cell timeout well inside the command's makes a hang name its cell. Chapter 1's slider
    # once made this command wait past 600 s for a reply the kernel had sent: bookfixes.mute_output_widget_sync.
    execute = (f"import sys; sys.path.insert(0, {str(ROOT / 'book' / '_ext')!r}); import bookfixes; "
               "bookfixes.mute_output_widget_sync(); "
               "import nbformat, nbclient; nb = nbformat.read('chapter.ipynb', 4); "
               "nbclient.NotebookClient(nb, timeout=180, startup_timeout=120, kernel_name='python3').execute(); "
               "nbformat.write(nb, 'executed.ipynb')")
    run([str(python), "-c", execute], work, env, timeout=600)
    executed = json.loads((work / "executed.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert "pip install" not in text and "Successfully installed" not in text


def test_editable_install_finds_the_assets(tmp_path):
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
    out = run([str(python), "-c", probe], work, env).splitlines()
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


def test_binder_uses_the_cpu_build_of_torch():
    text = (ROOT / "environment.yml").read_text()
    assert "https://download.pytorch.org/whl/cpu" in text
