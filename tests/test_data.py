import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mslcp import data
from mslcp.data import celeba, celeba_halfres, image_folder
from conftest import needs_halfres  # tests/conftest.py

WHITE = (255, 255, 255)
# four coloured quadrants inside the crop: grayscale must be the mean of RGB (not ITU-R 601 luma)
QUADS = {(0, 0): (250, 10, 30), (0, 1): (0, 120, 240), (1, 0): (30, 30, 60), (1, 1): (255, 255, 0)}


# ----------------------------------------------------------------------------- CelebA layout

def _celeba_image(path, box, size, value=None):
    """Write a JPEG: white outside `box` (top, bottom, left, right); inside, flat `value` or QUADS."""
    a = np.full((size[1], size[0], 3), 255, np.uint8)
    t, b, l, r = box
    if value is not None:
        a[t:b, l:r] = value
    else:
        for (i, j), rgb in QUADS.items():
            h, w = (b - t) // 2, (r - l) // 2
            a[t + i * h:t + (i + 1) * h, l + j * w:l + (j + 1) * w] = rgb
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, quality=100, subsampling=0)


@pytest.mark.parametrize("size, box", [((178, 218), (29, 189, 9, 169)), ((89, 109), (14, 94, 4, 84))])
def test_celeba_crop_and_grayscale(tmp_path, size, box):
    _celeba_image(tmp_path / "img_align_celeba" / "000001.jpg", box, size)
    x = celeba(tmp_path, split="all")
    k = box[1] - box[0]
    assert x.shape == (1, 1, k, k) and x.dtype == torch.float32
    x = x[0, 0] * 255
    for (i, j), rgb in QUADS.items():
        q = x[i * k // 2:(i + 1) * k // 2, j * k // 2:(j + 1) * k // 2]
        assert abs(q[3:-3, 3:-3].mean() - sum(rgb) / 3) < 1.5           # mean of RGB
        assert (q - sum(rgb) / 3).abs().max() < 12                      # no white border: exact crop
    # resized: box filter for integer factors keeps flat quadrants
    y = celeba(tmp_path, split="all", size=k // 2)[0, 0] * 255
    assert y.shape == (k // 2, k // 2) and abs(y[2:k // 4 - 2, 2:k // 4 - 2].mean() - 290 / 3) < 1.5
    u = celeba(tmp_path, split="all", dtype=torch.uint8)
    assert u.dtype == torch.uint8 and torch.equal(u[0, 0], x.round().to(torch.uint8))


def test_celeba_partition_file(tmp_path):
    box = (29, 189, 9, 169)
    parts = {1: 0, 2: 1, 3: 2, 4: 0, 5: 2, 6: 0}
    for i in parts:
        _celeba_image(tmp_path / "img_align_celeba" / f"{i:06d}.jpg", box, (178, 218), value=(20 * i,) * 3)
    (tmp_path / "list_eval_partition.txt").write_text("".join(f"{i:06d}.jpg {p}\n" for i, p in parts.items()))
    ids = lambda x: (x.mean((1, 2, 3)) * 255 / 20).round().int().tolist()
    assert ids(celeba(tmp_path, "train", size=16)) == [1, 4, 6]
    assert ids(celeba(tmp_path, "valid", size=16)) == [2]
    assert ids(celeba(tmp_path, "test")) == [3, 5]
    assert ids(celeba(tmp_path, "train", n=2)) == [1, 4]
    assert ids(celeba(tmp_path / "img_align_celeba", "all")) == [1, 2, 3, 4, 5, 6]   # folder itself
    with pytest.raises(ValueError, match="split"):
        celeba(tmp_path, "val")


def test_celeba_default_split_and_errors(tmp_path, monkeypatch):
    box = (14, 94, 4, 84)
    for i in range(1, 41):
        _celeba_image(tmp_path / "img_align_celeba" / f"{i:06d}.jpg", box, (89, 109), value=(5 * i,) * 3)
    ids = lambda x: (x.mean((1, 2, 3)) * 255 / 5).round().int().tolist()
    assert ids(celeba(tmp_path, "train", size=8)) == list(range(1, 39))   # last 40 // 20 files are test
    assert ids(celeba_halfres(tmp_path, "test")) == [39, 40]
    with pytest.raises(ValueError, match="valid"):
        celeba(tmp_path, "valid")
    with pytest.raises(RuntimeError, match="download=True"):
        celeba(tmp_path / "missing")
    with pytest.raises(RuntimeError, match="not found"):
        celeba_halfres(tmp_path / "missing")
    monkeypatch.delenv("MSLCP_HALFRES", raising=False)  # no default folder: the message says how to give one
    with pytest.raises(RuntimeError, match="set MSLCP_HALFRES"):
        celeba_halfres()
    monkeypatch.setenv("MSLCP_HALFRES", str(tmp_path))
    assert ids(celeba_halfres(split="test")) == [39, 40]
    odd = tmp_path / "odd"
    _celeba_image(odd / "000001.jpg", (0, 10, 0, 10), (100, 100))
    with pytest.raises(ValueError, match="image_folder"):
        celeba(odd)


def test_celeba_download(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for i in (1, 2, 3):
        _celeba_image(src / "img_align_celeba" / f"{i:06d}.jpg", (29, 189, 9, 169), (178, 218), (60 * i,) * 3)
    archive = tmp_path / "img_align_celeba.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted((src / "img_align_celeba").iterdir()):
            z.write(f, f"img_align_celeba/{f.name}")
    part = tmp_path / "partition.txt"
    part.write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 2\n")
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    monkeypatch.setitem(data.CELEBA_FILES, "img_align_celeba.zip", (archive.as_uri(), sha(archive)))
    monkeypatch.setitem(data.CELEBA_FILES, "list_eval_partition.txt", (part.as_uri(), sha(part)))
    monkeypatch.setenv("MSLCP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="download=True"):
        celeba()                                                   # not there, not asked to download
    x = celeba(split="test", download=True)
    assert x.shape == (1, 1, 160, 160) and abs(x.mean() * 255 - 180) < 1
    root = tmp_path / "cache" / "celeba"
    assert len(list((root / "img_align_celeba").glob("*.jpg"))) == 3
    assert not (root / "img_align_celeba.zip").exists()             # extracted, archive removed
    assert celeba(split="train").shape == (2, 1, 160, 160)           # cached, no download
    monkeypatch.setitem(data.CELEBA_FILES, "img_align_celeba.zip", (archive.as_uri(), "0" * 64))
    with pytest.raises(RuntimeError, match="download failed.*synthetic.faces"):
        celeba(tmp_path / "other", download=True)                  # bad checksum: clear error


# ----------------------------------------------------------------------------- image folders

def test_image_folder(tmp_path):
    a = np.full((40, 60, 3), 255, np.uint8)
    a[:, 10:50] = (30, 60, 90)                                     # centre square of a 60x40 image
    Image.fromarray(a).save(tmp_path / "b.png")
    Image.fromarray(np.full((20, 20), 200, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((32, 16, 4), 100, np.uint8), "RGBA").save(tmp_path / "sub" / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    x = image_folder(tmp_path, 8)
    assert x.shape == (3, 1, 8, 8)
    assert torch.allclose(x[0], torch.tensor(200 / 255)) and torch.allclose(x[1], torch.tensor(60 / 255))
    assert torch.allclose(x[2], torch.tensor(100 / 255))
    assert image_folder(tmp_path, 8, n=1).shape == (1, 1, 8, 8)
    assert image_folder(tmp_path, 40, dtype=torch.uint8)[1].unique().tolist() == [60]
    # one grayscale convention: a file read whole (data.gray_image) is the mean of R, G, B too, not PIL's luma
    assert torch.allclose(data.gray_image(tmp_path / "b.png")[0, 0, :, 10:50], torch.tensor(60 / 255))
    with pytest.raises(RuntimeError, match="does not exist"):
        image_folder(tmp_path / "missing", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="no images"):
        image_folder(tmp_path / "empty", 8)
    with pytest.raises(ValueError, match="dtype"):
        image_folder(tmp_path, 8, dtype=torch.float64)


def test_16_bit_images_are_scaled(tmp_path):
    """A 16-bit gray PNG (PIL mode I;16) is value / 65535, not clipped at 255 (which made ~all pixels 1.0)."""
    a = (np.arange(16 * 16).reshape(16, 16) * 257).astype(np.uint16)    # 0 .. 65535
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    x = image_folder(tmp_path, 16)
    np.testing.assert_allclose(x[0, 0].numpy(), a / 65535, rtol=1e-6)
    assert torch.equal(data.gray_image(tmp_path / "deep.png")[0], x[0])


# ----------------------------------------------------------------------------- the shared half-resolution copy

@needs_halfres
def test_shared_halfres():
    files = sorted((data.halfres_root() / "img_align_celeba").glob("*.jpg"))
    x, t = celeba_halfres(split="train", n=3), celeba_halfres(split="test", n=2)  # the default root
    assert x.shape == (3, 1, 80, 80) and t.shape == (2, 1, 80, 80)
    first_test = len(files) - len(files) // 20
    for img, f in zip([*x, *t], [*files[:3], *files[first_test:first_test + 2]]):
        ref = np.asarray(Image.open(f).convert("RGB"), np.float32)[14:94, 4:84].mean(2) / 255   # independent
        assert np.abs(img[0].numpy() - ref).max() < 1e-6
