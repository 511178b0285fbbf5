"""The MLflow UI and optuna-dashboard driven in headless Chromium, as a person would use them.

Used by ``bench/ui_screenshots.py`` (the pictures in docs/tracking.md) and by the browser test.
Playwright is a development dependency; the browser is the system's Chromium (Debian's ``chromium``),
never one Playwright downloads. The selectors follow MLflow 3.17's UI (the runs table is an ag-grid).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence

CHROMIUM_ENV = "MSCM_CHROMIUM"  # path of the browser, when it is not on PATH
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_MS = 60_000  # a cold MLflow UI on 2 cores takes several seconds per view


def find_chromium() -> str | None:
    """The Chromium to drive: $MSCM_CHROMIUM, else the first of chromium, chromium-browser, google-chrome."""
    explicit = os.environ.get(CHROMIUM_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return next((path for path in map(shutil.which, _CANDIDATES) if path), None)


@contextlib.contextmanager
def browser_page(width: int = 1600, height: int = 1000) -> Iterator:
    """A Playwright page in headless Chromium at ``width`` x ``height``."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise FileNotFoundError(f"no Chromium found (install Debian's chromium or set ${CHROMIUM_ENV})")
    with sync_playwright() as p:
        # --no-sandbox: containers (CI, this project's machines) run as root, where the sandbox cannot start.
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def _close_assistant(page) -> None:
    """MLflow 3 opens an assistant side panel on first visit; it hides half the table."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count():
        close.first.click()


def open_runs_table(page, ui_url: str, experiment_id: str, columns: Sequence[str] = ()) -> None:
    """The experiment's runs table with every parent run expanded and ``columns`` (metric or param
    names, e.g. ``best/mAP``, ``optim.lr``) shown."""
    page.goto(f"{ui_url}/#/experiments/{experiment_id}/runs", wait_until="load")
    page.locator(".ag-row").first.wait_for()
    _close_assistant(page)
    expanders = page.locator(".ag-pinned-left-cols-container .ag-row button[data-component-id*=runnamecellrenderer]")
    for i in range(expanders.count()):  # the expand buttons of parent runs
        expanders.nth(i).click()
    page.wait_for_timeout(500)
    if columns:
        page.get_by_role("button", name="Columns", exact=True).click()
        dialog = page.get_by_role("dialog")
        for column in columns:
            dialog.get_by_placeholder("Search columns").fill(column)
            dialog.get_by_text(column, exact=True).first.click()
        page.keyboard.press("Escape")
        page.wait_for_timeout(800)


def widen_column(page, header: str, pixels: int) -> None:
    """Drag the right edge of a runs-table column (e.g. ``Run Name``, whose trial names are long)."""
    box = page.locator(".ag-header-cell", has_text=header).first.bounding_box()
    if box is None:
        return
    x, y = box["x"] + box["width"] - 2, box["y"] + box["height"] / 2  # ag-grid's resize strip
    page.mouse.move(x - 20, y)  # hovering the header shows the strip
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + pixels, y, steps=8)
    page.mouse.up()


def visible_run_names(page) -> list[str]:
    """The run names the table shows, top to bottom (the text of their links)."""
    links = page.locator(".ag-pinned-left-cols-container .ag-row a")
    return [name.strip() for name in links.all_inner_texts() if name.strip()]


def open_chart(page, metric: str) -> None:
    """The chart view filtered to ``metric`` (e.g. ``eval/mAP``: one line per trial over the epochs)."""
    page.locator("label:has(input[value=CHART])").click()
    search = page.get_by_placeholder("Search metric charts")
    search.fill(metric)
    page.get_by_text(metric, exact=True).first.wait_for()
    page.wait_for_timeout(1500)  # the plot draws after its data arrives


def open_run(page, ui_url: str, experiment_id: str, run_id: str) -> str:
    """A run's page; returns its text once its metrics are shown."""
    page.goto(f"{ui_url}/#/experiments/{experiment_id}/runs/{run_id}", wait_until="load")
    page.get_by_text("Metrics", exact=False).first.wait_for()
    page.wait_for_timeout(1500)
    return page.inner_text("body")


def open_study(page, dashboard_url: str, study_id: int) -> str:
    """optuna-dashboard's page of one study (history, importances, timeline); returns its text."""
    page.goto(f"{dashboard_url}/dashboard/studies/{study_id}", wait_until="load")
    page.get_by_text("Hyperparameter Importance", exact=False).first.wait_for()
    page.wait_for_timeout(2000)
    return page.inner_text("body")
