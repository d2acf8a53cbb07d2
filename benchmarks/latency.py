"""Interaction latency: from a moved slider to the new picture, for the Denoise page's "Noise level" and the VAE lab's
traversal ("z1 · KL …"), both sliders inside an st.fragment, on the embedded digits with pretrained models.

(1) On the server, with Streamlit's AppTest: the script thread's time per move, rerunning only the slider's fragment
    (what a real server does; AppTest by itself cannot, so the run is scoped the way the server scopes it) and the
    whole script (an upper bound). Where runner.postScriptGC is on, the full gc.collect() a real server's script
    thread then does is timed too and added: it holds the GIL, so the run's last messages wait for it.
(2) End to end in Debian's Chromium against `streamlit run app.py`: the slider's thumb is focused and moved with
    ArrowRight/ArrowLeft; a move ends when the run has ended and every image on the page has loaded, one of them new
    (times taken inside the page with performance.now(): the key press, the app's script-state attribute, image
    loads, the WebSocket's messages).
(3) The same while two training jobs (conv on MNIST, 100 epochs) run in the same server, started from two other
    browser sessions on the Train page, which then go to Home (their live view would only add their own browsers'
    drawing on this machine; the jobs keep training, which is checked at the end).

The slider walks up from its start to its end and back, so the Denoise page meets new levels first (a cache miss in
its per-level metrics) and then revisited ones; both are reported apart.
Targets (issue 10, items 4 and 5): server median < 150 ms, Chromium median < 300 ms, with two jobs < 300 ms.

`python -m benchmarks.latency [--quick] [--case Denoise] [--option runner.postScriptGC=false] [--json FILE]
[--profile]` prints a table; `run(quick)` returns the numbers. Take the lock other benchmarks take and run it alone:
every number here moves with other load on the machine (each scenario records the load average).
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import pstats
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .common import ROOT, environment, load_average, machine, median, mnist_dir, pause, server_pid

TARGETS_MS = {"server": 150, "chromium": 300, "chromium, 2 jobs": 300}
SETTINGS = {True: {"moves": 10, "warm_up": 2, "scopes": ("fragment",), "epochs": 100},
            False: {"moves": 24, "warm_up": 2, "scopes": ("fragment", "script"), "epochs": 100}}


@dataclasses.dataclass(frozen=True)
class Case:
    """A slider to move: where it is and which model the sidebar shows meanwhile."""

    name: str
    page: str  # the page file, as app.py's st.navigation names it
    nav: str  # its sidebar link, which is also its title heading
    model: str  # the sidebar's model
    slider: str  # a regular expression for the slider's label (the VAE's labels carry the KL of the dimension)
    tab: str | None = None  # the st.tabs tab the slider sits in


CASES = (
    Case("Denoise · Noise level", "app_pages/denoise.py", "Denoise", "pretrained: digits · denoising · code 8",
         r"Noise level"),
    Case("VAE lab · z1 traversal", "app_pages/vae_lab.py", "VAE lab", "pretrained: digits · vae · code 2",
         r"z1 · KL .*", tab="Traverse"),
)


def p95(values) -> float:
    """Return the 95th percentile of the values (nearest rank)."""
    ordered = sorted(values)
    return float(ordered[max(0, -(-95 * len(ordered) // 100) - 1)])


def summary(ms: list[float], warm_up: int) -> dict:
    """Return the median and p95 (ms) of the moves after the warm-up ones, and every move's time."""
    kept = ms[warm_up:]
    return {"median_ms": median(kept), "p95_ms": p95(kept), "moves": len(kept), "all_ms": [round(v, 1) for v in ms]}


def walk(start: float, low: float, high: float, step: float, n: int) -> list[float]:
    """Return n slider values one step apart, from start up to high, then down to low and so on, as ArrowRight and
    ArrowLeft move it (so AppTest and the browser visit the same values, new ones first, then revisited ones)."""
    values, v, direction = [], start, 1
    for _ in range(n):
        if not low - 1e-9 <= v + direction * step <= high + 1e-9:
            direction = -direction
        v = round(v + direction * step, 6)
        values.append(v)
    return values


