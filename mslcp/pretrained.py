"""The paper's released CelebA denoisers and our own checkpoints (safetensors + architecture).

Authors' weights (MIT licence, LabForComputationalVision/local-probability-models-of-images): looked up in
$MSLCP_WEIGHTS (a folder laid out like the repository, `denoisers/...`), else downloaded into hub.cache_dir(); both
checked against the SHA-256 below. They predict the noise of [0, 1] images (any intensity scale works: the nets are
homogeneous) and use the Haar "average" normalization (`wavelets.decompose`), level 0 = finest = `scale_0`.
"""
import csv
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from . import hub
from .multiscale import MultiScaleDenoiser
from .nets import BFCNN, ConditionalBFCNN

URL = "https://raw.githubusercontent.com/LabForComputationalVision/local-probability-models-of-images/main/"
SHA256 = {  # (image size, rf, level) -> SHA-256 of model.pt; level None: flat net, "low": low-pass, j: level j
    (160, 5, None): "6c6cff6a4ecbf827ff41cba5d7326056b48669cd5d756a8f32f721f0cbd032b3",
    (160, 9, None): "0a0a85098fba8f842ed5bc1aab9fe0f54f745c525d6efd1ff155de0fd8aa48c7",
    (160, 13, None): "2510ac57ef3156448cb3515efe631335c393a71c0c73747c718d1ce23b2f8022",
    (160, 23, None): "4c0c2fbb02d4ac30ab76e5c81d0d7a4fd00cd307a7c60226f9f9b40fb55c5aa3",
    (160, 43, None): "1ab38b3e3ef3237547491964574386604971cddbe76b281f51003324a51a0f68",
    (160, 40, "low"): "117575245c85ab00ee0edf1476a002f8428ee82e97dcab0e17c8127378da1c52",
    (160, 5, 0): "8b5650f2f341fec7c7b49c05bf157fb1f3e2def0531fb07f35d607f1c9322aed",
    (160, 5, 1): "7eadf0246885fcf5785c7c3a4acac0115f84ac81d5c448b38d40819e0eaa5952",
    (160, 9, 0): "7beb243de17468fde72748689b59c5579560615c56fa3d73dfdbd015c4da2dd1",
    (160, 9, 1): "9a4024e444de1da90a019eb1b3d048d3c62a3114b1d512721f9c20eda57e1973",
    (160, 13, 0): "439edfd64862060bc9d27de797bf322d872b93315b46ea46b01b4651c6bfb9b0",
    (160, 13, 1): "92486634be09ff100f0a63ff38d40b7ae6f656852194cdf3477c44d9fe67ffe1",
    (160, 23, 0): "07a71e3fee312037357107cde4ae79fe8fbed61010ad537302c483eef4f4c016",
    (160, 23, 1): "716f4c165732160e2c60ca32a3db1b4879c143c969ac6000e6a190770f4ecf53",
    (160, 43, 0): "610857c58eb50253f05a730cfb42b7745836bdb120a191899369625ec6b4fc44",
    (160, 43, 1): "019754d6dea55d08493c8b5fd744ad4231e0c42961e52f9086f553ae3b55e351",
    (320, 40, "low"): "117575245c85ab00ee0edf1476a002f8428ee82e97dcab0e17c8127378da1c52",  # same net as 160
    (320, 13, 0): "6dcbff0d044184cae928036b5a6e0950f88a605f3afbff4aafcf99da8b55452a",
    (320, 13, 1): "20f57165d3fa85e130ad57083ff9ca7248807fbb96f83b1cd481776310ed3ec0",
    (320, 13, 2): "ae62dd9b9c5bf9cbef8b6c253156ced08e4c739b17ee57caa74d1e3ea178012e",
}
LEVELS = {160: 2, 320: 3}  # wavelet levels J of the multi-scale models (low-pass 40x40)


