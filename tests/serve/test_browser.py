"""The search page in real headless Chromium (Debian's chromium + chromedriver, through Selenium):
type a query, results render, clicking a result moves the player. A screenshot is kept."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

from ..conftest import calibrate_index
from .conftest import VIDEOS

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def server(served_index):
    yield from serve(served_index)


@pytest.fixture(scope="module")
def unmatched_server(served_index, tmp_path_factory):
    """A copy of the served index calibrated so that every answer has no good match (top
    relevance sigmoid(-1) = 0.27 under 0.5)."""
    index = tmp_path_factory.mktemp("unmatched") / "index"
    shutil.copytree(served_index, index)
    calibrate_index(index, bias=-1.0, threshold=0.5)
    yield from serve(index)


def serve(index):
    """Serve an index on a free port (a generator: yields the base URL, then stops it)."""
    import uvicorn

    from moment_search.serve.app import create_app
    from moment_search.serve.service import SearchService

    service = SearchService(index, device="cpu")
    assert service.wait_ready(120)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="error")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while not running.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("MOMENT_SEARCH_REQUIRE_BROWSER"):
            pytest.fail("MOMENT_SEARCH_REQUIRE_BROWSER is set but chromium/chromedriver are "
                        "missing")
        pytest.skip("chromium and chromedriver not found (Debian: apt-get install chromium "
                    "chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(condition, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the page")


def test_search_renders_results_and_keeps_the_query_in_the_url(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/")
    box = browser.find_element(By.ID, "q")
    box.send_keys("person does action number 1")
    browser.find_element(By.ID, "k").clear()
    browser.find_element(By.ID, "k").send_keys("20")
    box.send_keys(Keys.ENTER)  # keyboard only
    rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results button.moment"))
    assert len(rows) >= 6
    assert "q=person+does+action+number+1" in browser.current_url
    assert rows[0].find_element(By.CSS_SELECTOR, ".rank").text == "1"
    assert rows[0].find_elements(By.CSS_SELECTOR, ".timeline .mark")
    assert rows[0].find_elements(By.CSS_SELECTOR, ".strip span")
    shot = tmp_path / "search-page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("MOMENT_SEARCH_SCREENSHOTS")
    if keep:
        shutil.copy(shot, keep)
    browser.get(browser.current_url)  # a shared URL runs the same search
    again = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results button.moment"))
    assert [r.text for r in again] == [r.text for r in
                                       browser.find_elements(By.CSS_SELECTOR,
                                                             "#results button.moment")]


@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"real videos not found at {VIDEOS}")
def test_clicking_a_result_moves_the_player(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/?q=person+does+action+number+0&k=30")
    rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results button.moment"))
    playable = [r for r in rows if r.get_attribute("data-video") in ("vid000", "vid001")
                and float(r.get_attribute("data-start")) > 1.0]
    assert playable, "expected a moment of a video with a file, starting after 1 s"
    row = playable[0]
    start = float(row.get_attribute("data-start"))
    row.click()
    player = browser.find_element(By.ID, "player")
    wait_for(lambda: browser.execute_script("return arguments[0].readyState", player) >= 1)
    current = wait_for(lambda: browser.execute_script(
        "return arguments[0].currentTime", player) or None)
    assert abs(current - start) < 2.0
    assert "/api/videos/" in player.get_attribute("src")


def test_the_page_shows_relevance_and_says_when_there_is_no_good_match(unmatched_server,
                                                                      browser):
    from selenium.webdriver.common.by import By

    browser.get(unmatched_server + "/?q=a+dolphin+jumps+over+a+car&k=5")
    rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results button.moment"))
    assert rows[0].find_element(By.CSS_SELECTOR, ".relevance").text == "27%"
    assert "relevance 27%" in rows[0].get_attribute("aria-label")
    notice = browser.find_element(By.ID, "no-match")
    wait_for(notice.is_displayed)
    assert "No good match" in notice.text


def test_the_page_hides_the_notice_and_relevance_without_calibration(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/?q=person+does+action+number+1&k=5")
    rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#results button.moment"))
    assert rows[0].find_element(By.CSS_SELECTOR, ".relevance").text == ""
    assert not browser.find_element(By.ID, "no-match").is_displayed()

