"""Interaction latency: from a moved slider to the new picture, for the Denoise page's noise level and the VAE lab's
traversal. Measured on the server (the script run, with Streamlit's AppTest) and end to end in Debian's Chromium
(the slider moved with the keyboard, until the new image has loaded), alone and while two training jobs run in the
same server.

`python -m benchmarks.latency [--quick]` prints a table; `run(quick)` returns the numbers.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .common import ROOT, load_average, median, mnist_dir, pause

TARGETS_MS = {"server": 150, "chromium": 300, "chromium, 2 jobs training": 300}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    page: str  # the page file, as app.py's st.navigation names it
    nav: str  # its sidebar link
    heading: str
    model: str  # the sidebar's model
    slider: str  # a regular expression for the slider's label: the VAE's labels carry the KL, which varies


CASES = (
    Case("Denoise · Noise level", "app_pages/denoise.py", "Denoise", "Denoise",
         "pretrained: digits · denoising · code 8", r"Noise level"),
    Case("VAE lab · z1 traversal", "app_pages/vae_lab.py", "VAE lab", "VAE lab",
         "pretrained: digits · vae · code 2", r"z1 · KL .*"),
)


def p95(values) -> float:
    """Return the 95th percentile of the values (the nearest rank above)."""
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, -(-95 * len(ordered) // 100) - 1))])


def summary(ms: list[float], warm_up: int) -> dict:
    """Return the median and p95 (ms) of the moves after the warm-up ones, with the raw numbers."""
    kept = ms[warm_up:]
    return {"median_ms": median(kept), "p95_ms": p95(kept), "moves": len(kept),
            "all_ms": [round(v, 1) for v in ms]}


def walk(start: float, low: float, high: float, step: float, n: int) -> list[float]:
    """Return n slider values one step apart, from start up to high, down to low and up again, as ArrowRight and
    ArrowLeft would move it (so the AppTest and the browser visit the same values)."""
    values, v, direction = [], start, 1
    for _ in range(n):
        if not low - 1e-9 <= v + direction * step <= high + 1e-9:
            direction = -direction
        v = round(v + direction * step, 6)
        values.append(v)
    return values


# ---------------------------------------------------------------- (1) server side: AppTest


@contextmanager
def fragment_scoped(fragment_id: str | None):
    """Make AppTest's runs rerun only this fragment, as a real server does when a widget inside it changes."""
    from streamlit.testing.v1.local_script_runner import LocalScriptRunner

    if fragment_id is None:
        yield
        return
    original = LocalScriptRunner.request_rerun

    def scoped(self, rerun_data):
        return original(self, dataclasses.replace(rerun_data, fragment_id_queue=[fragment_id]))

    LocalScriptRunner.request_rerun = scoped
    try:
        yield
    finally:
        LocalScriptRunner.request_rerun = original


def image_urls(at) -> list[str]:
    """Return the media URLs of every st.image element in an AppTest's page."""
    urls = []
    for node in at.get("imgs"):
        urls += [img.url for img in node.proto.imgs]
    return urls


def find_slider(at, pattern: str):
    """Return the AppTest slider whose label matches the pattern."""
    found = [s for s in at.slider if re.fullmatch(pattern, s.label)]
    if not found:
        raise RuntimeError(f"no slider matches {pattern!r}: {[s.label for s in at.slider]}")
    return found[0]


def open_case(case: Case):
    """Return an AppTest of the whole app on the case's page with its model, run once (caches filled)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["dataset_label"] = "digits"
    at.session_state["model_label"] = case.model
    at.run()
    at.switch_page(case.page).run()
    if at.exception:
        raise RuntimeError(f"{case.page}: {[e.value for e in at.exception]}")
    return at


def server_side(case: Case, moves: int, warm_up: int, scope: str, log=print) -> dict:
    """Return the wall time of `slider.set_value(v).run()` per move: the whole script (AppTest's own way) or only
    the slider's fragment (what a real server reruns)."""
    at = open_case(case)
    fragments = list(at._fragment_storage._fragments)
    slider = find_slider(at, case.slider)
    values = walk(float(slider.value), slider.min, slider.max, slider.step, moves + warm_up)
    seen, ms, changed, new_level = {float(slider.value)}, [], 0, []
    fragment_id = fragments[0] if scope == "fragment" and len(fragments) == 1 else None
    if scope == "fragment" and fragment_id is None:
        raise RuntimeError(f"{case.page}: expected one fragment, found {len(fragments)}")
    with fragment_scoped(fragment_id):
        for v in values:
            before = image_urls(at)
            t0 = time.perf_counter()
            at = find_slider(at, case.slider).set_value(v).run()
            ms.append((time.perf_counter() - t0) * 1000)
            if at.exception:
                raise RuntimeError(f"{case.page} at {v}: {[e.value for e in at.exception]}")
            changed += image_urls(at) != before
            new_level.append(v not in seen)
            seen.add(v)
    out = summary(ms, warm_up)
    out.update(scope=scope, fragments=len(fragments), images_changed=changed, moves_total=len(values),
               new_values=sum(new_level[warm_up:]))
    log(f"  server, {scope:8} {case.name:24} median {out['median_ms']:6.1f} ms  p95 {out['p95_ms']:6.1f} ms "
        f"({out['moves']} moves, {changed}/{len(values)} changed the images)")
    return out
