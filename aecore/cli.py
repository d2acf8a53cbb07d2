"""Command line: `python -m aecore train | eval | list`."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from .checkpoint import CheckpointError, load, read_card, save
from .data import load_dataset
from .latent import encode_dataset, factor_scores
from .metrics import evaluate, pca_mse
from .models import PRESETS, build_model, preset
from .train import TrainingDiverged, fit, pick_device

VAL_FRACTION = 0.1


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip()) if text.strip() else ()


def train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model and save it as .safetensors")
    p.add_argument("--dataset", required=True, help="digits, sprites, mnist, ..., idx:PATH or folder:PATH")
    p.add_argument("--preset", required=True, choices=sorted(PRESETS))
    p.add_argument("--split", default="train", choices=("train", "all"),
                   help="train: fit on the training split and report metrics on the held-out split")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    for flag, kind in (("--code-size", int), ("--hidden", _ints), ("--activation", str), ("--beta", float),
                       ("--sparsity", str), ("--sparsity-weight", float), ("--sparsity-rho", float)):
        p.add_argument(flag, type=kind, help="model option (overrides the preset)")
    for flag, kind in (("--epochs", int), ("--batch-size", int), ("--lr", float), ("--schedule", str),
                       ("--loss", str), ("--noise", str), ("--noise-level", float), ("--weight-decay", float),
                       ("--pretrain-epochs", int), ("--seed", int), ("--device", str), ("--precision", str)):
        p.add_argument(flag, type=kind, help="training option (overrides the preset)")


def _options(args, names) -> dict:
    values = {n: getattr(args, n) for n in names}
    out = {k: v for k, v in values.items() if v is not None}
    if out.get("activation") == "none":
        out["activation"] = None
    return out


def _train_val_test(name: str, split: str):
    if split == "train":
        train, heldout = load_dataset(name, "train"), load_dataset(name, "heldout")
    else:
        train, heldout = load_dataset(name, "all"), None
    train, val = train.split(1 - VAL_FRACTION, seed=0)
    return train, val, heldout if heldout is not None else val


def run_train(args) -> int:
    train, val, test = _train_val_test(args.dataset, args.split)
    model_opts = _options(args, ("code_size", "hidden", "activation", "beta", "sparsity", "sparsity_weight",
                                 "sparsity_rho"))
    train_opts = _options(args, ("epochs", "batch_size", "lr", "schedule", "loss", "noise", "noise_level",
                                 "weight_decay", "pretrain_epochs", "seed", "device", "precision"))
    model_spec, train_spec = preset(args.preset, train.shape, model_opts, train_opts)
    from tqdm import tqdm

    model = build_model(model_spec, seed=train_spec.seed)
    bar = tqdm(total=train_spec.epochs, desc=f"{args.preset} on {args.dataset}", unit="epoch", file=sys.stderr)

    def on_epoch(report):
        bar.update(1)
        bar.set_postfix(loss=f"{report['train']['total']:.4g}",
                        val=f"{report.get('val', {}).get('total', float('nan')):.4g}",
                        rate=f"{report['samples_per_s']:.0f}/s")

    t0 = time.perf_counter()
    history = fit(model, train, val, train_spec, on_epoch=on_epoch)
    bar.close()
    seconds = time.perf_counter() - t0
    metrics = evaluate(model, test)
    metrics["pca_mse"] = pca_mse(train.images, test.images, model_spec.code_size)
    metrics["split"] = "heldout" if args.split == "train" else "validation"
    if test.factors is not None:
        # how well single code dimensions track the true factors (sprites), so the card can say it
        metrics["factors"] = factor_scores(encode_dataset(model, test), test.factors)
    extra = {"preset": args.preset, "train_seconds": seconds, "device": str(pick_device(train_spec.device)),
             "command": "python -m aecore " + shlex.join(args.argv)}
    save(model, args.out, train_spec=train_spec, history=history, metrics=metrics, extra=extra,
         dataset={"name": args.dataset, "shape": list(train.shape), "classes": train.classes})
    print(json.dumps({k: metrics[k] for k in ("mse", "psnr", "ssim", "pca_mse")}), file=sys.stderr)
    return 0


def run_eval(args) -> int:
    model = load(args.file)
    data = load_dataset(args.dataset, args.split)
    if tuple(data.shape) != model.spec.input_shape:
        raise ValueError(f"The model takes images of shape {model.spec.input_shape}; {args.dataset} has {data.shape}.")
    metrics = evaluate(model, data)
    if args.json:
        print(json.dumps(metrics))
    else:
        for k, v in metrics.items():
            print(f"{k:>15}: {v:.6g}")
    return 0


def model_rows(folder) -> list[dict]:
    """Return one summary row per .safetensors model in a folder (read from metadata, no weights loaded)."""
    rows = []
    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with open(path, "rb") as f:
                head = f.read(8)
                card = read_card(head + f.read(int.from_bytes(head, "little")) if len(head) == 8 else head)
        except CheckpointError as e:
            rows.append({"file": path.name, "error": str(e)})
            continue
        spec, metrics = card["model_spec"], card["metrics"]
        rows.append({"file": path.name, "dataset": card["dataset"].get("name", "?"),
                     "type": card["extra"].get("preset", spec.arch), "code": spec.code_size,
                     "mse": metrics.get("mse"), "pca_mse": metrics.get("pca_mse"), "psnr": metrics.get("psnr"),
                     "ssim": metrics.get("ssim")})
    return rows


def run_list(args) -> int:
    rows = model_rows(args.folder)
    if not rows:
        print(f"No .safetensors models in {args.folder}.")
        return 0
    fmt = lambda v, p: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    print(f"{'file':40} {'dataset':22} {'type':10} {'code':>4} {'mse':>8} {'pca mse':>8} {'x pca':>6} "
          f"{'psnr':>6} {'ssim':>6}")
    for r in rows:
        if "error" in r:
            print(f"{r['file']:40} refused: {r['error']}")
            continue
        # a code as large as the image makes PCA exact (pca_mse ~ 0): no meaningful ratio then
        ratio = r["mse"] / r["pca_mse"] if r["mse"] is not None and (r["pca_mse"] or 0) > 1e-9 else None
        print(f"{r['file']:40} {r['dataset'][:22]:22} {r['type']:10} {r['code']:>4} {fmt(r['mse'], 5):>8} "
              f"{fmt(r['pca_mse'], 5):>8} {fmt(ratio, 2):>6} {fmt(r['psnr'], 2):>6} {fmt(r['ssim'], 3):>6}")
    return 0


def recipe_lines(path) -> list[list[str]]:
    """Return the argument lists of a recipe file: one `train ...` command per line, # starts a comment."""
    lines = []
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(shlex.split(line))
    return lines


