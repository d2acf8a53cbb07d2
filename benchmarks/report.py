"""The Markdown report of a benchmark run: docs/performance.md."""
from __future__ import annotations


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _k(v: float) -> str:
    return f"{v / 1000:.1f} k" if v >= 1000 else f"{v:.0f}"


def _ok(flag: bool | None) -> str:
    return "—" if flag is None else ("yes" if flag else "**no**")


def _machine(r: dict) -> str:
    m = r["machine"]
    versions = ", ".join(f"{p} {m[p]}" for p in ("torch", "numpy", "scikit-learn", "openTSNE", "umap-learn", "numba"))
    loads = ", ".join(f"{k} {v['before']:.2f} / {v['others']:.0%}" for k, v in r["load"].items())
    return (f"Produced by `{r['command']}` on {r['started']} (commit {m['commit']}, {r['seconds'] / 60:.1f} min).\n\n"
            f"- Machine: {m['cpu']}, {m['cores']} cores, bfloat16 instructions: {'yes' if m['bf16_instructions'] else 'no'}"
            f", torch threads {m['torch_threads']}; {m['os']}\n"
            f"- Python {m['python']}; {versions}\n"
            "- Other work on the machine, per section: the 1-minute load average when it started (this run's own "
            "work counts in it) / the share of the CPU other processes used while it ran, which in a virtual machine "
            "includes the time the host took from it (under 10% is quiet; more slows the numbers down): "
            f"{loads}\n")


def _training(rows: list[dict]) -> str:
    out = (f"Samples per second over whole runs of {rows[0]['epochs']} epoch(s) on the 8,000-image MNIST training "
           f"split, batch 128, Adam lr 1e-3, binary cross-entropy, same initial weights; median of {rows[0]['rounds']} "
           "rounds with the three loops alternating. Final loss: `aecore.evaluate_loss` on the training images "
           "afterwards (summed binary cross-entropy per image), the same for all three.\n\n")
    body = [[r["preset"], r["loop"], _k(r["samples_per_s"]), f"{r['vs_a']:.2f}×", f"{r['vs_b']:.2f}×",
             f"{r['final_loss']:.2f}", f"{r['loss_vs_b']:+.1%}", ", ".join(_k(v) for v in r["runs"])] for r in rows]
    return out + _table(["preset", "loop", "samples/s", "vs (a)", "vs (b)", "final loss", "loss vs (b)", "rounds"], body)


def _ablation(rows: list[dict]) -> str:
    out = ("Each speed technique added to the plain loop (b), same settings, one epoch per run, median of "
           f"{rows[0]['rounds']} alternated rounds, and the first round alone: `torch.compile` compiles in its first "
           "round (the process keeps the compiled code for the later ones), so its first round is what one "
           "training run in a fresh server would see.\n\n")
    body = [[r["preset"], r["variant"], _k(r["samples_per_s"]), f"{r['vs_b']:.2f}×",
             _k(r["first_round"]) if "first_round" in r else "—", f"{r['final_loss']:.2f}", f"{r['loss_vs_b']:+.1%}"]
            for r in rows]
    return out + _table(["preset", "variant", "samples/s", "vs (b)", "first round", "final loss", "loss vs (b)"], body)


def _precision(rows: list[dict]) -> str:
    out = ("The plain loop with fused Adam, per preset, in float32 (samples/s) and the speed-up of bfloat16 autocast "
           "and of the channels-last layout (conv models) over it; median of alternated rounds, batch 128. "
           "`precision=\"auto\"` uses bfloat16 for models of at least "
           f"{_bf16_min():,} multiply-adds per image on CPUs with bfloat16 instructions; conv models train channels-last "
           "on the CPU.\n\n")
    cols = ["bf16", "fp32 channels-last", "bf16 channels-last"]
    body = [[r["data"], r["preset"], f"{r['multiply_adds']:,}", _k(r["fp32"])]
            + [f"{r[c]:.2f}×" if c in r else "—" for c in cols] for r in rows]
    return out + _table(["data", "preset", "multiply-adds / image", "fp32 samples/s", *cols], body)


