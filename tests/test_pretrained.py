"""The authors' released weights (lookup, download, SHA-256, denoising quality) and our safetensors checkpoints.

Findings these tests pin down (measured on data/astronaut_face.png, see test_paper_denoisers_reduce_the_error):
every released net has a linear first layer (with a ReLU after conv0 the same weights barely denoise), and the nets
are homogeneous, so images in [0, 1] and [0, 255] give the same result up to scale.
"""
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from mslcp import data, hub, pretrained
from mslcp.metrics import psnr
from mslcp.multiscale import MultiScaleDenoiser
from mslcp.nets import BFCNN, ConditionalBFCNN

ROOT = Path(__file__).parents[1]
WEIGHTS = Path(os.environ["MSLCP_WEIGHTS"]) if os.environ.get("MSLCP_WEIGHTS") else None  # .ci/setup sets it
needs_weights = pytest.mark.skipif(WEIGHTS is None or not (WEIGHTS / "SHA256SUMS").exists(),
                                   reason=f"the authors' weights are not in MSLCP_WEIGHTS={WEIGHTS}")


@pytest.fixture
def weights(monkeypatch):
    monkeypatch.setenv("MSLCP_WEIGHTS", str(WEIGHTS))
    monkeypatch.setattr(pretrained, "URL", "file:///nonexistent/")  # never download in tests


@pytest.fixture
def source(tmp_path, monkeypatch):
    """A fake authors' repository with one small file, served by file:// URL; empty cache, no MSLCP_WEIGHTS."""
    rel = pretrained.relpath(160, 5)
    (tmp_path / "src" / rel).parent.mkdir(parents=True)
    (tmp_path / "src" / rel).write_bytes(b"small test file")
    monkeypatch.setattr(pretrained, "URL", (tmp_path / "src").as_uri() + "/")
    monkeypatch.setattr(pretrained, "SHA256", {(160, 5, None): hashlib.sha256(b"small test file").hexdigest()})
    monkeypatch.setenv("MSLCP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MSLCP_WEIGHTS", raising=False)
    return tmp_path, rel


def test_sha_table_matches_sha256sums():
    sums = WEIGHTS / "SHA256SUMS"
    if not sums.exists():
        pytest.skip(f"no {sums}")
    listed = dict(line.split()[::-1] for line in sums.read_text().splitlines())
    assert listed == {pretrained.relpath(*k): v for k, v in pretrained.SHA256.items()}


def test_fetch_verifies_and_caches(source):
    tmp, rel = source
    p = pretrained.weights_file(rel)
    assert p == tmp / "cache" / rel and p.read_bytes() == b"small test file"
    (tmp / "src" / rel).unlink()  # now only the cache has it
    assert pretrained.weights_file(rel) == p
    p.write_bytes(b"tampered")
    with pytest.raises(RuntimeError, match="SHA-256"):
        pretrained.weights_file(rel)


def test_download_mismatch_and_missing_files(source, monkeypatch):
    tmp, rel = source
    (tmp / "src" / rel).write_bytes(b"another file")
    with pytest.raises(RuntimeError, match="SHA-256"):
        pretrained.weights_file(rel)
    assert not (tmp / "cache" / rel).exists()
    (tmp / "src" / rel).unlink()
    monkeypatch.setenv("MSLCP_WEIGHTS", str(tmp / "local"))
    with pytest.raises(RuntimeError, match=r"(?s)not in MSLCP_WEIGHTS=.*local.*" + pretrained.URL):
        pretrained.weights_file(rel)
    (tmp / "local" / rel).parent.mkdir(parents=True)  # a local copy is checked too
    (tmp / "local" / rel).write_bytes(b"corrupt")
    with pytest.raises(RuntimeError, match="SHA-256"):
        pretrained.weights_file(rel)


def test_paper_or_none_skips_only_missing_weights(source, capsys):
    """A chapter's optional section: weights that cannot be had give None and the one line SKIPPED; a corrupt copy
    and a wrong argument still raise."""
    tmp, rel = source
    (tmp / "src" / rel).unlink()  # nowhere to be had
    assert pretrained.paper_or_none(lambda: pretrained.paper_flat(5)) is None
    assert capsys.readouterr().out == pretrained.SKIPPED + "\n"
    (tmp / "cache" / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp / "cache" / rel).write_bytes(b"corrupt")
    with pytest.raises(RuntimeError, match="SHA-256"):
        pretrained.paper_or_none(lambda: pretrained.paper_flat(5))
    with pytest.raises(ValueError, match="rf=6"):
        pretrained.paper_or_none(lambda: pretrained.paper_flat(6))


