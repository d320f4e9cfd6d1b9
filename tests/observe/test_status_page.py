"""The status page in a real headless Chromium, over a real `xos-runtime run`.

Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`),
driven by Selenium; no browser is downloaded. Without them the test skips locally and fails
in CI (`CI` set), where `.ci/run` installs them. With `XOS_RUNTIME_SCREENSHOT=path` it also
saves a screenshot of the page showing the error (`docs/make_screenshot.py`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from observed_run import Running

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test cannot run in CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_shows_the_graph_an_error_and_its_root_cause_and_follows_changes(
    start_run: Any, browser: Any
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run: Running = start_run()
    ids = run.ids
    # the page redraws what changed: an element found may be replaced before it is read
    until = WebDriverWait(
        browser, 30, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until

    def css(selector: str) -> list[Any]:
        return browser.find_elements(By.CSS_SELECTOR, selector)

    def text_of(selector: str) -> str:
        """The text of the first match, read in one step (never stale)."""
        script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''"
        return str(browser.execute_script(script, selector)).strip()

    def attributes(selector: str, name: str) -> list[str]:
        script = (
            "return [...document.querySelectorAll(arguments[0])]"
            ".map(e => e.getAttribute(arguments[1]))"
        )
        return list(browser.execute_script(script, selector, name))

    def click(selector: str) -> None:
        until(lambda _: css(selector)[0].click() or True)

    browser.get(run.base + "/")
    # the graph: a node per model, an edge per dependency, the failing model marked
    until(lambda _: len(attributes("#graph svg g.node", "data-model")) == 3)
    assert set(attributes("#graph svg g.node", "data-model")) == {"Site", "Slice", "Instance"}
    ends = attributes("path.edge", "data-from"), attributes("path.edge", "data-to")
    edges = set(zip(*ends, strict=True))
    assert edges == {("Slice", "Site"), ("Instance", "Slice")}
    until(lambda _: attributes('g.node[data-model="Site"]', "class") == ["node error"])

    # the object in error, with its message, and what it holds back
    bad = f'#problem-table tr[data-key="Site/{ids["broken-east"]}"]'
    until(lambda _: "held-vm" in text_of(f"{bad} .holds"))
    assert text_of(f"{bad} .state") == "error"
    assert "cannot reach the controller of broken-east" in text_of(f"{bad} .message")
    assert "Slice" in text_of(f"{bad} .holds")
    # what it holds back names it as the root cause, two levels down too
    for key in (f"Slice/{ids['held']}", f"Instance/{ids['held-vm']}"):
        row = f'#problem-table tr[data-key="{key}"]'
        assert text_of(f"{row} .state") == "held back"
        assert text_of(f"{row} .cause") == f"Site {ids['broken-east']}"
    assert not text_of(f'#problem-table tr[data-key="Site/{ids["good"]}"]')

    # an object's fields, a click away
    click(bad)
    status_cell = '#field-table tr[data-field="backend_status"] td:nth-child(2)'
    until(lambda _: "cannot reach" in text_of(status_cell))
    assert text_of('#field-table tr[data-field="name"] td:nth-child(2)') == "broken-east"
    click('#count-table tr[data-model="Site"]')
    until(lambda _: len(attributes("#object-table tr[data-key]", "data-key")) == 2)

    shot = os.environ.get("XOS_RUNTIME_SCREENSHOT")
    if shot:
        browser.save_screenshot(shot)

    # the site is fixed through the command line: the page follows, with no reload
    run.cli("objects", "update", "Site", str(ids["broken-east"]), "name=fixed-east")
    until(lambda _: text_of('#field-table tr[data-field="name"] td:nth-child(2)') == "fixed-east")
    until(lambda _: text_of("#problems") == "every object is in sync")
    assert attributes('g.node[data-model="Site"]', "class") == ["node"]
    until(lambda _: text_of(status_cell) == "OK")
