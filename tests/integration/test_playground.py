"""The playground page in Debian's headless Chromium (selenium driving the system `chromium-driver`;
nothing downloads a browser), through a real job on the stack, until its video plays.

The screenshot is kept as a test artifact: its path is printed (`pytest -s`) and it stays under the
test's temporary directory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.integration.support import KEY_A, SMALL_REQUEST, Live

pytestmark = pytest.mark.integration

DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BROWSER = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if not Path(DRIVER).exists():
        pytest.fail(
            "chromium-driver is not installed: run `make install` (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                 "--autoplay-policy=no-user-gesture-required", "--disable-gpu"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def fill(driver: webdriver.Chrome, field: str, value: object) -> None:
    element = driver.find_element(By.ID, field)
    element.clear()
    element.send_keys(str(value))


def test_playground_runs_a_job_and_plays_the_video(
    live: Live, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{live.base}/playground")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: d.find_elements(By.ID, "num_inference_steps"))
    # The form starts from the catalog request and shows the schema's limits.
    assert browser.find_element(By.ID, "seed").get_attribute("value") == "77"
    assert browser.find_element(By.ID, "fps").get_attribute("max") == "60"
    fill(browser, "api-key", KEY_A)
    browser.execute_script("document.getElementById('api-key').dispatchEvent(new Event('change'))")
    assert browser.execute_script("return sessionStorage.getItem('reelforge-api-key')") == KEY_A
    assert browser.execute_script("return localStorage.length") == 0
    assert Select(browser.find_element(By.ID, "model_version")).first_selected_option.text == "tiny-random"
    # The targets come from the runtime routes, with their status; pick the worker's pool.
    wait.until(lambda d: d.find_element(By.ID, "targets").get_attribute("data-version") == "tiny-random")
    target = browser.find_elements(By.CSS_SELECTOR, "input[name=target][value*='\"local\"']")
    assert "warm" in browser.find_element(By.ID, "targets").text
    target[0].click()
    for field in ("width", "height", "num_frames", "num_inference_steps"):
        fill(browser, field, SMALL_REQUEST[field])
    fill(browser, "base_num_frames", SMALL_REQUEST["num_frames"])
    curl = browser.find_element(By.ID, "curl").text
    assert '"num_inference_steps": 4' in curl and '"region": "local"' in curl and "Prefer: wait" in curl
    browser.find_element(By.ID, "submit").click()

    WebDriverWait(browser, 120).until(
        lambda d: (
            d.execute_script(
                "const v = document.getElementById('video'); return v.readyState >= 2 && !v.error"
            )
            or d.find_element(By.ID, "error").text
        )
    )
    assert browser.find_element(By.ID, "error").text == ""
    video = browser.execute_script(
        "const v = document.getElementById('video');"
        "return {src: v.currentSrc, duration: v.duration, width: v.videoWidth, poster: v.poster,"
        " mp4: v.canPlayType('video/mp4; codecs=\"avc1.42E01E\"')}"
    )
    assert video["src"].startswith("http") and video["poster"].startswith("http")
    assert video["duration"] > 0 and video["width"] == SMALL_REQUEST["width"]
    assert video["mp4"] in ("maybe", "probably")
    assert "succeeded" in browser.find_element(By.ID, "status").text
    assert browser.find_element(By.ID, "phase").text == "done"
    assert browser.find_element(By.ID, "sidecar").get_attribute("href").startswith("http")
    shot = tmp_path / "playground.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000
    print(f"playground screenshot: {shot}")