def test_missing_combinations_list_what_exists():
    with pytest.raises(ValueError, match=r"available rf: \[5, 9, 13, 23, 43\]"):
        pretrained.paper_flat(7)
    with pytest.raises(ValueError, match=r"160: \[5, 9, 13, 23, 43\], 320: \[13\]"):
        pretrained.paper_multiscale(9, size=320)
    with pytest.raises(ValueError, match="available"):
        pretrained.paper_multiscale([9, 7])
    with pytest.raises(ValueError, match="available sizes"):
        pretrained.paper_lowpass(64)


def face():
    x = np.array(Image.open(ROOT / "data" / "astronaut_face.png"), dtype=np.float32) / 255
    return torch.from_numpy(x)[None, None]


@needs_weights
@torch.no_grad()
def test_paper_denoisers_reduce_the_error(weights):
    """Flat rf 9/43 and multi-scale rf 5/9/13 on the astronaut face at sigma = 25, 50, 100 (/255)."""
    x = face()
    sigmas = torch.tensor([25.0, 50.0, 100.0]).view(3, 1, 1, 1) / 255
    y = x + sigmas * torch.randn(3, *x.shape[1:], generator=torch.Generator().manual_seed(0))
    noisy = psnr(y, x.expand_as(y))
    models = {f"flat rf {rf}": pretrained.paper_flat(rf) for rf in (9, 43)}
    models |= {f"multi-scale rf {rf}": pretrained.paper_multiscale(rf) for rf in (5, 9, 13)}
    print("\nPSNR (dB) on data/astronaut_face.png   sigma = 25 / 50 / 100 (/255)")
    print(f"{'noisy':22s}" + "".join(f"{p:8.2f}" for p in noisy))
    gain = {}
    for name, model in models.items():
        out = psnr(model(y), x.expand_as(y))
        print(f"{name:22s}" + "".join(f"{p:8.2f}" for p in out))
        gain[name] = out - noisy
        assert (gain[name] > 6).all(), (name, gain[name])
    # the paper's point: at high noise a small RF loses far less in the multi-scale model than flat
    assert gain["multi-scale rf 9"][2] > gain["flat rf 9"][2] + 0.5
    # the same weights with a ReLU after the first conv (wrong convention) lose several dB
    net = pretrained.paper_flat(43)
    with torch.no_grad():
        h = torch.relu(net.conv_layers[0](y))
        for conv, bn in zip(net.conv_layers[1:-1], net.BN_layers):
            h = torch.relu(bn(conv(h)))
        relu = y - net.conv_layers[-1](h)
    assert (psnr(relu, x.expand_as(y)) - noisy < gain["flat rf 43"] - 3).all()
    # homogeneity: the intensity scale does not matter
    ms = models["multi-scale rf 13"]
    torch.testing.assert_close(ms(255 * y) / 255, ms(y), atol=1e-5, rtol=1e-4)


@needs_weights
def test_paper_multiscale_structure(weights):
    ms = pretrained.paper_multiscale([13, 13, 13], size=320)
    assert ms.levels == 3 and not ms.training and (ms.wavelet, ms.normalize) == ("haar", "average")
    assert [c.rf for c in ms.conditionals] == [13] * 3 and ms.low.rf == 41 and len(ms.low.conv_layers) == 20


def small_multiscale():
    torch.manual_seed(0)
    low = BFCNN(width=8, depth=4, rf=5)
    conds = [ConditionalBFCNN(width=6, depth=3, rf=5) for _ in range(2)]
    low.train()(torch.rand(4, 1, 8, 8))  # non-trivial BN running statistics
    for c in conds:
        c.train()(torch.rand(4, 1, 8, 8), torch.randn(4, 3, 8, 8))
    return MultiScaleDenoiser(low, conds, normalize="orthonormal").eval()