def run_rebuild(args) -> int:
    lines = recipe_lines(args.recipe)
    extra = ["--device", args.device] if args.device else []
    for i, argv in enumerate(lines, 1):
        if args.only and not any(part in " ".join(argv) for part in args.only):
            continue
        print(f"[{i}/{len(lines)}] python -m aecore {shlex.join(argv)}", file=sys.stderr)
        status = main(argv + extra)
        if status:
            return status
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m aecore", description="Train, evaluate and list autoencoders.")
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser(sub)
    p = sub.add_parser("eval", help="print a model's metrics on a data set")
    p.add_argument("file")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="heldout", choices=("train", "heldout", "all"))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser("list", help="list the models in a folder")
    p.add_argument("folder", nargs="?", default="pretrained")
    p = sub.add_parser("rebuild", help="replay a recipe file: every model it lists is trained again")
    p.add_argument("recipe", nargs="?", default="pretrained/recipe.txt")
    p.add_argument("--device", help="train every model on this device (e.g. cuda)")
    p.add_argument("--only", nargs="*", help="replay only the lines containing one of these strings")
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        commands = {"train": run_train, "eval": run_eval, "list": run_list, "rebuild": run_rebuild}
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, TrainingDiverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _train_option_names() -> set[str]:
    """Return the spec fields that `python -m aecore train` takes as flags, read from its own parser."""
    sub = argparse.ArgumentParser().add_subparsers(dest="command")
    train_parser(sub)
    args = sub.choices["train"].parse_args(["--dataset", "-", "--preset", "conv", "--out", "-"])
    return set(vars(args)) - {"dataset", "preset", "split", "out"}