def _bf16_min() -> int:
    from aecore.train import BF16_MIN_MULTIPLY_ADDS

    return BF16_MIN_MULTIPLY_ADDS


def _conv(rows: list[dict]) -> str:
    out = (f"`aecore.fit` for {rows[0]['epochs']} epochs on the 8,000-image training split (defaults: batch 128, "
           "Adam 1e-3, binary cross-entropy); held-out MSE per pixel on images 8,000–9,999, which were never trained "
           "on. Target: the conv preset's epoch under 3 s, and its held-out MSE clearly below the deep preset's.\n\n")
    body = [[r["model"], f"{r['params']:,}", f"{r['epoch_s']:.2f} s", f"{r['first_epoch_s']:.2f} s",
             f"{r['heldout_mse']:.4f}"] for r in rows]
    return out + _table(["model", "parameters", "epoch (median)", "first epoch", "held-out MSE"], body)


def _long(c: dict) -> str:
    e = c["epochs"]
    out = (f"`aecore.fit` on the deep preset for {e} epochs on the 8,000-image training split (batch {c['batch']}) "
           f"with {c['threads']} thread(s), as the app's training jobs have, with denormal numbers flushed to zero "
           "(fit as it is) and kept (its flushing turned off), alternating; median samples/s of early and late "
           f"epochs, medians of {c['rounds']} rounds. Adam's moments of weights whose gradient fell to zero turn "
           "denormal after about 800 steps (13 epochs).\n\n")
    body = [[r["variant"], _k(r["early_samples_per_s"]), _k(r["late_samples_per_s"]), f"{r['final_train_loss']:.3f}"]
            for r in c["rows"]]
    return out + _table(["fit", f"samples/s, epochs 2–{e // 4 + 1}", f"samples/s, epochs {e // 2 + 1}–{e}",
                         "final training loss"], body)


def _cpu(c: dict) -> str:
    rate, one, small = c["matmul_gflops"], c["matmul_gflops_1_thread"], c["step_shape_matmul_gflops"]
    out = (f"Matrix multiply rate, {c['matmul_n']}×{c['matmul_n']} by {c['matmul_n']}×{c['matmul_n']}: "
           f"float32 {rate['fp32']:.0f} GFLOP/s, bfloat16 {rate['bf16']:.0f} GFLOP/s with {c['threads']} threads "
           f"(1 thread: {one['fp32']:.0f} and {one['bf16']:.0f}). The step's largest product, (128×784)·(784×256), "
           f"runs at {small['fp32']:.0f} (float32) and {small['bf16']:.0f} (bfloat16) GFLOP/s.\n\n"
           f"FLOPs of one training step of the {c['model']} preset at batch {c['batch']}: 2 × batch × (3 × Σ(in·out) "
           f"over its six linear layers − 784·256) = {c['step_flops'] / 1e6:.0f} MFLOP: 2 FLOPs per multiply-add of "
           "each product, forward, the weights' gradients and the inputs' gradients, but none for the images' "
           "gradient at the first layer, which is not computed (biases, activations, the loss and Adam left out, so "
           "this undercounts slightly).")
    products = c.get("step_products_gflops")
    if products:
        out += (f" Those {c['step_flops'] / 1e6:.0f} MFLOP of products alone, run back to back with nothing else "
                f"between them, reach {products['fp32']:.0f} GFLOP/s in float32 "
                f"({products['fp32'] / rate['fp32']:.0%} of the rate) and {products['bf16']:.0f} in bfloat16 "
                f"({products['bf16'] / rate['bf16']:.0%}): the ceiling of any training step of this model at this "
                "batch on this CPU.")
    steady = any("steady_fraction" in a for a in c["achieved"])
    out += (" Whole run: samples over the wall time of `aecore.fit` calls"
            + ("; steady: its epochs after each call's first, from fit's history" if steady else "") + ".\n\n")
    body = [[a["precision"], a["batch"], _k(a["samples_per_s"]), f"{a['gflops']:.0f}", f"{rate[a['precision']]:.0f}",
             f"{a['fraction']:.0%}"] + ([_k(a["steady_samples_per_s"]), f"{a['steady_fraction']:.0%}"] if steady else [])
            for a in c["achieved"]]
    return out + _table(["aecore.fit precision", "batch", "samples/s, whole run", "GFLOP/s achieved",
                         "matmul rate, same precision", "fraction"]
                        + (["samples/s, steady", "fraction, steady"] if steady else []), body)


