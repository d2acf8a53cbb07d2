import threading

import pytest
import torch

import aecore as ae


@pytest.mark.parametrize("changes, field", [
    (dict(code_size=0), "code_size"),
    (dict(code_size=-3), "code_size"),
    (dict(hidden=(256, -1)), "hidden"),
    (dict(arch="conv", hidden=(16, 32, 64), input_shape=(1, 28, 28)), "input_shape"),
    (dict(code_size=100, input_shape=(1, 8, 8), hidden=()), "code_size"),
    (dict(activation="swish"), "activation"),
    (dict(bottleneck="variational", sparsity="l1"), "sparsity"),
    (dict(input_shape=(1, 100_000, 28)), "input_shape"),
])
def test_model_spec_validation_names_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        ae.ModelSpec(**changes)


@pytest.mark.parametrize("changes, field", [
    (dict(lr=-0.1), "lr"), (dict(lr=float("nan")), "lr"), (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"), (dict(noise="pink"), "noise"), (dict(noise_level=2.0), "noise_level"),
    (dict(loss="l1"), "loss"),
])
def test_train_spec_validation_names_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        ae.TrainSpec(**changes)


def test_sparse_model_may_be_overcomplete():
    spec = ae.ModelSpec(input_shape=(1, 8, 8), hidden=(), code_size=128, sparsity="l1")
    assert spec.code_size > spec.input_size


@pytest.mark.parametrize("name", sorted(ae.PRESETS))
def test_every_preset_builds_for_every_embedded_shape(name):
    for shape in [(1, 8, 8), (1, 28, 28), (1, 32, 32), (3, 32, 32)]:
        model_spec, _ = ae.preset(name, shape)
        model = ae.build_model(model_spec)
        assert sum(p.numel() for p in model.parameters()) == model_spec.param_count()
        x = torch.rand(3, *shape)
        out = model(x)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        assert model.encode(x).shape == (3, model_spec.code_size)


@pytest.mark.parametrize("name", sorted(ae.PRESETS))
def test_every_preset_learns_on_digits(name, digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset(name, train.shape, train=dict(epochs=8, batch_size=64, lr=3e-3))
    model = ae.build_model(model_spec)
    before = ae.evaluate_loss(model, val, train_spec)["reconstruction"]
    history = ae.fit(model, train, val, train_spec)
    after = history[-1]["val"]["reconstruction"]
    assert len(history) == 8
    assert after < 0.75 * before, (before, after)
    terms = set(history[-1]["train"])
    if model_spec.variational:
        assert "kl" in terms and history[-1]["train"]["kl"] > 0
    if model_spec.sparsity != "none":
        assert "sparsity" in terms
    assert history[-1]["samples_per_s"] > 0


def test_linear_autoencoder_matches_pca(digits):
    train, test = digits.split(0.8, seed=0)
    model_spec, train_spec = ae.preset("linear", train.shape, model=dict(code_size=8),
                                       train=dict(epochs=150, batch_size=256, lr=1e-2))
    model = ae.build_model(model_spec)
    ae.fit(model, train, None, train_spec)
    linear = ae.evaluate(model, test)["mse"]
    pca = ae.pca_mse(train.images, test.images, 8)
    assert abs(linear - pca) <= 0.05 * pca, (linear, pca)


def test_same_seed_repeats_a_run(digits_split):
    train, val = digits_split
    runs = []
    for _ in range(2):
        model_spec, train_spec = ae.preset("vae", train.shape, train=dict(epochs=2, seed=7))
        model = ae.build_model(model_spec, seed=7)
        runs.append((ae.fit(model, train, val, train_spec), model.state_dict()))
    assert runs[0][0][-1]["train"] == runs[1][0][-1]["train"]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_stop_event_ends_training_with_weights_so_far(digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset("deep", train.shape, train=dict(epochs=50))
    model = ae.build_model(model_spec)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    stop = threading.Event()
    reports = []

    def on_epoch(report):
        reports.append(report)
        stop.set()

    history = ae.fit(model, train, val, train_spec, on_epoch=on_epoch, stop=stop)
    assert len(history) == 1
    assert not torch.equal(start["head.weight"], model.state_dict()["head.weight"].cpu())  # fit may use a GPU
    report = reports[0]
    assert report["inputs"].shape == report["reconstructions"].shape == (8, 1, 8, 8)
    assert report["codes"].shape == (len(val), model_spec.code_size)


def test_diverging_run_stops_with_step_and_restores_weights(digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset("deep", train.shape, train=dict(epochs=3, lr=10.0))
    model = ae.build_model(model_spec)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ae.TrainingDiverged, match=r"step \d+.*lower learning rate"):
        ae.fit(model, train, val, train_spec)
    assert all(torch.equal(start[k], v.cpu()) for k, v in model.state_dict().items())
    assert torch.isfinite(model.cpu()(val.images[:4])).all()


def _val_total(model, val, spec):
    return ae.evaluate_loss(model, val, spec)["total"]


def test_a_run_that_diverges_later_keeps_its_best_epoch(digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset("deep", train.shape, train=dict(epochs=6, lr=3e-3))
    model = ae.build_model(model_spec)
    states = {}

    def wreck_after_three(report):
        states[report["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}
        if report["epoch"] == 3:  # blow the weights up, as a too-high learning rate would
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1e8)

    with pytest.raises(ae.TrainingDiverged, match=r"epoch 4.*restored to the end of epoch \d, the best so far") as e:
        ae.fit(model, train, val, train_spec, on_epoch=wreck_after_three)
    history = e.value.history
    best = ae.best_epoch(history)
    assert [h["epoch"] for h in history] == [1, 2, 3] and best == 3  # the loss fell every epoch
    assert all(torch.equal(states[best][k], v) for k, v in model.state_dict().items())
    assert _val_total(model, val, train_spec) == pytest.approx(history[best - 1]["val"]["total"], rel=1e-5)


def test_a_stopped_run_keeps_its_best_epoch(digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset("deep", train.shape, train=dict(epochs=50, lr=3e-3))
    model = ae.build_model(model_spec)
    stop = threading.Event()
    history = ae.fit(model, train, val, train_spec, on_epoch=lambda r: r["epoch"] == 4 and stop.set(), stop=stop)
    best = ae.best_epoch(history)
    assert len(history) == 4 and best is not None
    assert _val_total(model, val, train_spec) == pytest.approx(history[best - 1]["val"]["total"], rel=1e-5)


def test_best_epoch_prefers_validation_loss_and_skips_nan():
    history = [{"epoch": 1, "train": {"total": 1.0}, "val": {"total": 0.5}},
               {"epoch": 2, "train": {"total": 0.1}, "val": {"total": 0.7}},
               {"epoch": 3, "train": {"total": 0.1}, "val": {"total": float("nan")}}]
    assert ae.best_epoch(history) == 1
    assert ae.best_epoch([{k: v for k, v in h.items() if k != "val"} for h in history]) == 2
    assert ae.best_epoch([]) is None


def test_fit_refuses_what_cannot_train(digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset("deep", train.shape, train=dict(batch_size=10_000))
    with pytest.raises(ValueError, match="batch_size"):
        ae.fit(ae.build_model(model_spec), train, val, train_spec)
    model_spec, train_spec = ae.preset("deep", (1, 28, 28))
    with pytest.raises(ValueError, match="input_shape"):
        ae.fit(ae.build_model(model_spec), train, val, train_spec)
    model_spec, train_spec = ae.preset("conv", train.shape, train=dict(pretrain_epochs=2))
    with pytest.raises(ValueError, match="pretrain_epochs"):
        ae.fit(ae.build_model(model_spec), train, val, train_spec)


def test_layerwise_pretraining_gives_a_better_start(digits_split):
    train, val = digits_split
    losses = []
    for pretrain in (0, 5):
        model_spec, train_spec = ae.preset("deep", train.shape, model=dict(activation="elu"),
                                           train=dict(epochs=1, pretrain_epochs=pretrain, loss="mse"))
        model = ae.build_model(model_spec)
        losses.append(ae.fit(model, train, val, train_spec)[0]["val"]["reconstruction"])
    assert losses[1] < losses[0], losses


@pytest.mark.parametrize("kind", ["gaussian", "salt-pepper", "masking"])
def test_noise_corrupts_in_range(kind, digits):
    x = digits.images[:200]
    gen = torch.Generator().manual_seed(0)
    noisy = ae.add_noise(x, kind, 0.3, gen)
    assert noisy.shape == x.shape and noisy.min() >= 0 and noisy.max() <= 1
    changed = (noisy != x).float().mean().item()
    assert changed > 0.1
    if kind != "gaussian":
        assert changed <= 0.31
    assert torch.equal(ae.add_noise(x, kind, 0.0), x)


def test_denoising_model_beats_its_noisy_input(digits_split):
    train, val = digits_split
    model_spec, train_spec = ae.preset("denoising", train.shape, train=dict(epochs=30, batch_size=64, lr=3e-3))
    model = ae.build_model(model_spec)
    ae.fit(model, train, val, train_spec)
    noisy = ae.add_noise(val.images, "gaussian", 0.3, torch.Generator().manual_seed(1))
    denoised = ae.reconstruct(model, noisy)
    assert ae.psnr(denoised, val.images).mean() > ae.psnr(noisy, val.images).mean() + 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bce_matches_pytorchs_in_value_and_gradient(dtype):
    logits = (torch.randn(64, 1, 28, 28) * 4).to(dtype)  # saturated pixels too: |x| up to ~16
    target = torch.rand(64, 1, 28, 28)
    grads = []
    for loss in (ae.models.bce_with_logits_sum,
                 lambda x, t: torch.nn.functional.binary_cross_entropy_with_logits(x.float(), t, reduction="sum")):
        x = logits.clone().requires_grad_()
        value = loss(x, target)
        (3 * value).backward()
        grads.append((value.item(), x.grad))
    (mine, g_mine), (ref, g_ref) = grads
    assert mine == pytest.approx(ref, rel=1e-6)
    assert g_mine.dtype == dtype
    torch.testing.assert_close(g_mine.float(), g_ref.float(), rtol=0, atol=1e-6 if dtype == torch.float32 else 4e-3)


@pytest.mark.parametrize("name, shape", [("conv", (1, 28, 28)), ("conv-vae", (3, 32, 32)), ("denoising", (1, 8, 8))])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_sub_pixel_decoder_computes_the_decoder_as_written(name, shape, layout):
    """decode_logits runs each upsampling + 3x3 conv as one 2x2 convolution on the small image: the same outputs and
    gradients as the nn.Sequential run module by module, in either memory layout."""
    model_spec, _ = ae.preset(name, shape, model={"hidden": (8, 16, 4)[:2 if shape[1] < 32 else 3]})
    model = ae.build_model(model_spec, seed=3).to(memory_format=layout)
    z = torch.randn(6, model_spec.code_size)
    weights = torch.rand(6, *shape)
    results = []
    for decode in (model.decoder, model.decode_logits):
        model.zero_grad()
        out = decode(z)
        (out * weights).sum().backward()
        results.append((out, [p.grad.clone() for p in model.decoder.parameters()]))
    (ref, ref_grads), (mine, my_grads) = results
    assert mine.shape == ref.shape == (6, *shape)
    assert mine.is_contiguous(memory_format=layout)  # the next layer, and .view, see the layout they were given
    torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)
    for g_mine, g_ref in zip(my_grads, ref_grads):
        torch.testing.assert_close(g_mine, g_ref, rtol=1e-4, atol=1e-5 * g_ref.abs().max().item())  # sums of taps


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "tanh", "sigmoid", "gelu"])
def test_encoder_pooling_first_computes_the_encoder_as_written(activation):
    """encode pools before a non-decreasing activation (on a quarter of the pixels): the same codes and gradients as
    the nn.Sequential run module by module; GELU, which dips below zero, keeps the written order."""
    model_spec, _ = ae.preset("conv", (1, 28, 28), model={"activation": activation})
    model = ae.build_model(model_spec, seed=4)
    x = torch.rand(6, 1, 28, 28)
    x[0] = 0.0  # a blank image: all-zero windows, where ReLU's ties and zero gradients meet the pooling
    weights = torch.randn(6, model_spec.code_size)
    results = []
    for encode in (lambda x: model.head(model.encoder(x)), model.encode):
        model.zero_grad()
        code = encode(x)
        (code * weights).sum().backward()
        results.append((code, [p.grad.clone() for p in model.encoder.parameters()]))
    (ref, ref_grads), (mine, my_grads) = results
    torch.testing.assert_close(mine, ref, rtol=0, atol=0)
    for g_mine, g_ref in zip(my_grads, ref_grads):
        torch.testing.assert_close(g_mine, g_ref, rtol=0, atol=0)
