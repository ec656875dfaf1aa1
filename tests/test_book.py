"""The book: it builds with warnings as errors (executing every chapter, once per test run: the executed copies
in _build/jupyter_execute are then checked cell by cell, the role nbval played before), and every chapter page
renders in a real headless browser (Debian's chromium through selenium) with its figures, no console errors, and every formula
typeset by MathJax without an error (a local MathJax 3 that .ci/setup installs with npm stands in for the CDN's).
Both run in `bash .ci/run`; deselect them with `-m "not book"`. Screenshots go to _build/screenshots/."""
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="the book extra (jupyter-book, PyYAML) is not installed")

pytestmark = pytest.mark.book
ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
TILE = 10_000  # screenshot height (px): a page taller than this is shot in several tiles
HTML = BUILD / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MATHJAX = Path(os.environ.get("MSLCP_MATHJAX", ROOT / ".venv" / "mathjax" / "node_modules" / "mathjax" / "es5"))
HAVE_MATHJAX = (MATHJAX / "tex-mml-chtml.js").exists()
# Load the local MathJax into a page whose CDN copy could not load (the page's window.MathJax config stays), with
# undefined macros as errors, typeset, and report: formulas typeset, and the TeX and message of each error.
TYPESET = """
const done = arguments[arguments.length - 1];
window.MathJax = Object.assign(window.MathJax || {}, {tex: {packages: {'[-]': ['noundefined']}}});
const s = document.createElement('script');
s.src = '/_mathjax/tex-mml-chtml.js';
s.onerror = () => done({error: 'could not load ' + s.src});
s.onload = () => MathJax.startup.promise.then(() => {
  const math = Array.from(MathJax.startup.document.math);
  const bad = math.filter(m => m.typesetRoot && m.typesetRoot.querySelector('mjx-merror'));
  done({typeset: math.length, errors: bad.map(m => m.math + '  ->  ' +
        m.typesetRoot.querySelector('mjx-merror').getAttribute('data-mjx-error'))});
}, e => done({error: String(e)}));
document.head.appendChild(s);
"""


# Printed output lines that the page wraps (the output CSS wraps long lines instead of scrolling): each output <pre> is
# laid out again without wrapping, at the same width; a line wider than the box would wrap. Returns its longest line.
WRAPPED = """
return Array.from(document.querySelectorAll('div.cell_output pre')).flatMap(pre => {
  const probe = pre.cloneNode(true);
  Object.assign(probe.style, {whiteSpace: 'pre', overflowWrap: 'normal', width: pre.clientWidth + 'px',
                              position: 'absolute', visibility: 'hidden'});
  pre.parentNode.appendChild(probe);
  const wraps = pre.clientWidth > 0 && probe.scrollWidth > probe.clientWidth + 1;
  probe.remove();
  if (!wraps) return [];
  return [pre.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '')];
});
"""


def explorers(browser):
    """Move every static explorer (mslcp.book.explore) of the open page with the keyboard, one slider at a time:
    [(slider label, frame changed, alt text changed)]."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    moved = []
    for root in browser.find_elements(By.CSS_SELECTOR, ".mslcp-explorer"):
        img = root.find_element(By.TAG_NAME, "img")
        for slider in root.find_elements(By.CSS_SELECTOR, "input[type=range]"):
            before = img.get_attribute("src"), img.get_attribute("alt")
            at_end = slider.get_attribute("value") == slider.get_attribute("max")
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
            slider.send_keys(Keys.ARROW_LEFT if at_end else Keys.ARROW_RIGHT)
            after = img.get_attribute("src"), img.get_attribute("alt")
            moved.append((slider.get_attribute("aria-label"), after[0] != before[0], after[1] != before[1]))
    return moved


def toc_files(node=None):
    """Every `file:` of _toc.yml (root first), in order."""
    node = yaml.safe_load((ROOT / "_toc.yml").read_text()) if node is None else node
    if isinstance(node, list):
        return [f for item in node for f in toc_files(item)]
    if not isinstance(node, dict):
        return []
    own = [node[k] for k in ("root", "file") if k in node]
    return own + [f for k in ("parts", "chapters", "sections") for f in toc_files(node.get(k, []))]


def chapters():
    """The notebook pages of the book (chapters); the references page is not one."""
    return [f for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]


def test_book_builds_with_warnings_as_errors(build):
    returncode, log = build
    problems = [line for line in log.splitlines()
                if re.search(r"WARNING|ERROR|Traceback|Error:", line) and "over TCP without encryption" not in line]
    tail = problems[-20:] + ["--- end of the log ---"] + log.splitlines()[-40:]
    assert returncode == 0, "jupyter-book build -W -n failed:\n" + "\n".join(tail)
    missing = [c for c in chapters() if not (HTML / f"{c}.html").exists()]
    assert not missing, f"chapters without a page: {missing}"
    assert (HTML / "book" / "references.html").exists()


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_executes(build, chapter):
    """Every code cell of the chapter ran in the build, without an error output (one execution per CI run)."""
    path = BUILD / "jupyter_execute" / f"{chapter}.ipynb"
    assert path.exists(), f"{chapter} was not executed by the build (no {path}); see the build test above"
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code" and c["source"]]
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(cells) for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{chapter}: cells with errors (code cell index, exception, message): {errors}"
    unrun = [i for i, c in enumerate(cells) if c.get("execution_count") is None]
    assert not unrun, f"{chapter}: code cells that did not run (index): {unrun}"


# N `interact` cells (each opens an Output widget and draws into it), executed with nbclient (widget sync muted, as in
# the build) and a 20 s cell timeout; prints the longest wait, on the client's clock, from a cell's start to its reply
INTERACT = """
import importlib.util, sys, time, nbformat
from nbclient import NotebookClient
spec = importlib.util.spec_from_file_location("bookfixes", sys.argv[1])
bookfixes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bookfixes)
bookfixes.mute_output_widget_sync()
setup = ("import ipywidgets as widgets, matplotlib.pyplot as plt\\n"
         "def f(x=1.0):\\n    fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, x]); plt.show()")
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup)] + [
    nbformat.v4.new_code_cell("widgets.interact(f, x=(0.0, 2.0));") for _ in range(int(sys.argv[2]))])