def _projection(rows: list[dict], umap: dict | None) -> str:
    out = ("Codes (32-D) of the first N MNIST images under `pretrained/mnist-conv-z32.safetensors`; 2-D maps; "
           "trustworthiness with k = 5. UMAP rows are warm (compiled earlier in the process).\n\n")
    body = [[r["method"], f"{r['points']:,}", f"{r['seconds']:.2f} s", f"{r['trustworthiness']:.4f}"] for r in rows]
    out += _table(["method", "points", "wall time", "trustworthiness"], body)
    if umap:
        out += ("\nUMAP in fresh interpreters (imports excluded): the first call with nothing compiled; the app's "
                "warm-up (`aecore.projection.warm_up_umap`, run in a background thread when the server starts); the "
                "first call after it; a later call.\n\n")
        out += _table(["points", "first call, cold", "warm-up", "first call after warm-up", "later calls"],
                      [[f"{u['points']:,}", f"{u['first_no_warm_up_s']:.1f} s", f"{u['warm_up_s']:.1f} s",
                        f"{u['first_after_warm_up_s']:.1f} s", f"{u['later_s']:.1f} s"] for u in umap])
    return out


def _concurrency(c: dict) -> str:
    counts = sorted({n for by_n in c["samples_per_s"].values() for n in by_n})
    out = (f"N `aecore.jobs.TrainingJob`s of the {c['preset']} preset ({c['epochs']} epochs each on the 8,000-image "
           "split) started together in one process; total samples per second from the first start to the last "
           f"finish, median of {c['rounds']} rounds. The policy rows set the number of jobs allowed to train at "
           "once and the intra-op threads of each.\n\n")
    policies = list(c["samples_per_s"])
    alone = max(c["samples_per_s"][p].get(1, 0) for p in policies)
    body = []
    for p in policies:
        by_n = c["samples_per_s"][p]
        body.append([p] + [f"{_k(by_n[n])} ({by_n[n] / alone:.0%})" for n in counts])
    return out + _table(["policy"] + [f"{n} job(s): total samples/s (vs the best lone job)" for n in counts], body)


def _startup(s: dict) -> str:
    out = (f"`import aecore` in a fresh interpreter: {s['import_s']:.2f} s (median of "
           f"{len(s['import_runs'])}: {', '.join(f'{v:.2f}' for v in s['import_runs'])}); heavy modules loaded by it: "
           f"{', '.join(s['heavy_loaded']) or 'none'} (checked: umap, pynndescent, numba, openTSNE, sklearn.manifold, "
           "streamlit, plotly).")
    if "home_s" in s:
        out += (f" The home page's first render (Streamlit AppTest of `app.py` in a fresh interpreter, imports "
                f"included): {s['home_s']:.2f} s.")
    return out + "\n"


