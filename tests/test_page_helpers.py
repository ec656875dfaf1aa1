"""mslcp.book: what a chapter gives its page. In the book build (MSLCP_BOOK_BUILD=1) glue stores for the page and
explore draws every frame behind HTML sliders; elsewhere both show things where they are made."""
import base64
import re

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mslcp import book  # noqa: E402

pytest.importorskip("IPython")


@pytest.fixture
def shown(monkeypatch):
    """What IPython.display.display received."""
    import IPython.display

    seen = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: seen.extend(objs))
    return seen


def draw(sigma, k=1):
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, sigma * k])
    return fig


def test_glue_outside_the_book_shows_the_object(monkeypatch, shown):
    monkeypatch.delenv(book.BUILD, raising=False)
    book.glue("x", 3.5)
    assert shown == [3.5]


def test_glue_in_the_book_build_stores_for_the_page(monkeypatch, shown):
    myst_nb = pytest.importorskip("myst_nb")
    monkeypatch.setenv(book.BUILD, "1")
    stored = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, obj, display=True: stored.append((name, obj, display)))
    book.glue("x", 3.5)
    assert stored == [("x", 3.5, False)] and shown == []


def test_static_explorer_has_every_frame_in_order(monkeypatch, shown):
    monkeypatch.setenv(book.BUILD, "1")
    calls = []

    def recording(sigma, k):
        calls.append((sigma, k))
        return draw(sigma, k)

    before = set(plt.get_fignums())  # figures other tests left open
    book.explore(recording, sigma=[0.1, 0.2, 0.3], k=[1, 2], start={"sigma": 0.2, "k": 2})
    assert calls == [(s, k) for s in (0.1, 0.2, 0.3) for k in (1, 2)]  # row-major, as the page's script indexes
    (out,) = shown
    html = out.data
    frames = re.search(r"frames = (\[.*?\])", html).group(1)
    assert frames.count("data:image/png;base64,") == 6
    assert len(re.findall(r'<input type="range"', html)) == 2
    assert 'value="1" data-k="0"' in html and 'value="1" data-k="1"' in html  # start: sigma 0.2 (1), k 2 (1)
    first = re.search(r'<img src="([^"]+)"', html).group(1)
    assert first == eval(frames)[1 * 2 + 1]  # the frame of (0.2, 2)
    assert base64.b64decode(first.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'alt="sigma = 0.2, k = 2"' in html
    assert set(plt.get_fignums()) <= before, "frames left open"


def test_live_explorer_uses_selection_sliders(monkeypatch):
    widgets = pytest.importorskip("ipywidgets")
    monkeypatch.delenv(book.BUILD, raising=False)
    seen = {}
    monkeypatch.setattr(widgets, "interact", lambda f, **kw: seen.update(kw))
    book.explore(draw, sigma=[0.1, 0.2], start={"sigma": 0.2})
    assert isinstance(seen["sigma"], widgets.SelectionSlider)
    assert list(seen["sigma"].options) == [0.1, 0.2] and seen["sigma"].value == 0.2


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {}, "give at least one parameter"),
    ((), {"sigma": []}, "sigma must be a non-empty list"),
    ((), {"sigma": "0.1"}, "sigma must be a non-empty list"),
    ((), {"sigma": [0.1], "start": {"beta": 1}}, "start names ['beta']"),
    ((), {"sigma": [0.1], "start": {"sigma": 0.5}}, "start sigma=0.5 is not one of its values"),
])
def test_explore_refuses_bad_parameters(args, kwargs, message):
    with pytest.raises(ValueError) as e:
        book.explore(draw, *args, **kwargs)
    assert message in str(e.value)


def test_table_is_markdown(shown):
    book.table(["a", "b"], [[1, "x"], [2.5, "y"]])
    (md,) = shown
    assert md.data == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | y |"
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        book.table(["a", "b"], [[1]])


PAGE = """# T

See {numref}`ch1-ex1`.

::::{exercise} One
:label: ch1-ex1

Do it.
::::

::::{solution} ch1-ex1
:class: dropdown

THE-ANSWER
::::
"""


@pytest.mark.parametrize("hide", [False, True])
def test_course_edition_switch(tmp_path, hide):
    """_config.yml's hide_solutions: a course edition of the pages leaves every solution out (sphinx-exercise)."""
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("sphinx_exercise", reason="the book extra (sphinx-exercise) is not installed")
    import subprocess
    import sys
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).parents[1] / "_config.yml").read_text())["sphinx"]
    assert "sphinx_exercise" in config["extra_extensions"] and config["config"]["hide_solutions"] is False
    (tmp_path / "conf.py").write_text('extensions = ["myst_parser", "sphinx_exercise"]\nnumfig = True\n'
                                      f'myst_enable_extensions = ["colon_fence"]\nhide_solutions = {hide}\n')
    (tmp_path / "index.md").write_text(PAGE)
    r = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", str(tmp_path), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Exercise 1" in page and 'class="exercise admonition"' in page
    assert ("THE-ANSWER" in page) is not hide
