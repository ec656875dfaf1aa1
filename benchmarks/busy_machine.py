"""Chapter execution time on a quiet machine and beside one process that keeps one core busy (the thread policy
of mslcp.presets.setup is meant to keep the ratio small; the target is at most 2.5x).

    python benchmarks/busy_machine.py                          # every chapter of _toc.yml
    python benchmarks/busy_machine.py book/03_sampling.ipynb   # some chapters

Each chapter is executed twice in one run (CPU preset), first alone, then beside a spinning process in a session
of its own.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bookfixes", ROOT / "book" / "_ext" / "bookfixes.py")
bookfixes = importlib.util.module_from_spec(_spec)  # the book's Sphinx extension, loaded from its file
_spec.loader.exec_module(bookfixes)


def chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def execute(path):
    bookfixes.mute_output_widget_sync()  # or a chapter's slider can stall nbclient until the cell timeout
    nb = nbformat.read(path, as_version=4)
    t = time.perf_counter()
    NotebookClient(nb, timeout=900, resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="chapters (default: every chapter of _toc.yml)")
    args = ap.parse_args()
    os.environ.setdefault("MSLCP_PRESET", "cpu")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| chapter | alone (s) | beside a busy core (s) | ratio |")
    print("|---|---|---|---|")
    for path in [p.resolve() for p in args.notebooks] or chapters():
        quiet = execute(path)
        # in a session of its own, like another user's job or another CI step (not the chapter's scheduler group)
        spin = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        try:
            busy = execute(path)
        finally:
            spin.kill()
        print(f"| {path.stem} | {quiet:.1f} | {busy:.1f} | {busy / quiet:.2f} |", flush=True)


if __name__ == "__main__":
    main()