def _gpu(g: dict, cpu_fit: dict) -> str:
    out = (f"Measured on an {g['machine'].get('gpu', 'a GPU')} (torch {g['machine']['torch']}, "
           f"{g['machine']['cores']} CPU cores) by `{g['command']}`; the {g['images']:,}-image MNIST training split "
           f"resident on the device, 30 epochs per run, median of {g['rounds']} alternated rounds. Whole run: "
           "samples over the wall time of the call (setup, warm-up and capture included); steady: the median "
           "epoch after the first, from fit's history.\n\n")
    body = []
    for r in g["rows"]:
        steady = _k(r["steady_samples_per_s"]) if r["steady_samples_per_s"] else "—"
        ratio = cpu_fit.get(r["preset"]) if r["batch"] == 128 and r["loop"].startswith("aecore") else None
        body.append([r["preset"], r["batch"], r["loop"], _k(r["samples_per_s"]), steady, f"{r['final_loss']:.3f}",
                     f"{r['samples_per_s'] / ratio:.0f}×" if ratio else "—"])
    out += _table(["preset", "batch", "loop", "samples/s, whole run", "samples/s, steady", "final loss",
                   "vs aecore.fit on this CPU"], body)
    out += ("\nSame losses: aecore.fit eager against aecore.fit with the CUDA graph, same seed, 5 epochs, largest "
            "relative difference between their per-epoch training losses:\n\n")
    out += _table(["case", "largest relative difference", "final loss eager", "final loss graph"],
                  [[e["case"], f"{e['max_rel_diff']:.1e}", f"{e['eager_final']:.3f}", f"{e['graph_final']:.3f}"]
                   for e in g["equivalence"]])
    return out + ("\nThe conv model's small difference comes from cuDNN choosing other convolution algorithms inside "
                  "the capture; the dense, sparse and variational models give bit-identical losses.\n")


def _gpu_targets(g: dict) -> list[list]:
    rows = {(r["preset"], r["batch"], r["loop"]): r for r in g["rows"]}
    out = []
    for preset, goal in (("deep", 500_000), ("conv", 150_000)):
        r = rows.get((preset, 128, "aecore.fit, CUDA graph"))
        if r:
            out.append([f"GPU, {preset} at batch 128: ≥ {_k(goal)} samples/s",
                        f"{_k(r['samples_per_s'])} whole run, {_k(r['steady_samples_per_s'])} steady",
                        _ok(r["samples_per_s"] >= goal)])
    worst = max(e["max_rel_diff"] for e in g["equivalence"])
    out.append(["GPU: CUDA graph gives the same losses as eager", f"largest relative difference {worst:.1e}",
                _ok(worst < 0.01)])
    return out


def targets(r: dict) -> list[list]:
    """Return the issue's targets with what this run measured and whether each holds."""
    s = r["sections"]
    rows = []
    for t in s.get("training") or []:
        if t["loop"] == "aecore.fit":
            rows.append([f"{t['preset']}: fit ≥ 3× (a), ≥ 1.3× (b), loss within 2%",
                         f"{t['vs_a']:.2f}× (a), {t['vs_b']:.2f}× (b), loss {t['loss_vs_b']:+.1%}",
                         _ok(t["vs_a"] >= 3 and t["vs_b"] >= 1.3 and abs(t["loss_vs_b"]) <= 0.02)])
    conv = {c["model"]: c for c in s.get("conv") or []}
    if "conv (16, 32)" in conv and "deep" in conv:
        c, d = conv["conv (16, 32)"], conv["deep"]
        rows.append(["conv preset: epoch of 8,000 images < 3 s, held-out MSE below deep's",
                     f"{c['epoch_s']:.2f} s; MSE {c['heldout_mse']:.4f} vs {d['heldout_mse']:.4f}",
                     _ok(c["epoch_s"] < 3 and c["heldout_mse"] < d["heldout_mse"])])
    if s.get("cpu"):
        c = s["cpu"]
        # judged in the precision fit uses by default on that CPU (older results did not record it: either)
        at = [a for a in c["achieved"] if a["batch"] == c["batch"]
              and a["precision"] == c.get("default_precision", a["precision"])]
        rows.append([f"deep preset at batch {c['batch']}: ≥ 50% of the matmul rate"
                     + (f" (in {c['default_precision']}, fit's default on this CPU)" if "default_precision" in c else ""),
                     "; ".join(f"{a['precision']}: {a['fraction']:.0%} of the {a['precision']} rate"
                               + (f" ({a['steady_fraction']:.0%} steady)" if "steady_fraction" in a else "")
                               for a in at),
                     _ok(any(max(a["fraction"], a.get("steady_fraction", 0)) >= 0.5 for a in at))])
    tsne = {(p["method"], p["points"]): p for p in s.get("projection") or []}
    a, b = tsne.get(("t-SNE, aecore (openTSNE)", 5000)), tsne.get(("t-SNE, scikit-learn", 5000))
    if a and b:
        rows.append(["t-SNE of 5,000 codes < 8 s, trustworthiness within 0.01 of scikit-learn's",
                     f"{a['seconds']:.1f} s, {a['trustworthiness']:.4f} vs {b['trustworthiness']:.4f}",
                     _ok(a["seconds"] < 8 and a["trustworthiness"] >= b["trustworthiness"] - 0.01)])
    for u in s.get("umap") or []:
        rows.append([f"UMAP of {u['points']:,} codes: first after server start < 10 s, later < 3 s",
                     f"{u['first_after_warm_up_s']:.1f} s after the warm-up (which the server starts with: "
                     f"{u['warm_up_s']:.0f} s), later {u['later_s']:.1f} s",
                     _ok(u["first_after_warm_up_s"] < 10 and u["later_s"] < 3)])
    if s.get("concurrency"):
        c = s["concurrency"]
        own = next(iter(c["samples_per_s"].values()))
        alone = own[1]
        worst = min(v / alone for v in own.values())
        rows.append(["N jobs at once keep ≥ 80% of one job's throughput (aecore.jobs' policy)",
                     f"worst {worst:.0%} of its lone job", _ok(worst >= 0.8)])
    if s.get("startup"):
        st = s["startup"]
        rows.append(["`import aecore` < 3 s, nothing heavy", f"{st['import_s']:.2f} s, heavy: "
                     f"{', '.join(st['heavy_loaded']) or 'none'}",
                     _ok(st["import_s"] < 3 and not set(st["heavy_loaded"]) & {"umap", "openTSNE", "sklearn.manifold"})])
    if r.get("gpu"):
        rows += _gpu_targets(r["gpu"])
    return rows


