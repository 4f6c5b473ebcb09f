"""Swagger UI and ReDoc really render in headless Chromium, served without any CDN, and
Swagger UI's Authorize dialog signs in and calls a protected endpoint."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "headless Chromium is not installed (apt-get install chromium "
            "chromium-driver); the browser tests of /docs and /redoc did not run"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver: Any, css: str, timeout: float = 20) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def test_swagger_ui_renders_every_operation(browser: Any, live_server: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server}/docs")
    _wait(browser, ".opblock")
    assert browser.title == "Imangor API - Swagger UI"
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/health", "/auth/token", "/users/me"} <= {p.replace("\u200b", "") for p in paths}
    errors = [
        e
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "favicon" not in e["message"]
    ]
    assert not [e for e in errors if "http" in e["message"] and "127.0.0.1" not in e["message"]]


def test_redoc_renders_the_operations(browser: Any, live_server: str) -> None:
    browser.get(f"{live_server}/redoc")
    _wait(browser, "[data-section-id^='operation/']", timeout=30)
    assert "Imangor API" in browser.page_source
    assert "Sign in with e-mail and password" in browser.page_source


def test_authorize_dialog_signs_in_and_calls_a_protected_endpoint(
    browser: Any,
    live_server: str,
    make_account: Any,
) -> None:
    from selenium.webdriver.common.by import By

    account = make_account()
    browser.get(f"{live_server}/docs#/users/read_me")
    _wait(browser, ".btn.authorize").click()
    _wait(browser, "#oauth_username").send_keys(account.email)
    browser.find_element(By.CSS_SELECTOR, "#oauth_password").send_keys(account.password)
    oauth2 = (
        "//input[@id='oauth_password']/ancestor::div[contains(@class,'auth-container')]"
        "//button[contains(@class,'authorize')]"
    )
    browser.find_element(By.XPATH, oauth2).click()  # the password flow's own button
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".modal-ux"), "Authorized")
    )
    browser.find_element(By.CSS_SELECTOR, ".btn-done").click()
    operation = _wait(browser, "#operations-users-read_me")
    if "is-open" not in operation.get_attribute("class"):
        operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    _wait(browser, "#operations-users-read_me .try-out__btn").click()
    _wait(browser, "#operations-users-read_me .execute").click()
    status = _wait(
        browser, "#operations-users-read_me .live-responses-table tbody .response-col_status"
    )
    assert status.text.strip().startswith("200")
    assert (
        account.email
        in browser.find_element(
            By.CSS_SELECTOR, "#operations-users-read_me .live-responses-table"
        ).text
    )