def relpath(size, rf, level=None):
    """Relative path (= URL path) of an authors' model.pt (their folders name wavelet level j `scale_j`)."""
    kind = "flat" if level is None else "multi_scale"
    tail = "" if level is None else "_low" if level == "low" else f"_scale_{level}"
    return f"denoisers/{kind}/celebA_{size}x{size}_gray/noise_range_0to255_RF_{rf}x{rf}{tail}/model.pt"


def available():
    """What exists: {"flat": {size: [rf]}, "multiscale": {size: [rf with every level]}}."""
    flat = {s: sorted(r for s2, r, k in SHA256 if s2 == s and k is None) for s in (160,)}
    ms = {s: sorted(r for r in {r for s2, r, k in SHA256 if s2 == s} if all((s, r, j) in SHA256 for j in range(J)))
          for s, J in LEVELS.items()}
    return {"flat": flat, "multiscale": ms}


class WeightsUnavailable(RuntimeError):
    """The authors' weights are neither in $MSLCP_WEIGHTS nor in the download cache, and cannot be downloaded."""


SKIPPED = "Skipped: the authors' weights are not available here (set MSLCP_WEIGHTS to a copy of them, or go online once)."


def paper_or_none(load):
    """`load()`, a function that loads the authors' nets (e.g. `lambda: paper_flat(13)`), or None after printing the
    one line SKIPPED where their weights are not available: for a chapter's optional section. A corrupt file or a
    wrong argument still raises."""
    try:
        return load()
    except WeightsUnavailable:
        print(SKIPPED)
        return None


def weights_file(rel):
    """Local path of an authors' file (relative path `rel`): $MSLCP_WEIGHTS/rel if there, else the download cache."""
    sha = {relpath(*k): v for k, v in SHA256.items()}[rel]
    root = os.environ.get("MSLCP_WEIGHTS")
    if root and (p := Path(root) / rel).exists():
        return hub.check(p, sha)
    try:
        return hub.fetch(URL + rel, hub.cache_dir() / rel, sha)
    except hub.Unreachable as e:
        where = f"not in MSLCP_WEIGHTS={root!r}" if root else "MSLCP_WEIGHTS is not set"
        raise WeightsUnavailable(f"cannot get {rel}: {where}, not in the cache {hub.cache_dir()}, and {e}") from e


def _authors(size, rf, level):  # every released net has a linear first layer, as BFCNN
    cls = ConditionalBFCNN if isinstance(level, int) else BFCNN
    sd = torch.load(weights_file(relpath(size, rf, level)), map_location="cpu", weights_only=True)
    return cls.from_state_dict(sd).eval()


def paper_flat(rf):
    """The paper's flat (pixel-domain) BFCNN denoiser with receptive field rf, trained on CelebA 160x160 gray."""
    if (160, rf, None) not in SHA256:
        raise ValueError(f"no flat paper denoiser with rf={rf}; available rf: {available()['flat'][160]}")
    return _authors(160, rf, None)


def paper_lowpass(size=160):
    """The paper's global low-pass denoiser (20 layers of 3x3, RF 40) of the 40x40 low-pass of size x size images."""
    if size not in LEVELS:
        raise ValueError(f"no paper low-pass denoiser for size={size}; available sizes: {sorted(LEVELS)}")
    return _authors(size, 40, "low")


def paper_multiscale(rf, size=160):
    """The paper's multi-scale denoiser for size x size images (160: J=2, 320: J=3). rf: RF of the conditional nets,
    an int or one per level (finest first)."""
    J = LEVELS.get(size)
    rfs = [rf] * (J or 0) if isinstance(rf, int) else list(rf)
    if J is None or len(rfs) != J or any((size, r, j) not in SHA256 for j, r in enumerate(rfs)):
        raise ValueError(f"no paper multi-scale denoiser with size={size}, rf={rf} (J={J}); available "
                         f"(size: rf): {available()['multiscale']}")
    return MultiScaleDenoiser(paper_lowpass(size), [_authors(size, r, j) for j, r in enumerate(rfs)]).eval()


