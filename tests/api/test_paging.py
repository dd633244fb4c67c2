"""Paged lists: `page_size`, `page_token` and the envelope's `next_page_token`."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from shared.model.job import Job, Status, now_ms


def seed(backends, count: int, *, status: Status = Status.RUNNING, same_ms: int = 1, **fields):
    """`count` jobs straight into the store, in batches of 500; `same_ms` of them share each
    creation time, so the order needs its tiebreak. Their ids, oldest first."""
    store = backends.store
    created = now_ms() - count
    jobs = []
    for number in range(count):
        job = Job(
            id=str(uuid.uuid4()),
            name=f"seeded-{number}",
            status=status,
            created=created + number // same_ms,
            job_parameters={"docker_image": "alpine:3"},
            **fields,
        )
        job.updated = job.created
        jobs.append(job)
    for start in range(0, count, 500):
        batch = store.client.batch()
        for job in jobs[start : start + 500]:
            batch.set(store.jobs.document(job.id), job.to_document())
        batch.commit()
    return [job.id for job in sorted(jobs, key=lambda job: (job.created, job.id))]


def pages(fn, query: str, client: str = "batch_api", path: str = "/batch/") -> list[list[str]]:
    found, token = [], ""
    while True:
        url = f"{path}?{query}" + (f"&page_token={token}" if token else "")
        response = fn.clients[client].get(url)
        body = json.loads(response.data)
        assert response.status_code == 200, body
        assert set(body) == {"data", "error", "msg", "result", "next_page_token"}
        found.append([job["id"] for job in body["data"]])
        token = body["next_page_token"]
        if not token:
            return found
        assert len(found) < 100, "never ends"


def test_pages_walk_the_list_oldest_first(fn_store, store_env):
    from shared.cloud.backends import default_backends

    backends = default_backends()
    ids = seed(backends, 25, same_ms=3)  # creation times shared by three jobs each
    seed(backends, 4, status=Status.FAILED)
    walked = pages(fn_store, "status=running&page_size=10")
    assert [len(page) for page in walked] == [10, 10, 5]
    assert [job for page in walked for job in page] == ids
    # A page size that divides the list: the last page is full, the token then empty.
    walked = pages(fn_store, "status=running&page_size=5")
    assert [len(page) for page in walked] == [5] * 5
    assert [job for page in walked for job in page] == ids
    assert pages(fn_store, "status=running&page_size=1000") == [ids]
    assert pages(fn_store, "status=killed&page_size=3") == [[]]


def test_pages_of_one_account(fn_store, store_env):
    from shared.cloud.backends import default_backends

    backends = default_backends()
    mine = seed(backends, 7, account_id="acct-a")
    seed(backends, 6, account_id="acct-b")
    walked = pages(fn_store, "status=running&account_id=acct-a&page_size=3")
    assert [job for page in walked for job in page] == mine
    assert [len(page) for page in walked] == [3, 3, 1]
    # The single-purpose function pages the same.
    same = pages(fn_store, "status=running&account_id=acct-a&page_size=3", "list_jobs", "/")
    assert same == walked


def test_without_page_size_a_page_is_the_first_1000(fn_store, store_env):
    """An earlier client sees its whole list while it is shorter than 1000, with an empty
    next_page_token beside it."""
    from shared.cloud.backends import default_backends

    backends = default_backends()
    ids = seed(backends, 1001, status=Status.SUCCEEDED)
    status, first = fn_store.api("GET", "/batch/?status=succeeded")
    assert status == 200
    assert [job["id"] for job in first["data"]] == ids[:1000]
    assert first["next_page_token"]
    token = first["next_page_token"]
    status, last = fn_store.api("GET", f"/batch/?status=succeeded&page_token={token}")
    assert ([job["id"] for job in last["data"]], last["next_page_token"]) == (ids[1000:], "")


def token_of(fn, query: str) -> str:
    status, body = fn.api("GET", f"/batch/?{query}")
    assert status == 200 and body["next_page_token"], body
    token: str = body["next_page_token"]
    return token


def encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_bad_token_is_a_400_naming_it(fn_store, store_env):
    from shared.cloud.backends import default_backends

    ids = seed(default_backends(), 6, account_id="acct-a")
    token = token_of(fn_store, "status=running&account_id=acct-a&page_size=2")
    cursor = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert cursor["i"] == ids[1]
    garbled = [
        "nonsense",
        token[:-3],
        token + "!",
        "%00",
        encode([1, 2]),
        encode({**cursor, "i": "../other/doc"}),
        encode({**cursor, "c": "1"}),
        encode({**cursor, "x": 1}),
        "A" * 5000,
    ]
    other_queries = [
        "status=running",  # no account
        "status=running&account_id=acct-b",
        "status=failed&account_id=acct-a",
    ]
    for query, bad in [("status=running&account_id=acct-a", t) for t in garbled] + [
        (query, token) for query in other_queries
    ]:
        status, refused = fn_store.api("GET", f"/batch/?{query}&page_size=2&page_token={bad}")
        assert (status, refused["error"]) == (400, "InvalidParameters"), (query, bad, refused)
        assert set(refused["data"]) == {"page_token"}, refused
    # The page size may change between pages; the query may not.
    status, rest = fn_store.api(
        "GET", f"/batch/?status=running&account_id=acct-a&page_size=10&page_token={token}"
    )
    assert (status, [job["id"] for job in rest["data"]]) == (200, ids[2:])


@pytest.mark.parametrize("size", ["0", "1001", "-1", "abc", "1.5", "٣", ""])
def test_page_size_is_from_1_to_1000(fn_store, size):
    status, refused = fn_store.api("GET", f"/batch/?status=running&page_size={size}")
    assert (status, refused["error"]) == (400, "InvalidParameters")
    assert set(refused["data"]) == {"page_size"}


def test_status_any_lists_every_status_newest_first(fn_store, store_env):
    """The list a person wants after a few jobs: all of them, the latest first, paged with
    the same tokens; an account's alone with account_id."""
    from shared.cloud.backends import default_backends

    backends = default_backends()
    running = seed(backends, 7, same_ms=2)
    failed = seed(backends, 5, status=Status.FAILED, account_id="acct-any")
    succeeded = seed(backends, 6, status=Status.SUCCEEDED, same_ms=3, account_id="acct-any")
    every = running + failed + succeeded
    created = {job.id: job.created for job in backends.store.get_many(every).values()}
    newest_first = sorted(every, key=lambda i: (created[i], i), reverse=True)
    walked = pages(fn_store, "status=any&page_size=4")
    assert [len(page) for page in walked] == [4, 4, 4, 4, 2]
    assert [i for page in walked for i in page] == newest_first
    mine = [
        i for page in pages(fn_store, "status=any&account_id=acct-any&page_size=5") for i in page
    ]
    assert mine == [i for i in newest_first if i in set(failed + succeeded)]
    # A token of this query is refused by another, and the earlier default is unchanged.
    token = json.loads(fn_store.clients["batch_api"].get("/batch/?status=any&page_size=1").data)
    other = fn_store.clients["batch_api"].get(f"/batch/?page_token={token['next_page_token']}")
    assert other.status_code == 400
    assert [i for page in pages(fn_store, "page_size=50") for i in page] == running


def test_a_job_is_found_by_its_name(fn_store, store_env):
    from shared.cloud.backends import default_backends

    backends = default_backends()
    (failed,) = seed(backends, 1, status=Status.FAILED, account_id="acct-named")
    record = backends.store.get(failed)
    assert record is not None
    name = record.name
    backends.store.names.document(name).set({"job_id": failed})  # as a create writes it

    def listed(query: str) -> list[str]:
        response = fn_store.clients["batch_api"].get(f"/batch/?{query}")
        body = json.loads(response.data)
        assert response.status_code == 200, body
        assert body["next_page_token"] == ""
        return [job["id"] for job in body["data"]]

    assert listed(f"name={name}") == [failed]  # of any status, unless one is asked for
    assert listed(f"name={name}&status=failed&account_id=acct-named") == [failed]
    assert listed(f"name={name}&status=running") == []
    assert listed(f"name={name}&account_id=another") == []
    assert listed("name=no-such-job") == []
    assert listed("name=a%2Fb") == []  # no name holds a slash: nothing is looked up
