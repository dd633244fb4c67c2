"""infra/firestore.indexes.json has an index for every query the product makes.

The emulator answers any query without an index, so the queries are read as the client
library builds them and matched against the file the way Firestore would."""

from __future__ import annotations

from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from infra.deploy.config import DeployConfig
from infra.deploy.indexes import REQUESTS_SUFFIX, TTL_FIELD, load, request_ttl
from infra.deploy.steps import Run
from shared.cloud.store import EXPIRES_AT, JobStore
from shared.model.job import Status

COLLECTION = "batch_jobs"  # the collection the file describes


@pytest.fixture(scope="module")
def store() -> JobStore:
    client = firestore.Client(project="indexes", credentials=AnonymousCredentials())
    return JobStore(client, COLLECTION)


def shape(query: Any) -> tuple[set[str], list[tuple[str, str]]]:
    """(the fields filtered by equality or `in`, the ordered fields with their direction)."""
    where = query._to_protobuf().where  # noqa: SLF001 - the query as it is sent
    filters = (
        [f.field_filter for f in where.composite_filter.filters]
        if where.composite_filter.filters
        else [where.field_filter]
    )
    equal = {f.field.field_path for f in filters if f.field.field_path}
    orders = [
        (order.field.field_path, "ASCENDING" if order.direction == 1 else "DESCENDING")
        for order in query._to_protobuf().order_by  # noqa: SLF001
    ]
    # Every index ends with the document id in the direction of its last field: ordering
    # by it last, the same way, needs no other index.
    if len(orders) > 1 and orders[-1] == ("__name__", orders[-2][1]):
        orders = orders[:-1]
    return equal, orders


def covered(equal: set[str], orders: list[tuple[str, str]]) -> bool:
    if len(equal | {field for field, _ in orders}) <= 1:
        return True  # Firestore's automatic single-field index
    for index in load():
        if index["collectionGroup"] != COLLECTION:
            continue
        fields = [(f["fieldPath"], f["order"]) for f in index["fields"]]
        head, tail = fields[: len(equal)], fields[len(equal) :]
        if {name for name, _ in head} == equal and tail == orders:
            return True
    return False


@pytest.mark.parametrize("status", [Status.RUNNING, Status.SUCCEEDED])
@pytest.mark.parametrize("accounts", [None, ["acct-1"], ["acct-1", "acct-2"]])
def test_every_list_query_has_an_index(store, status, accounts):
    equal, orders = shape(store.find_query(status, accounts))
    assert orders == [("created", "ASCENDING")]
    assert covered(equal, orders), f"no index for {sorted(equal)} ordered by {orders}"


@pytest.mark.parametrize("accounts", [None, ["acct-1"], ["acct-1", "acct-2"]])
def test_the_list_of_every_status_has_an_index(store, accounts):
    equal, orders = shape(store.find_query(None, accounts))
    assert orders == [("created", "DESCENDING")]
    assert covered(equal, orders), f"no index for {sorted(equal)} ordered by {orders}"


def test_the_sync_query_needs_no_composite_index(store):
    equal, orders = shape(store.unfinished_query())
    assert (equal, orders) == ({"status"}, [])


def test_the_file_holds_no_index_nothing_uses(store):
    shapes = [shape(store.find_query(s, a)) for s in (Status.RUNNING, None) for a in (None, ["a"])]
    for index in load():
        fields = [(f["fieldPath"], f["order"]) for f in index["fields"]]
        assert any(
            {name for name, _ in fields[: len(eq)]} == eq and fields[len(eq) :] == orders
            for eq, orders in shapes
        ), index


def test_the_page_query_with_its_cursor_has_the_same_index(store):
    """A page after a cursor is the same query, started elsewhere in the index."""
    for status in (Status.RUNNING, None):
        for accounts in (None, ["acct-1"], ["acct-1", "acct-2"]):
            query = store.find_query(status, accounts).start_after(
                {"created": 1, "__name__": "0f2b8c1e-4a8e-4c5e-9a57-000000000000"}
            )
            raw = query.limit(101)._to_protobuf()  # noqa: SLF001
            assert [o.field.field_path for o in raw.order_by] == ["created", "__name__"]
            assert covered(*shape(query))


def test_the_ttl_policy_is_on_the_request_keys_field():
    from tests.deploy.test_plan import EXAMPLE

    config = DeployConfig.load({}, EXAMPLE)
    (run,) = request_ttl(config).actions
    assert isinstance(run, Run)
    assert TTL_FIELD == EXPIRES_AT
    assert f"--collection-group={config.collection}{REQUESTS_SUFFIX}" in run.argv
    store = JobStore(firestore.Client(project="x", credentials=AnonymousCredentials()), "c")
    assert store.requests.id == f"c{REQUESTS_SUFFIX}"
    assert "--enable-ttl" in run.argv and TTL_FIELD in run.argv
