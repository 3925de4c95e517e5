"""Headless Chromium against the Gradio UI: upload widget present, streamed reply shown."""
import os
import shutil
from pathlib import Path

import pytest

from conftest import LiveServer, sim_settings
from qvc_webui.app import create_app

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} missing (apt-get install -y chromium) - UI check skipped")
ARTIFACTS = Path(os.environ.get("QVC_WEBUI_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / ".build"))


def test_ui_upload_widget_and_streamed_reply(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    app = create_app(sim_settings(ui_enabled=True, sim_ttft_ms=50, sim_tpot_ms=30, default_max_tokens=24))
    with LiveServer(app) as srv, sync_playwright() as pw:
        # fresh profile dir per run (playwright passes it as --user-data-dir)
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            viewport={"width": 1200, "height": 800},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto(srv.url + "/", wait_until="domcontentloaded")
        upload = page.locator("input[type=file]").first
        expect(upload).to_be_attached(timeout=30_000)
        accept = upload.get_attribute("accept") or ""
        assert "image" in accept and "video" in accept, accept
        from PIL import Image

        img = tmp_path / "red.png"
        Image.new("RGB", (64, 64), (255, 0, 0)).save(img)
        upload.set_input_files(str(img))
        page.wait_for_timeout(500)
        box = page.locator("textarea").first
        box.fill("What is in this picture?")
        box.press("Enter")
        bot = page.locator(".message.bot, [data-testid=bot]").last
        expect(bot).to_contain_text("[simulated]", timeout=30_000)
        # streamed: text keeps growing after it first appears
        first = bot.inner_text()
        page.wait_for_timeout(300)
        expect(bot).to_contain_text("no model ran", timeout=30_000)
        assert len(bot.inner_text()) >= len(first)
        # the generation settings live in exactly one (collapsed) accordion below the chat
        expect(page.get_by_text("Generation settings", exact=True)).to_have_count(1)
        expect(page.get_by_text("max tokens", exact=True)).not_to_be_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "ui-screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        browser.close()
