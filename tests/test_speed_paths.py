"""The speed paths of aecore.fit (bfloat16 autocast, channels-last conv) train the same models as the plain path.

The CUDA-graph path needs a GPU; its equivalence with eager training is an output of `python -m benchmarks.gpu`.
"""
import subprocess
import sys
import threading

import pytest
import torch

import aecore as ae
from aecore import train as aetrain


def _fit(model_spec, train, val, **options):
    model = ae.build_model(model_spec, seed=0)
    history = ae.fit(model, train, val, ae.TrainSpec(epochs=12, batch_size=64, lr=3e-3, **options))
    return history, model


def test_adam_moments_never_turn_denormal_in_a_job_thread(digits_split, monkeypatch):
    """Moments of weights whose gradient went to zero decay below float32's normal range after ~800 steps of
    Adam; computing on denormals is many times slower, so fit flushes them to zero in the thread it trains in
    (as the app's jobs do) and hands the thread back with its own setting."""
    train, _ = digits_split
    optimizers, make = [], aetrain._optimizer
    monkeypatch.setattr(aetrain, "_optimizer", lambda *a: optimizers.append(make(*a)) or optimizers[-1])
    model = ae.build_model(ae.ModelSpec(input_shape=train.shape, hidden=(64,), code_size=8), seed=0)
    after = []

    def job_in_a_thread_that_keeps_denormals():
        torch.set_flush_denormal(False)
        ae.fit(model, train, None, ae.TrainSpec(epochs=30, batch_size=32))
        after.append((torch.tensor(1e-30) * 1e-10).item())

    job = threading.Thread(target=job_in_a_thread_that_keeps_denormals)
    job.start()
    job.join()
    # read the bits: where denormals are flushed, comparing floats would see them as zero
    bits = [s[k].view(torch.int32) for s in optimizers[0].state.values() for k in ("exp_avg", "exp_avg_sq")]
    assert sum(int(((b & 0x7F800000) != 0).sum()) for b in bits) > 0  # normal, non-zero moments
    assert sum(int((((b & 0x7F800000) == 0) & ((b & 0x007FFFFF) != 0)).sum()) for b in bits) == 0
    assert after[0] > 0  # the thread computes with denormals again, as it did before fit


@pytest.mark.parametrize("name", ["deep", "conv"])
def test_bfloat16_reaches_the_float32_loss_on_digits(name, digits_split):
    train, val = digits_split
    model_spec, _ = ae.preset(name, train.shape)
    (h32, _), (h16, model) = (_fit(model_spec, train, val, precision=p) for p in ("fp32", "bf16"))
    fp32, bf16 = h32[-1]["val"]["total"], h16[-1]["val"]["total"]
    assert abs(bf16 - fp32) / fp32 < 0.02, (fp32, bf16)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps float32 weights


@pytest.fixture(scope="module")
def sprites_split():
    return ae.load_dataset("sprites", n=600).split(0.8, seed=0)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_inference_batches_go_channels_last_where_fit_trains_so(shape, monkeypatch):
    # oneDNN runs a conv on a channels-last batch 2-3x faster; a one-channel batch needs its strides set, since
    # `contiguous` already takes its standard strides for channels-last
    model = ae.build_model(ae.preset("conv", shape)[0], seed=0)
    x = torch.rand(40, *shape)
    c, h, w = shape

    def strides_seen():
        return aetrain.in_batches(model, lambda b: torch.tensor([b.stride()] * len(b)), x)[0].tolist()

    assert strides_seen() == [c * h * w, 1, w * c, c]
    fast = ae.encode_dataset(model, x), ae.reconstruct(model, x)
    monkeypatch.setattr(aetrain, "use_channels_last", lambda device, spec: False)
    assert strides_seen() == [c * h * w, h * w, w, 1]
    plain = ae.encode_dataset(model, x), ae.reconstruct(model, x)
    for a, b in zip(fast, plain):
        assert a.is_contiguous()  # the results come back in the standard layout
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,shape", [("vae", (1, 8, 8)), ("conv", (1, 28, 28))])
def test_evaluate_loss_is_the_whole_sets_loss_whatever_the_batches_and_layout(name, shape):
    # 1,500 images: a full batch of EVAL_BATCH and a shorter one; the conv model's batches go channels-last
    model = ae.build_model(ae.preset(name, shape)[0], seed=0).train()
    x = torch.rand(1500, *shape, generator=torch.Generator().manual_seed(0))
    terms = ae.evaluate_loss(model, x, ae.TrainSpec(loss="bce"))
    assert model.training  # handed back in the mode it came in
    with torch.no_grad():
        whole = model.eval().loss(x, x, "bce")
    assert terms.keys() == whole.keys()
    for k, v in whole.items():
        assert terms[k] == pytest.approx(float(v), rel=1e-5), k
    assert ae.metrics.evaluate(model, x).get("kl") == (terms["kl"] if name == "vae" else None)


