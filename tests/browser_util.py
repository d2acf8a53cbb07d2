"""Helpers of the real-browser test: a Streamlit server on a free port and a few robust Playwright steps."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"  # Debian's package: never a Playwright browser download
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 1000}
RUNNING = '[data-testid="stStatusWidget"]'
APP = '[data-testid="stApp"]'


def free_port() -> int:
    """Return a local TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.read().strip() == b"ok"
    except OSError:
        return False


@contextmanager
def streamlit_server(root: Path, log_path: Path, timeout: float = 60, launcher: tuple = ("-m", "streamlit"),
                     env: dict | None = None):
    """Yield the base URL of `streamlit run app.py` started in root; the server is stopped on the way out.

    `launcher` replaces `-m streamlit` (e.g. a script that wraps Streamlit's command line); `env` adds variables.
    """
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(env or {}))
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, *launcher, "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(f"http://localhost:{port}/_stcore/health"):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start:\n{log_path.read_text()}")
                time.sleep(0.3)
            yield f"http://localhost:{port}"
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)


def wait_idle(page, timeout: float = 60, settle: float = 0.5) -> None:
    """Wait until the script run has ended (no 'Running…' widget, no stale elements), then let charts draw."""
    ms = int(timeout * 1000)
    page.locator(APP).wait_for(timeout=ms)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            const state = app && app.getAttribute('data-test-script-state');
            return !document.querySelector('[data-testid="stStatusWidget"]')
                && state !== 'running' && !document.querySelector('[data-stale="true"]');
        }""", timeout=ms, polling=200)
    page.wait_for_timeout(int(settle * 1000))


def open_page(page, nav_label: str, heading: str, timeout: float = 90) -> None:
    """Go to a page by clicking its sidebar link (keeping the session) and wait until it has finished running."""
    page.get_by_role("navigation").get_by_role("link", name=nav_label, exact=True).click()
    wait_heading(page, heading, timeout)


def wait_heading(page, heading: str, timeout: float = 90) -> None:
    """Wait for a page's title heading and for its script run to end."""
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=int(timeout * 1000))
    wait_idle(page, timeout)


# pictures (st.image, or inside st.html) whose right edge passes their column's (or the main block's): Streamlit does
# not clamp st.image's width
OVERFLOWING_IMAGES = """() => [...document.querySelectorAll('[data-testid="stImage"] img, [data-testid="stHtml"] img')]
.flatMap(img => {
    const box = img.closest('[data-testid="stColumn"], [data-testid="stMainBlockContainer"]');
    const over = box ? img.getBoundingClientRect().right - box.getBoundingClientRect().right : 0;
    return over > 1 ? [`${img.naturalWidth} px image ${Math.round(over)} px past its column`] : [];
})"""

# controls of the main block cut off at the side by a box that hides its overflow (a segmented control wider than its
# column, say), so that a person cannot see them; charts' and tables' own toolbars (which show on hover) and a
# multiselect's row of chosen values (which Streamlit scrolls, with a fade at its end) are left out
CLIPPED_CONTROLS = """() => {
    const wanted = 'button, input, [role="slider"], [role="combobox"], [role="tab"], [role="radio"], a';
    return [...document.querySelectorAll('[data-testid="stMain"] :is(' + wanted + ')')]
    .filter(el => !el.closest('[data-testid="stPlotlyChart"], [data-testid="stMultiSelectTagsContainer"], '
                              + '[data-testid="stElementToolbar"]')
                  && el.getClientRects().length)
    .flatMap(el => {
        const name = (el.innerText || el.getAttribute('aria-label') || el.tagName).trim().split('\\n').pop().slice(0, 40);
        const shortened = [el, ...el.querySelectorAll('*')].find(t => t.scrollWidth > t.clientWidth + 1
            && getComputedStyle(t).textOverflow === 'ellipsis');
        if (el.tagName === 'BUTTON' && shortened) return [`"${name}" shortened to fit`];  // a button's label "S..."
        const r = el.getBoundingClientRect();
        for (let box = el.parentElement; box; box = box.parentElement) {
            if (getComputedStyle(box).overflowX === 'visible') continue;
            const b = box.getBoundingClientRect();
            if (b.width <= 1) return [];  // a visually hidden input beside the control people see
            if (r.right > b.right + 1 || r.left < b.left - 1) {
                return [`"${name}" cut off by ${Math.round(Math.max(r.right - b.right, b.left - r.left))} px`];
            }
        }
        return [];
    });
}"""


# a chart whose legend lies over its x axis's title (Plotly places a legend in the chart's own proportions)
LEGENDS_OVER_TITLES = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].flatMap(chart => {
    const legend = chart.querySelector('g.legend'), title = chart.querySelector('g.g-xtitle text');
    if (!legend || !title) return [];
    const a = legend.getBoundingClientRect(), b = title.getBoundingClientRect();
    const apart = a.right <= b.left || b.right <= a.left || a.bottom <= b.top || b.bottom <= a.top;
    return apart || !a.width || !b.width ? [] : [`the legend lies over "${title.textContent}"`];
})"""


def problems(page) -> list[str]:
    """Return what is wrong on the shown page: exception boxes, tracebacks, pictures wider than their column,
    controls cut off at the side, buttons whose label is shortened and chart legends over axis titles."""
    found = []
    exceptions = page.locator('[data-testid="stException"]')
    if exceptions.count():
        found.append(f"{exceptions.count()} exception box(es): {exceptions.first.inner_text()[:800]}")
    if "Traceback" in page.locator(APP).inner_text():
        found.append("the text 'Traceback' is shown")
    wide = page.evaluate(OVERFLOWING_IMAGES)
    if wide:
        found.append(f"{len(wide)} image(s) wider than their column: {wide[:3]}")
    clipped = page.evaluate(CLIPPED_CONTROLS)
    if clipped:
        found.append(f"{len(clipped)} control(s) cut off: {clipped[:3]}")
    found += page.evaluate(LEGENDS_OVER_TITLES)
    return found


def choose(page, label: str, *wanted: str) -> str:
    """Pick the first option of a selectbox whose text contains one of `wanted` (tried in order); return it."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    options = page.get_by_role("option")
    options.first.wait_for(timeout=10_000)
    texts = [t.strip() for t in options.all_inner_texts()]
    pick = next((t for w in wanted for t in texts if w in t), None)
    if pick is None:
        page.keyboard.press("Escape")
        raise AssertionError(f"no {label!r} option contains any of {wanted}; options: {texts}")
    if box.input_value() == pick:
        page.keyboard.press("Escape")
        return pick
    options.filter(has_text=pick).first.click()
    wait_idle(page)
    return pick


def screenshot(page, path: Path) -> None:
    """Save the whole page, not just the viewport: Streamlit scrolls inside its main block, so grow the window."""
    height = page.evaluate(
        "() => Math.max(...['stMain', 'stMainBlockContainer', 'stSidebarContent'].map(id =>"
        " (document.querySelector(`[data-testid=\"${id}\"]`) || {}).scrollHeight || 0))")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], min(int(height), 8000))})
    page.wait_for_timeout(1200)  # plotly redraws at the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
