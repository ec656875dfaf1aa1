"""Images: the library's rule for image tensors, CelebA (full and half resolution), image folders and files, read
in one grayscale convention (the mean of R, G, B, as the paper makes CelebA gray). Synthetic faces: `synthetic`."""
import numbers
import os
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import hub


# ----------------------------------------------------------------------------- the library's rule for images

def check_images(x, name, *, kind="images", uint8=False):
    """The one rule for image tensors across the library and the command line; raise unless x follows it.

    Images are on the [0, 1] scale: floating-point tensors. uint8 means 0..255 and is accepted only where
    uint8=True (storage of many training images: `train.train`'s data, the loaders' dtype=torch.uint8), which
    divides it by 255; any other integer or bool tensor is refused (ValueError) with the fix, `x.float() / 255`,
    rather than rescaled silently. A numpy array or a list is refused (TypeError: `torch.from_numpy`).
    kind says what else is checked: "images" (clean images): finite, values in [-0.5, 1.5] (room for resampling
    and sampling overshoot; images on the 0..255 or the [-1, 1] scale are refused, with the fix); "examples"
    (training examples that need not be images: points, coefficients): finite, and not non-negative with a
    maximum above 10 (the 0..255 scale, on which train's sigma_range in [0, 1] would be 1/255 of what was
    meant); "any": the type and dtype only (noisy images, coefficients of any scale). name: the argument, as the
    message names it. Returns None."""
    if kind not in ("images", "examples", "any"):
        raise ValueError(f"check_images: kind must be 'images', 'examples' or 'any', got {kind!r}")
    if not torch.is_tensor(x):
        fix = ": torch.from_numpy(x).float()" if isinstance(x, np.ndarray) else ""
        raise TypeError(f"{name} must be a torch tensor of images on the [0, 1] scale, got {type(x).__name__}{fix}")
    if not x.is_floating_point() and not (uint8 and x.dtype == torch.uint8):
        allowed = "floating-point (or uint8, 0..255)" if uint8 else "floating-point"
        raise ValueError(f"{name} must be {allowed}, on the [0, 1] scale; got {str(x.dtype).removeprefix('torch.')}"
                         ": convert with x.float() / 255 if it holds 0..255 gray levels")
    if kind == "any" or not x.is_floating_point() or not x.numel():
        return
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values ({int((~torch.isfinite(x)).sum())} of {x.numel()})")
    lo, hi = float(x.min()), float(x.max())
    scaled = lo >= 0 and hi > (1.5 if kind == "images" else 10)  # 0..255 (or 0..65535) intensities as floats
    if scaled or (kind == "images" and not -0.5 <= lo <= hi <= 1.5):
        fix = ("divide by 255" if 10 < hi <= 255 else "divide by 65535" if 255 < hi <= 65535 else "rescale to [0, 1]"
               ) if scaled else "use (x + 1) / 2" if lo >= -1 and hi <= 1 else "rescale to [0, 1]"
        raise ValueError(f"{name} must be floats on the [0, 1] scale, got values in [{lo:.4g}, {hi:.4g}]: {fix}")


# ----------------------------------------------------------------------------- CelebA and image folders

# The official CelebA release lives on Google Drive (ids from the CelebA page; SHA-256 as recorded by
# tensorflow-datasets). Drive may refuse large downloads ("quota exceeded"): then fetch them by hand.
CELEBA_FILES = {
    "img_align_celeba.zip": (
        "https://drive.usercontent.google.com/download?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM&export=download&confirm=t",
        "46fb89443c578308acf364d7d379fe1b9efb793042c0af734b6112e4fd3a8c74"),
    "list_eval_partition.txt": (
        "https://drive.usercontent.google.com/download?id=0B7EVK8r0v71pY0NSMzRuSXJEVkk&export=download&confirm=t",
        "fc955bcb3ef8fbdf7d5640d9a8693a8431b5f2ee291a5c1449a1549e7e073fe7"),
}
def halfres_root():
    """The folder of the half-resolution CelebA copy from $MSLCP_HALFRES (.ci/setup points it at the project's
    shared copy), or None when it is not set."""
    return Path(os.environ["MSLCP_HALFRES"]) if os.environ.get("MSLCP_HALFRES") else None
# crop (top, bottom, left, right) by image size (W, H): the paper's 160x160 rows 29:189, cols 9:169;
# at half resolution that box is rows 14.5:94.5, cols 4.5:84.5 -- we take the integer box 14:94, 4:84
# (half a pixel up-left) rather than resample, which would blur the finest scale.
CROPS = {(178, 218): (29, 189, 9, 169), (89, 109): (14, 94, 4, 84)}
SPLITS = {"train": "0", "valid": "1", "test": "2"}


