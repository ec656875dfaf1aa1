"""Train the small checkpoints the book ships (data/checkpoints/NAME.safetensors) from their recipes (mslcp.recipes),
on synthetic faces, on a CPU.

    python data/make_checkpoints.py            # every shipped recipe (hours on one idle CPU core)
    python data/make_checkpoints.py bf_small   # one recipe

Like `python -m mslcp train NAME` (which writes runs/NAME.safetensors). Runs resume from runs/NAME*.pt when
interrupted. Afterwards, put the printed SHA-256 lines into mslcp.pretrained.SHIPPED (the book checks them when it
downloads a checkpoint in Colab).
"""
import sys
from pathlib import Path

from mslcp import hub, pretrained, recipes

HERE = Path(__file__).resolve().parent
SHIPPED = ["bf_small", "biased_small", "flat_rf5", "flat_rf33", "multiscale_rf5", "flat_rf9", "flat_rf13",
           "flat_rf17", "multiscale_rf9", "multiscale_rf13"]  # multiscale_rf9/13 reuse multiscale_rf5's low-pass

if __name__ == "__main__":
    for name in sys.argv[1:] or SHIPPED:
        recipe = recipes.get(name)
        model = recipes.run(recipe, HERE.parent / "runs", models=HERE / "checkpoints")
        out = HERE / "checkpoints" / f"{name}.safetensors"
        pretrained.save(model, out, recipe)
        print(f'    "{name}": "{hub.sha256(out)}",')