NOTES = """
## How `aecore.fit` runs a step, and why

Profiled with `torch.profiler` on a 2-core AMD EPYC with AVX-512 BF16 (the machine of docs/performance.md); each
choice below is backed by a table of that report.

- **Data on the device, batches by indexing.** The whole training set is one tensor and each batch is
  `x_all[perm[i:i + batch]]`: no `DataLoader`, no per-item PIL conversion. That conversion is most of what
  the tutorial loop (a) spends beyond the plain loop (b) on the dense model.
- **Fused Adam** (`fused=True`: one kernel over all parameters instead of a dozen small ops per parameter).
- **bfloat16 autocast where it pays** (`precision="auto"`): float32 weights, bfloat16 matrix products, on CPUs
  with native bfloat16 instructions (AVX-512 BF16 or AMX), for models of at least 250,000 multiply-adds per
  image (`aecore.train.BF16_MIN_MULTIPLY_ADDS`). It won on every MNIST preset above that size (deep, sparse,
  VAE, conv, conv-VAE) and was slower on the MNIST vanilla and linear presets and on most 8×8 digits presets,
  where the casts cost more than the faster products save (table "Precision and memory format by model";
  aecore.fit itself in bfloat16 against float32 in "Fraction of the CPU's limit"). The loss stays within 2% of
  float32 (tests/test_speed_paths.py; the "final loss" columns).
- **Its own binary cross-entropy.** PyTorch's CPU `log1p`, which `binary_cross_entropy_with_logits` uses, ran
  about 12× slower than `log` on the 2-core AMD EPYC (1.1 ms against 0.09 ms for one batch of 128 MNIST images, on
  one thread), 15–25% of a dense step. `aecore.models.bce_with_logits_sum` computes the same loss (within 1e-7 a
  pixel) with `log`, and its gradient, sigmoid(x) − t, in one written-out backward instead of autograd's ten
  element-wise passes: in A/Bs there the deep preset's fit went from about 27 k to 34 k samples/s with `log`, and
  from 41.6 k to 47.5 k with the written-out gradient (conv 9.7 k to 10.3 k), the same loss in float32. The
  reference loops (a) and (b) train with PyTorch's own loss (`benchmarks.training.builtin_loss`: the same value
  and gradient, tests/test_speed_paths.py), as plain PyTorch code does; the ablation row "b + aecore's loss"
  measures this technique alone.
- **Channels-last conv on the CPU**: oneDNN's convolution kernels work channels-last; the conv presets on
  MNIST-sized images train with the model and data in that layout, and the model is handed back in the
  standard layout when training ends. The pages' batched inference (`aecore.train.in_batches`: codes,
  reconstructions, errors) hands such models channels-last batches too: encoding 2,000 MNIST images with the conv
  preset took 0.28 s, now 0.13 s, on the Xeon.
- **Conv layers run in a cheaper order** (in the model, so every use of a conv model gains, not only fit; the
  same function, values and gradients, tests/test_models.py). Profiled on a 2-core Intel Xeon:
  - *A sub-pixel decoder*: each nearest ×2 upsampling and the 3×3 convolution after it run as one 2×2 convolution
    on the small image, with four times the output channels (one set per phase of the upsampled pixels), and one
    strided copy that interleaves the phases (`aecore.models.upsample_conv`): about half the multiply-adds, and no
    upsampled tensor. The conv preset's last layer (16 channels to 1 at 28×28) was its slowest, as oneDNN runs a
    one-channel output poorly: its training step (batch 128) took 35–41 ms in the standard layout (12–16 ms
    channels-last), now about 5 ms. This technique's first form, a 3×3 convolution on the small image and a pixel
    shuffle, took 6 ms (5 ms); the 2×2 form then made the preset's fit another 17% faster in an A/B.
  - *Pooling before the activation*: max-pooling commutes with an activation that never decreases (ReLU and the
    others but GELU), so the encoder pools first and activates a quarter of the pixels: the first layer's ReLU
    and its backward had taken about 4 ms of a 40 ms step; fit went from 3.2 k to 3.9 k samples/s in an A/B.
  The reference loops run the model's layers as written (`model.encoder`, `model.decoder`), as plain PyTorch
  code with `nn.Conv2d`, `nn.ReLU`, `nn.MaxPool2d`, `nn.Upsample` does; the ablation rows "aecore's layers"
  measure the two together.
- **One host synchronisation per step** (the loss values, which the divergence guard needs).
- **Denormal numbers flushed to zero while fit trains.** Adam's moments of weights whose gradient falls to zero
  and stays there (a pixel lit in few images, a unit that died) decay below float32's normal range after about
  800 steps, and the CPU computes on such denormal numbers many times slower: on the Xeon, the deep preset's
  epochs 21–40 on one thread, as the app's jobs train, ran a third slower with them kept, to the same loss
  (table "Long runs"); the three-epoch runs of the other tables end before any moment gets there. fit sets
  `torch.set_flush_denormal` for the thread it trains in and restores it after: the setting is the thread's
  own, governs Python's float arithmetic there too, and is inherited only by threads started later, so the
  intra-op workers of a direct multi-threaded fit call keep theirs (a program that wants it everywhere sets it
  before its first PyTorch operation: with two threads that way, 28.5 k samples/s against 18.7 k late in a run).
- **CUDA graphs on a GPU**: the whole step (forward, backward, fused capturable Adam with the learning rate
  as a device tensor) is captured once per batch size and replayed; the first steps and the first batch of
  each other size run eagerly, a failed capture falls back to eager, and input noise (drawn from fit's own
  generator) keeps the eager path. Loss values are read one step late so the GPU always has the next step
  queued. See the GPU section for the equivalence with eager training.

- **UMAP: exact neighbours from scikit-learn, 120 epochs.** Below 4,097 points umap-learn finds neighbours
  exactly through scikit-learn's `pairwise_distances` with a Python-level callback per pair: 6.5 of 7.4 s on
  2,000 codes (profiled), and above it with pynndescent's NN-descent, whose numba compilation took 43 of the
  ~50 s of UMAP's first call in a process on the Xeon (numba's compile events). aecore finds each code's
  neighbours with scikit-learn's `NearestNeighbors` (0.1 s for 5,000 codes) and gives UMAP them and the index
  (`aecore.projection.ExactNeighbours`, which also places new codes), so NN-descent never compiles: the
  server's start-up warm-up (`warm_up_umap`, 500 points in a background thread) fell from 54-79 s to
  13-15 s there. `n_epochs=200` (umap-learn's own choice above 10,000 points) first replaced its 500 below: 2,000
  codes went from 3.8 s to 0.7 s, 5,000 from 4.0 s to 1.8 s on the EPYC, at trustworthiness 0.966 against
  0.969 and 0.967. On the Xeon 5,000 codes still took 3.1 s, nearly all in the epochs: 120 epochs took 1.67 s
  against 2.64 s there at a trustworthiness 0.0015 lower, the maps alike by eye.
- **t-SNE: openTSNE, Barnes-Hut, 125 + 250 iterations.** openTSNE's Barnes-Hut gradients with an exact
  neighbour search and theta 0.8 ran 5,000 codes in 5.4 s on the EPYC with 250 + 300 iterations (early
  exaggeration + the rest), but 11.1 s on the Xeon; 125 + 250 took 6.1 s there at a trustworthiness of 0.9900
  against 0.9908 (scikit-learn's TSNE: 0.9912 in 29-43 s): the KL divergence barely moves after 50 exaggerated
  iterations.

Tried and not kept:

- **Strided convolutions** instead of max-pooling and nearest upsampling in the conv preset: about twice the
  samples per second, but a held-out loss 25% worse after 3 epochs on the 8,000-image split (145 against 115).
- **`torch.compile`** was no faster than the eager loop once compiled (slower there, see the ablation table), and
  a run's first epoch pays the compilation: a few seconds with a warm on-disk cache, 15–27 s on its two cores
  without one.
- **Other forms of the conv preset's first layer** (1 channel to 16 at 28×28, then max-pooling: about a quarter
  of a step on the Xeon, where oneDNN runs a one-channel input slowly): one matrix product over rows of seven
  pixels at once (`unfold` and a banded weight), the input padded to two channels, the convolution and pooling as
  a phase convolution on the space-to-depth image, and the 2×2 max-pool as element-wise maxima with its own
  backward. None made fit faster in A/Bs on the Xeon; the last two were twice as slow.
- **Reading channels-last maps into the linear layers as they lie** (the head's weight columns and the decoder's
  first weight rows put in (row, column, channel) order, instead of copying the conv preset's 128×32×7×7 maps four
  times a step, about 0.9 ms of its profile): on the Xeon the training step and the pages' batched inference stayed
  within the noise in A/Bs (a step's median 29.5 against 29.8 ms; encoding 2,000 images 111 against 112 ms), so
  the model keeps its plain flatten.
- **Data parallelism over the two cores**: each core computes the gradients of half the batch with one intra-op
  thread, summed before the Adam step (the same gradients to 1e-6). On the Xeon the conv preset's forward and
  backward went from 28.8 to 26.8 ms a batch, since a batch of 64 on one thread took 27.7 ms, more than half of a
  batch of 128; the deep preset's steps fell from 24.2 k to 17.8 k samples/s. Not worth the second thread.
- **Two intra-op threads inside training jobs.** A job runs in a background thread; with two OpenMP threads
  there it trained the deep preset at about 18 k samples/s against 25 k with one (table "Concurrent
  training", first column), and any other work on the two cores (a page render, another job) makes a
  two-thread run collapse by 10–30× while a one-thread run slows gently (measured while other work ran:
  0.8 k samples/s with two threads against 15.9 k with one). So `aecore.jobs` gives each job one thread and
  lets as many jobs train at once as there are cores (`MAX_JOBS`, `THREADS_PER_JOB`), each ten steps nicer
  than the server (`JOB_NICENESS`), so that page runs go first where the cores are contended: with two conv jobs
  training on the Xeon, the Denoise slider's server run took 58 ms against 79 ms at equal priority. A direct
  `aecore.fit` call keeps torch's own thread count (both cores), which is faster when the machine is otherwise
  idle.

Targets not reached, and why:

- **3× the tutorial loop.** The tutorial loop's extra cost is the per-image PIL conversion and collation, about
  3 ms per batch; the rest of its step is the same eager float32 step as the plain loop. On the dense preset
  aecore.fit reaches or comes close to 3×; on the conv preset the convolutions dominate every loop's time, so
  removing the data path gains little and fit's lead comes from channels-last, the cheaper layer order and, where
  the CPU has it, bfloat16. On the Xeon 3× needs a step of about 27 ms at batch 128 (the tutorial loop's is about
  80 ms); fit's is 30–35 ms, of which the four convolutions take about 17 ms (the two thin ones, one channel in
  and four out, at a tenth of the others' rate) and max-pooling at 28×28 about 4 ms.
- **Half of the matrix-multiply rate.** The float32 path comes close to half of the float32 rate at batch
  128 (more at batch 1024); against that CPU's four times higher bfloat16 rate the bfloat16 path reaches a small
  fraction, because at batch 128 a dense step is bound by per-operation overhead (about 150 small operations, the casts
  and the loss below), not by arithmetic. On the Xeon, where fit trains in float32, the step's 17 products alone,
  run back to back, reach 77% of the float32 rate, and fit's whole step 25% at batch 128 (39–47% at batch 1024).
  A step written out by hand without autograd (`addmm`, in-place ReLU, the gradients' products written out, the
  fused Adam kernel called directly) reached 40–45% on fresh batches: the rest is per-operation overhead, some
  2–3 ms of a 4 ms step. Not kept: a second training path for one family of presets, and still short of half.
- **500 k samples/s on the GPU (dense, batch 128).** A bare loop replaying the same captured step reached 461 k
  samples/s on the H100 used (280–350 µs of GPU time per step whatever the number of steps per graph), so the
  step itself is the bound there; aecore.fit reaches about 445 k in steady epochs.

Known limits on that CPU:

- At batch 128 the dense step is bound by per-operation overhead (about 150 small operations), not by
  arithmetic: the achieved fraction of the bfloat16 matrix rate rises with the batch size (table above).
"""


