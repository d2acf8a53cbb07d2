"""`python -m benchmarks.load`: a classroom on one server. Headless Chromium sessions and websocket-protocol clients
(benchmarks/stclient.py) act as students at once for a bounded time; the command reports interaction latency
(median and 95th percentile), errors (which must be 0) and the server's peak memory, and writes docs/load-test.md.

Each student opens Home, then over and over: Train (the smallest number of epochs on `digits`, Start training, wait
for the run, which may queue), Reconstruct, Denoise (moves the noise-level slider), Latent space, picks a VAE in the
sidebar and moves the VAE lab's traversal sliders; with think times of a second or so between actions.

`--compare runner.postScriptGC=true,false` then measures a server option: loads of websocket clients alone (no
browsers, so their CPU does not drown the difference) on a server with each value, alternating `--rounds` times
(`--compare KEY=VALUE`: the app's own config against KEY=VALUE); `--no-main` runs only those.
Not part of the pytest suite: it takes minutes and the machine's full CPU.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import re
import shlex
import statistics
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from . import common

ROOT = common.ROOT
sys.path.insert(0, str(ROOT / "tests"))
from browser_util import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, streamlit_server  # noqa: E402

# (url path name, sidebar link, title heading)
PAGES = {"home": ("", "Home", "Autoencoder Explorer"), "train": ("train", "Train", "Train an autoencoder"),
         "reconstruct": ("reconstruct", "Reconstruct", "Reconstruct"), "denoise": ("denoise", "Denoise", "Denoise"),
         "latent": ("latent", "Latent space", "Latent space"), "vae_lab": ("vae_lab", "VAE lab", "VAE lab")}
KINDS = ["open Home", "open Train", "set epochs", "start training", "open Reconstruct", "open Denoise", "noise level",
         "open Latent space", "pick model", "open VAE lab", "traversal slider"]
FINISHED = "Training finished"
QUEUED = "Waiting for a free training slot"
QUEUE_WORDS = re.compile(r"queue|training slot", re.I)  # a queue notice is expected under load, never an error
CONV, VAE = "digits · conv", "digits · vae"
SLIDER_MOVES = 3  # moves of a slider per visit


# ---------------------------------------------------------------- the record of one load

class Recorder:
    """Collects one student's interactions, trainings and problems as plain dicts."""

    def __init__(self, client: str, student: int):
        self.client, self.student = client, student
        self.interactions, self.trainings, self.problems, self.warnings = [], [], [], []

    def interaction(self, kind: str, page: str, seconds, status: str = "ok", **extra) -> None:
        """Record one interaction (seconds None when it did not finish)."""
        self.interactions.append({"client": self.client, "student": self.student, "kind": kind, "page": page,
                                  "seconds": seconds, "status": status, **extra})
        if status == "timeout":
            self.problem(page, "timeout", f"{kind} did not finish in time")

    def problem(self, page: str, kind: str, text: str) -> None:
        """Record a problem: exception, error (an st.error text), disconnect, timeout or step (a failed action)."""
        self.problems.append({"client": self.client, "student": self.student, "page": page or "home",
                              "kind": kind, "text": text[:600]})

    def dump(self) -> dict:
        """Return everything recorded."""
        return {"interactions": self.interactions, "trainings": self.trainings, "problems": self.problems,
                "warnings": self.warnings}


async def think(rng: random.Random, span: tuple[float, float]) -> None:
    """Wait as a person does between two actions."""
    await asyncio.sleep(rng.uniform(*span))


def slider_value(el, rng: random.Random, current: float) -> float:
    """Return a random value of a slider's range on its step grid, other than the current one."""
    s = el.slider
    steps = max(1, round((s.max - s.min) / s.step))
    for _ in range(10):
        value = round(s.min + rng.randint(0, steps) * s.step, 6)
        if abs(value - current) > s.step / 2:
            return value
    return s.min if current != s.min else s.max


# ---------------------------------------------------------------- a student over the websocket protocol

async def ws_student(i: int, url: str, end: float, hard_end: float, cfg: dict) -> dict:
    """Act as one student over the websocket protocol until `end` (time.time()); return the Recorder's dump."""
    from .stclient import ProtocolError, Session

    rec, rng = Recorder("ws", i), random.Random(1000 + i)
    await asyncio.sleep(cfg["ramp"] * i / max(1, cfg["ws_clients"]))
    s = Session(url, "", timeout=cfg["timeout"], name=f"ws{i}")

    def note(r, kind):
        rec.interaction(kind, r.page or "home", r.seconds, r.status, first_visual=r.first_visual)

    try:
        note(await s.open(), "open Home")
        while time.time() < end and not s.closed:
            try:
                await ws_round(s, rng, rec, note, end, hard_end, cfg)
            except (ProtocolError, LookupError) as e:
                rec.problem(s.page, "step", str(e))
                if not s.closed:
                    await s.goto("")
    except Exception as e:  # noqa: BLE001 - a broken student is a finding of the test, not the end of it
        rec.problem(s.page, "step", f"{type(e).__name__}: {e}")
    finally:
        await s.close()
        for p in s.problems:
            if p.kind == "timeout" or (p.kind == "error" and QUEUE_WORDS.search(p.text)):
                continue  # a timeout is recorded with its interaction; a queue notice is expected
            rec.problem(p.page, p.kind, p.text)
        rec.warnings = sorted(s.warnings)
        out = rec.dump()
        out["media"] = {"files": s.media_files, "bytes": s.media_bytes, "failures": s.media_failures[:20]}
    return out