def test_channels_last_gives_the_same_losses_and_hands_back_a_standard_model(sprites_split, monkeypatch):
    train, val = sprites_split
    model_spec, _ = ae.preset("conv", train.shape)
    assert aetrain.use_channels_last(torch.device("cpu"), model_spec)  # 32x32 conv: big enough for the fast path
    fast, fast_model = _fit(model_spec, train, val, precision="fp32")
    monkeypatch.setattr(aetrain, "use_channels_last", lambda device, spec: False)
    plain, plain_model = _fit(model_spec, train, val, precision="fp32")
    # the same arithmetic in another order: equal at first, then rounding differences grow as training goes on
    assert fast[0]["train"]["total"] == pytest.approx(plain[0]["train"]["total"], rel=1e-4)
    assert fast[-1]["val"]["total"] == pytest.approx(plain[-1]["val"]["total"], rel=0.02)
    assert all(p.is_contiguous() for p in fast_model.parameters())
    assert not fast_model.training


def test_auto_precision_uses_bfloat16_only_for_models_big_enough(monkeypatch):
    monkeypatch.setattr(aetrain, "_cpu_has_bf16", lambda: True)
    cpu = torch.device("cpu")
    assert aetrain.use_bfloat16(cpu, ae.preset("deep", (1, 28, 28))[0])
    assert aetrain.use_bfloat16(cpu, ae.preset("conv", (1, 28, 28))[0])
    assert not aetrain.use_bfloat16(cpu, ae.preset("vanilla", (1, 28, 28))[0])
    assert not aetrain.use_bfloat16(cpu, ae.preset("deep", (1, 8, 8))[0])
    assert not aetrain.use_bfloat16(torch.device("cuda"), ae.preset("deep", (1, 28, 28))[0])
    monkeypatch.setattr(aetrain, "_cpu_has_bf16", lambda: False)
    assert not aetrain.use_bfloat16(cpu, ae.preset("deep", (1, 28, 28))[0])


def test_multiply_adds_count_the_layers():
    dense = ae.ModelSpec(input_shape=(1, 28, 28), hidden=(256, 128), code_size=32)
    assert aetrain.multiply_adds(dense) == 2 * (784 * 256 + 256 * 128 + 128 * 32)
    conv = ae.ModelSpec(input_shape=(1, 28, 28), arch="conv", hidden=(16, 32), code_size=32)
    convs = 9 * 1 * 16 * 28 * 28 + 9 * 16 * 32 * 14 * 14
    assert aetrain.multiply_adds(conv) == 2 * (convs + 32 * 7 * 7 * 32)


def test_graph_path_is_chosen_only_on_cuda_without_noise():
    spec = ae.TrainSpec()
    assert not aetrain.use_cuda_graph(torch.device("cpu"), spec, False)
    assert aetrain.use_cuda_graph(torch.device("cuda"), spec, False)
    assert not aetrain.use_cuda_graph(torch.device("cuda"), ae.TrainSpec(noise="gaussian", noise_level=0.3), False)
    assert not aetrain.use_cuda_graph(torch.device("cuda"), spec, True)


@pytest.mark.parametrize("hidden", [(256, 128), (64,), ()])
def test_the_benchmarks_step_flops_are_what_torch_counts(hidden):
    # the CPU-limit benchmark's fraction divides by this count: it must be the products a step really computes
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.cpu_limit import dense_step_flops

    spec = ae.ModelSpec(input_shape=(1, 28, 28), arch="dense", hidden=hidden, code_size=32)
    model, x = ae.build_model(spec, seed=0), torch.rand(128, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        model.loss(x, x, "bce")["total"].backward()
    products = sum(n for op, n in counter.get_flop_counts()["Global"].items() if "mm" in str(op))
    assert products == dense_step_flops(spec, 128)


@pytest.mark.parametrize("name", ["deep", "conv"])
def test_the_benchmarks_reference_loops_compute_the_models_loss(name):
    # the tutorial and plain loops train with PyTorch's own loss: it must be model.loss's value and gradient, so
    # that the benchmark races the same training and only the way of computing it differs
    from benchmarks.training import builtin_loss

    x = ae.load_dataset("sprites", n=64).images
    model = ae.build_model(ae.preset(name, tuple(x.shape[1:]))[0], seed=0).train()
    theirs, ours = builtin_loss(model, x), model.loss(x, x, "bce")["total"]
    assert torch.allclose(theirs, ours, rtol=1e-5)
    for g_theirs, g_ours in zip(torch.autograd.grad(theirs, list(model.parameters())),
                                torch.autograd.grad(ours, list(model.parameters()))):
        assert torch.allclose(g_theirs, g_ours, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("collecting", [True, False])
def test_import_leaves_the_collector_as_it_was_and_loads_nothing_heavy(collecting):
    """`import aecore` pauses the cyclic collector while it imports torch (a fifth of the import's time) and hands
    it back as it found it; projections and figures are imported when first used."""
    code = ("import gc, json, sys\n" + ("" if collecting else "gc.disable()\n") + "import aecore\n"
            "heavy = ('umap', 'numba', 'openTSNE', 'sklearn.manifold', 'streamlit', 'plotly')\n"
            "print(json.dumps([gc.isenabled(), [m for m in heavy if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [f"[{str(collecting).lower()},", "[]]"]