start, waits = {}, []
NotebookClient(nb, timeout=20, kernel_name="python3",
               on_cell_execute=lambda cell, cell_index: start.__setitem__(cell_index, time.perf_counter()),
               on_cell_executed=lambda cell, cell_index, execute_reply: waits.append(
                   time.perf_counter() - start[cell_index])).execute()
print(max(waits))
"""


def test_interact_cells_do_not_wait_for_the_cell_timeout():
    """nbclient's Output widget mimic sends on the shell channel while it awaits a reply there, and on a busy machine
    the reply then sometimes waits unread until the cell timeout (without the fix, 1-4 of 60 such cells per run
    beside two busy processes; the book build stalled a chapter for 300 s in most clean-clone CI runs).
    bookfixes.mute_output_widget_sync stops that. The two spinners make the machine busy, as CI machines are."""
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(2)]
    try:
        r = subprocess.run([sys.executable, "-c", INTERACT, str(ROOT / "book" / "_ext" / "bookfixes.py"), "120"],
                           capture_output=True, text=True, timeout=900, cwd=ROOT)
    finally:
        for p in spin:
            p.kill()
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout.split()[-1]) < 10, f"a cell waited {r.stdout.split()[-1]} s for its reply"


@pytest.fixture(scope="module")
def server(build):
    """_build/html served on 127.0.0.1 (a free port) for the browser."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def translate_path(self, path):  # /_mathjax/... from the local MathJax
            if path.startswith("/_mathjax/"):
                return str(MATHJAX / path.split("?")[0][len("/_mathjax/"):])
            return super().translate_path(path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("no chromium/chromedriver on PATH: `apt-get install chromium chromium-driver` (.ci/setup does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the project's `test` extra")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
                 # every host but ours fails at once, online or not (CDN scripts such as MathJax)
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _ours(message, base):
    """A console error about our own pages (not a failed request to an external host, not the favicon)."""
    url = message.split(" ", 1)[0]
    return "favicon" not in message and (not url.startswith(("http://", "https://")) or url.startswith(base))


@pytest.fixture(scope="module")
def pages(build, server, browser):
    """Open every chapter page once: {chapter: (images [src, width], console errors, math report or None)}.
    Screenshots of the whole pages (math typeset when MathJax is there) go to _build/screenshots."""
    assert build[0] == 0, "the book did not build (see the test above)"
    shots = BUILD / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    browser.set_script_timeout(120)
    seen = {}
    for chapter in chapters():
        browser.get_log("browser")  # drop what earlier pages logged
        browser.get(f"{server}/{chapter}.html")
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # lazy images, if any
        deadline = time.time() + 30
        while time.time() < deadline and not browser.execute_script(
                "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"):
            time.sleep(0.2)
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.currentSrc || i.src, i.naturalWidth])")
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"
                  and _ours(e["message"], server)]
        wrapped = browser.execute_script(WRAPPED)
        moved = explorers(browser)
        math = browser.execute_async_script(TYPESET) if HAVE_MATHJAX else None
        height = browser.execute_script("return document.documentElement.scrollHeight")
        top, k = 0, 0
        chrome = browser.execute_script("return window.outerHeight - window.innerHeight")  # window minus viewport
        while top < height:  # the whole page, in tiles of at most TILE pixels (the last one may overlap)
            browser.set_window_size(1280, max(min(height - top + chrome, TILE), 800))
            browser.execute_script(f"window.scrollTo(0, {top})")
            browser.save_screenshot(str(shots / f"{Path(chapter).name}{f'-{k + 1}' if k else ''}.png"))
            top, k = top + browser.execute_script("return window.innerHeight"), k + 1
        browser.set_window_size(1280, 1000)
        seen[chapter] = images, errors, math, wrapped, moved
    return seen


