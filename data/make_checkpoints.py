"""Train the small checkpoints the book ships (data/checkpoints/NAME.safetensors) from their recipes (mslcp.recipes),
on a CPU: synthetic faces, and the real-face family celeba80_* (CelebA 80x80 from ../shared/celeba-halfres).

    python data/make_checkpoints.py            # every shipped recipe (hours on one idle CPU core)
    python data/make_checkpoints.py bf_small   # one recipe

Like `python -m mslcp train NAME` (which writes runs/NAME.safetensors). Runs resume from runs/NAME*.pt when
interrupted. Afterwards, put the printed SHA-256 lines into mslcp.pretrained.SHIPPED (every load checks them; a new
recipe trains when named here, before it is in SHIPPED).
"""
import sys
from pathlib import Path

from mslcp import hub, pretrained, recipes

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    for name in sys.argv[1:] or pretrained.SHIPPED:  # in order: multiscale_rf9/13 reuse multiscale_rf5's low-pass
        recipe = recipes.get(name)
        model = recipes.run(recipe, HERE.parent / "runs", models=HERE / "checkpoints")
        out = HERE / "checkpoints" / f"{name}.safetensors"
        pretrained.save(model, out, recipe)
        print(f'    "{name}": "{hub.sha256(out)}",')