async def ws_round(s, rng, rec, note, end, hard_end, cfg) -> None:
    """One round of a websocket student: train, then every page, moving sliders."""
    span = cfg["think"]
    await think(rng, span)
    note(await s.goto("train"), "open Train")
    if s.widget("Epochs").value != [1.0]:
        await think(rng, span)
        note(await s.set("Epochs", 1), "set epochs")
    await think(rng, span)
    t0 = time.time()
    note(await s.click("Start training"), "start training")
    queued = False

    def trained(s):
        nonlocal queued
        queued = queued or s.shows(QUEUED)
        done = s.shows(FINISHED) or any(w.label == "Start training" and not w.element.button.disabled
                                        for w in s.widgets())
        return done and not s.running

    limit = min(cfg["train_timeout"], max(1.0, hard_end - time.time()))
    ok = await s.wait_for(trained, limit)
    late = None  # seconds until "Training finished" appeared, when the run's end first drew no run panel
    if ok and not s.shows(FINISHED):
        t1 = time.time()
        if await s.wait_for(lambda s: s.shows(FINISHED) and not s.running, 10):
            late = time.time() - t1
    rec.trainings.append({"client": "ws", "student": rec.student, "seconds": time.time() - t0, "queued": queued,
                          "finished": ok and s.shows(FINISHED), "cut_off": not ok and time.time() >= hard_end - 1,
                          "panel_missing": ok and (late is not None or not s.shows(FINISHED)), "late": late,
                          "shown": [] if s.shows(FINISHED) else s.texts("alert") + s.texts("progress")})
    if not ok and time.time() < hard_end - 1:
        rec.problem("train", "timeout", f"training did not finish in {limit:.0f} s")
    for page, label in (("reconstruct", "open Reconstruct"), ("denoise", "open Denoise")):
        if time.time() >= end:
            return
        if page == "reconstruct" and VAE in str(s.widget("Model").value):
            await think(rng, span)
            note(await s.set("Model", pick(s.widget("Model").options, CONV)), "pick model")
        await think(rng, span)
        note(await s.goto(page), label)
    for _ in range(SLIDER_MOVES):
        if time.time() >= end:
            return
        await think(rng, span)
        w = s.widget("Noise level")
        note(await s.set("Noise level", slider_value(w.element, rng, w.value[0])), "noise level")
    if time.time() >= end:
        return
    await think(rng, span)
    note(await s.goto("latent"), "open Latent space")
    await think(rng, span)
    note(await s.set("Model", pick(s.widget("Model").options, VAE)), "pick model")
    await think(rng, span)
    note(await s.goto("vae_lab"), "open VAE lab")
    for k in range(SLIDER_MOVES):
        if time.time() >= end:
            return
        await think(rng, span)
        label = f"z{1 + k % 2} ·"
        w = s.widget(label, prefix=True)
        note(await s.set(label, slider_value(w.element, rng, w.value[0]), prefix=True), "traversal slider")


def pick(options: list[str], wanted: str) -> str:
    """Return the first option containing `wanted`."""
    for option in options:
        if wanted in option:
            return option
    raise LookupError(f"no option contains {wanted!r}: {options}")


async def ws_swarm(url: str, start: float, cfg: dict) -> list[dict]:
    """Run cfg['ws_clients'] websocket students from `start` (time.time()) on; return their dumps."""
    await asyncio.sleep(max(0.0, start - time.time()))
    end, hard_end = start + cfg["seconds"], start + cfg["seconds"] + cfg["grace"]
    tasks = [ws_student(i, url, end, hard_end, cfg) for i in range(cfg["ws_clients"])]
    return await asyncio.gather(*tasks)


def _ws_process(url: str, start: float, cfg: dict, queue) -> None:
    """The websocket students in a process of their own, so the browsers' driver does not slow their clock."""
    try:
        queue.put(("ok", asyncio.run(ws_swarm(url, start, cfg))))
    except BaseException:  # noqa: BLE001 - the parent reports it
        queue.put(("failed", traceback.format_exc()))


# ---------------------------------------------------------------- a student in Chromium