_CLASSES = {c.__name__: c for c in (BFCNN, ConditionalBFCNN)}


def _arch(m):
    if isinstance(m, MultiScaleDenoiser):
        return dict(cls="MultiScaleDenoiser", low=_arch(m.low), conditionals=[_arch(c) for c in m.conditionals],
                    wavelet=m.wavelet, normalize=m.normalize, levels=m.levels)
    if _CLASSES.get(type(m).__name__) is not type(m) or not hasattr(m, "config"):
        raise ValueError(f"cannot save a {type(m).__name__}: supported are {[*_CLASSES, 'MultiScaleDenoiser']}")
    return dict(cls=type(m).__name__, config=m.config)


def _build(a):
    if not isinstance(a, dict) or a.get("cls") not in (*_CLASSES, "MultiScaleDenoiser"):
        raise ValueError(f"unknown architecture {a!r:.80} (cls must be one of "
                         f"{[*_CLASSES, 'MultiScaleDenoiser']})")
    if a["cls"] == "MultiScaleDenoiser":
        return MultiScaleDenoiser(_build(a["low"]), [_build(c) for c in a["conditionals"]], a["wavelet"],
                                  a["normalize"])
    return _CLASSES[a["cls"]](**a["config"])


def save(model, path, recipe=None):
    """Write model (BFCNN, ConditionalBFCNN or MultiScaleDenoiser of them) to a safetensors file whose metadata
    "mslcp" holds, as JSON, the architecture (class, constructor kwargs; MultiScaleDenoiser: keys low.,
    conditionals.j.), "version" (the library's) and "recipe" (a JSON-able dict, `mslcp.recipes.get`, or None).
    One metadata key: safetensors writes several in a random order, and the file's SHA-256 must not change."""
    from . import __version__

    meta = {"mslcp": json.dumps({**_arch(model), "version": __version__, "recipe": recipe})}
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a folder; give a file name "
                                f"(e.g. {path / 'model.safetensors'})")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: the folder {path.parent} does not exist (create it first)")
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(path), metadata=meta)
    except (SafetensorError, OSError) as e:  # e.g. a read-only folder: safetensors names its temporary file
        raise OSError(f"cannot save to {path}: {e}") from None


