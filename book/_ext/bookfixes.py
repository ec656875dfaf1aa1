"""Small Sphinx fixes for the book's pages (loaded from _config.yml, sphinx.local_extensions).

Sphinx 7.x adds an inline script given with `app.add_js_file(None, body=...)` to each page twice
(sphinx-doc/sphinx#13402, fixed in Sphinx 8.2, which Jupyter Book 1.x does not support). For
sphinx-thebe's `const THEBE_JS_URL = ...` that is a SyntaxError in the browser console of every page.
We drop repeated, identical inline scripts when each page is rendered."""


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


def setup(app):
    app.connect("html-page-context", _dedupe_inline_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
