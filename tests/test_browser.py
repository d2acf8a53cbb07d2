"""The app in a real browser: Debian's Chromium, headless, drives `streamlit run app.py` through every page.

It trains a tiny model by clicking, selects a point on the latent map, checks that no page shows an exception or a
traceback (nor the server log), and saves a screenshot of each page to docs/screenshots/ for the README.
"""
import re
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from browser_util import (CHROMIUM, CHROMIUM_ARGS, VIEWPORT, choose, open_page, problems, screenshot,
                          streamlit_server, wait_heading, wait_idle)

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
CONV = "digits · conv ·"  # the pretrained convolutional model: the sharpest pictures for the README
# (sidebar link, title heading, screenshot name, sidebar model wanted, in order of preference)
PAGES = [
    ("Reconstruct", "Reconstruct", "reconstruct", (CONV, "digits")),
    ("Denoise", "Denoise", "denoise", ("digits · denoising", CONV, "digits")),
    ("Latent space", "Latent space", "latent", (CONV, "digits")),
    ("VAE lab", "VAE lab", "vae_lab", ("vae",)),
    ("Compare", "Compare", "compare", (CONV, "digits")),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with streamlit_server(ROOT, log) as url:
        yield url, log
    text = log.read_text()
    assert "Traceback" not in text and "Stack (most recent call last)" not in text, f"the server log has a stack:\n{text}"


@pytest.fixture(scope="module")
def page(server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()


def assert_clean(page, where: str) -> None:
    found = problems(page)
    assert not found, f"{where}: {'; '.join(found)}"


def model_options(page) -> list[str]:
    box = page.get_by_role("combobox", name="Model", exact=True)
    box.click()
    page.get_by_role("option").first.wait_for(timeout=10_000)
    texts = [t.strip() for t in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    return texts


def set_slider(page, label: str, *keys: str) -> str:
    """Move a slider with the keyboard, as a person can, and return the value it then shows."""
    thumb = page.get_by_role("group", name=label, exact=True).get_by_role("slider")
    thumb.focus()
    for key in keys:
        thumb.press(key)
    wait_idle(page)
    return thumb.get_attribute("aria-valuetext")


def train_tiny(page) -> None:
    """Set a two-epoch run in small, quick steps, click Start training and wait for the run to finish."""
    assert set_slider(page, "Epochs", "Home", "ArrowRight") == "2"
    assert set_slider(page, "Batch size", "Home") == "16"  # more steps: digits that sharpen within two epochs
    assert set_slider(page, "Learning rate", "ArrowRight") == "0.003"
    page.get_by_role("button", name="Start training").click()
    # seconds when the machine is idle; a fresh server's first run also imports torch._dynamo (slow under load)
    page.get_by_text("Training finished", exact=False).first.wait_for(timeout=180_000)
    wait_idle(page, settle=1.5)


POINT_JS = """() => {
    // the map is WebGL (no element per point): find a point's place on the screen from plotly's own axes
    const plots = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')];
    const gd = plots.find(p => (p._fullData || []).some(t => t.type === 'scattergl' && t.x && t.x.length));
    if (!gd) return null;
    const trace = gd._fullData.find(t => t.type === 'scattergl' && t.x && t.x.length);
    const i = Math.floor(trace.x.length / 2), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const r = gd.getBoundingClientRect();
    return {x: r.left + xa._offset + xa.d2p(trace.x[i]), y: r.top + ya._offset + ya.d2p(trace.y[i])};
}"""


def click_a_point(page) -> None:
    """Click one point of the latent map, as a person would, and wait for its images and neighbours."""
    page.wait_for_function(POINT_JS, timeout=30_000)
    where = page.evaluate(POINT_JS)
    page.mouse.move(where["x"], where["y"])  # plotly picks the point it hovers
    page.wait_for_timeout(300)
    page.mouse.click(where["x"], where["y"])
    page.get_by_text("the image and its reconstruction").wait_for(timeout=30_000)
    wait_idle(page)
    assert page.get_by_text("Nearest", exact=False).count() >= 2  # code-space and pixel-space neighbours


@pytest.mark.browser
def test_every_page_in_chromium(server, page, tmp_path):
    try:
        visit_every_page(server[0], page)
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"the page at the failure: {tmp_path / 'failure.png'}; server log: {server[1]}")
        raise


def visit_every_page(url: str, page) -> None:
    # a teacher's link as the fresh server's very first request: the page opens with the app's sidebar and preset
    page.goto(url + "/train?preset=vae&code=2")
    wait_heading(page, "Train an autoencoder")
    page.get_by_role("combobox", name="Data set", exact=True).wait_for(timeout=30_000)  # the app's sidebar is there
    page.get_by_text("weight of the KL term").first.wait_for(timeout=30_000)  # the VAE's own option: the preset is open
    assert_clean(page, "Train, opened from a link")
    page.goto(url + "/")
    wait_heading(page, "Autoencoder Explorer")
    choose(page, "Model", CONV, "digits")
    assert_clean(page, "Home")
    screenshot(page, SHOTS / "home.png")

    open_page(page, "Train", "Train an autoencoder")
    assert_clean(page, "Train")
    screenshot(page, SHOTS / "train.png")
    train_tiny(page)
    assert_clean(page, "Train, after training")
    assert page.get_by_text("Download .safetensors").count() == 1
    screenshot(page, SHOTS / "train-finished.png")
    assert any(o.startswith("this session:") for o in model_options(page)), "the trained model is not in the sidebar"

    for link, heading, name, wanted in PAGES:
        open_page(page, link, heading)
        choose(page, "Model", *wanted)
        wait_heading(page, heading)
        assert_clean(page, link)
        if name == "latent":
            click_a_point(page)
            assert_clean(page, "Latent space, a point selected")
            picked = page.get_by_text(re.compile(r"^Image #\d+")).first.inner_text().split(" ·")[0]
            for colour in ("reconstruction error", "label"):  # a new colouring draws a new chart: the pick stays
                choose(page, "Colour by", colour)
                page.get_by_text(picked + " ·").first.wait_for(timeout=30_000)
                assert_clean(page, f"Latent space, coloured by {colour} with {picked} picked")
        screenshot(page, SHOTS / f"{name}.png")
        if name == "latent":
            page.get_by_role("button", name="Clear the selection").click()
            page.get_by_text("Click a point to select it").wait_for(timeout=30_000)

    page.get_by_role("tab", name="Side by side").click()
    page.get_by_text("the best value of each metric is highlighted").wait_for(timeout=30_000)
    wait_idle(page)
    assert_clean(page, "Compare, side by side")
    screenshot(page, SHOTS / "compare-side-by-side.png")


MIN_CHART_WIDTH = 320


def chart_widths(page) -> list[int]:
    """Return the width in pixels of each visible chart in the main block."""
    return page.evaluate("""() => [...document.querySelectorAll(
        '[data-testid="stMainBlockContainer"] [data-testid="stPlotlyChart"]')]
        .map(c => Math.round(c.getBoundingClientRect().width)).filter(w => w > 0)""")


@pytest.mark.browser
def test_every_control_in_reach_on_a_narrow_window(server, page):
    """At 800 px wide with the sidebar open (half a laptop's screen, an old projector) rows of controls wrap: none is
    cut off, as the Latent page's UMAP and 3-D buttons and Reconstruct's "worst first" once were. Charts that stand
    side by side on a wide window take a line each: none is squeezed into a strip, as the Latent map once was."""
    narrow = page.context.browser.new_page(viewport={"width": 800, "height": 900})
    try:
        narrow.goto(server[0] + "/")
        wait_heading(narrow, "Autoencoder Explorer")
        wait_idle(narrow)
        checked = [("Home", chart_widths(narrow))]
        for link, heading in [("Train", "Train an autoencoder"), *[(p[0], p[1]) for p in PAGES if p[2] != "vae_lab"]]:
            open_page(narrow, link, heading)
            assert_clean(narrow, f"{link}, 800 px wide")
            checked.append((link, chart_widths(narrow)))
        open_page(narrow, "Reconstruct", "Reconstruct")
        narrow.get_by_role("tab", name="Data it has never seen").click()
        narrow.get_by_text("PSNR on sprites (never seen)").wait_for(timeout=60_000)
        wait_idle(narrow)
        assert_clean(narrow, "Reconstruct, a data set never seen, 800 px wide")  # its histogram's legend: in the clear
        checked.append(("Reconstruct, never seen", chart_widths(narrow)))
        choose(narrow, "Model", "vae")
        open_page(narrow, "VAE lab", "VAE lab")
        assert_clean(narrow, "VAE lab, 800 px wide")
        checked.append(("VAE lab", chart_widths(narrow)))
        # the main block is about 470 px wide: two charts side by side would each get about 230 px or less
        squeezed = [(name, widths) for name, widths in checked if min(widths, default=MIN_CHART_WIDTH) < MIN_CHART_WIDTH]
        assert squeezed == [], f"charts narrower than {MIN_CHART_WIDTH} px in a window 800 px wide: {squeezed}"
        assert sum(len(widths) for _, widths in checked) >= 5  # home, Train's shape, Latent's map, Denoise's two
    finally:
        narrow.close()


@pytest.mark.browser
def test_another_data_set_shows_the_settings_the_page_uses(server, page):
    """Settings whose choices come from the data set start at the page's defaults with another data set, in the
    browser too: dropping their values once reset what the page used but not what the browser showed (Colour by read
    "reconstruction error" over a map coloured by label). Going back finds the first data set's settings."""
    fresh = page.context.browser.new_page(viewport=VIEWPORT)  # a session of its own
    try:
        fresh.goto(server[0] + "/")
        wait_heading(fresh, "Autoencoder Explorer")
        open_page(fresh, "Latent space", "Latent space")
        colour = fresh.get_by_role("combobox", name="Colour by", exact=True)
        choose(fresh, "Colour by", "reconstruction error")
        choose(fresh, "Data set", "sprites")
        wait_heading(fresh, "Latent space")
        assert colour.input_value() == "label"
        assert fresh.locator('[data-testid="stPlotlyChart"]').get_by_text("heart").count()  # coloured by label
        choose(fresh, "Data set", "digits")
        wait_heading(fresh, "Latent space")
        assert colour.input_value() == "reconstruction error"
        assert_clean(fresh, "Latent space after two changes of data set")
    finally:
        fresh.close()
