"""`python -m benchmarks [--quick] [--only SECTION,...]`: run the speed benchmarks and write docs/performance.md."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from . import common, report

SECTIONS = ("training", "ablation", "precision", "cpu", "long", "conv", "startup", "projection", "umap", "concurrency")
# (quick, full) settings per section
SETTINGS = {
    "training": ({"epochs": 1, "rounds": 2}, {"epochs": 3, "rounds": 5}),
    "ablation": ({"epochs": 1, "rounds": 1, "presets": ("deep",)}, {"epochs": 1, "rounds": 3, "with_compile": True}),
    # quick mode leaves the conv preset out here: its four variants on MNIST took 40 of 57 s on the Xeon
    "precision": ({"rounds": 1, "presets": ("vanilla", "deep")}, {"rounds": 3}),
    # quick mode: fewer samples of each matmul rate (6 rates of 6-8 samples of >= 0.3 s took 14 s on the Xeon)
    "cpu": ({"epochs": 1, "rounds": 2, "matmul_repeats": 3}, {"epochs": 2, "rounds": 5}),
    # quick mode leaves long runs out: denormals appear after some 800 steps, 13 epochs of 8,000 images
    "long": (None, {"epochs": 40, "rounds": 2}),
    "conv": ({"epochs": 2, "candidates": ((16, 32),)}, {"epochs": 5, "candidates": ((16, 32), (8, 16), (32, 64))}),
    "startup": ({"repeats": 3, "home": False}, {"repeats": 5, "home": True}),
    # quick mode leaves UMAP out (compiling it takes seconds), and scikit-learn's t-SNE: 10 s of a quick run on the
    # Xeon, and the t-SNE target compares the two at 5,000 points, which quick mode does not map
    "projection": ({"sizes": (2000,), "methods": ("PCA", "t-SNE, aecore (openTSNE)")},
                   {"sizes": (2000, 5000, 10_000)}),
    "umap": (None, {"sizes": (2000, 5000), "repeats": 1}),
    "concurrency": ({"counts": (1, 2), "epochs": 1, "rounds": 1}, {"counts": (1, 2, 4), "epochs": 2, "rounds": 3}),
}


def run_section(name: str, quick: bool, log) -> object:
    """Return the results of one section at its quick or full settings (None when it is skipped in quick mode)."""
    settings = SETTINGS[name][0 if quick else 1]
    if settings is None:
        return None
    from . import concurrency, cpu_limit, projection, startup, training

    if name in ("training", "ablation", "cpu", "long"):
        images = common.mnist("train").images
        fn = {"training": training.run, "ablation": training.ablation, "cpu": cpu_limit.run,
              "long": training.long_runs}[name]
        return fn(images, **settings, log=log)
    if name == "precision":
        import aecore as ae

        data = {"mnist": common.mnist("train").images, "digits": ae.load_dataset("digits").images}
        return training.precision_matrix(data, **settings, log=log)
    if name == "conv":
        return training.conv_sizing(common.mnist("train"), common.mnist("heldout"), **settings, log=log)
    if name == "startup":
        return startup.run(**settings, log=log)
    if name == "projection":
        return projection.quality(**settings, log=log)
    if name == "umap":
        return projection.umap_first_call(**settings, log=log)
    return concurrency.run(common.mnist("train"), **settings, log=log)


def main(argv=None) -> int:
    """Run the chosen sections, print progress, write the Markdown report (and the raw results as JSON)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer rounds and sizes: under two minutes on 2 cores")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    p.add_argument("--out", default=str(common.ROOT / "docs" / "performance.md"), help="the Markdown report")
    p.add_argument("--json", default=None, help="also write the raw results here")
    p.add_argument("--merge", default=None, metavar="JSON",
                   help="start from the results in this file (an earlier --json) and replace only the sections run")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each section and round, wait up to this long until other processes use under 10%% "
                        "of the CPU")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless aecore.fit trains at least 1.1x as fast as the plain loop and 1.5x the "
                        "tutorial loop, with a final loss within 5%% (generous margins: timings here are noisy)")
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    results = {"machine": common.machine(), "command": "python -m " + " ".join(["benchmarks", *map(shlex.quote, argv or sys.argv[1:])]),
               "quick": args.quick, "started": time.strftime("%Y-%m-%d %H:%M %Z"), "sections": {}, "load": {}}
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text())
        results["sections"], results["load"] = earlier["sections"], earlier["load"]
        results["command"] += f" (sections {', '.join(sections)}; the others from the run of {earlier['started']})"
    t_all = time.perf_counter()
    common.wait_between_rounds(args.wait_quiet)
    for name in sections:
        common.pause()
        load = common.load_average()
        print(f"[{name}] load average {load:.2f}", flush=True)
        t0, others = time.perf_counter(), common.OtherLoad().start()
        results["sections"][name] = run_section(name, args.quick, lambda s: print(s, flush=True))
        results["load"][name] = {"before": load, "others": others.stop(), "seconds": time.perf_counter() - t0}
        print(f"[{name}] {results['load'][name]['seconds']:.0f} s; other processes used "
              f"{results['load'][name]['others']:.0%} of the CPU meanwhile", flush=True)
    results["seconds"] = time.perf_counter() - t_all
    gpu = common.ROOT / "benchmarks" / "results" / "gpu.json"
    results["gpu"] = json.loads(gpu.read_text()) if gpu.exists() else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report.render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out} in {results['seconds']:.0f} s")
    failures = check(results) if args.check else []
    for failure in failures:
        print("CHECK FAILED:", failure)
    return 1 if failures else 0


def check(results: dict) -> list[str]:
    """Return what fails the generous ratio checks on the training section (empty when all hold)."""
    failures = []
    for row in results["sections"].get("training") or []:
        if row["loop"] != "aecore.fit":
            continue
        if row["vs_b"] < 1.1 or row["vs_a"] < 1.5 or abs(row["loss_vs_b"]) > 0.05:
            failures.append(f"{row['preset']}: fit {row['vs_a']:.2f}x (a), {row['vs_b']:.2f}x (b), "
                            f"loss {row['loss_vs_b']:+.1%} against (b)")
    return failures


if __name__ == "__main__":
    sys.exit(main())
