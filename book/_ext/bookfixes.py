"""Small fixes for building the book (loaded from _config.yml, sphinx.local_extensions).

Sphinx 7.x adds an inline script given with `app.add_js_file(None, body=...)` to each page twice
(sphinx-doc/sphinx#13402, fixed in Sphinx 8.2, which Jupyter Book 1.x does not support). For
sphinx-thebe's `const THEBE_JS_URL = ...` that is a SyntaxError in the browser console of every page.
We drop repeated, identical inline scripts when each page is rendered.

nbclient, which executes the chapters, can leave a cell waiting for its whole timeout (300 s in the build): see
`mute_output_widget_sync`. tests/test_colab.py and benchmarks/busy_machine.py, which run nbclient themselves,
call it too.

`setup` also sets MSLCP_BOOK_BUILD=1, which the kernels the build starts inherit: `mslcp.book` then glues figures
for the page and draws explorers as static frames (in Colab and Jupyter it shows them live).
"""
import os


def _dedupe_inline_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        body = getattr(script, "attributes", {}).get("body")
        if body:
            if body in seen:
                continue
            seen.add(body)
        kept.append(script)
    context["script_files"] = kept


def mute_output_widget_sync():
    """Stop nbclient from sending an Output widget's outputs back to the kernel (it does that for every `interact`).

    nbclient plays the front end of the ipywidgets Output widget: it sends the widget's new state to the kernel on
    the shell channel while it awaits the cell's reply on that same channel. Sometimes that send leaves the reply
    unread until the cell timeout (jupyter/nbclient#312). Measured beside busy processes: of 60 `interact` cells with
    a 10 s timeout, 1–4 per run waited the full 10 s after the kernel had replied; without the send, none in 180.
    nbclient keeps the outputs in the saved widget state itself, so the built pages do not change."""
    from nbclient.output_widget import OutputWidget

    OutputWidget.send = lambda self, *args, **kwargs: None


def setup(app):
    os.environ["MSLCP_BOOK_BUILD"] = "1"  # mslcp.book: this is the book build
    mute_output_widget_sync()
    app.connect("html-page-context", _dedupe_inline_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
