"""Selenium helpers (imported only when selenium is installed)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--lang=es-CO",
    "--window-size=1366,768",
)


#: A fake microphone (Chromium's beeping test source) granted without a prompt.
FAKE_MEDIA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")


def make_driver(
    chromium: str, chromedriver: str, profile: Path, extra_flags: tuple[str, ...] = ()
) -> WebDriver:
    """A headless Chromium; started a second time if its first renderer never answers (seen
    once on a loaded 2-core machine: "Timed out receiving message from renderer: 30.000")."""
    try:
        return _start_driver(chromium, chromedriver, profile, extra_flags)
    except TimeoutException:
        second = profile.with_name(profile.name + "-2")
        return _start_driver(chromium, chromedriver, second, extra_flags)


def _start_driver(
    chromium: str, chromedriver: str, profile: Path, extra_flags: tuple[str, ...] = ()
) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS + extra_flags:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option("prefs", {"intl.accept_languages": "es-CO,es"})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, on failure
    env = {**os.environ, "TZ": "America/Bogota"}
    service = Service(executable_path=chromedriver, env=env)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        set_viewport(driver, 1366, 768)
    except TimeoutException:
        driver.quit()
        raise
    return driver


def set_viewport(driver: WebDriver, width: int, height: int) -> None:
    """Size the window so that the page itself gets ``width`` x ``height`` pixels."""
    extra_w, extra_h = driver.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];"
    )
    driver.set_window_size(width + int(extra_w), height + int(extra_h))


class Wait:
    """An explicit wait with a description of what it waits for (shown on timeout)."""

    def __init__(self, driver: WebDriver, timeout: float, what: str) -> None:
        self.inner = WebDriverWait(
            driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=(StaleElementReferenceException,),
        )
        self.what = what
        self.timeout = timeout

    def until(self, condition: Callable[[WebDriver], Any]) -> Any:
        return self.inner.until(
            condition, f"timed out after {self.timeout:.0f} s waiting for {self.what}"
        )


def wait(driver: WebDriver, timeout: float, what: str) -> Wait:
    return Wait(driver, timeout, what)


def text_of(driver: WebDriver, css: str) -> str:
    elements = driver.find_elements(By.CSS_SELECTOR, css)
    return str(elements[0].text) if elements else ""


def body_data(driver: WebDriver, name: str) -> Any:
    return driver.execute_script("return document.body.dataset[arguments[0]] || null;", name)


def set_value(driver: WebDriver, element_id: str, value: str) -> None:
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input', {bubbles: true}));"
        "e.dispatchEvent(new Event('change', {bubbles: true}));",
        element_id,
        value,
    )


def sign_in(driver: WebDriver, base_url: str, username: str, password: str) -> None:
    driver.get(f"{base_url}/ingresar")
    driver.find_element(By.ID, "usuario").send_keys(username)
    driver.find_element(By.ID, "clave").send_keys(password)
    driver.find_element(By.ID, "btn-ingresar").click()
