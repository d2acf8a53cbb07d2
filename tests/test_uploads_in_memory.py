"""Files a person uploads (a picture, a model file) never reach the server's disk: a real server, with an audit hook
recording every file it opens for writing, renames or removes, is sent both through Chromium."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

import aecore as ae
from browser_util import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, problems, streamlit_server, wait_heading, wait_idle

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "tests" / "audited_streamlit.py"


def _mark(log: Path, text: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.write(fd, f"MARK\t{text}\n".encode())
    os.close(fd)


def _between(log: Path, start: str, end: str) -> list[str]:
    lines = log.read_text().splitlines()
    return lines[lines.index(f"MARK\t{start}") + 1:lines.index(f"MARK\t{end}")]


def _files(tmp_path: Path, digits_split) -> tuple[Path, Path]:
    train, val = digits_split
    model_spec, train_spec = ae.preset("vanilla", train.shape, train=dict(epochs=1))
    model = ae.build_model(model_spec)
    ae.fit(model, train, val, train_spec)
    model_file = tmp_path / "mine.safetensors"
    ae.save(model, model_file, train_spec=train_spec, dataset={"name": "digits", "shape": list(train.shape)})
    picture = tmp_path / "seven.png"
    ink = np.full((120, 90), 255, np.uint8)
    ink[20:30, 15:75] = 0
    ink[30:100, 55:65] = 0
    Image.fromarray(ink).save(picture)
    return model_file, picture


def test_uploaded_pictures_and_models_never_touch_the_disk(tmp_path, digits_split):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    model_file, picture = _files(tmp_path, digits_split)
    audit = tmp_path / "audit.log"
    launcher = (str(LAUNCHER),)
    with streamlit_server(ROOT, tmp_path / "server.log", launcher=launcher, env={"AECORE_AUDIT_LOG": str(audit)}) as url, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{url}/reconstruct")
            wait_heading(page, "Reconstruct")
            _mark(audit, "uploads start")
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.locator('input[type="file"]').set_input_files(str(model_file))
            page.get_by_text("opened: mine.safetensors").first.wait_for(timeout=60_000)
            wait_idle(page)
            page.get_by_role("tab", name="Your own image").click()
            uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Upload an image")
            uploader.locator('input[type="file"]').set_input_files(str(picture))
            page.get_by_text("your picture").first.wait_for(timeout=60_000)
            wait_idle(page)
            assert not problems(page), problems(page)
            _mark(audit, "uploads end")
        finally:
            browser.close()
    written = _between(audit, "uploads start", "uploads end")
    assert not written, f"the server wrote to disk while handling uploads: {written}"


def test_the_audit_hook_records_a_write(tmp_path):
    audit, target = tmp_path / "audit.log", tmp_path / "written.txt"
    subprocess.run([sys.executable, str(LAUNCHER), "--selftest", str(target)], check=True,
                   env=dict(os.environ, AECORE_AUDIT_LOG=str(audit)))
    assert f"write\t{target}" in audit.read_text().splitlines()