def render(r: dict) -> str:
    """Return the Markdown report of a run's results (as run, or as read back from their JSON)."""
    s = r["sections"]
    if s.get("concurrency"):  # JSON turns the job counts into strings
        c = s["concurrency"]
        c["samples_per_s"] = {p: {int(n): v for n, v in by_n.items()} for p, by_n in c["samples_per_s"].items()}
    parts = ["# Performance\n",
             "Speed is a measured property of Autoencoder Explorer. This page is written by `python -m benchmarks` "
             "(`--quick` for a shorter run, under two minutes on two cores); numbers are medians of alternated runs "
             "in one process, and the machine's load is shown because other work on it slows everything.\n",
             _machine(r)]
    rows = targets(r)
    if rows:
        parts += ["## Targets\n", _table(["target", "measured", "holds"], rows)]
    sections = [("training", "## Training throughput: aecore.fit against a tutorial loop (a) and a plain loop (b)",
                 _training), ("ablation", "### What each technique gives", _ablation),
                ("precision", "### Precision and memory format by model", _precision),
                ("conv", "### The convolutional preset on a CPU", _conv),
                ("long", "### Long runs: denormal numbers", _long), ("cpu", "## Fraction of the CPU's limit", _cpu)]
    for key, title, fn in sections:
        if s.get(key):
            parts += [title + "\n", fn(s[key])]
    if s.get("projection") or s.get("umap"):
        parts += ["## Projection\n", _projection(s.get("projection") or [], s.get("umap"))]
    if s.get("concurrency"):
        parts += ["## Concurrent training\n", _concurrency(s["concurrency"])]
    if s.get("startup"):
        parts += ["## Cold start\n", _startup(s["startup"])]
    if r.get("gpu"):
        cpu_fit = {t["preset"]: t["samples_per_s"] for t in s.get("training") or [] if t["loop"] == "aecore.fit"}
        parts += ["## GPU\n", _gpu(r["gpu"], cpu_fit)]
    parts.append(NOTES)
    return "\n".join(parts)
