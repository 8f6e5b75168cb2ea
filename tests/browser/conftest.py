"""The console's browser fixtures (:mod:`tests.browser.console_fixtures`) for this directory."""

from tests.browser.console_fixtures import console_chromium, playwright_browser, stack

__all__ = ["console_chromium", "playwright_browser", "stack"]
