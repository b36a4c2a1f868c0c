"""The web admin in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by selenium; nothing downloads a browser) against the real server (uvicorn on a loopback
port): log in, read the cards against the database, see a live worker appear on the runners page,
cancel a pending job and restart a failed one, watch a running job's progress change without a
reload, and see actions refused for a ``read`` key and in demo mode. Any browser console error
fails the test. Screenshots of each page land in ``var/screenshots/``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import _keys
from tests.support import Stack, make_clip, wait_for
from tests.web.conftest import Admin, serve, web_app

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver (make test installs them)")


class Browser:
    def __init__(self, driver: Any) -> None:
        self.d = driver
        self.base = ""

    def go(self, path: str) -> None:
        self.d.get(self.base + path)
        self.no_console_errors()

    def css(self, selector: str) -> Any:
        return self.d.find_element("css selector", selector)

    def all(self, selector: str) -> list[Any]:
        return self.d.find_elements("css selector", selector)

    def click(self, selector: str) -> None:
        """Click a button that submits a form, and wait for the next page to load."""
        from selenium.common.exceptions import StaleElementReferenceException

        self.d.execute_script("window.__beforeClick = true")
        for _ in range(5):  # a live region may swap the button just then
            try:
                self.css(selector).click()
                break
            except StaleElementReferenceException:
                continue
        wait_for(lambda: self.d.execute_script("return window.__beforeClick !== true && "
                                               "document.readyState === 'complete'"), 15, what="the next page")

    def console(self) -> list[dict[str, Any]]:
        return [e for e in self.d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]

    def no_console_errors(self) -> None:
        errors = self.console()
        assert not errors, f"browser console errors: {errors}"

    def login(self, key: str) -> None:
        self.go("/admin/")
        assert "/admin/login" in self.d.current_url
        self.css('input[name="api_key"]').send_keys(key)
        self.click('form[action="/admin/login"] button[type="submit"]')
        assert self.d.current_url == self.base + "/admin/", self.d.current_url
        self.no_console_errors()

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.d.save_screenshot(str(SHOTS / f"{name}.png"))

    def mark(self) -> None:
        """A marker a reload would erase: proves a change arrived live."""
        self.d.execute_script("window.__notReloaded = true")

    def not_reloaded(self) -> bool:
        return bool(self.d.execute_script("return window.__notReloaded === true"))

    def leave(self) -> None:
        """Close the live streams before the server goes (no stray console errors)."""
        self.no_console_errors()
        self.d.get("about:blank")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole module."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium manager must never fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


# Read with one script each: live regions replace their elements at any moment.
def _cards(b: Browser) -> dict[str, str]:
    return b.d.execute_script("return Object.fromEntries([...document.querySelectorAll('[data-stat]')]"
                              ".map(e => [e.dataset.stat, e.textContent.trim()]))")


def _attr(b: Browser, name: str) -> str | None:
    return b.d.execute_script(f"const e = document.querySelector('[{name}]'); return e && e.getAttribute('{name}')")


def _state(b: Browser) -> str | None:
    return _attr(b, "data-job-state")


@pytest.mark.timeout(240)
def test_operator_session(browser: Browser, stack: Stack) -> None:
    from mediarunner.fleet import FleetService

    settings = stack.settings()
    keys, client, fleet = _keys(settings), stack.client(), FleetService(settings)
    with serve(web_app(settings, stack)) as url:
        b = browser
        b.base = url
        b.login(keys["admin"])
        assert _cards(b) == {k: str(v) for k, v in fleet.dashboard().cards().items()}
        _cancel_pending(b, stack, client)
        _live_worker_and_diagnostics(b, stack, fleet)
        _restart_failed(b, stack, client)
        _live_progress(b, stack, client)
        b.go("/admin/activity")
        kinds = b.d.execute_script("return [...document.querySelectorAll('[data-kind]')].map(e => e.dataset.kind)")
        assert "job_restarted" in kinds and len(kinds) <= 50
        b.shot("activity")
        b.go("/admin/")
        b.shot("dashboard")
        _phone_dark_keyboard(b)
        b.leave()


def _cancel_pending(b: Browser, stack: Stack, client: Any) -> None:
    src = stack.tmp / "pending.mp4"
    src.touch()
    pending = client.submit_transcode(str(src), str(stack.tmp / "outputs" / "p"), ["240p"])  # no worker yet
    b.go(f"/admin/jobs/{pending.id}")
    assert _state(b) == "pending"
    b.click('button[data-action="cancel"]')
    wait_for(lambda: _state(b) == "cancelled", 10, what="the page to show the job cancelled")
    assert client.get(pending.id).state == "cancelled"


def _live_worker_and_diagnostics(b: Browser, stack: Stack, fleet: Any) -> None:
    b.go("/admin/runners")
    b.mark()
    worker = stack.inproc_worker("web1", "cpu")
    row = f'[data-runner="{worker.hostname}"]'
    wait_for(lambda: b.d.execute_script(f"return !!document.querySelector('{row}')"), 20,
             what="the new worker on the runners page, live")
    assert b.not_reloaded()
    b.shot("runners")
    wait_for(lambda: fleet.get_runner(worker.hostname).capabilities.get("ffmpeg"), 20,
             what="the worker's capabilities (sent with a heartbeat after registering)")
    b.click(f"{row} a")
    assert b.css('[data-diag="ffmpeg"]').text not in ("", "—")
    b.shot("diagnostics")


def _restart_failed(b: Browser, stack: Stack, client: Any) -> None:
    bad = stack.tmp / "garbage.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    failed = client.wait(client.submit_transcode(str(bad), str(stack.tmp / "outputs" / "f"), ["240p"]).id,
                         timeout=60)
    assert failed.state == "failed"
    b.go(f"/admin/jobs/{failed.id}")
    assert b.all("[data-job-error]")
    b.click('button[data-action="restart"]')
    assert client.get(failed.id).attempt == failed.attempt + 1  # restarted (it may fail again later)


def _live_progress(b: Browser, stack: Stack, client: Any) -> None:
    clip = make_clip(stack.tmp / "talk.mp4", seconds=8)
    job = client.submit_transcode(str(clip), str(stack.tmp / "outputs" / "talk"), ["360p", "240p"])
    b.go(f"/admin/jobs/{job.id}")
    b.mark()
    seen: list[str | None] = []

    def finished() -> bool:
        value = _attr(b, "data-progress")
        if not seen or seen[-1] != value:
            seen.append(value)
        return _state(b) == "completed" and value == "100.0"  # the whole family

    wait_for(finished, 120, interval=0.1, what="the job page to show the family completed")
    # at least one change arrived live (on this machine usually several: 0.0, 2.5, 27.6, ... 100.0)
    assert b.not_reloaded() and len(seen) >= 2 and seen[0] != "100.0", seen
    b.shot("job")


def _phone_dark_keyboard(b: Browser) -> None:
    """Phone width: no page scrolls sideways (wide tables scroll inside their box); dark theme
    applies; the keyboard reaches the skip link first and the navigation next."""
    from selenium.webdriver.common.keys import Keys

    b.d.set_window_size(390, 844)
    try:
        for path in ("/admin/runners", "/admin/jobs", "/admin/activity", "/admin/tokens", "/admin/"):
            b.go(path)
            assert b.d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), path
        b.shot("dashboard-phone")
    finally:
        b.d.set_window_size(1280, 900)
    light = b.d.execute_script("return getComputedStyle(document.body).backgroundColor")
    b.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme",
                                                                       "value": "dark"}]})
    try:
        dark = b.d.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert dark != light and dark == "rgb(15, 18, 22)", (light, dark)
        b.shot("dashboard-dark")
    finally:
        b.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    b.css("body").send_keys(Keys.TAB)
    assert b.d.execute_script("return document.activeElement.className") == "skip"
    b.d.switch_to.active_element.send_keys(Keys.TAB)
    b.d.switch_to.active_element.send_keys(Keys.TAB)
    assert b.d.execute_script("return document.activeElement.closest('nav') !== null")


@pytest.mark.timeout(120)
def test_read_key_and_demo_mode_are_refused(browser: Browser, admin: Admin) -> None:
    b = browser
    job = admin.pending_job()
    settings = admin.stack.settings()
    for who, app, refusal in [("read", web_app(settings, admin.stack), "lacks the admin scope"),
                              ("admin", web_app(settings.model_copy(update={"demo_mode": True}), admin.stack),
                               "demo mode")]:
        with serve(app) as url:
            b.base = url
            b.go("/admin/login")  # on the site, so that its cookies can be deleted
            b.d.delete_all_cookies()
            b.login(admin.keys[who])
            assert bool(b.all("[data-demo]")) == (who == "admin")
            b.go(f"/admin/jobs/{job.id}")
            assert b.d.execute_script("return document.querySelector('button[data-action=\"cancel\"]').disabled")
            # force it past the page
            b.d.execute_script("window.__beforeClick = true; const e = document.querySelector("
                               "'button[data-action=\"cancel\"]'); e.removeAttribute('disabled'); e.click()")
            wait_for(lambda: b.d.execute_script("return window.__beforeClick !== true && "
                                                "document.readyState === 'complete'"), 15, what="the refusal")
            assert refusal in b.css("[data-error]").text
            # the browser logs the refused document's 403 as an error: that one is expected, no other
            assert all("403" in e["message"] for e in b.console())
            assert admin.stack.client().get(job.id).state == "pending"
            b.leave()