def split_by_visit(ms: list[float], values: list[float], seen: set) -> dict:
    """Return the median ms of the moves to a value not seen before and to one seen before (cached results)."""
    seen, new, old = set(seen), [], []
    for t, v in zip(ms, values):
        (old if v in seen else new).append(t)
        seen.add(v)
    return {"new_value_median_ms": median(new) if new else None, "new_values": len(new),
            "seen_value_median_ms": median(old) if old else None, "seen_values": len(old)}


# ---------------------------------------------------------------- (1) server side: AppTest


@dataclasses.dataclass
class Probe:
    """What instrumented() records: each run's ms in the script thread and in the post-run gc.collect()."""

    script_ms: list = dataclasses.field(default_factory=list)
    gc_ms: list = dataclasses.field(default_factory=list)
    profiler: cProfile.Profile | None = None  # switched on around each script run while set


@contextmanager
def instrumented(fragment_id: str | None, probe: Probe):
    """Within: AppTest reruns only this fragment (None: the whole script), as a real server does when a widget inside
    the fragment changes; each run's time in the script thread goes to the probe, under its profiler if set, and so
    does the time of the full garbage collection a real server's script thread does after every run (Streamlit's
    runner.postScriptGC; AppTest leaves it out), which holds the GIL so the run's last messages wait for it."""
    import gc

    from streamlit import config
    from streamlit.testing.v1 import local_script_runner as lsr

    make_rerun_data, run_script = lsr.RerunData, lsr.LocalScriptRunner._run_script

    def scoped(**kwargs):
        # both of AppTest's requests (the runner's first one and the run's own) must name the fragment, or they
        # coalesce into a full rerun
        return make_rerun_data(**kwargs, fragment_id_queue=[fragment_id])

    def timed(self, rerun_data):
        profiler = probe.profiler
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        try:
            return run_script(self, rerun_data)
        finally:
            t1 = time.perf_counter()
            probe.script_ms.append((t1 - t0) * 1000)
            if config.get_option("runner.postScriptGC"):
                gc.collect(2)
                probe.gc_ms.append((time.perf_counter() - t1) * 1000)
            if profiler is not None:
                profiler.disable()

    lsr.LocalScriptRunner._run_script = timed
    if fragment_id is not None:
        lsr.RerunData = scoped
    try:
        yield
    finally:
        lsr.RerunData, lsr.LocalScriptRunner._run_script = make_rerun_data, run_script


def image_urls(at) -> list[str]:
    """Return the media URLs of every st.image on an AppTest's page, and the HTML of every st.html (where the Denoise
    page's pictures are, as data URLs)."""
    return [img.url for node in at.get("image") for img in node.proto.imgs] + [n.proto.body for n in at.get("html")]


def find_slider(at, pattern: str):
    """Return the AppTest slider whose label matches the pattern."""
    found = [s for s in at.slider if re.fullmatch(pattern, s.label)]
    if not found:
        raise RuntimeError(f"no slider matches {pattern!r}: {[s.label for s in at.slider]}")
    return found[0]


