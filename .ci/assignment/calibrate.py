"""Seed calibration of the assignment's checks (book/08_assignment.ipynb, CPU preset).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python .ci/assignment/calibrate.py OUT_DIR [FIRST_SEED] [LAST_SEED]

For every seed (the chapter's `SEED`) this runs the chapter's own cells with one torch thread: the setup cell
with `SEED = s`, the Task 1 cells (`build`, the given evaluation code, the training cell of the flat and the
conditional nets) and, for seeds 0-1, Task 4's training cell (db2) and the common training mistakes, for the
RF-3 nets only (Checks 1 and 4 train those again and compare):

- `cond_sigma`: conditional nets trained with detail noise in [0, 0.25] (σ instead of σ / 2);
- `cond_ortho`: conditional nets trained on orthonormal coefficients;
- `flat_sigma`: flat nets with train.train's default σ range (0, 1);
- `short`: a tenth of the steps, both families;
- `db2_haar`: the db2 nets trained with Haar (the reverse of evaluating db2 nets on Haar coefficients).

It writes OUT_DIR/seed<s>/<variant>.pt (the state dicts, {kind: {rf: state_dict}}) and appends one line per
seed to OUT_DIR/tables.jsonl. `verdicts.py` then runs the chapter's check cells on these nets.
$MSLCP_NOTEBOOK names another copy of the chapter (a snapshot, while the chapter is being edited).
"""
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = Path(os.environ.get("MSLCP_NOTEBOOK", ROOT / "book" / "08_assignment.ipynb"))
CELLS = ["a9bbb4d3", "task1-build", "task1-given", "bc605969", "d67aa6f3"]  # setup, Task 1, Task 4


def cell_sources(ids, nb=NOTEBOOK):
    cells = {c.get("id"): "".join(c["source"]) for c in json.loads(Path(nb).read_text())["cells"]}
    return [cells[i] for i in ids]


def namespace(seed):
    """The chapter's setup cell run with SEED = seed: a dict of its globals (CPU preset, one thread)."""
    from mslcp import analysis, metrics, nets, plot, presets, synthetic, train, wavelets

    preset, device = presets.setup("cpu")
    ns = dict(analysis=analysis, metrics=metrics, nets=nets, plot=plot, presets=presets, synthetic=synthetic,
              train=train, wavelets=wavelets, preset=preset, device=device)
    setup = cell_sources(CELLS[:1])[0]
    assert "\nSEED = 0 " in setup, "the setup cell no longer sets SEED = 0"
    exec(setup.replace("\nSEED = 0 ", f"\nSEED = {seed} "), ns)
    return ns


def states(family):
    return {rf: {k: v.cpu() for k, v in net.state_dict().items()} for rf, net in family.items()}


def run(out, seed, mistakes):
    t0 = time.perf_counter()
    ns = namespace(seed)
    for code in cell_sources(CELLS[1:4] + (CELLS[4:] if mistakes else [])):
        exec(code, ns)
    fit, rf, STEPS = ns["fit"], ns["RFS"][0], ns["STEPS"]
    variants = {"solution": {"flat": ns["flat"], "cond": ns["cond"]}}
    if mistakes:
        variants["solution"]["db2"] = ns["cond_db2"]
        variants["cond_sigma"] = {"cond": {rf: fit("cond", rf, level=0, sigma_range=(0, 0.25))}}
        variants["cond_ortho"] = {"cond": {rf: fit("cond", rf, level=0, sigma_range=(0, 0.125),
                                                   normalize="orthonormal")}}
        variants["flat_sigma"] = {"flat": {rf: fit("flat", rf)}}
        variants["db2_haar"] = {"db2": {rf: fit("db2", rf, level=0, sigma_range=(0, 0.125))}}
        ns["STEPS"] = STEPS // 10
        variants["short"] = {"flat": {rf: fit("flat", rf, sigma_range=(0, 0.25))},
                             "cond": {rf: fit("cond", rf, level=0, sigma_range=(0, 0.125))}}
        ns["STEPS"] = STEPS
    d = Path(out) / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    for name, fams in variants.items():
        torch.save({k: states(v) for k, v in fams.items()}, d / f"{name}.pt")
    sol = variants["solution"]
    tables = {"flat": ns["metrics"].denoising_psnr(sol["flat"], ns["test_faces"], ns["SIGMAS"]),
              "cond": ns["conditional_psnr"](sol["cond"], ns["test_faces"])}
    if "db2" in sol:
        tables["db2"] = ns["conditional_psnr"](sol["db2"], ns["test_faces"], wavelet="db2")
    line = {"seed": seed, "seconds": round(time.perf_counter() - t0, 1),
            "variants": sorted(variants), "tables": {k: {str(rf): v for rf, v in t.items()}
                                                      for k, t in tables.items()}}
    with open(Path(out) / "tables.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
    print(f"seed {seed}: {line['seconds']} s", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("MSLCP_THREADS", "1")
    out, first, last = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0, \
        int(sys.argv[3]) if len(sys.argv) > 3 else 19
    for s in range(first, last + 1):
        run(out, s, mistakes=s <= 1)