def load(path, device="cpu"):
    """Rebuild and return (eval mode) a model written by save(); its .recipe is the stored recipe (None if none).
    Refuses metadata it cannot use and non-finite weights (ValueError)."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is not a readable safetensors file: {e}") from e
    if "mslcp" not in meta:
        raise ValueError(f"{path} has no 'mslcp' architecture metadata: not written by mslcp.pretrained.save")
    try:
        arch = json.loads(meta["mslcp"])
        model = _build(arch)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # bad JSON, unknown class, bad constructor kwargs
        raise ValueError(f"{path}: its 'mslcp' architecture metadata is not usable ({type(e).__name__}: {e})") from e
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not match the architecture in its metadata: {e}") from e
    if bad := [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]:
        raise ValueError(f"{path}: non-finite (NaN or inf) weights in {bad[:4]}{' ...' if len(bad) > 4 else ''}")
    model.recipe = arch.get("recipe")
    if isinstance(model.recipe, dict) and "preset" in model.recipe:  # written when a training budget was a "preset"
        old = model.recipe.pop("preset")
        model.recipe["budget"] = "book" if old == "cpu" else old
    return model.to(device).eval()


# The book's small checkpoints (recipes in mslcp.recipes, trained by data/make_checkpoints.py): name -> SHA-256.
SHIPPED = {
    "bf_small": "874e0284e44d608e42d7a669456228e45fc6f3496ef37077ae126e42dce5015f",
    "biased_small": "5707df820174e652b76e1792448378dd12497afa91270d57c6546a1354b583cf",
    "flat_rf5": "45158625d65850cf6a6382777bcf4e55cd5fe2da609995231065ebc7f1c0d10c",
    "flat_rf33": "e522ffac1ee857fe4671d3dcf1d7652390c44a158bfe94da5a23417c347beebb",
    "multiscale_rf5": "975404433cb1956aae2450b85dd81acdafbf16df488441fdddc566a6a63c9565",
    "flat_rf9": "178a8c977f1e0a14e2b291a7d59172975be22f20811a09c5931bd845033361be",
    "flat_rf13": "e08f9bb6c70d2cd1cbb989d32a163adc3d2feaa9f3352586ec8a4360d645665d",
    "flat_rf17": "3d44f2174f0f7b1c6eb445f709ec80e3dc5822899be46bb6e11fb9f159ff89db",
    "multiscale_rf9": "9f50481b53c965a9b22f5d011610fbbc803dbd1b4ea0e2079f95c1e07a71ddcc",
    "multiscale_rf13": "650c3434f6933f95d70756b78985095cafed530cfce8e091782e1c6b186681c3",
    # the real-face family (CelebA 80x80); celeba80_multiscale_rf9/13 reuse celeba80_multiscale_rf5's low-pass
    "celeba80_flat_rf5": "6fbf06a664b6542809f1c0c7166501e273b540601094fad52413186818ecfb5c",
    "celeba80_flat_rf9": "cd935ba45614d3bb119380ba57f2d90995c6659e0b4ac23fcafa1ecaff1be861",
    "celeba80_flat_rf13": "54d065cf3dccb2b058fadf98e26cc7e3c83db6c1ff0aaa47e545e92957b88041",
    "celeba80_flat_rf21": "a2b306c79b8ff34f27721f68b515cfae2ad807539d0b241b7f650bec1e956bf7",
    "celeba80_multiscale_rf5": "3e3858ddc8fb24c7e85ba2c1172427cbee89ca167a9e029be03dd2e9c914343b",
    "celeba80_multiscale_rf9": "e76f27914ae745b71cdd576d6d670ecd4f83af23c039fa8167fa0be4f1a4233b",
    "celeba80_multiscale_rf13": "b0becb3dc07e0a119fb835c6af0b51bb44a606605b939b5c22fc867b8a80a7f8",
    # chapter 5's pair: flat RF 5, a quarter of the steps, sigma uniform / drawn as the authors' released code does
    "celeba80_flat_rf5_short": "2a605feb0834e8373bac161a98a7b5ea984ddedee43f2467f4bffd2a588b67ec",
    "celeba80_flat_rf5_short_quadratic": "2c33bea1a7822ad6c917d09ed8702788080776d37c62e307fb94cfd049fe8959",
}


def shipped(name, device="cpu"):
    """A checkpoint the book ships, data/checkpoints/NAME.safetensors (the checkout's or the installed package's
    copy, SHA-256 checked)."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped checkpoint {name!r}; available: {sorted(SHIPPED)}")
    return load(hub.asset(f"data/checkpoints/{name}.safetensors", SHIPPED[name]), device)


# The real-face family's denoising table (we may not redistribute the CelebA faces it was measured on):
#   python -m mslcp evaluate celeba80_flat_rf{5,9,13,21} celeba80_multiscale_rf{5,9,13} --data celeba80 --n 473 \
#       --sigmas 0.05 0.1 0.2 0.4 0.8 --out evaluation && cp evaluation/denoising.csv data/celeba80_denoising.csv
#   then chapter 5's columns (its pair, the low-pass-only baseline): python data/celeba80_chapter5_columns.py
CELEBA80_TABLE = "data/celeba80_denoising.csv", "48e77f57f2c43f3478079d8e8588efe0dfb16331ad76e72d7361622782952977"


def celeba80_table():
    """PSNR (dB) of the shipped celeba80_* models on the 473 test faces of data.celeba_halfres (one noise draw, seed
    0): {"noisy" or model name: {σ: PSNR}}, read from the table the package ships."""
    with open(hub.asset(*CELEBA80_TABLE), newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: {float(r["sigma"]): float(r[k]) for r in rows} for k in rows[0] if k != "sigma"}