def test_save_load_round_trip(tmp_path):
    ms = small_multiscale()
    y = torch.rand(2, 1, 32, 32)
    for model, args in [(ms, (y,)), (ms.low, (y,)), (ms.conditionals[1], (y[:, :, :8, :8], torch.randn(2, 3, 8, 8)))]:
        pretrained.save(model, tmp_path / "m.safetensors")
        back = pretrained.load(tmp_path / "m.safetensors")
        assert type(back) is type(model) and not back.training
        assert torch.equal(back(*args), model(*args))
    assert back.config == ms.conditionals[1].config
    pretrained.save(ms, tmp_path / "m.safetensors")
    back = pretrained.load(tmp_path / "m.safetensors")
    assert (back.levels, back.normalize, back.low.config) == (2, "orthonormal", ms.low.config)


def test_load_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        pretrained.load(bad)
    save_file({"w": torch.zeros(2)}, str(bad))
    with pytest.raises(ValueError, match="no 'mslcp' architecture"):
        pretrained.load(bad)
    pretrained.save(BFCNN(width=8, depth=3, rf=5), bad)
    with safe_open(str(bad), "pt") as f:
        meta = f.metadata()
    save_file(BFCNN(width=4, depth=3, rf=5).state_dict(), str(bad), metadata=meta)  # width-8 metadata, width-4 weights
    with pytest.raises(ValueError, match="do not match"):
        pretrained.load(bad)
    with pytest.raises(ValueError, match="cannot save"):
        pretrained.save(torch.nn.Conv2d(1, 1, 3), bad)


def test_shipped_from_checkout_or_package(tmp_path, monkeypatch):
    """shipped(): the copy in $MSLCP_ASSETS (a checkout's data/) when it is set, else the installed package's
    mslcp.assets copy (a pip install, as in Colab); SHA checked; nothing is downloaded."""
    net = BFCNN(width=4, depth=3, rf=5)
    repo, package = tmp_path / "repo", tmp_path / "site-packages" / "assets"
    for folder in (repo / "data" / "checkpoints", package / "checkpoints"):
        folder.mkdir(parents=True)
        pretrained.save(net, folder / "tiny.safetensors")
    sha = hub.sha256(repo / "data" / "checkpoints" / "tiny.safetensors")
    monkeypatch.setattr(pretrained, "SHIPPED", {"tiny": sha})
    monkeypatch.setenv("MSLCP_ASSETS", str(repo / "data"))
    used = []
    monkeypatch.setattr(hub, "_packaged", lambda rel: used.append(rel) or package.joinpath(*rel.split("/")[1:]))
    y = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(pretrained.shipped("tiny")(y), net.eval()(y))
    assert used == [], "the MSLCP_ASSETS copy comes first"
    (repo / "data" / "checkpoints" / "tiny.safetensors").write_bytes(b"changed")
    with pytest.raises(RuntimeError, match="SHA-256"):
        pretrained.shipped("tiny")
    (repo / "data" / "checkpoints" / "tiny.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="MSLCP_ASSETS"):
        pretrained.shipped("tiny")
    monkeypatch.delenv("MSLCP_ASSETS")  # a pip install
    torch.testing.assert_close(pretrained.shipped("tiny")(y), net(y))
    assert used == ["data/checkpoints/tiny.safetensors"]
    (package / "checkpoints" / "tiny.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="tiny.safetensors"):
        pretrained.shipped("tiny")
    with pytest.raises(ValueError, match="tiny"):
        pretrained.shipped("huge")


def test_shipped_checkpoints_are_in_the_checkout():
    """Every name in SHIPPED exists in data/checkpoints with its hash, and loads (what the book relies on)."""
    for name, sha in pretrained.SHIPPED.items():
        path = ROOT / "data" / "checkpoints" / f"{name}.safetensors"
        assert path.exists() and hub.sha256(path) == sha, name
        assert not pretrained.shipped(name).training


def test_astronaut_is_the_documented_crop():
    x = data.astronaut()
    assert x.shape == (1, 1, 160, 160) and x.dtype == torch.float32
    assert 0 <= x.min() < 0.1 and 0.9 < x.max() <= 1  # full 8-bit range, scaled to [0, 1]
    assert torch.equal(x * 255, (x * 255).round())  # 8-bit values, not resampled