def open_case(case: Case):
    """Return an AppTest of the whole app on the case's page with its model, run once (its caches filled)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()  # each case meets new slider values first, as on a fresh server
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["dataset_label"] = "digits"
    at.session_state["model_label"] = case.model
    at.run()
    at.switch_page(case.page).run()
    if at.exception:
        raise RuntimeError(f"{case.page}: {[e.value for e in at.exception]}")
    return at


def server_side(case: Case, moves: int, warm_up: int, scope: str, profiler=None, log=print) -> dict:
    """Return the script thread's time per slider move, rerunning the slider's fragment or the whole script, with
    AppTest's wall time around `slider.set_value(v).run()` (which adds AppTest's own set-up and parsing)."""
    with environment(AECORE_WARM_UP="0"):  # no UMAP compiling in this process meanwhile
        at = open_case(case)
        fragments = list(at._fragment_storage._fragments)
        if scope == "fragment" and len(fragments) != 1:
            raise RuntimeError(f"{case.page}: expected one fragment, found {len(fragments)}")
        slider = find_slider(at, case.slider)
        start = float(slider.value)
        values = walk(start, slider.min, slider.max, slider.step, moves + warm_up)
        probe, wall_ms, changed = Probe(), [], 0
        with instrumented(fragments[0] if scope == "fragment" else None, probe):
            for i, v in enumerate(values):
                before = image_urls(at)
                t0 = time.perf_counter()
                at = find_slider(at, case.slider).set_value(v).run()
                wall_ms.append((time.perf_counter() - t0) * 1000)
                if at.exception:
                    raise RuntimeError(f"{case.page} at {v}: {[e.value for e in at.exception]}")
                changed += image_urls(at) != before
                if i + 1 == warm_up:
                    probe.profiler = profiler  # the warm-up moves stay out of the profile
    gc_ms = probe.gc_ms or [0.0] * len(probe.script_ms)
    out = summary([a + b for a, b in zip(probe.script_ms, gc_ms)], warm_up)
    out.update(scope=scope, fragment=bool(fragments), run_median_ms=median(probe.script_ms[warm_up:]),
               post_run_gc_median_ms=median(gc_ms[warm_up:]), apptest_wall_median_ms=median(wall_ms[warm_up:]),
               moves_that_changed_images=changed, values=values[warm_up:],
               **split_by_visit(probe.script_ms[warm_up:], values[warm_up:], {start, *values[:warm_up]}))
    log(f"  server, {scope:8} {case.name:24} median {out['median_ms']:6.1f} ms  p95 {out['p95_ms']:6.1f} ms  "
        f"(the run {out['run_median_ms']:.1f} ms + Streamlit's post-run gc.collect "
        f"{out['post_run_gc_median_ms']:.1f} ms; {changed}/{len(values)} moves changed the images)")
    return out


def profile(case: Case, moves: int = 12, scope: str = "fragment", top: int = 30) -> str:
    """Return cProfile's report (cumulative time) of the script thread over the case's fragment (or script) runs."""
    profiler = cProfile.Profile()
    server_side(case, moves, 2, scope, profiler=profiler, log=lambda s: None)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


# ---------------------------------------------------------------- (2, 3) end to end: Debian's Chromium

# Installed before the app loads: the times (performance.now()) of the last key press, of the run's start and end
# (the app's data-test-script-state attribute), of the first and last image loaded after the key press, and of the
# first message sent and the first and last received on Streamlit's WebSocket after it.
PROBE_JS = """(() => {
    const lat = window.__lat = {};
    let observed = null;
    const watch = () => {  // the app's element, observed afresh should React have replaced it
        const app = document.querySelector('[data-testid="stApp"]');
        if (!app || app === observed) return;
        observed = app;
        new MutationObserver(() => {
            if (!lat.key || app !== observed) return;
            const running = app.getAttribute('data-test-script-state') === 'running';
            if (running) lat.runStart = lat.runStart || performance.now();
            else if (lat.runStart) lat.runEnd = performance.now();
        }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
    };
    document.addEventListener('keydown', () => {
        watch();
        Object.assign(lat, {key: performance.now(), runStart: 0, runEnd: 0, imgFirst: 0, imgLast: 0, sent: 0,
                            recvFirst: 0, recvLast: 0});
    }, true);
    document.addEventListener('load', e => {
        if (e.target.tagName !== 'IMG' || !lat.key) return;
        lat.imgLast = performance.now();
        lat.imgFirst = lat.imgFirst || lat.imgLast;
    }, true);
    const Native = window.WebSocket, send = Native.prototype.send;
    Native.prototype.send = function (data) {
        if (lat.key && !lat.sent) lat.sent = performance.now();
        return send.call(this, data);
    };
    window.WebSocket = new Proxy(Native, {construct(target, args) {
        const ws = new target(...args);
        ws.addEventListener('message', () => {
            if (!lat.sent) return;
            lat.recvLast = performance.now();
            lat.recvFirst = lat.recvFirst || lat.recvLast;
        });
        return ws;
    }});
})();"""
# the pictures of the page: st.image's, and those inside st.html (the Denoise page draws its rows of pictures so)
PICTURES = '[data-testid="stImage"] img, [data-testid="stHtml"] img'
IMAGES_JS = f"() => [...document.querySelectorAll('{PICTURES}')].map(i => i.src)"
# Done: the run has ended, every image has loaded and one has a new source (or, where the picture did not change,
# a second has passed since the run ended). Should the attribute's change be missed, the last image load ends it.
DONE_JS = """(before) => {
    const lat = window.__lat, now = performance.now();
    const imgs = [...document.querySelectorAll('%PICTURES%')];
    const app = document.querySelector('[data-testid="stApp"]');
    if (!imgs.every(i => i.complete && i.naturalWidth > 0)) return false;
    const changed = imgs.length !== before.length || imgs.some((img, k) => img.src !== before[k]);
    const idle = app.getAttribute('data-test-script-state') !== 'running';
    const ended = lat.runEnd || (idle && changed && lat.imgLast && now - lat.imgLast > 500 ? lat.imgLast : 0);
    if (!ended || (!changed && now - ended < 1000)) return false;
    return {...lat, runEnd: ended, changed};
}""".replace("%PICTURES%", PICTURES)


@contextmanager
def streamlit_options(options: dict[str, str]):
    """Set Streamlit config options within, for AppTest in this process and, through their STREAMLIT_... environment
    variables, for a server started inside (e.g. {"runner.postScriptGC": "false"}, to try a setting before adopting it
    in .streamlit/config.toml)."""
    from streamlit import config

    known = config.get_config_options()
    saved = {key: config.get_option(key) for key in options}
    for key, text in options.items():
        config.set_option(key, _parse(text, type(known[key].value)))
    try:
        with environment(**{known[key].env_var: text for key, text in options.items()}):
            yield
    finally:
        for key, value in saved.items():
            config.set_option(key, value)


def _parse(text: str, kind: type):
    if kind is bool:
        return text.strip().lower() in ("1", "true", "yes", "on")
    return kind(text) if kind in (int, float) else text


def browser_util():
    """Return tests/browser_util.py: the real-browser test's server and Playwright helpers."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import browser_util as bu
    finally:
        sys.path.remove(str(ROOT / "tests"))
    return bu


def cpu_seconds(pid: int | None) -> float:
    """Return the CPU seconds a process has used so far (its threads that ended included), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser_case(page, case: Case, moves: int, warm_up: int, pid: int | None = None) -> dict:
    """Open the case's page with its model, move its slider with the keyboard and time each move until the new
    picture has loaded; return the summary of these times and where they went."""
    bu = browser_util()
    bu.open_page(page, case.nav, case.nav)
    bu.choose(page, "Model", case.model)
    bu.wait_heading(page, case.nav)
    if case.tab:
        page.get_by_role("tab", name=case.tab).click()
        bu.wait_idle(page)
    thumb = page.get_by_role("group", name=re.compile(f"^{case.slider}$")).get_by_role("slider").first
    thumb.wait_for(timeout=30_000)
    start = float(thumb.input_value())
    low, high, step = (float(thumb.get_attribute(a)) for a in ("min", "max", "step"))
    values = walk(start, low, high, step, moves + warm_up)
    thumb.focus()
    rows, previous, cpu, wall = [], start, 0.0, 0.0
    for i, v in enumerate(values):
        before = page.evaluate(IMAGES_JS)
        if i == warm_up:
            cpu, wall = cpu_seconds(pid), time.perf_counter()
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight" if v > previous else "ArrowLeft")
        done = page.wait_for_function(DONE_JS, arg=before, polling=25, timeout=60_000).json_value()
        done["python_ms"] = (time.perf_counter() - t0) * 1000
        if abs(float(thumb.input_value()) - v) > 1e-6:
            raise RuntimeError(f"{case.name}: the slider shows {thumb.input_value()}, expected {v}")
        rows.append(done)
        previous = v
        page.wait_for_timeout(150)  # one move at a time: the next key press once this one has settled
    cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
    kept = rows[warm_up:]
    out = summary([max(r["runEnd"], r["imgLast"]) - r["key"] for r in rows], warm_up)
    out.update(values=values[warm_up:], unchanged=sum(not r["changed"] for r in kept),
               first_image_median_ms=median((r["imgFirst"] or r["runEnd"]) - r["key"] for r in kept),
               run_end_median_ms=median(r["runEnd"] - r["key"] for r in kept),
               python_median_ms=median(r["python_ms"] for r in kept),
               server_cores=cpu / wall if pid else None,
               **split_by_visit(out["all_ms"][warm_up:], values[warm_up:], {start, *values[:warm_up]}))
    if all(r["sent"] and r["recvLast"] for r in kept):  # where the time went: the page, the socket round trip
        out.update(key_to_send_median_ms=median(r["sent"] - r["key"] for r in kept),
                   send_to_last_message_median_ms=median(r["recvLast"] - r["sent"] for r in kept))
    return out


def start_training(browser, url: str, epochs: int):
    """Start a conv run of `epochs` on MNIST from the Train page of a browser session of its own; return its page,
    moved to Home (its run keeps training; its live view would only add its own drawing on this machine)."""
    bu = browser_util()
    page = browser.new_page(viewport=bu.VIEWPORT)
    page.goto(f"{url}/train?preset=conv&epochs={epochs}")
    bu.wait_heading(page, "Train an autoencoder")
    bu.choose(page, "Data set", "mnist")
    bu.wait_heading(page, "Train an autoencoder")
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("button", name="Stop").wait_for(timeout=120_000)
    bu.open_page(page, "Home", "Autoencoder Explorer")
    return page


def still_training(page) -> bool:
    """Return True when the Train page of a trainer's session shows its run still training (a Stop button)."""
    bu = browser_util()
    bu.open_page(page, "Train", "Train an autoencoder")
    training = page.get_by_role("button", name="Stop").count() > 0
    bu.open_page(page, "Home", "Autoencoder Explorer")
    return training


def chromium(cases=CASES, moves: int = 24, warm_up: int = 2, jobs: int = 0, epochs: int = 100, log=print) -> dict:
    """Return {case: key-to-picture summary} measured in Chromium against a fresh `streamlit run app.py` (UMAP's
    warm-up off), after `jobs` training runs were started from browser sessions of their own."""
    from playwright.sync_api import sync_playwright

    bu = browser_util()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        with environment(AECORE_WARM_UP="0", AECORE_DATA_DIR=str(mnist_dir().parent)), \
                bu.streamlit_server(ROOT, log_path) as url, sync_playwright() as pw:
            pid = server_pid(int(url.rsplit(":", 1)[1]))
            browser = pw.chromium.launch(executable_path=bu.CHROMIUM, args=bu.CHROMIUM_ARGS)
            try:
                trainers = [start_training(browser, url, epochs) for _ in range(jobs)]
                page = browser.new_page(viewport=bu.VIEWPORT)
                page.add_init_script(PROBE_JS)
                page.goto(url + "/")
                bu.wait_heading(page, "Autoencoder Explorer")
                for case in cases:
                    load = load_average()
                    result = browser_case(page, case, moves, warm_up, pid)
                    result.update(jobs=jobs, load_average_before=load, load_average_after=load_average())
                    out[case.name] = result
                    log(f"  chromium, {jobs} job(s) {case.name:24} median {result['median_ms']:6.1f} ms  "
                        f"p95 {result['p95_ms']:6.1f} ms  (first image {result['first_image_median_ms']:.0f} ms; "
                        f"server busy {result['server_cores'] or 0:.2f} cores)")
                for result in out.values():
                    result["jobs_training_after"] = sum(still_training(p) for p in trainers)
            finally:
                browser.close()
        text = log_path.read_text()
    if "Traceback" in text:
        raise RuntimeError(f"the server log has a traceback:\n{text[-3000:]}")
    return out


# ---------------------------------------------------------------- the run, the table


def run(quick: bool = False, log=print, options: dict[str, str] | None = None, cases=CASES) -> dict:
    """Return the server-side and Chromium latencies of the sliders, alone and with two jobs training, with the
    targets and whether each holds; `options` are Streamlit config options to measure under instead of the app's."""
    with streamlit_options(options or {}):
        return _run(quick, log, options or {}, cases)


def _run(quick: bool, log, options: dict, cases) -> dict:
    s, t0 = SETTINGS[quick], time.perf_counter()
    results = {"quick": quick, "moves": s["moves"], "warm_up": s["warm_up"], "streamlit_options": options,
               "load_average_start": load_average(), "server": {}, "chromium": {}, "chromium, 2 jobs": {}}
    for case in cases:
        pause(log)
        results["server"][case.name] = {scope: server_side(case, s["moves"], s["warm_up"], scope, log=log)
                                        for scope in s["scopes"]}
    if not Path(browser_util().CHROMIUM).exists():
        log(f"  no Chromium at {browser_util().CHROMIUM}: the end-to-end measurements are left out")
        results["chromium_missing"] = True
    else:
        pause(log)
        results["chromium"] = chromium(cases, s["moves"], s["warm_up"], jobs=0, log=log)
        pause(log)
        results["chromium, 2 jobs"] = chromium(cases, s["moves"], s["warm_up"], jobs=2, epochs=s["epochs"], log=log)
    results["load_average_end"], results["seconds"] = load_average(), time.perf_counter() - t0
    results["verdicts"] = verdicts(results)
    return results


def verdicts(results: dict) -> list[dict]:
    """Return one row per measurement and slider: median, p95, target, whether the median meets it, and details."""
    rows = []
    for case in CASES:
        for scope, r in results["server"].get(case.name, {}).items():
            row = {"measure": f"server, {scope} rerun", "case": case.name, **_verdict(r, TARGETS_MS["server"]),
                   "details": f"the run {r['run_median_ms']:.0f} ms + post-run gc.collect "
                              f"{r['post_run_gc_median_ms']:.0f} ms"}
            if r["new_value_median_ms"] is not None and r["seen_values"]:
                row["details"] += (f"; a new level {r['new_value_median_ms']:.0f} ms, a revisited one "
                                   f"{r['seen_value_median_ms']:.0f} ms")
            if scope == "script" and r["fragment"]:  # a real server reruns the fragment only: not what is judged
                row["holds"] = None
                row["measure"] = "server, whole script (upper bound)"
            rows.append(row)
        for key in ("chromium", "chromium, 2 jobs"):
            r = results.get(key, {}).get(case.name)
            if r:
                details = (f"first image {r['first_image_median_ms']:.0f} ms; "
                           f"server busy {r['server_cores'] or 0:.2f} cores")
                if r["jobs"]:
                    details += f"; jobs still training after: {r['jobs_training_after']} of {r['jobs']}"
                if r["seen_values"]:
                    details += (f"; a new level {r['new_value_median_ms']:.0f} ms, a revisited one "
                                f"{r['seen_value_median_ms']:.0f} ms")
                rows.append({"measure": key, "case": case.name, **_verdict(r, TARGETS_MS[key]), "details": details})
    return rows


def _verdict(r: dict, target: float) -> dict:
    return {"median_ms": round(r["median_ms"], 1), "p95_ms": round(r["p95_ms"], 1), "moves": r["moves"],
            "target_ms": target, "holds": r["median_ms"] < target}


HOLDS = {True: "yes", False: "no", None: "not judged"}


def table(results: dict) -> str:
    """Return the results as a Markdown table."""
    lines = ["| measurement | slider | median ms | p95 ms | moves | target (median) | holds | details |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for row in results["verdicts"]:
        lines.append(f"| {row['measure']} | {row['case']} | {row['median_ms']:.0f} | {row['p95_ms']:.0f} | "
                     f"{row['moves']} | < {row['target_ms']} | {HOLDS[row['holds']]} | {row['details']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Measure, print the table, optionally write the raw results as JSON and profile the fragment runs."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10 moves per slider instead of 24, fragment reruns only")
    p.add_argument("--json", default=None, help="write the raw results here")
    p.add_argument("--profile", action="store_true", help="also print cProfile's view of each slider's fragment run")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a Streamlit config option to measure under, e.g. runner.postScriptGC=false (repeatable)")
    p.add_argument("--case", default="", help="only the sliders whose name contains this, e.g. Denoise")
    args = p.parse_args(argv)
    options = dict(o.split("=", 1) for o in args.option)
    cases = [c for c in CASES if args.case.lower() in c.name.lower()]
    results = run(args.quick, log=lambda s: print(s, flush=True), options=options, cases=cases)
    results["machine"] = machine()
    print()
    print(table(results))
    print(f"\n{results['seconds']:.0f} s; load average (1 min): {results['load_average_start']:.2f} at the start, "
          f"{results['load_average_end']:.2f} at the end"
          + (f"; Streamlit options: {options}" if options else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if args.profile:
        with streamlit_options(options):
            for case in cases:
                print(f"\n## {case.name}: the fragment's run under cProfile\n")
                print(profile(case))
    return 0


if __name__ == "__main__":
    sys.exit(main())