def _gray(path):
    """(image file's (W,H), (H,W) float32 gray in [0,1]): the mean of R, G, B (16-bit images, PIL modes I;16 and I:
    value / 65535). The library's one grayscale convention; RuntimeError naming the file if it cannot be read."""
    try:
        with Image.open(path) as im:
            return im.size, (np.asarray(im, np.float32) / 65535 if im.mode.startswith("I") else
                             np.asarray(im.convert("RGB"), np.float32).mean(2) / 255)
    except (OSError, SyntaxError, ValueError) as e:  # missing, not an image, truncated, corrupt
        raise RuntimeError(f"cannot read image {path}: {e}") from None


def _read(path, box, size, native=None):
    """(1,size,size) float32 in [0,1]: _gray, crop `box` (None: centre square), resize. native: the (W,H) every
    file must have (CelebA)."""
    wh, a = _gray(path)
    if native is not None and wh != native:
        raise ValueError(f"{path} is {wh[0]}x{wh[1]} but the folder's first image is {native[0]}x{native[1]}: a "
                         "CelebA folder holds images of one size (use image_folder() for mixed images)")
    if box is None:
        h, w, k = *a.shape, min(a.shape)
        box = ((h - k) // 2, (h - k) // 2 + k, (w - k) // 2, (w - k) // 2 + k)
    x = torch.from_numpy(a[box[0]:box[1], box[2]:box[3]])[None, None]
    if x.shape[-1] != size or x.shape[-2] != size:   # box filter for integer factors, else antialiased bilinear
        integer = x.shape[-1] % size == 0 and x.shape[-2] % size == 0
        x = F.interpolate(x, size=(size, size), mode="area") if integer else \
            F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x[0]


def _load(files, box, size, dtype, n, native=None):
    """The first n files (all if n is None) read by _read, (N,1,size,size) as dtype."""
    if dtype not in (torch.float32, torch.uint8):
        raise ValueError(f"dtype must be torch.float32 (values in [0,1]) or torch.uint8 (0..255), got {dtype}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0):
        raise ValueError(f"n must be None (all) or an int >= 0, got {n!r}")
    files = files[:n]
    out = torch.empty(len(files), 1, size, size, dtype=dtype)

    def work(i):
        x = _read(files[i], box, size, native)
        out[i] = x if dtype == torch.float32 else (x * 255).round_()
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(work, range(len(files))))
    return out


def _download(root):
    """Download CelebA's aligned images and partition into root (checked against SHA-256)."""
    root.mkdir(parents=True, exist_ok=True)
    url, sha = CELEBA_FILES["list_eval_partition.txt"]
    hub.fetch(url, root / "list_eval_partition.txt", sha)
    url, sha = CELEBA_FILES["img_align_celeba.zip"]
    archive = hub.fetch(url, root / "img_align_celeba.zip", sha)
    with tempfile.TemporaryDirectory(dir=root) as tmp, zipfile.ZipFile(archive) as z:
        z.extractall(tmp)
        os.replace(Path(tmp) / "img_align_celeba", root / "img_align_celeba")
    archive.unlink()


def celeba(root=None, split="train", size=None, download=False, n=None, dtype=torch.float32):
    """CelebA aligned faces (N,1,size,size): crop, grayscale (mean of RGB), resize, as in the paper.

    root holds img_align_celeba/*.jpg (or is that folder); default hub.cache_dir()/"celeba".
    Image size picks the crop: 178x218 originals -> 160x160 faces (rows 29:189, cols 9:169);
    89x109 half-resolution copies -> 80x80 faces (rows 14:94, cols 4:84). size=None keeps that
    native size, other sizes are resampled. split "train"/"valid"/"test" follows CelebA's
    list_eval_partition.txt when root has it; without it, the last 5% of the files (sorted by name,
    N // 20 of them) are "test" and the rest "train". "all" takes every file. n: the first n files
    of the split. dtype float32 gives [0,1]; uint8 gives 0..255 (4x less memory: the full training
    split at 160x160 is 16.7 GB as float32). download=True fetches the official files (1.4 GB)
    when the images are missing.
    """
    root = Path(root) if root is not None else hub.cache_dir() / "celeba"
    folder = root / "img_align_celeba" if (root / "img_align_celeba").is_dir() else root
    files = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if not files and download:
        print(f"CelebA: no images in {folder}; downloading the official files (1.4 GB) into {root}",
              file=sys.stderr, flush=True)
        try:
            _download(root)
        except (RuntimeError, OSError, zipfile.BadZipFile) as e:
            raise RuntimeError(f"CelebA download failed ({e}). {_HELP.format(root=root)}") from e
        folder = root / "img_align_celeba"
        files = sorted(folder.glob("*.jpg"))
    if not files:
        raise RuntimeError(f"no CelebA images in {folder}. {_HELP.format(root=root)}")
    with Image.open(files[0]) as im:
        native = im.size
    if native not in CROPS:
        raise ValueError(f"{files[0]} is {native[0]}x{native[1]}: not an aligned CelebA image (178x218) "
                         "or a half-resolution copy (89x109); use image_folder() for other images")
    box = CROPS[native]
    part = next((p for p in (root, folder) if (p / "list_eval_partition.txt").exists()), None)
    if split not in (*SPLITS, "all") or (part is None and split == "valid"):
        raise ValueError(f"split must be 'train', 'test', 'all' or (with list_eval_partition.txt) 'valid', "
                         f"got {split!r}")
    if split != "all":
        if part is not None:
            table = _partition(part / "list_eval_partition.txt")
            files = [f for f in files if table.get(f.name) == SPLITS[split]]
        else:
            k = len(files) - len(files) // 20
            files = files[:k] if split == "train" else files[k:]
    if not files:
        raise RuntimeError(f"split {split!r} of {folder} is empty")
    return _load(files, box, box[1] - box[0] if size is None else size, dtype, n, native)


def _partition(path):
    """list_eval_partition.txt -> {file name: "0" | "1" | "2"}."""
    table = {}
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not a text file ({e})") from e
    for i, line in enumerate(lines, 1):
        f = line.split()
        if f and (len(f) < 2 or f[1] not in SPLITS.values()):
            raise ValueError(f"{path}, line {i}: expected '<image file> <0|1|2>', got {line!r:.80}")
        table.update([f[:2]] if f else [])
    return table


_HELP = ("Put the aligned images in {root}/img_align_celeba/ (000001.jpg ...) and list_eval_partition.txt in "
         "{root} (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html), or call celeba(download=True) to fetch them "
         "(1.4 GB), or use celeba_halfres() (the project's offline copy) or synthetic.faces().")


def celeba_halfres(root=None, split="train", size=None, n=None, dtype=torch.float32):
    """The half-resolution CelebA copy (89x109 JPEGs in root, default $MSLCP_HALFRES) as 80x80 faces.

    No partition file: "train" is the first 8,995 of its 9,468 files by name, "test" the last 473."""
    root = halfres_root() if root is None else Path(root)
    if root is None:
        raise RuntimeError("no half-resolution CelebA copy: set MSLCP_HALFRES to its folder (the one holding "
                           "img_align_celeba/*.jpg) or pass root=, or use celeba() or synthetic.faces()")
    if not root.is_dir():
        raise RuntimeError(f"half-resolution CelebA copy not found at {root}: pass root=<folder with "
                           "img_align_celeba/*.jpg>, or use celeba() or synthetic.faces()")
    return celeba(root, split, size, n=n, dtype=dtype)


def image_folder(path, size, n=None, dtype=torch.float32):
    """Your own images (N,1,size,size): every PIL-readable file under path (sorted), grayscale (mean of
    RGB), centre-cropped to a square, resized to size. n: the first n files."""
    Image.init()
    path = Path(path)
    if path.is_file():
        raise RuntimeError(f"image folder {path} is a file, not a folder: pass the folder that holds the images "
                           "(data.gray_image reads one file)")
    if not path.is_dir():
        raise RuntimeError(f"image folder {path} does not exist")
    files = sorted(f for f in path.rglob("*") if f.suffix.lower() in Image.registered_extensions() and f.is_file())
    if not files:
        raise RuntimeError(f"no images (PIL-readable files) in {path}")
    return _load(files, None, size, dtype, n)


def astronaut():
    """A real face we may redistribute: (1,1,160,160) in [0,1], the gray 160x160 crop data/astronaut_face.png of
    scikit-image's astronaut (public domain; see data/README.md)."""
    path = hub.asset("data/astronaut_face.png", "5afda5db487c15a962c6646d0646e414a572b616f614a140417e37ecf78334f2")
    return gray_image(path)


def gray_image(path):
    """One image file as (1,1,H,W) float32 gray in [0,1] (the mean of R, G, B, as every reader here)."""
    return torch.from_numpy(_gray(path)[1])[None, None]
