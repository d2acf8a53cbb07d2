"""Robustness of the engine: atomic saves, no pickle anywhere, checkpoint parsing that only ever refuses cleanly."""
import json
import re
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_tensors

import aecore as ae
from aecore import viz
from conftest import ROOT

SAVER = """
import sys, torch
sys.path.insert(0, {root!r})
import aecore as ae
from aecore import viz
spec = ae.ModelSpec(input_shape=(1, 28, 28), hidden=(1024, 512), code_size=32)
i = 0
while True:
    model = ae.build_model(spec, seed=i)
    ae.save(model, sys.argv[1], extra={{"i": i}})
    i += 1
    print(i, flush=True)
"""


def test_a_save_killed_midway_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "model.safetensors"
    ae.save(ae.build_model(ae.ModelSpec(input_shape=(1, 28, 28), hidden=(1024, 512), code_size=32)), path)
    script = tmp_path / "saver.py"
    script.write_text(SAVER.format(root=str(ROOT)))
    for delay in (0.6, 0.9, 1.3, 1.7):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # at least one save finished: the next ones are under way when we kill
        time.sleep(delay - 0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        model = ae.load(path)  # the file is always a whole model, the old or the new one
        assert model.spec.hidden == (1024, 512)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 4  # killed writers may leave their own temporary files, never a broken target


def test_no_code_path_unpickles():
    pattern = re.compile(r"torch\.load\(|pickle\.loads?\(|import pickle|from pickle|weights_only=False")
    offenders = [str(p.relative_to(ROOT)) for folder in ("aecore", "app_pages") for p in (ROOT / folder).rglob("*.py")
                 if pattern.search(p.read_text())]
    offenders += ["app.py"] if pattern.search((ROOT / "app.py").read_text()) else []
    assert offenders == []


def test_no_page_renders_html_but_escaped_picture_grids():
    # HTML in a page could bring a file or run name into it as markup. The exceptions: the pictures that
    # aecore.viz.labelled_rows_html and picture_grid_html lay out, whose labels they escape, and the layout rules of
    # app_pages.common.flex_style, made of a checked key and integers only (tests below)
    pattern = re.compile(r"unsafe_allow_html\s*=\s*True|st\.html\((?!viz\.(labelled_rows|picture_grid)_html\(|flex_style\()|"
                         r"components\.v1\.html|components\.html\(")
    pages = [ROOT / "app.py", *(ROOT / "app_pages").rglob("*.py")]
    assert [str(p.relative_to(ROOT)) for p in pages if pattern.search(p.read_text())] == []


def test_flex_style_is_made_of_a_plain_key_and_integers_only():
    from app_pages.common import flex_style
    assert flex_style("lat_columns", (420, 280)) == (
        "<style>.st-key-lat_columns > :has(> .st-key-lat_columns-0) { flex: 420 1 420px; } "
        ".st-key-lat_columns > :has(> .st-key-lat_columns-1) { flex: 280 1 280px; }</style>")
    for key, widths in [("x} body { display: none", (1,)), ("Row", (1,)), ("row", (0,)), ("row", ("1px; color: red",))]:
        with pytest.raises(ValueError, match="plain key"):
            flex_style(key, widths)


def test_picture_rows_escape_their_labels():
    hostile = '<img src=x onerror="alert(1)">'
    html = viz.labelled_rows_html({hostile: np.zeros((2, 2, 3), np.uint8), "plain": np.ones((2, 2, 3), np.uint8)})
    assert hostile not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert html.count("<img ") == 2 and html.count('src="data:image/png;base64,') == 2  # the two pictures, no more


def test_picture_grids_escape_their_captions():
    hostile = '<img src=x onerror="alert(1)">'
    pictures = [np.zeros((2, 2, 3), np.uint8)] * 3
    html = viz.picture_grid_html(pictures, [f"#1 · {hostile}\n3.0 dB", "#2\n4.0 dB", "#3"])
    assert hostile not in html and "#1 · &lt;img src=x onerror=&quot;alert(1)&quot;&gt;<br>3.0 dB" in html
    assert html.count("<img ") == 3 and html.count("<figcaption") == 3
    assert viz.picture_grid_html(pictures).count("<figcaption") == 0  # no captions, no empty lines under pictures


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_are_refused_cleanly(data):
    try:
        ae.load(data)
    except ae.CheckpointError:
        pass


def _file_with_card(card) -> bytes:
    body = save_tensors({"w": torch.zeros(2)}, metadata={"aecore": json.dumps(card)})
    return body


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)
spec_fields = st.fixed_dictionaries({}, optional={
    "input_shape": st.lists(st.integers(-5, 10**7), max_size=4) | json_values,
    "arch": st.sampled_from(["dense", "conv", "other"]) | json_values,
    "code_size": st.integers(-10, 10**10) | json_values,
    "hidden": st.lists(st.integers(-10, 10**6), max_size=10) | json_values,
    "activation": st.sampled_from(["relu", None, "x"]) | json_values,
    "bottleneck": st.sampled_from(["deterministic", "variational"]) | json_values,
    "beta": st.floats() | json_values,
    "sparsity": st.sampled_from(["none", "l1", "kl"]) | json_values,
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=spec_fields, train=st.dictionaries(st.sampled_from(["lr", "epochs", "loss", "noise", "x"]), json_values),
       history=json_values)
def test_arbitrary_metadata_is_refused_or_loaded_never_crashes(spec, train, history):
    card = {"format": "aecore/1", "model_spec": spec, "train_spec": train, "history": history}
    try:
        ae.load(_file_with_card(card))
    except ae.CheckpointError:
        pass


def test_header_claiming_a_huge_length_is_refused():
    data = struct.pack("<Q", 2**63) + b"{}"
    try:
        ae.load(data)
    except ae.CheckpointError as e:
        assert "header" in str(e)
    else:
        raise AssertionError("a huge header length was accepted")


def test_every_cache_with_arguments_has_a_size_limit():
    import ast

    unbounded = []
    for path in [ROOT / "app.py", *(ROOT / "app_pages").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                call = deco if isinstance(deco, ast.Call) else None
                name = ast.unparse(call.func if call else deco)
                if name not in ("st.cache_data", "st.cache_resource"):
                    continue
                # a cache without arguments holds one entry; one with arguments grows with them unless limited
                limited = call is not None and any(k.arg == "max_entries" for k in call.keywords)
                if node.args.args and not limited:
                    unbounded.append(f"{path.name}:{node.name}")
    assert unbounded == []


def test_no_two_widgets_share_a_key():
    """Streamlit refuses a second widget with a key already drawn in the run (a page and the sidebar share runs), so
    a written-out key may appear once in the app; keys built from values (f-strings) are left out."""
    import ast

    seen = {}
    for path in [ROOT / "app.py", *(ROOT / "app_pages").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                for k in node.keywords:
                    if k.arg == "key" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str):
                        seen.setdefault(k.value.value, []).append(f"{path.name}:{node.lineno}")
    assert {key: where for key, where in seen.items() if len(where) > 1} == {}
