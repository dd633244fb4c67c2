"""The status page (`/ui/` on `batch_api`) in headless Chromium, against `make run`'s stack:
real jobs run on the local cloud, the page reading the JSON API as a browser would.

Takes a screenshot of the list and of a job's page: into SCREENSHOT_DIR when it is set
(`make screenshots` sets it to docs/, the README's pictures), else into a temporary folder,
so a test run leaves the checkout as it was."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from cli.auth import LOCAL_CALLER, local_token
from infra.local.config import isolated_env
from infra.local.prereqs import CHROMIUM
from infra.local.stack import read_env_file
from tests.cli.conftest import NO_SPOT_TO_LEND
from tests.local.test_stack import descendants, start_stack, stop_stack

pytestmark = pytest.mark.slow
ACCOUNT = "acct-ui"
HOSTILE = "<script>alert(1)</script>"
# A log line a browser would run if the page ever parsed it as HTML.
HOSTILE_LOG = '<img src=x onerror="alert(2)"><b>bold?</b>'
WAIT_MS = 60_000  # how long the page may take to show what the API already holds


@dataclass
class Cloud:
    api: str  # batch_api's base URL
    issuer_key: Path  # the stack's token issuer's key: tokens for anyone
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # by role

    def token(self, email: str = LOCAL_CALLER) -> str:
        return local_token(self.issuer_key, email, self.api)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def create(self, role: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = requests.post(f"{self.api}/batch/", json=body, headers=self.headers, timeout=60)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()["data"]
        self.jobs[role] = job
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        answer = requests.get(f"{self.api}/batch/{job_id}", headers=self.headers, timeout=30)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()["data"]
        return job

    def wait_for(self, job_id: str, *statuses: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (job := self.get(job_id))["status"] not in statuses:
            assert time.monotonic() < deadline, f"job not {statuses}: {job}"
            time.sleep(0.5)
        return job


def _python(code: str, **fields: Any) -> dict[str, Any]:
    return {
        "account_id": ACCOUNT,
        **fields,
        "job_parameters": {"docker_image": "python:3.11", "command": ["python3", "-c", code]},
    }


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """`make run`'s stack on free ports, with a job of each kind the tests look at: one
    that succeeded with a known log, one that failed, one still running, and one whose
    account and log hold HTML. Stopped afterwards, leaving no process behind."""
    state = tmp_path_factory.mktemp("ui") / "state"
    env = isolated_env(
        state, GC_BUCKET_NAME="ui-bucket", JOB_SYNCHRONIZATION_INTERVAL="2", **NO_SPOT_TO_LEND
    )
    stack = start_stack(state, env)
    spawned: set[int] = set()
    try:
        spawned = descendants(stack.pid)
        cloud = Cloud(
            f"http://127.0.0.1:{env['API_PORT']}",
            Path(read_env_file(state / "env")["LOCAL_ISSUER_KEY"]),
        )
        hello = "print('hello from the status page'); open('/output/out.txt', 'w').write('hi')"
        cloud.create("hello", _python(hello, name="ui-hello"))
        cloud.create("failing", _python("print('about to fail'); raise SystemExit(3)"))
        cloud.create(
            "running",
            _python("import time; print('started', flush=True); time.sleep(600)", name="ui-long"),
        )
        hostile = f"print({HOSTILE_LOG!r}); print({HOSTILE!r})"
        cloud.create("hostile", {**_python(hostile), "account_id": HOSTILE})
        cloud.wait_for(cloud.jobs["hello"]["id"], "succeeded")
        cloud.wait_for(cloud.jobs["failing"]["id"], "failed")
        cloud.wait_for(cloud.jobs["hostile"]["id"], "succeeded")
        cloud.wait_for(cloud.jobs["running"]["id"], "running")
        yield cloud
    finally:
        stop_stack(stack, spawned)


@dataclass
class Browser:
    page: Any
    dialogs: list[str]
    problems: list[str]  # console errors and uncaught exceptions: the script must have none


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if not folder:
        return tmp_path_factory.mktemp("screenshots")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser(chromium: Any, cloud: Cloud) -> Iterator[Browser]:
    """A tab signed in as the operator, through the link `ktr ui` prints."""
    with _tab(chromium, f"{cloud.api}/ui/#token={cloud.token()}") as tab:
        yield tab


@pytest.fixture
def stranger(chromium: Any) -> Iterator[Browser]:
    """A tab that has signed in as nobody."""
    with _tab(chromium, None) as tab:
        yield tab


@contextlib.contextmanager
def _tab(chromium: Any, sign_in: str | None) -> Iterator[Browser]:
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    dialogs: list[str] = []
    problems: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: problems.append(str(error)))
    # A 404 or 400 the page asked for is logged by Chromium as a console error; the page
    # itself shows those. Anything else (a script error, a CSP violation) is a problem.
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    if sign_in is not None:
        page.goto(sign_in)
        page.wait_for_function("() => location.hash === '#/'")
    try:
        yield Browser(page, dialogs, problems)
    finally:
        context.close()
    assert problems == []


def _row(page: Any, job_id: str) -> Any:
    return page.locator(f'#jobs tbody tr[data-id="{job_id}"]')


def test_the_page_is_served_with_its_security_headers(cloud, browser):
    response = browser.page.goto(f"{cloud.api}/ui")
    assert response.url == f"{cloud.api}/ui/"  # /ui redirects
    headers = response.headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"].startswith("default-src 'self';")
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "private, no-cache"
    assert browser.page.title().startswith("Jobs")


def test_a_submitted_job_appears_in_the_list_and_filters_by_status(cloud, browser):
    from playwright.sync_api import expect

    page = browser.page
    page.goto(f"{cloud.api}/ui/")
    running, hello = cloud.jobs["running"], cloud.jobs["hello"]
    # The page opens on every job, newest first: what someone who just ran a few wants.
    row = _row(page, running["id"])
    expect(row).to_be_visible()
    expect(row.locator("td").nth(0)).to_have_text("ui-long")
    expect(row.locator("td").nth(2)).to_have_text(ACCOUNT)
    expect(row.locator("td").nth(3)).to_have_text("running")
    expect(_row(page, hello["id"])).to_be_visible()
    assert page.locator("#filter-status").input_value() == "any"
    ids = page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    newest_first = sorted(cloud.jobs.values(), key=lambda job: job["created"], reverse=True)
    assert ids == [job["id"] for job in newest_first if job["id"] in ids]

    page.select_option("#filter-status", "running")
    expect(_row(page, hello["id"])).to_have_count(0)
    expect(_row(page, running["id"])).to_be_visible()
    page.select_option("#filter-status", "succeeded")
    expect(_row(page, hello["id"])).to_be_visible()
    expect(_row(page, running["id"])).to_have_count(0)
    expect(_row(page, hello["id"]).locator("td").nth(3)).to_have_text("succeeded")
    assert "status=succeeded" in page.url

    # the account filter: the job of another account goes
    expect(_row(page, cloud.jobs["hostile"]["id"])).to_be_visible()
    page.fill("#filter-account", ACCOUNT)
    page.click("#filters button[type=submit]")
    expect(_row(page, cloud.jobs["hostile"]["id"])).to_have_count(0)
    expect(_row(page, hello["id"])).to_be_visible()

    page.select_option("#filter-status", "failed")
    expect(_row(page, cloud.jobs["failing"]["id"])).to_be_visible()
    expect(page.locator("#jobs tbody tr")).to_have_count(1)


def test_a_list_is_paged_with_next_page_token(cloud, browser):
    from playwright.sync_api import expect

    page = browser.page
    page.goto(f"{cloud.api}/ui/#/?status=succeeded&page_size=1")
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(1)
    first = rows.get_attribute("data-id")
    assert first
    expect(page.locator("#page-first")).to_be_hidden()
    page.click("#page-next")
    expect(page.locator("#page-first")).to_be_visible()
    expect(rows).to_have_count(1)
    expect(rows).not_to_have_attribute("data-id", first)
    expect(page.locator("#page-next")).to_be_hidden()  # two succeeded jobs in all
    assert "page_token=" in page.url
    page.click("#page-first")
    expect(rows).to_have_attribute("data-id", first)


def test_the_list_screenshot(cloud, browser, shots):
    from playwright.sync_api import expect

    page = browser.page
    # Ordinary jobs, one of each outcome: the account the hostile job is not in.
    page.goto(f"{cloud.api}/ui/#/?account_id={ACCOUNT}")
    expect(page.locator("#jobs tbody tr")).to_have_count(3)
    expect(page.locator("#jobs-caption")).to_have_text(f"3 jobs of account {ACCOUNT}, newest first")
    page.screenshot(path=str(shots / "status-list.png"), full_page=True)
    assert (shots / "status-list.png").read_bytes().startswith(b"\x89PNG")


def test_a_jobs_page_shows_its_transitions_log_and_output(cloud, browser, shots):
    from playwright.sync_api import expect

    page = browser.page
    job = cloud.get(cloud.jobs["hello"]["id"])
    page.goto(f"{cloud.api}/ui/")
    page.select_option("#filter-status", "succeeded")
    _row(page, job["id"]).locator("a").click()
    assert page.url.endswith(f"#/job/{job['id']}")
    expect(page.locator("#job-name")).to_have_text("ui-hello")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#log")).to_contain_text("hello from the status page")
    expect(page.locator("#log-state")).to_contain_text("complete")
    # created, then each transition the API records, in order
    steps = [step["to"] for step in job["transitions"]]
    assert steps[-1] == "succeeded", job["transitions"]
    timeline = page.locator("#timeline li .status")
    expect(timeline).to_have_text(["created", *steps])
    expect(page.locator("#timeline li").nth(1)).to_contain_text(job["transitions"][0]["reason"])
    link = page.locator("#output-link")
    expect(link).to_be_visible()
    assert link.get_attribute("href") == job["output_file_url"]
    parameters = json.loads(page.locator("#parameters").inner_text())
    assert parameters == job["job_parameters"]
    expect(page.locator("#failure")).to_be_hidden()
    page.screenshot(path=str(shots / "status-job.png"), full_page=True)
    assert (shots / "status-job.png").read_bytes().startswith(b"\x89PNG")
    page.click("#back")  # back to the list it came from, its filter kept
    expect(_row(page, job["id"])).to_be_visible()
    assert page.locator("#filter-status").input_value() == "succeeded"


def test_a_running_jobs_log_is_followed(cloud, browser):
    from playwright.sync_api import expect

    page = browser.page
    page.goto(f"{cloud.api}/ui/#/job/{cloud.jobs['running']['id']}")
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator("#log")).to_contain_text("started")
    expect(page.locator("#log-state")).to_contain_text("following")
    # Killed through the API, the page sees it on its own.
    killed = requests.delete(
        f"{cloud.api}/batch/{cloud.jobs['running']['id']}", headers=cloud.headers, timeout=60
    )
    assert killed.status_code == 200, killed.text
    expect(page.locator("#job-status")).to_have_text("killed")
    expect(page.locator("#log-state")).to_contain_text("complete")
    expect(page.locator("#timeline li .status").last).to_have_text("killed")


def test_a_failed_job_shows_why(cloud, browser):
    from playwright.sync_api import expect

    page = browser.page
    job = cloud.get(cloud.jobs["failing"]["id"])
    page.goto(f"{cloud.api}/ui/#/job/{job['id']}")
    expect(page.locator("#failure")).to_be_visible()
    expect(page.locator("#failure-reason")).to_have_text(job["reason"])
    expect(page.locator("#failure-exit")).to_have_text("exit code 3")
    expect(page.locator("#log")).to_contain_text("about to fail")
    expect(page.locator("#output")).to_be_hidden()


def test_what_a_user_sent_is_shown_as_text_and_never_run(cloud, browser):
    from playwright.sync_api import expect

    page = browser.page
    job = cloud.jobs["hostile"]
    page.goto(f"{cloud.api}/ui/#/?status=succeeded")
    row = _row(page, job["id"])
    expect(row.locator("td").nth(2)).to_have_text(HOSTILE)  # the account, literally
    row.locator("a").click()
    expect(page.locator("#job-facts")).to_contain_text(HOSTILE)
    expect(page.locator("#log")).to_contain_text(HOSTILE_LOG)
    expect(page.locator("#log")).to_contain_text(HOSTILE)
    expect(page.locator("#parameters")).to_contain_text(HOSTILE)
    # Nothing of it became an element: no script, image or bold text anywhere in the page.
    assert page.locator("main script, main img, main b").count() == 0
    assert page.evaluate("document.scripts.length") == 1  # app.js alone
    assert browser.dialogs == []


def test_a_missing_job_says_not_found(cloud, browser):
    from playwright.sync_api import expect

    page = browser.page
    missing = str(uuid.uuid4())
    page.goto(f"{cloud.api}/ui/#/job/{missing}")
    problem = page.locator("#job-problem")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("Job not found")
    expect(problem).to_contain_text(f"Batch job {missing} not found.")
    expect(page.locator("#job-body")).to_be_hidden()


def test_an_array_jobs_page_shows_its_tasks_and_each_output(cloud, browser):
    from playwright.sync_api import expect

    body = _python("import os; print('task', os.environ['TASK_INDEX'])", name="ui-sweep")
    body["job_parameters"]["task_count"] = 3
    job = cloud.create("sweep", body)
    done = cloud.wait_for(job["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    page = browser.page
    page.goto(f"{cloud.api}/ui/#/job/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#job-facts")).to_contain_text(
        "3: 3 succeeded, 0 failed, 0 running, 0 pending"
    )
    links = page.locator("#task-output-links a")
    expect(links).to_have_text(["task 0", "task 1", "task 2"])
    assert [links.nth(i).get_attribute("href") for i in range(3)] == done["task_output_urls"]
    expect(page.locator("#log-task")).to_have_text("(task 0)")
    expect(page.locator("#log")).to_contain_text("task 0")


def test_a_viewer_sees_only_the_jobs_of_its_accounts(cloud, chromium, stranger):
    """Signed in as a viewer of ACCOUNT, the page lists its jobs and no other; signed in as
    nobody, it asks for a sign-in and shows no job."""
    body = {"account_id": ACCOUNT, "members": {"viewer@ui.test": "viewer"}}
    made = requests.post(f"{cloud.api}/accounts/", json=body, headers=cloud.headers, timeout=30)
    assert made.status_code == 200, made.text
    with _tab(chromium, f"{cloud.api}/ui/#token={cloud.token('viewer@ui.test')}") as tab:
        page = tab.page
        page.goto(f"{cloud.api}/ui/#/?status=any")
        page.locator(_row_selector(cloud.jobs["hello"]["id"])).wait_for()
        rows = page.locator("#jobs tbody tr")
        shown = set(rows.evaluate_all("rows => rows.map(r => r.dataset.id)"))
        assert cloud.jobs["hostile"]["id"] not in shown  # another account's
        assert {cloud.jobs[role]["id"] for role in ("hello", "failing", "running")} <= shown
        assert "sign in" not in page.content().lower()

    stranger.page.goto(f"{cloud.api}/ui/")
    stranger.page.get_by_text("Sign in").wait_for()
    assert stranger.page.locator("#jobs tbody tr").count() == 0


def _row_selector(job_id: str) -> str:
    return f'#jobs tbody tr[data-id="{job_id}"]'


def test_a_job_waiting_for_quota_shows_its_place_in_line(cloud, browser):
    """An account whose quota runs one job at a time: its second job's badge says it waits,
    and its page says where, why and since when."""
    from playwright.sync_api import expect

    body = {"account_id": "ui-queue", "quota": {"on-demand": {"pods": 0}, "spot": {"pods": 1}}}
    made = requests.post(f"{cloud.api}/accounts/", json=body, headers=cloud.headers, timeout=30)
    assert made.status_code == 200, made.text
    sleeper = _python("import time; time.sleep(600)", account_id="ui-queue")
    sleeper["job_parameters"]["spot"] = True
    first = cloud.create("queue-first", sleeper)
    second = cloud.create("queue-second", sleeper)
    page = browser.page
    page.goto(f"{cloud.api}/ui/#/?status=running&account_id=ui-queue")
    expect(_row(page, second["id"]).locator(".status")).to_have_text("waiting #1", timeout=30_000)
    expect(_row(page, first["id"]).locator(".status")).to_have_text("running")
    page.goto(f"{cloud.api}/ui/#/job/{second['id']}")
    expect(page.locator("#job-status")).to_have_text("waiting #1")
    facts = page.locator("#job-facts")
    expect(facts).to_contain_text("ui-queue, #1 in line")
    expect(facts).to_contain_text("insufficient unused quota for pods in flavor spot")
    for job in (first, second):
        killed = requests.delete(
            f"{cloud.api}/batch/{job['id']}", headers=cloud.headers, timeout=30
        )
        assert killed.status_code == 200, killed.text