def test_pages_render_in_headless_browser(pages, server):
    failures = []
    for chapter, (images, errors, *_) in pages.items():
        local = [(src, w) for src, w in images if src.startswith(server)]
        figures = [src for src, w in local if w > 0 and "/_images/" in src]
        broken = [src for src, w in local if w == 0]
        if not figures:
            failures.append(f"{chapter}: no figure rendered (images: {images})")
        if broken:
            failures.append(f"{chapter}: broken images {broken}")
        if errors:
            failures.append(f"{chapter}: console errors {errors}")
    assert not failures, "\n".join(failures)


def test_math_typesets_without_errors(pages):
    if not HAVE_MATHJAX:
        pytest.skip(f"no local MathJax at {MATHJAX} (.ci/setup installs it with npm; or set MSLCP_MATHJAX)")
    failures = []
    for chapter, (_, _, math, *_) in pages.items():
        if "error" in math:
            failures.append(f"{chapter}: {math['error']}")
        elif math["errors"] or math["typeset"] == 0:
            failures.append(f"{chapter}: {math['typeset']} formulas, errors: " + "; ".join(math["errors"]))
    print({chapter: math for chapter, (_, _, math, *_) in pages.items()})
    assert not failures, "\n".join(failures)


def test_printed_lines_do_not_wrap(pages):
    """Results a reader compares are tables (mslcp.book.table); what is printed fits the page's output box."""
    wrapped = {chapter: lines for chapter, (*_, lines, _) in pages.items() if lines}
    assert not wrapped, f"printed lines that wrap on the page: {wrapped}"


def test_static_explorers_move(pages):
    """Every explorer works without a kernel: each slider changes the picture and its description."""
    found = {chapter: moved for chapter, (*_, moved) in pages.items() if moved}
    sources = {c: "".join("".join(cell["source"]) for cell in json.loads((ROOT / f"{c}.ipynb").read_text())["cells"])
               for c in chapters()}
    expected = {c for c, text in sources.items() if "book.explore(" in text}
    assert expected and set(found) == expected, f"pages with explorers {sorted(found)}, chapters {sorted(expected)}"
    stuck = {c: [m for m in moved if not (m[1] and m[2])] for c, moved in found.items()}
    assert not any(stuck.values()), f"sliders that did not change the picture: {stuck}"


def test_exercises_are_numbered_with_linked_solutions(build):
    """Every chapter's exercises are sphinx-exercise directives (numbered, cross-referenced; _config.yml's
    hide_solutions makes a course edition), each rendered on its page, solutions as dropdowns."""
    assert build[0] == 0, "the book did not build (see the test above)"
    for chapter in chapters():
        cells = json.loads((ROOT / f"{chapter}.ipynb").read_text())["cells"]
        text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        if "## Exercises" not in text:
            continue
        assert "{admonition} Solution" not in text, f"{chapter}: a solution outside sphinx-exercise"
        exercises, solutions = text.count("::::{exercise}"), text.count("::::{solution}")
        assert exercises > 0, f"{chapter}: an Exercises section without {{exercise}} directives"
        page = (HTML / f"{chapter}.html").read_text()
        assert page.count('class="exercise admonition"') == exercises, chapter
        assert page.count('class="solution dropdown admonition"') == solutions, chapter


@pytest.mark.parametrize("chapter, kernel", [("book/03_sampling", "algorithm1"), ("book/06_synthesis", "synthesize"),
                                            ("book/02_bias_free", "residual"), ("book/04_wavelets", "dwt2")])
def test_chapters_show_the_code_they_teach(build, chapter, kernel):
    """Chapters 3 (Algorithm 1), 6 (Algorithm 2), 2 (the bias-free net) and 4 (the wavelet step) include the
    library's source of the function they teach (a literalinclude): its def line is on the rendered page."""
    assert build[0] == 0, "the book did not build (see the test above)"
    text = re.sub(r"<[^>]+>", "", (HTML / f"{chapter}.html").read_text())
    assert f"def {kernel}(" in text, f"{chapter}: the page does not show the source of {kernel}"
