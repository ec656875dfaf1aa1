"""Downloads with a cache and a SHA-256 check (weights, data sets), and the small assets the package ships."""
import hashlib
import importlib.resources
import os
import tempfile
import urllib.request
from pathlib import Path

from . import REPOSITORY_PIP


def cache_dir() -> Path:
    """Where downloads are kept: $MSLCP_CACHE, else ~/.cache/mslcp."""
    return Path(os.environ.get("MSLCP_CACHE", Path.home() / ".cache" / "mslcp"))


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(path, sha: str) -> Path:
    """Return Path(path) if its SHA-256 is `sha`, else raise (a local copy that is corrupt or a different file)."""
    if (got := sha256(path)) != sha:
        raise RuntimeError(f"{path} has SHA-256 {got}, expected {sha}: corrupt or a different file (restore it "
                           f"from its source, or delete it)")
    return Path(path)


class Unreachable(RuntimeError):
    """A download failed: offline, or the server did not answer."""


def fetch(url: str, dest, sha: str | None = None) -> Path:
    """Return `dest`, downloading `url` there first if it is missing.

    The file is written atomically (temporary file, then rename) and, when `sha` is given,
    checked against it both after download and when found in the cache; a mismatch raises.
    """
    dest = Path(dest)
    if dest.exists():
        return dest if sha is None else check(dest, sha)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".")
    except OSError as e:  # e.g. MSLCP_CACHE is a file or read-only
        raise RuntimeError(f"cannot write {dest} ({e}); downloads go to the cache folder {cache_dir()} (set "
                           "MSLCP_CACHE to a writable folder)") from e
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as r:
                    while block := r.read(1 << 20):
                        out.write(block)
            except OSError as e:
                raise Unreachable(f"could not download {url}: {e}") from e
        if sha is not None and (got := sha256(tmp)) != sha:
            raise RuntimeError(f"download of {url} has SHA-256 {got}, expected {sha}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _packaged(rel: str):
    """`rel` ("data/...") inside the installed package mslcp.assets (pyproject maps data/ onto it), or None."""
    try:
        root = importlib.resources.files("mslcp.assets")
    except ModuleNotFoundError:  # mslcp imported from a folder on the path, not installed
        return None
    for part in Path(rel).parts[1:]:
        root = root / part
    return Path(str(root))


def asset(rel: str, sha: str) -> Path:
    """A file the repository ships under data/ (rel, e.g. "data/astronaut_face.png"), SHA-256 checked: the copy in
    $MSLCP_ASSETS (a folder laid out like data/) when it is set, else the wheel's copy in mslcp.assets (pip
    install). An editable install (pip install -e) does not make mslcp.assets importable: point MSLCP_ASSETS at
    the checkout's data/ (.ci/setup does). Nothing is downloaded."""
    if not rel.startswith("data/"):
        raise ValueError(f"asset: rel must be a path under data/, got {rel!r}")
    if root := os.environ.get("MSLCP_ASSETS"):
        where, path = f"MSLCP_ASSETS={root!r}", Path(root).joinpath(*Path(rel).parts[1:])
    else:
        where, path = "the installed package mslcp.assets", _packaged(rel)
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{rel} is not in {where}: set MSLCP_ASSETS to a checkout's data/ folder (after "
                                f"pip install -e, too), or install mslcp (pip install {REPOSITORY_PIP!r})")
    return check(path, sha)
