"""What a chapter gives its page, the same way in the book build, in Colab and in Jupyter.

- `glue(name, obj)`: during the book build, hand a figure or a computed sentence to the page, which places it
  where the text names it (myst-nb's glue); everywhere else, show it where it is made.
- `explore(draw, sigma=[...])`: sliders that redraw a figure. In a live kernel they are ipywidgets; on the
  static page (the book build) every position is drawn at build time behind HTML sliders, so they work without
  a kernel.
- `table(header, rows)`: a Markdown table (a printed table wraps on a narrow page).

"The book build" is told by `MSLCP_BOOK_BUILD=1`, which the build's own Sphinx extension sets
(book/_ext/bookfixes.py) and the kernels it starts inherit; having myst-nb installed is not the test."""
import base64
import html
import io
import itertools
import json
import os
import uuid

BUILD = "MSLCP_BOOK_BUILD"


def in_book_build():
    return os.environ.get(BUILD) == "1"


def glue(name, obj):
    """The book build: store `obj` (a Figure, Markdown, a number) under `name` for the page, not shown here.
    Elsewhere: display it now."""
    if in_book_build():
        from myst_nb import glue as myst_glue

        myst_glue(name, obj, display=False)
    else:
        from IPython.display import display

        display(obj)


def _values(name, values):
    values = list(values) if not isinstance(values, (str, bytes)) else None
    if not values:
        raise ValueError(f"explore: {name} must be a non-empty list of values, got {values!r}")
    return values


def explore(draw, start=None, **params):
    """Sliders over `params` (name -> list of values) that redraw `draw(**values)`, a function returning a
    matplotlib Figure. `start` (name -> value) sets the first position (default: each list's first value).

    Live kernel: `ipywidgets.interact` with one SelectionSlider per parameter. Book build: every combination is
    drawn now (keep the lists short: len(a) * len(b) figures) and shown behind HTML range inputs."""
    if not params:
        raise ValueError("explore: give at least one parameter, e.g. explore(draw, sigma=[0.1, 0.2])")
    params = {name: _values(name, v) for name, v in params.items()}
    start = dict(start or {})
    if bad := sorted(set(start) - set(params)):
        raise ValueError(f"explore: start names {bad}, which are not parameters ({sorted(params)})")
    for name, value in start.items():
        if value not in params[name]:
            raise ValueError(f"explore: start {name}={value!r} is not one of its values {params[name]}")
    first = {name: start.get(name, values[0]) for name, values in params.items()}
    if in_book_build():
        return _static(draw, params, first)
    return _live(draw, params, first)


def _live(draw, params, first):
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    def show(**values):
        fig = draw(**values)
        display(fig)
        plt.close(fig)

    sliders = {name: widgets.SelectionSlider(options=values, value=first[name], description=name,
                                             continuous_update=False)
               for name, values in params.items()}
    widgets.interact(show, **sliders)


def _png(fig, dpi=80):
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _label(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def _static(draw, params, first):
    """All frames, in row-major order of `params`, behind one <input type=range> per parameter."""
    from IPython.display import HTML, display

    names = list(params)
    frames = [_png(draw(**dict(zip(names, combo)))) for combo in itertools.product(*params.values())]
    uid = "mslcp-explore-" + uuid.uuid4().hex[:8]
    index = [params[n].index(first[n]) for n in names]
    labels = [[_label(v) for v in params[n]] for n in names]
    flat = 0
    for n, i in zip(names, index):
        flat = flat * len(params[n]) + i
    alt = ", ".join(f"{n} = {lab[i]}" for n, lab, i in zip(names, labels, index))
    rows = "".join(
        f'<label style="display:block">{html.escape(n)} '
        f'<input type="range" min="0" max="{len(params[n]) - 1}" step="1" value="{i}" data-k="{k}" '
        f'aria-label="{html.escape(n)}"> <output>{html.escape(lab[i])}</output></label>'
        for k, (n, lab, i) in enumerate(zip(names, labels, index)))
    script = f"""(function () {{
  const root = document.getElementById("{uid}"), frames = {json.dumps(frames)}, labels = {json.dumps(labels)};
  const names = {json.dumps(names)}, img = root.querySelector("img");
  const inputs = Array.from(root.querySelectorAll("input")), outs = Array.from(root.querySelectorAll("output"));
  function update() {{
    let i = 0;
    inputs.forEach((el, k) => {{ i = i * labels[k].length + Number(el.value); outs[k].value = labels[k][el.value]; }});
    img.src = frames[i];
    img.alt = names.map((n, k) => n + " = " + labels[k][inputs[k].value]).join(", ");
  }}
  inputs.forEach(el => el.addEventListener("input", update));
}})();"""
    display(HTML(f'<div class="mslcp-explorer" id="{uid}">{rows}'
                 f'<img src="{frames[flat]}" alt="{html.escape(alt)}" style="max-width:100%">'
                 f'</div><script>{script}</script>'))


def table(header, rows):
    """A Markdown table of `rows` (sequences of cells, already formatted as strings or numbers) under `header`."""
    from IPython.display import Markdown, display

    header = [str(h) for h in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        row = [str(c) for c in row]
        if len(row) != len(header):
            raise ValueError(f"table: a row has {len(row)} cells, the header {len(header)}: {row}")
        lines.append("| " + " | ".join(row) + " |")
    display(Markdown("\n".join(lines)))
