"""The dashboard in headless Chromium against the real services: it asks for
the token, shows the helpers and a task while it runs, then the task's page
with its result and logs. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
from pymongo import MongoClient

from seeker.client import SeekerClient
from tests.browser.conftest import ARTIFACTS

pytestmark = [pytest.mark.integration, pytest.mark.docker]

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips, or fails under CI=true
    expect = None

SHORT = 15_000  # ms: the page refreshes itself every 2 s
LONG = 60_000  # ms: a task's container start and end


def sign_in(page, stack, token: str) -> None:
    page.goto(stack.seeker_url + "/")
    expect(page.locator("#sign-in")).to_be_visible()
    page.fill("#token", token)
    page.press("#token", "Enter")


def test_page_is_public_but_data_is_not(dashboard_stack):
    page = requests.get(dashboard_stack.seeker_url + "/", timeout=5)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = requests.get(dashboard_stack.seeker_url + "/dashboard/dashboard.js", timeout=5)
    assert script.status_code == 200
    assert "javascript" in script.headers["Content-Type"]
    data = requests.get(dashboard_stack.seeker_url + "/api/v1/helpers", timeout=5)
    assert data.status_code == 401


def test_a_wrong_token_is_refused(dashboard_stack, page):
    sign_in(page, dashboard_stack, "not-the-token")
    expect(page.locator("#sign-in-error")).to_contain_text("refused the token")
    expect(page.locator("#overview")).to_be_hidden()


def test_dashboard_follows_a_running_task_to_its_result(dashboard_stack, page):
    stack = dashboard_stack
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        sign_in(page, stack, stack.token)

        measured = page.locator('#helpers tr[data-helper="measured"]')
        expect(measured).to_be_visible(timeout=SHORT)
        expect(measured.locator(".pill")).to_have_text("idle")
        expect(measured).to_contain_text(re.compile(r"\d+(\.\d)? \w?i?B / \d+(\.\d)? GiB"))
        gpu_box = page.locator('#helpers tr[data-helper="gpu-box"]')
        expect(gpu_box.locator(".gpu")).to_have_count(2)
        expect(gpu_box).to_contain_text("0% util")

        # Submitted after the page is open: it finds the tasks on its own refresh.
        client = SeekerClient(stack.seeker_url, stack.token)
        failing = client.submit(
            "seeker-demo:latest",
            ["sh", "-c", "echo oops >&2; exit 3"],
            constraints={"kind": "measured"},
        )
        failed_row = page.locator(f'#tasks tr[data-task="{failing["task_id"]}"]')
        expect(failed_row).to_have_attribute("data-state", "failed", timeout=LONG)
        expect(failed_row).to_contain_text("exited with code 3")
        task = client.submit(
            "seeker-demo:latest",
            ["sh", "-c", "sleep 5; echo done"],
            name="dashboard demo",
            constraints={"kind": "measured"},
        )
        row = page.locator(f'#tasks tr[data-task="{task["task_id"]}"]')
        expect(row).to_have_attribute("data-state", "running", timeout=LONG)
        expect(row.locator(".pill")).to_have_text("running")
        expect(row).to_contain_text("seeker-demo:latest")
        expect(measured.locator(".pill")).to_have_text("busy", timeout=SHORT)
        expect(measured).to_contain_text("1 / 2")
        page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)

        expect(row).to_have_attribute("data-state", "succeeded", timeout=LONG)
        expect(row).to_contain_text("exit 0 on measured")

        # The token stays for the tab: a reload needs no sign-in.
        page.reload()
        expect(row).to_be_visible(timeout=SHORT)
        expect(page.locator("#sign-in")).to_be_hidden()

        row.locator("a").click()
        heading = page.locator("#task-page h1")
        expect(heading).to_have_attribute("data-state", "succeeded", timeout=SHORT)
        expect(heading).to_contain_text(task["task_id"])
        result = page.locator("#results .result.canonical")
        expect(result).to_have_count(1, timeout=SHORT)
        expect(result.locator("pre.stdout")).to_have_text("done\n")
        expect(result).to_contain_text("Attempt 1 on measured")
        expect(result).to_contain_text("exit 0")
        expect(page.locator("#task-page table tr[data-attempt='1']")).to_contain_text("finished")
        page.screenshot(path=ARTIFACTS / "dashboard-task.png", full_page=True)

        page.locator("#task-page a", has_text="all tasks").click()
        expect(row).to_be_visible(timeout=SHORT)
    except AssertionError:
        print(stack.logs())
        raise


def test_a_large_fleet_is_shown_a_page_at_a_time(dashboard_stack, page):
    """105 more helpers (registered as a helper would, two of them silent
    for an hour): the dashboard shows 100 of 107, says how many are offline,
    pages on, and filters the offline ones."""
    stack = dashboard_stack
    auth = {"Authorization": f"Bearer {stack.token}"}
    extra = [f"zz-{i:03d}" for i in range(105)]
    for name in extra:
        body = {"helper_id": f"id-{name}", "name": name, "url": "http://127.0.0.1:9", "slots": 1}
        resp = requests.post(f"{stack.seeker_url}/api/v1/helpers", json=body, headers=auth)
        assert resp.status_code == 200, resp.text
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    silent = {"_id": {"$in": ["id-zz-010", "id-zz-100"]}}
    with MongoClient(stack.seeker_db_url) as db:
        db.get_default_database()["helpers"].update_many(
            silent, {"$set": {"last_seen": an_hour_ago}}
        )
    try:
        sign_in(page, stack, stack.token)
        count = page.locator("#helper-count")
        rows = page.locator("#helpers tbody tr")
        expect(count).to_have_text("(1-100 of 107, 2 offline)", timeout=SHORT)
        expect(rows).to_have_count(100)
        expect(page.locator('#helpers tr[data-helper="measured"]')).to_be_visible()
        expect(page.locator('#helpers tr[data-helper="zz-010"] .pill')).to_have_text("offline")

        page.click("#helpers-next")
        expect(count).to_have_text("(101-107 of 107, 2 offline)", timeout=SHORT)
        expect(rows).to_have_count(7)
        expect(page.locator('#helpers tr[data-helper="zz-104"]')).to_be_visible()
        expect(page.locator("#helpers-next")).to_be_disabled()
        page.screenshot(path=ARTIFACTS / "dashboard-helpers-page-2.png", full_page=True)

        page.select_option("#helper-filter", "false")  # offline: from the first page
        expect(count).to_have_text("(107, 2 offline)", timeout=SHORT)
        expect(rows).to_have_count(2)
        assert rows.evaluate_all("rs => rs.map(r => r.dataset.helper)") == ["zz-010", "zz-100"]
        expect(page.locator("#helpers-pages")).to_be_hidden()
    finally:
        for name in extra:
            requests.delete(f"{stack.seeker_url}/api/v1/helpers/id-{name}", headers=auth)


def test_older_tasks_are_a_page_away(dashboard_stack, page):
    """105 tasks no helper can take (pending): the newest 100 first, then
    the 5 before them."""
    stack = dashboard_stack
    client = SeekerClient(stack.seeker_url, stack.token)
    waiting = [
        client.submit("seeker-demo:latest", ["true"], constraints={"kind": "nowhere"})["task_id"]
        for _ in range(105)
    ]
    try:
        sign_in(page, stack, stack.token)
        page.select_option("#state-filter", "pending")
        count = page.locator("#task-count")
        rows = page.locator("#tasks tbody tr")
        expect(count).to_have_text("(1-100, newest first)", timeout=SHORT)
        expect(rows).to_have_count(100)
        expect(page.locator(f'#tasks tr[data-task="{waiting[-1]}"]')).to_be_visible()

        page.click("#tasks-next")
        expect(count).to_have_text("(101-105, newest first)", timeout=SHORT)
        shown = rows.evaluate_all("rs => rs.map(r => r.dataset.task)")
        assert sorted(shown) == sorted(waiting[:5])  # the oldest five
        expect(page.locator("#tasks-next")).to_be_disabled()

        page.click("#tasks-first")
        expect(count).to_have_text("(1-100, newest first)", timeout=SHORT)
    finally:
        for task_id in waiting:
            client.cancel(task_id)