def run_overrides(preset_name: str, model_spec, train_spec) -> tuple[dict, dict]:
    """Return the (model, train) options that turn a preset into these specs; the code size is always named."""
    base_model, base_train = preset(preset_name, model_spec.input_shape)
    model = {k: getattr(model_spec, k) for k, v in model_spec.to_dict().items()
             if k == "code_size" or (k != "input_shape" and v != base_model.to_dict()[k])}
    # preset() shrinks the default code for tiny inputs only when no code size is given, so naming it keeps runs exact
    train = {k: getattr(train_spec, k) for k, v in train_spec.to_dict().items() if v != base_train.to_dict()[k]}
    return model, train


def _flag_value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def default_out(dataset: str, preset_name: str, code_size: int) -> str:
    """Return a readable file name for a trained model, e.g. digits-conv-z16.safetensors."""
    family = Path(dataset.split(":", 1)[-1]).name or "data"
    return f"{family}-{preset_name}-z{code_size}.safetensors"


def train_command(dataset: str, preset_name: str, model_spec, train_spec, out: str | None = None) -> str:
    """Return the `python -m aecore train ...` command that trains these specs on the same split the app uses."""
    model, train = run_overrides(preset_name, model_spec, train_spec)
    flags = _train_option_names()
    missing = sorted((set(model) | set(train)) - flags)
    if missing:
        raise ValueError(f"{missing[0]}: the command line has no flag for this option; use the Python lines instead")
    out = out or default_out(dataset, preset_name, model_spec.code_size)
    argv = ["train", "--dataset", dataset, "--preset", preset_name, "--split", "all"]
    for name, value in {**model, **train}.items():
        argv += ["--" + name.replace("_", "-"), _flag_value(value)]
    return "python -m aecore " + shlex.join(argv + ["--out", out])


def _call_args(options: dict) -> str:
    return "dict(" + ", ".join(f"{k}={v!r}" for k, v in options.items()) + ")"


def python_snippet(dataset: str, preset_name: str, model_spec, train_spec, max_train: int | None = None,
                   max_val: int | None = None, out: str | None = None) -> str:
    """Return the few lines of Python that train these specs on the same images the app uses and save the model."""
    model, train = run_overrides(preset_name, model_spec, train_spec)
    out = out or default_out(dataset, preset_name, model_spec.code_size)
    lines = ["import aecore as ae", "",
             f"ds = ae.load_dataset({dataset!r})",
             "train, val = ds.split(0.9, seed=0)"]
    if max_train:
        lines.append(f"train = train.subset(slice(0, {max_train}))")
    if max_val:
        lines.append(f"val = val.subset(slice(0, {max_val}))")
    lines += [f"model_spec, train_spec = ae.preset({preset_name!r}, ds.shape,",
              f"                                   model={_call_args(model)}"
              + (f",\n                                   train={_call_args(train)})" if train else ")"),
              "model = ae.build_model(model_spec, seed=train_spec.seed)",
              "history = ae.fit(model, train, val, train_spec)",
              f"ae.save(model, {out!r}, train_spec=train_spec, history=history,",
              f"        dataset={{'name': {dataset!r}, 'shape': list(ds.shape), 'classes': ds.classes}})"]
    return "\n".join(lines)
