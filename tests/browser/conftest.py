"""Fixtures for the dashboard tests: the real services on loopback (as in the
integration tests) and a headless Chromium driven by Playwright."""

from __future__ import annotations

import secrets
import shutil

import pytest

from tests.integration.conftest import (  # noqa: F401 (fixtures)
    Stack,
    docker_engine,
    mongo_url,
    workload_image,
)
from tests.integration.harness import ROOT
from tests.requirements import require

ARTIFACTS = ROOT / "test-artifacts"  # git-ignored; the test run keeps it
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test, so fixtures can tell a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "Playwright is not installed (pip install -e '.[dev]')")
    executable = shutil.which("chromium")
    require(executable is not None, "Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context (its own sessionStorage) and page; on a failed
    test its last state is saved as test-artifacts/dashboard-failed-<test>.png."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"dashboard-failed-{request.node.name}.png"
        page.screenshot(path=shot, full_page=True)
    context.close()


@pytest.fixture(scope="module")
def dashboard_stack(tmp_path_factory, mongo_url, workload_image):  # noqa: F811
    """channel, seeker and two helpers: `measured` (this host's real CPU and
    memory, label kind=measured) and `gpu-box` (declared resources with two
    GPUs, so the GPU bars have something to show)."""
    s = Stack(
        tmp_path_factory.mktemp("dashboard"),
        mongo_url,
        secrets.token_urlsafe(16),
        secrets.token_hex(4),
        with_helper=False,
    )
    s.start()
    try:
        s.add_helper("measured", "--slots", "2", "--label", "kind=measured")
        s.add_helper(
            "gpu-box",
            "--slots",
            "4",
            "--label",
            "kind=declared",
            "--test-resources",
            "cpus=16,memory=64g,gpus=2,gpu_memory=24g",
        )
    except BaseException:
        s.stop()
        raise
    yield s
    s.stop()