# Counts, in the page, the rerun_script BackMsgs sent (field 11, so the first byte is 0x5A) and the script_finished
# ForwardMsgs received (field 6) on Streamlit's websocket: an interaction has ended when a run finished after it.
INSTRUMENT = r"""(() => {
  const A = window.__aex = {sends: [], finals: [], closes: 0};
  const Orig = window.WebSocket;
  function finished(buf) {
    const b = new Uint8Array(buf); let i = 0;
    const varint = () => {
      let r = 0, s = 0, x;
      do { x = b[i++]; r += (x & 127) * 2 ** s; s += 7; } while (x & 128 && i < b.length);
      return r;
    };
    while (i < b.length) {
      const key = varint(), f = Math.floor(key / 8), w = key % 8;
      if (w === 0) { const v = varint(); if (f === 6) return v; }
      else if (w === 2) { const n = varint(); i += n; }  // not `i += varint()`: that adds to the old i
      else if (w === 1) { i += 8; } else if (w === 5) { i += 4; } else { return -1; }
    }
    return -1;
  }
  window.WebSocket = class extends Orig {
    constructor(url, protocols) {
      super(url, protocols);
      if (!String(url).includes('_stcore/stream')) return;
      this.addEventListener('message', ev => {
        if (!(ev.data instanceof ArrayBuffer)) return;
        const s = finished(ev.data);
        if (s >= 0 && s !== 2) A.finals.push(performance.now());  // 2: ended early for a rerun
      });
      this.addEventListener('close', () => { A.closes++; });
    }
    send(data) {
      const u = data instanceof ArrayBuffer ? new Uint8Array(data)
        : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
      if (u && u[0] === 0x5A && String(this.url).includes('_stcore/stream')) A.sends.push(performance.now());
      return super.send(data);
    }
  };
})();"""
IDLE = """(s0) => {
  const A = window.__aex;
  if (!A || A.sends.length <= s0 || !A.finals.some(f => f > A.sends[s0])) return false;
  const app = document.querySelector('[data-testid="stApp"]');
  const state = app && app.getAttribute('data-test-script-state');
  return !document.querySelector('[data-testid="stStatusWidget"]') && state !== 'running'
    && state !== 'rerunRequested' && !document.querySelector('[data-stale="true"]');
}"""
SENDS = "() => window.__aex.sends.length"
PROTOCOL = """(s0) => {
  const A = window.__aex, t = A.sends[s0];
  if (t === undefined) return null;
  const f = A.finals.find(x => x > t);
  return f === undefined ? null : (f - t) / 1000;
}"""
TRAINED = """(finished) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (app && (app.innerText || '').includes(finished)) return 'finished';
  const error = document.querySelector('[data-testid="stAlertContentError"]');
  return error ? 'failed: ' + error.innerText.slice(0, 300) : false;
}"""
PROBLEMS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const text = el => (el.innerText || '').trim().slice(0, 600);
  const exc = [...document.querySelectorAll('[data-testid="stException"]')].map(text);
  const errors = [...document.querySelectorAll('[data-testid="stAlertContentError"]')]
    .filter(el => !el.closest('[data-testid="stException"]')).map(text);
  const warnings = [...document.querySelectorAll('[data-testid="stAlertContentWarning"]')].map(text);
  return {exceptions: exc, errors, warnings, traceback: !!app && (app.innerText || '').includes('Traceback'),
          connection: app ? app.getAttribute('data-test-connection-state') : null, closes: window.__aex.closes};
}"""


class BrowserStudent:
    """One student in a Chromium page: acts with clicks and keys, times each action until the page is idle again."""

    def __init__(self, i: int, page, url: str, cfg: dict):
        self.i, self.page, self.url, self.cfg = i, page, url, cfg
        self.rec, self.rng = Recorder("browser", i), random.Random(2000 + i)
        self.where = "home"
        self.seen: set[str] = set()
        self.closes = 0

    async def act(self, kind: str, action, heading: str | None = None, new_document: bool = False) -> float | None:
        """Do an action and wait until a run finished after the rerun it sent and the page is idle; record the time."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        page = self.page
        s0 = 0 if new_document else await page.evaluate(SENDS)
        t0 = time.monotonic()
        await action()
        seconds, status = None, "ok"
        try:
            await page.wait_for_function(IDLE, arg=s0, timeout=self.cfg["timeout"] * 1000, polling=100)
            if heading:
                await page.get_by_role("heading", name=heading, exact=True).first.wait_for(
                    timeout=self.cfg["timeout"] * 1000)
            seconds = time.monotonic() - t0
        except PlaywrightTimeout:
            status = "timeout"
        protocol = await page.evaluate(PROTOCOL, s0)
        self.rec.interaction(kind, self.where, seconds, status, protocol=protocol)
        await self.check()
        return seconds

    async def check(self) -> None:
        """Record what is wrong on the page now: exceptions, tracebacks, st.error texts, a lost connection."""
        found = await self.page.evaluate(PROBLEMS)
        for text in found["exceptions"]:
            self.rec.problem(self.where, "exception", text)
        if found["traceback"] and not found["exceptions"]:
            self.rec.problem(self.where, "exception", "the text 'Traceback' is shown")
        for text in found["errors"]:
            if not QUEUE_WORDS.search(text):
                self.rec.problem(self.where, "error", text)
        for text in found["warnings"]:
            if text not in self.seen:
                self.seen.add(text)
                self.rec.warnings.append(text)
        if found["closes"] > self.closes or found["connection"] not in ("CONNECTED", None):
            self.closes = found["closes"]
            self.rec.problem(self.where, "disconnect", f"connection state {found['connection']}")

    async def goto(self, key: str) -> None:
        """Open a page by its sidebar link."""
        _, link, heading = PAGES[key]
        self.where = key
        nav = self.page.get_by_role("navigation").get_by_role("link", name=link, exact=True)
        await self.act(f"open {link}", nav.click, heading)

    async def slider(self, name, kind: str) -> None:
        """Move a slider one step with the keyboard, the way that stays inside its range."""
        thumb = self.page.get_by_role("group", name=name).get_by_role("slider").first
        await thumb.focus()
        now, low, top = [float(await thumb.get_attribute(a)) for a in ("aria-valuetext", "min", "max")]
        key = "ArrowLeft" if now >= top or (now > low and self.rng.random() < 0.4) else "ArrowRight"
        await self.act(kind, lambda: thumb.press(key))

    async def choose(self, label: str, wanted: str) -> None:
        """Pick the sidebar option containing `wanted`, unless it is already chosen."""
        box = self.page.get_by_role("combobox", name=label, exact=True)
        await box.click()
        options = self.page.get_by_role("option")
        await options.first.wait_for()
        if wanted in (await box.input_value()):
            await self.page.keyboard.press("Escape")
            return
        await self.act("pick model", options.filter(has_text=wanted).first.click)

    async def run(self, end: float, hard_end: float) -> dict:
        """Act until `end` (time.time()); return the Recorder's dump."""
        from playwright.async_api import Error as PlaywrightError

        await asyncio.sleep(self.cfg["ramp"] * self.i / max(1, self.cfg["browsers"]))
        try:
            await self.act("open Home", lambda: self.page.goto(self.url + "/"), "Autoencoder Explorer",
                           new_document=True)
            while time.time() < end:
                try:
                    await self.round(end, hard_end)
                except (PlaywrightError, LookupError) as e:
                    self.rec.problem(self.where, "step", f"{type(e).__name__}: {str(e).splitlines()[0]}")
                    await self.shot()
                    self.where = "home"
                    await self.act("open Home", lambda: self.page.goto(self.url + "/"), "Autoencoder Explorer",
                                   new_document=True)
        except Exception as e:  # noqa: BLE001 - a broken student is a finding of the test, not the end of it
            self.rec.problem(self.where, "step", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return self.rec.dump()

    async def shot(self) -> None:
        """Keep a screenshot of a failed step for the person reading the report."""
        folder = Path(self.cfg["shots"])
        folder.mkdir(parents=True, exist_ok=True)
        try:
            await self.page.screenshot(path=str(folder / f"browser{self.i}-{len(self.rec.problems)}.png"))
        except Exception:  # noqa: BLE001 - a screenshot is a courtesy
            pass

    async def round(self, end: float, hard_end: float) -> None:
        """One round: train, then every page, moving sliders."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        page, span = self.page, self.cfg["think"]
        await think(self.rng, span)
        await self.goto("train")
        epochs = page.get_by_role("group", name="Epochs", exact=True).get_by_role("slider")
        if await epochs.get_attribute("aria-valuetext") != "1":
            await think(self.rng, span)
            await epochs.focus()
            await self.act("set epochs", lambda: epochs.press("Home"))
        await think(self.rng, span)
        t0 = time.time()
        await self.act("start training", page.get_by_role("button", name="Start training").click)
        queued = await page.get_by_text(QUEUED).count() > 0
        limit = min(self.cfg["train_timeout"], max(1.0, hard_end - time.time()))
        try:
            outcome = await (await page.wait_for_function(TRAINED, arg=FINISHED, timeout=limit * 1000,
                                                          polling=250)).json_value()
            ok = True
        except PlaywrightTimeout:
            outcome, ok = "", False
        self.rec.trainings.append({"client": "browser", "student": self.i, "seconds": time.time() - t0,
                                   "queued": queued, "finished": outcome == "finished",
                                   "cut_off": not ok and time.time() >= hard_end - 1, "shown": [outcome]})
        if not ok and time.time() < hard_end - 1:
            self.rec.problem("train", "timeout", f"training did not finish in {limit:.0f} s")
        await self.check()
        if time.time() >= end:
            return
        if VAE in await page.get_by_role("combobox", name="Model", exact=True).input_value():
            await think(self.rng, span)
            await self.choose("Model", CONV)
        for key in ("reconstruct", "denoise"):
            await think(self.rng, span)
            await self.goto(key)
        for _ in range(SLIDER_MOVES):
            if time.time() >= end:
                return
            await think(self.rng, span)
            await self.slider("Noise level", "noise level")
        if time.time() >= end:
            return
        await think(self.rng, span)
        await self.goto("latent")
        await think(self.rng, span)
        await self.choose("Model", VAE)
        await think(self.rng, span)
        await self.goto("vae_lab")
        await page.get_by_role("tab", name="Traverse").click()
        for k in range(SLIDER_MOVES):
            if time.time() >= end:
                return
            await think(self.rng, span)
            await self.slider(re.compile(rf"^z{1 + k % 2} ·"), "traversal slider")


async def browser_swarm(url: str, start: float, cfg: dict) -> list[dict]:
    """Run cfg['browsers'] students, each in its own context (its own Streamlit session) of one Chromium."""
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: install Debian's chromium package")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            students = []
            for i in range(cfg["browsers"]):
                context = await browser.new_context(viewport=VIEWPORT)
                context.set_default_timeout(cfg["timeout"] * 1000)  # a busy server is slow, not broken
                await context.add_init_script(INSTRUMENT)
                students.append(BrowserStudent(i, await context.new_page(), url, cfg))
            await asyncio.sleep(max(0.0, start - time.time()))
            end, hard_end = start + cfg["seconds"], start + cfg["seconds"] + cfg["grace"]
            return await asyncio.gather(*(s.run(end, hard_end) for s in students))
        finally:
            await browser.close()


# ---------------------------------------------------------------- the server and its memory

def _children(pid: int) -> list[int]:
    """Return the pids of every descendant of pid (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, parent in parents.items() if parent == p]
        found += kids
        todo += kids
    return found


def _rss_and_ticks(pid: int) -> tuple[int, int] | None:
    """Return the resident memory (bytes) and CPU ticks (user + system) of a process, None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    rss = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return rss, int(stat[11]) + int(stat[12])


def _machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]


class Sampler(threading.Thread):
    """Samples the server's memory (RSS of it and its children) and the CPU of the server, of this test's own
    processes (its websocket clients, Playwright, Chromium) and of the machine. Each process's CPU is its last
    sample, so processes that end between two marks (Chromium's, at the end) still count."""

    def __init__(self, server_pid: int, every: float = 0.5):
        super().__init__(daemon=True, name="load-sampler")
        self.pid, self.every = server_pid, every
        self.samples: list[tuple[float, int]] = []  # (time, server RSS)
        self.ticks: dict[str, dict[int, int]] = {"server": {}, "clients": {}}  # group -> pid -> last CPU ticks
        self.marks: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def sample(self) -> tuple[float, int]:
        """Sample every process once; return (time, server RSS)."""
        with self._lock:
            server = [self.pid] + _children(self.pid)
            groups = {"server": server,
                      "clients": [os.getpid()] + [p for p in _children(os.getpid()) if p not in set(server)]}
            rss = 0
            for group, pids in groups.items():
                for pid in pids:
                    found = _rss_and_ticks(pid)
                    if found is not None:
                        self.ticks[group][pid] = found[1]
                        rss += found[0] if group == "server" else 0
            return time.time(), rss

    def mark(self, name: str) -> None:
        """Remember a sample and the CPU counters under a name (the start and the end of the load)."""
        t, rss = self.sample()
        with self._lock:
            self.marks[name] = (t, rss, _machine_ticks(), {g: dict(d) for g, d in self.ticks.items()})

    def run(self) -> None:
        while not self._halt.wait(self.every):
            self.samples.append(self.sample())

    def stop(self) -> None:
        """Stop sampling."""
        self._halt.set()
        self.join(5)

    def cpu(self, a: str, b: str) -> dict:
        """Return the CPU used between two marks: server seconds, its share of the machine, the test's clients' share
        and other work's share."""
        (t0, _, (m0, i0), c0), (t1, _, (m1, i1), c1) = self.marks[a], self.marks[b]
        used = {g: sum(ticks - c0[g].get(pid, 0) for pid, ticks in c1[g].items()) for g in c1}
        span, busy = max(1, m1 - m0), (m1 - m0) - (i1 - i0)
        return {"server_cpu_s": used["server"] / os.sysconf("SC_CLK_TCK"), "server_share": used["server"] / span,
                "clients_share": used["clients"] / span,
                "others_share": max(0.0, (busy - used["server"] - used["clients"]) / span), "seconds": t1 - t0}

    def peak(self, since: float = 0.0) -> int:
        """Return the highest server RSS sampled since a time."""
        return max((rss for t, rss in self.samples if t >= since), default=0)

    def server_cpu_rate(self, seconds: float = 3.0) -> float:
        """Return the cores the server uses, measured over the next few seconds."""
        t0, _ = self.sample()
        before = sum(self.ticks["server"].values())
        time.sleep(seconds)
        t1, _ = self.sample()
        return (sum(self.ticks["server"].values()) - before) / os.sysconf("SC_CLK_TCK") / (t1 - t0)


def _server_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    pid = common.server_pid(port)
    if pid is None:
        raise RuntimeError(f"no streamlit process of this test listens on port {port}")
    return pid


@contextmanager
def server(options: dict[str, str], log_path: Path, memory_probe: str | None = None):
    """Yield (url, pid) of `streamlit run app.py` with extra config options, passed as STREAMLIT_* variables;
    with `memory_probe` (a path), started by benchmarks/memprobe.py, which records its memory there."""
    from streamlit import config

    unknown = [key for key in options if key not in config._config_options_template]
    if unknown:
        raise SystemExit(f"not Streamlit config options: {unknown}")
    names = {key: config._config_options_template[key].env_var for key in options}  # e.g. STREAMLIT_SERVER_PORT
    with common.environment(**{names[k]: v for k, v in options.items()}):
        check_options(options)
        probe = {"launcher": (str(ROOT / "benchmarks" / "memprobe.py"),),
                 "env": {"AECORE_MEMPROBE": str(Path(memory_probe).resolve())}} if memory_probe else {}
        with streamlit_server(ROOT, log_path, timeout=120, **probe) as url:
            yield url, _server_pid(url)


def check_options(options: dict[str, str]) -> None:
    """Stop unless `streamlit run` reads each option from its STREAMLIT_* variable with the value given."""
    from streamlit.web.cli import main_run

    params = main_run.make_context("run", ["app.py"]).params
    for key, value in options.items():
        got = params.get(key.replace(".", "_"))
        if str(got).lower() != value.lower():
            raise SystemExit(f"streamlit run would read {key} as {got!r}, not {value!r}")


async def _warm(url: str) -> None:
    """Open Home and the VAE lab once: a classroom's server has long loaded its models and compiled UMAP."""
    from .stclient import Session

    async with Session(url, "", timeout=300, name="warm-up") as s:
        await s.set("Model", pick(s.widget("Model").options, VAE))
        await s.goto("vae_lab")


def wait_server_quiet(sampler: Sampler, log, limit: float = 180.0) -> float:
    """Wait until the server uses under 10% of one core for 3 s (its UMAP warm-up done); return the seconds waited."""
    t0 = time.time()
    while time.time() - t0 < limit:
        if sampler.server_cpu_rate() < 0.1:
            return time.time() - t0
    log(f"  the server was still busy after {limit:.0f} s; starting anyway")
    return time.time() - t0


# ---------------------------------------------------------------- one load, start to end

def run_load(cfg: dict, options: dict[str, str], log=print) -> dict:
    """Start a server with these options, warm it up, run the students and return the summary with the raw data."""
    folder = Path(cfg["workdir"])
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"server-{len(list(folder.glob('server-*.log')))}.log"
    with server(options, log_path, cfg.get("memory_probe")) as (url, pid):
        sampler = Sampler(pid)
        sampler.start()
        asyncio.run(_warm(url))
        quiet = wait_server_quiet(sampler, log)
        log(f"  server {url} (pid {pid}) warm after {quiet:.0f} s more; {cfg['browsers']} browser(s), "
            f"{cfg['ws_clients']} websocket client(s) for {cfg['seconds']:.0f} s")
        load_before = os.getloadavg()[0]
        start = time.time() + (15 if cfg["browsers"] else 3)  # time to start the ws process and Chromium
        queue = multiprocessing.get_context("spawn").Queue()
        proc = None
        if cfg["ws_clients"]:
            proc = multiprocessing.get_context("spawn").Process(target=_ws_process, args=(url, start, cfg, queue))
            proc.start()
        dumps, failures = [], []
        wait = max(0.0, start - time.time())
        time.sleep(0 if cfg["browsers"] else wait)
        if not cfg["browsers"]:
            sampler.mark("start")
        if cfg["browsers"]:
            threading.Timer(wait, sampler.mark, ("start",)).start()
            dumps += asyncio.run(browser_swarm(url, start, cfg))
        if proc is not None:
            status, payload = queue.get(timeout=cfg["seconds"] + cfg["grace"] + 600)
            proc.join(30)
            if status == "ok":
                dumps += payload
            else:
                failures.append(payload)
        sampler.mark("end")
        sampler.stop()
        peak = sampler.peak(start)
        rss_before = sampler.marks["start"][1]
        cpu = sampler.cpu("start", "end")
    log_text = log_path.read_text(errors="replace")
    excerpt, logged, teardown = _log_problems(log_text)
    summary = summarise(dumps, cfg)
    summary.update({"options": options, "server_log": str(log_path), "load_before": load_before, "cpu": cpu,
                    "memory": {"peak": peak, "before": rss_before, "after": sampler.marks["end"][1]},
                    "server_failures": logged, "teardown_tracebacks": teardown,
                    "server_log_excerpt": excerpt, "failures": failures,
                    "memory_series": _thin(sampler.samples, start)})
    return summary


def _thin(samples, start: float, points: int = 60) -> list[tuple[float, float]]:
    """Return about `points` (seconds since the start, MiB) pairs of the RSS samples."""
    kept = [(t - start, rss / 2**20) for t, rss in samples if t >= start]
    step = max(1, len(kept) // points)
    return [(round(t, 1), round(m, 1)) for t, m in kept[::step]]


def _log_problems(text: str) -> tuple[list[str], int, int]:
    """Return the server log's failures (the first few, shortened), how many there are, and how many of them are
    Streamlit's own teardown of a websocket that a client closed while the server was sending to it."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|Exception in )", text)
    failures = [r.strip() for r in records if "Traceback" in r or re.search(r"\b(ERROR|CRITICAL)\b", r)]
    teardown = sum("starlette_websocket.py" in r and "WebSocketDisconnected" in r and "/app_pages/" not in r
                   for r in failures)
    return [r[-1500:] for r in failures[:5]], len(failures), teardown


# ---------------------------------------------------------------- numbers

def percentile(values: list[float], q: float) -> float | None:
    """Return the q-th percentile (0-100) of the values by linear interpolation, None when there are none."""
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def stats(values: list[float]) -> dict:
    """Return n, median, 95th percentile and max of the values."""
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": max(values) if values else None}


def summarise(dumps: list[dict], cfg: dict) -> dict:
    """Return the latency statistics per client and kind, the trainings and the problems of a load."""
    inter = [x for d in dumps for x in d["interactions"]]
    problems = [x for d in dumps for x in d["problems"]]
    trainings = [x for d in dumps for x in d["trainings"]]
    latency = {}
    for client in ("ws", "browser"):
        mine = [x for x in inter if x["client"] == client and x["seconds"] is not None]
        if not mine:
            continue
        rows = {kind: stats([x["seconds"] for x in mine if x["kind"] == kind]) for kind in KINDS}
        rows["all"] = stats([x["seconds"] for x in mine])
        rows["all but training waits"] = stats([x["seconds"] for x in mine if x["kind"] != "start training"])
        latency[client] = rows
        if client == "browser":
            latency["browser protocol"] = {
                kind: stats([x["protocol"] for x in mine if x.get("protocol") is not None
                             and (kind == "all" or x["kind"] == kind)]) for kind in [*KINDS, "all"]}
        if client == "ws":
            latency["ws first picture"] = {
                kind: stats([x["first_visual"] for x in mine if x.get("first_visual") is not None
                             and (kind == "all" or x["kind"] == kind)]) for kind in [*KINDS, "all"]}
    counts = {}
    for p in problems:
        counts[p["kind"]] = counts.get(p["kind"], 0) + 1
    unique = {}
    for p in problems:
        key = (p["kind"], p["page"], p["text"])
        unique.setdefault(key, {"kind": p["kind"], "page": p["page"], "text": p["text"], "count": 0, "clients": set()})
        unique[key]["count"] += 1
        unique[key]["clients"].add(p["client"])
    unique_list = sorted(({**u, "clients": sorted(u["clients"])} for u in unique.values()), key=lambda u: -u["count"])
    done = [t for t in trainings if t["finished"]]
    media = [d.get("media") for d in dumps if d.get("media")]
    warnings = sorted({w for d in dumps for w in d["warnings"]})
    return {
        "config": {k: v for k, v in cfg.items() if k not in ("workdir", "shots")},
        "latency": latency,
        "interactions": len(inter),
        "interactions_by_client": {c: sum(1 for x in inter if x["client"] == c) for c in ("ws", "browser")},
        "problems": counts, "problem_list": unique_list[:40],
        "errors_total": len(problems),
        "trainings": {"started": len(trainings), "finished": len(done), "queued": sum(t["queued"] for t in trainings),
                      "cut_off": sum(t["cut_off"] for t in trainings),
                      "panel_missing": [t.get("late") for t in trainings if t.get("panel_missing")],
                      "other": [[t["client"]] + t.get("shown", [])[:4] for t in trainings
                                if not t["finished"] and not t["cut_off"]],
                      "seconds": stats([t["seconds"] for t in done])},
        "media": {"files": sum(m["files"] for m in media), "bytes": sum(m["bytes"] for m in media),
                  "failures": [f for m in media for f in m["failures"]][:10],
                  "failed": sum(len(m["failures"]) for m in media)},
        "warnings": warnings[:10],
        "raw": inter,
    }


# ---------------------------------------------------------------- the report

def _s(v) -> str:
    return "–" if v is None else f"{v:.2f} s" if v < 10 else f"{v:.1f} s"


def _mib(b) -> str:
    return f"{b / 2**20:,.0f} MiB"


def latency_table(result: dict) -> list[str]:
    """Return the Markdown rows of the latency per interaction kind and client."""
    lat = result["latency"]
    clients = [c for c in ("ws", "browser") if c in lat]
    head = "| interaction | " + " | ".join(
        {"ws": "websocket clients: n / median / p95", "browser": "browsers: n / median / p95"}[c] for c in clients)
    if "browser" in lat:
        head += " | browsers, send → script_finished: median / p95"
    lines = [head + " |", "| --- " * (1 + len(clients) + ("browser" in lat)) + "|"]
    for kind in [*KINDS, "all but training waits", "all"]:
        cells = []
        for c in clients:
            st = lat[c].get(kind) or {"n": 0}
            cells.append(f"{st['n']} / {_s(st.get('p50'))} / {_s(st.get('p95'))}" if st["n"] else "–")
        if "browser" in lat:
            st = lat["browser protocol"].get(kind) or {"n": 0}
            cells.append(f"{_s(st.get('p50'))} / {_s(st.get('p95'))}" if st.get("n") else "–")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def errors_lines(result: dict) -> list[str]:
    """Return the Markdown of a load's errors (a line saying there were none, or a table)."""
    p = result["problems"]
    head = (f"Errors: **{result['errors_total']}** — exceptions {p.get('exception', 0)}, st.error texts (queue "
            f"notices aside) {p.get('error', 0)}, lost connections {p.get('disconnect', 0)}, interactions that did "
            f"not finish {p.get('timeout', 0)}, failed steps {p.get('step', 0)}. Failures in the server log: "
            f"{result['server_failures']}, of which Streamlit's own teardown of a websocket a client closed while "
            f"the server was sending to it: {result['teardown_tracebacks']}. Not counted as errors: images the "
            f"websocket clients could not fetch, {result['media']['failed']} (a 404 when a newer run had replaced "
            "the image before the client's GET reached the server; Streamlit then deletes it).")
    lines = [head]
    if result["problem_list"]:
        lines += ["", "| kind | page | clients | count | text |", "| --- | --- | --- | --- | --- |"]
        for u in result["problem_list"]:
            text = u["text"].replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {u['kind']} | {u['page']} | {', '.join(u['clients'])} | {u['count']} | {text} |")
    for block in result["server_log_excerpt"][:3]:
        lines += ["", "From the server log:", "", "```", block[-1200:], "```"]
    for f in result["media"]["failures"][:3]:
        lines.append(f"- image fetch failed: {f}")
    return lines


def run_lines(result: dict, title: str) -> list[str]:
    """Return the Markdown section of one load."""
    c, cpu, mem, tr = result["config"], result["cpu"], result["memory"], result["trainings"]
    opts = ", ".join(f"`{k}={v}`" for k, v in result["options"].items()) or "none (the app's own config)"
    lines = [f"## {title}", "",
             f"{c['browsers']} Chromium session(s) and {c['ws_clients']} websocket client(s) for {c['seconds']:.0f} s "
             f"(students started over the first {c['ramp']:.0f} s; think time {c['think'][0]:g}–{c['think'][1]:g} s; "
             f"an interaction that takes over {c['timeout']:.0f} s counts as not finished). Server options: {opts}. "
             f"{result['interactions']} interactions.", "",
             *latency_table(result), "",
             f"Training runs (1 epoch of the conv preset on digits): {tr['started']} started, {tr['finished']} "
             f"finished, {tr['queued']} waited in the queue, {tr['cut_off']} still running when the test ended; "
             f"Start → finished: median {_s(tr['seconds']['p50'])}, p95 {_s(tr['seconds']['p95'])}."
             + (f" In {len(tr['panel_missing'])} run(s) the full rerun at the run's end drew the Train page without "
                "its run panel (no status, no 'Training finished'); it appeared "
                + ", ".join("not within 10 s" if x is None else f"{x:.1f} s later" for x in tr["panel_missing"])
                + " (websocket clients)." if tr.get("panel_missing") else "")
             + (f" {len(tr['other'])} ended otherwise; the page then showed: "
                + "; ".join(f"{shown[0]}: " + (" / ".join(x[:120] for x in shown[1:]) or "(nothing)")
                            for shown in tr["other"][:3])
                if tr.get("other") else ""), "",
             f"Server memory (RSS of the server process and its children): **peak {_mib(mem['peak'])}**, "
             f"{_mib(mem['before'])} when the load began, {_mib(mem['after'])} at its end. "
             f"Server CPU: {cpu['server_cpu_s']:.0f} s over {cpu['seconds']:.0f} s "
             f"({cpu['server_share']:.0%} of the machine); the test's own clients "
             f"{cpu['clients_share']:.0%}, other work on the machine {cpu['others_share']:.0%}.", "",
             *errors_lines(result)]
    if result["warnings"]:
        lines += ["", "Warnings shown (not errors): " + "; ".join(w[:160] for w in result["warnings"][:5])]
    return lines


def _label(r: dict) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in r["options"].items()) or "the app's config"


def _pair(st: dict | None) -> str:
    return f"{_s(st['p50'])} / {_s(st['p95'])}" if st and st.get("n") else "–"


def summary_lines(runs: list[dict]) -> list[str]:
    """Return the Markdown table with one row per load."""
    lines = ["| load | server options | browsers + ws clients | interactions | browsers: median / p95 "
             "| ws clients: median / p95 | trainings finished / started | server CPU | peak RSS | errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        name = "main" if r["role"] == "main" else f"ws only, round {r['round']}"
        lat, c = r["latency"], r["config"]
        lines.append(f"| {name} | {_label(r)} | {c['browsers']} + {c['ws_clients']} | {r['interactions']} | "
                     f"{_pair(lat.get('browser', {}).get('all but training waits'))} | "
                     f"{_pair(lat.get('ws', {}).get('all but training waits'))} | "
                     f"{r['trainings']['finished']} / {r['trainings']['started']} | "
                     f"{r['cpu']['server_cpu_s']:.0f} s ({r['cpu']['server_share']:.0%}) | "
                     f"{_mib(r['memory']['peak'])} | "
                     f"{r['errors_total'] + r['server_failures']} |")
    return lines


def compare_lines(runs: list[dict]) -> list[str]:
    """Return the Markdown of the A/B comparison of a server option with websocket clients alone."""
    ab = [r for r in runs if r["role"] in ("A", "B")]
    c = ab[0]["config"]
    lines = [f"## {_label(ab[0])} against {_label(ab[1])}, websocket clients alone", "",
             f"{c['ws_clients']} websocket clients, no browsers (their CPU would drown the difference), "
             f"{c['seconds']:.0f} s per load, the same students (same seeds) on a fresh server each time, alternating. "
             "Latency over every interaction except the waits for a training run. Server CPU per interaction: the "
             "server's CPU seconds over the load divided by the interactions it served.", "",
             "| round | server | interactions | median | p95 | open a page: median / p95 | slider: median / p95 "
             "| trainings finished / started, median time | server CPU per interaction | peak RSS | errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in ab:
        allx = r["latency"].get("ws", {}).get("all but training waits", {})
        raw = [x for x in r["raw"] if x["seconds"] is not None]
        opens = stats([x["seconds"] for x in raw if x["kind"].startswith("open")])
        sliders = stats([x["seconds"] for x in raw if x["kind"] in ("noise level", "traversal slider")])
        per = r["cpu"]["server_cpu_s"] / max(1, r["interactions"])
        tr = r["trainings"]
        lines.append(f"| {r['round']} | {_label(r)} | {r['interactions']} | {_s(allx.get('p50'))} | "
                     f"{_s(allx.get('p95'))} | {_pair(opens)} | {_pair(sliders)} | {tr['finished']} / {tr['started']}, "
                     f"{_s(tr['seconds']['p50'])} | {per * 1000:.0f} ms | {_mib(r['memory']['peak'])} | "
                     f"{r['errors_total'] + r['server_failures']} |")
    a, b = ab[0], ab[1]
    med = [r["latency"].get("ws", {}).get("all but training waits", {}).get("p50") for r in (a, b)]
    if all(med):
        lines += ["", f"In round 1: median latency {_s(med[0])} with {_label(a)} and {_s(med[1])} with {_label(b)} "
                      f"({med[0] / med[1]:.1f}×); {a['interactions']} and {b['interactions']} interactions served in "
                      "the same time."]
    return lines


def render(results: dict) -> str:
    """Return docs/load-test.md."""
    m, runs = results["machine"], results["runs"]
    lines = ["# Load test", "",
             "Many students on one server at once: written by `python -m benchmarks.load` (not part of the test "
             "suite). Each simulated student opens Home, then round after round: Train (1 epoch of the conv preset "
             "on digits: Epochs slider, Start training, wait for the run; jobs are limited server-wide and queue), "
             "Reconstruct, Denoise (moves the noise-level slider 3 times), Latent space, picks the digits VAE in the "
             "sidebar, VAE lab (moves the traversal sliders 3 times), with a think time between actions. The server "
             "is warmed up first (models loaded, UMAP compiled), as a classroom's server is by the time students "
             "arrive.", "",
             "- **Browsers**: headless Debian Chromium, one browser context (one Streamlit session) per student, "
             "driven by Playwright with clicks and keys. Latency: from the action to the page being idle again (a "
             "script run finished after the rerun it sent, no 'Running…' widget, no stale elements); a last column "
             "gives the send → script_finished time the websocket clients measure, taken in the page from its "
             "websocket.",
             "- **Websocket clients** (`benchmarks/stclient.py`): Streamlit's own protocol without a browser — "
             "rerun_script BackMsgs with every widget's value, fragment reruns and auto-reruns as the frontend does "
             "them, images fetched as an `<img>` would. Latency: BackMsg sent → script_finished of the run it "
             "caused.",
             "- **Errors** must be 0: exception elements or a 'Traceback' on a page, st.error texts (a queue notice "
             "is not one), lost connections, interactions that do not finish within the time limit, steps that "
             "could not be done (a widget missing), failures in the server log.",
             "- The clients run on the same machine as the server and share its cores: with browsers, the numbers "
             "are pessimistic.", "",
             f"Produced by `{results['command']}` on {results['started']} (commit {m.get('commit', '?')}, "
             f"{results['seconds'] / 60:.1f} min).", "",
             f"- Machine: {m['cpu']}, {m['cores']} cores; {m['os']}",
             f"- Python {m['python']}; streamlit {results['versions']['streamlit']}, torch {m['torch']}, "
             f"playwright {results['versions']['playwright']}, {results['versions']['chromium']}; "
             f"{results['max_jobs']} training job(s) at once (aecore.jobs.MAX_JOBS)",
             "- Other work on the machine during each load (its share of all cores): "
             + ", ".join(f"{r['cpu']['others_share']:.0%}" for r in runs), "",
             "## Summary", "", *summary_lines(runs), ""]
    mains = [r for r in runs if r["role"] == "main"]
    for r in mains:
        title = "Results" if len(mains) == 1 else f"Results: server options {_label(r)}"
        lines += run_lines(r, title) + [""]
    if any(r["role"] in ("A", "B") for r in runs):
        lines += compare_lines(runs) + [""]
        for r in runs:
            if r["role"] in ("A", "B"):
                lines += [f"<details><summary>The websocket-only load with {_label(r)}, round {r['round']}</summary>",
                          "", *run_lines(r, "")[2:], "", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def _chromium_version() -> str:
    try:
        import subprocess

        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, Exception):  # noqa: BLE001
        return "Chromium (version unknown)"


# ---------------------------------------------------------------- the command

def parse(argv) -> argparse.Namespace:
    """Return the command's arguments."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--browsers", type=int, default=20, help="headless Chromium sessions (default 20)")
    p.add_argument("--ws-clients", type=int, default=20, help="websocket-protocol clients (default 20)")
    p.add_argument("--seconds", type=float, default=120, help="how long students start new actions (default 120)")
    p.add_argument("--server-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a Streamlit config option for the server, e.g. runner.postScriptGC=false (repeatable)")
    p.add_argument("--compare", metavar="KEY=A[,B]",
                   help="measure a server option: --rounds loads of websocket clients alone on a server with KEY=A "
                        "and on one with KEY=B (with one value: the app's own config against KEY=A), alternating")
    p.add_argument("--compare-ws", type=int, default=None,
                   help="websocket clients of those loads (default: --ws-clients; 0: none)")
    p.add_argument("--compare-seconds", type=float, default=None, help="seconds of those loads (default: --seconds)")
    p.add_argument("--rounds", type=int, default=1, help="rounds of websocket-only loads (default 1)")
    p.add_argument("--no-main", action="store_true", help="skip the main load: only the --compare rounds")
    p.add_argument("--think", default="0.5,2", help="think time between actions, min,max seconds (default 0.5,2)")
    p.add_argument("--ramp", type=float, default=10, help="students start over this many seconds (default 10)")
    p.add_argument("--timeout", type=float, default=120, help="an interaction slower than this has failed")
    p.add_argument("--train-timeout", type=float, default=600, help="a training run slower than this has failed")
    p.add_argument("--memory-probe", default=None, metavar="PATH", help="start the server under "
                   "benchmarks/memprobe.py, which appends a JSON line of its memory (RSS, malloc, caches, sessions, "
                   "object types) to PATH every 30 s")
    p.add_argument("--json", default=None, help="also write the results (every interaction) here")
    p.add_argument("--out", default=str(ROOT / "docs" / "load-test.md"), help="the Markdown report "
                                                                               "(default docs/load-test.md)")
    p.add_argument("--workdir", default="/tmp/aex-load", help="server logs and screenshots of failed steps")
    return p.parse_args(argv)


def _options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"a server option is KEY=VALUE, not {pair!r}")
        out[key.strip()] = value.strip()
    return out


def compare_variants(spec: str, options: dict[str, str]) -> list[dict[str, str]]:
    """Return the server options of the two sides of `--compare KEY=A[,B]`."""
    key, _, values = spec.partition("=")
    sides = values.split(",")
    if not key or len(sides) not in (1, 2) or not all(sides):
        raise SystemExit(f"--compare takes KEY=A or KEY=A,B, not {spec!r}")
    if len(sides) == 1:
        return [options, dict(options, **{key: sides[0]})]
    return [dict(options, **{key: side}) for side in sides]


def main(argv=None) -> int:
    """Run the load(s), print a summary, write the report; return 1 when any load had an error."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    lo, hi = (float(v) for v in args.think.split(","))
    base = {"browsers": args.browsers, "ws_clients": args.ws_clients, "seconds": args.seconds, "think": (lo, hi),
            "ramp": args.ramp, "timeout": args.timeout, "train_timeout": args.train_timeout, "grace": 60.0,
            "workdir": args.workdir, "shots": str(Path(args.workdir) / "shots"), "memory_probe": args.memory_probe}
    options = _options(args.server_opt)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    t0 = time.time()
    results = {"machine": common.machine(), "started": time.strftime("%Y-%m-%d %H:%M %Z"),
               "command": "python -m benchmarks.load " + " ".join(map(shlex.quote, argv)), "runs": [],
               "versions": {p: metadata.version(p) for p in ("streamlit", "playwright")}}
    results["versions"]["chromium"] = _chromium_version() if args.browsers else "Chromium not used"
    from aecore import jobs

    results["max_jobs"] = jobs.MAX_JOBS
    if not args.no_main:
        print(f"[main] {args.browsers} browser(s) + {args.ws_clients} websocket client(s), {args.seconds:.0f} s, "
              f"server options {options or 'those of the app'}", flush=True)
        results["runs"].append(dict(run_load(base, options), role="main"))
        report(results["runs"][-1])
    ws_only = args.ws_clients if args.compare_ws is None else args.compare_ws
    if args.compare and ws_only:
        cfg = dict(base, browsers=0, ws_clients=ws_only, seconds=args.compare_seconds or args.seconds)
        for n in range(1, args.rounds + 1):
            for role, opts in zip("AB", compare_variants(args.compare, options)):
                print(f"[websocket clients alone, round {n}] server options {opts or 'those of the app'}", flush=True)
                results["runs"].append(dict(run_load(cfg, opts), role=role, round=n))
                report(results["runs"][-1])
    results["compare"] = args.compare
    results["seconds"] = time.time() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out} in {results['seconds'] / 60:.1f} min")
    return 1 if any(r["errors_total"] or r["server_failures"] or r["failures"] for r in results["runs"]) else 0


def report(r: dict) -> None:
    """Print a load's headline numbers."""
    for client, rows in r["latency"].items():
        if client in ("ws", "browser"):
            st = rows["all but training waits"]
            print(f"  {client}: {st['n']} interactions, median {_s(st['p50'])}, p95 {_s(st['p95'])}", flush=True)
    print(f"  trainings {r['trainings']['finished']}/{r['trainings']['started']}, peak RSS {_mib(r['memory']['peak'])}"
          f", server CPU {r['cpu']['server_cpu_s']:.0f} s, errors {r['errors_total']} {r['problems']}, "
          f"server log failures {r['server_failures']} (websocket teardown {r['teardown_tracebacks']})", flush=True)
    for u in r["problem_list"][:5]:
        print(f"    {u['kind']} on {u['page']} ×{u['count']}: {u['text'][:200]}", flush=True)
    for f in r["failures"]:
        print("  the websocket clients' process failed:\n" + f, flush=True)


if __name__ == "__main__":
    sys.exit(main())
