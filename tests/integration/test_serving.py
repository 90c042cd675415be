"""Serving end to end: Kafka → consumer → trainer → HTTP, on the real broker and server."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from eventrec.config import Settings
from eventrec.devstack import LocalRedisCluster, LocalServices
from eventrec.schemas import EventStatus, encode
from eventrec.serving import runtime as runtime_module
from eventrec.serving.app import create_app
from eventrec.store.store import Store, connect
from eventrec.store.versions import activate_version, current_version, load_version, write_version
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import SyntheticPlatform, generate
from eventrec.synth.publish import publish
from eventrec.topics import create_topics
from tests.integration.conftest import unique_settings
from tests.integration.ingest_helpers import (
    ConsumerProcess,
    Message,
    applied_offsets,
    produce,
    settings_env,
    wait_until,
)

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    def __init__(self, settings: Settings, log_path: Path, admin_token: str | None) -> None:
        self.port = free_port()
        env = settings_env(settings)
        env["EVENTREC_HTTP_PORT"] = str(self.port)
        env.pop("EVENTREC_ADMIN_TOKEN", None)
        if admin_token:
            env["EVENTREC_ADMIN_TOKEN"] = admin_token
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eventrec.cli", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            try:
                return self.client.get("/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout, "serving ready")

    def recommend(self, user_id: str, **params: Any) -> dict[str, Any]:
        response = self.client.get("/recommendations", params={"user_id": user_id, **params})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=30)


class Stack:
    def __init__(self, settings: Settings, platform: SyntheticPlatform, serve: ServeProcess):
        self.settings = settings
        self.platform = platform
        self.serve = serve


def trainer_once(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eventrec.cli", "trainer", "--once"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def stack(services: LocalServices, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = unique_settings(services)
    create_topics(settings)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # Category tastes only: the checks below look for the planted categories.
    platform = generate(
        SynthConfig(
            n_users=2000, n_events=400, n_interactions=80_000, seed=3, now=now, latent_share=0.0
        )
    )
    publish(platform, settings, progress=False)
    logs = tmp_path_factory.mktemp("serving")
    consumer = ConsumerProcess(settings, logs / "consumer.log").start()
    serve = ServeProcess(settings, logs / "serve.log", ADMIN_TOKEN)
    try:
        wait_until(
            lambda: applied_offsets(settings) == len(platform.interactions),
            180,
            "every interaction applied",
        )
        trainer_once(settings)
        serve.wait_ready()
        yield Stack(settings, platform, serve)
    finally:
        serve.stop()
        consumer.stop()


@pytest.fixture(scope="module")
def cluster_stack(
    stack: Stack,
    services: LocalServices,
    redis_cluster: LocalRedisCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The same platform on topics of its own, applied to the local Redis Cluster."""
    redis_cluster.wait_ready()
    settings = unique_settings(services, redis_url=redis_cluster.url)
    create_topics(settings)
    publish(stack.platform, settings, progress=False)
    logs = tmp_path_factory.mktemp("serving-cluster")
    consumer = ConsumerProcess(settings, logs / "consumer.log").start()
    serve = ServeProcess(settings, logs / "serve.log", ADMIN_TOKEN)
    try:
        wait_until(
            lambda: applied_offsets(settings) == len(stack.platform.interactions),
            180,
            "every interaction applied to the cluster",
        )
        trainer_once(settings)
        serve.wait_ready()
        yield Stack(settings, stack.platform, serve)
    finally:
        serve.stop()
        consumer.stop()


# Serving's reads (rows, catalog, versions) and reload polling, on both kinds of Redis.
ON_SERVER_AND_CLUSTER_STACKS = pytest.mark.parametrize("backend", ["server", "cluster"])


@pytest.fixture
def any_stack(request: pytest.FixtureRequest, backend: str) -> Stack:
    found: Stack = request.getfixturevalue("stack" if backend == "server" else "cluster_stack")
    return found


def history(platform: SyntheticPlatform) -> dict[str, dict[str, set[str]]]:
    """Per user: events booked (not cancelled), dismissed and rated, from the messages."""
    seen: dict[str, dict[str, Any]] = {}
    for interaction in platform.interaction_models():
        if interaction.event_id is None:
            continue
        user = seen.setdefault(
            interaction.user_id, {"bookings": {}, "dismissed": set(), "rated": set()}
        )
        kind = interaction.type.value
        if kind == "booking":
            user["bookings"].setdefault(interaction.event_id, []).append(interaction.booking_id)
        elif kind == "booking_cancelled":
            live = user["bookings"].get(interaction.event_id, [])
            if interaction.booking_id in live:
                live.remove(interaction.booking_id)
            elif live:
                live.pop()
        elif kind == "dismiss":
            user["dismissed"].add(interaction.event_id)
        elif kind == "rating":
            user["rated"].add(interaction.event_id)
    return {
        user_id: {
            "booked": {e for e, live in user["bookings"].items() if live},
            "dismissed": user["dismissed"],
            "rated": user["rated"],
        }
        for user_id, user in seen.items()
    }


def active_users(platform: SyntheticPlatform, n: int) -> list[str]:
    counts: dict[str, int] = {}
    for interaction in platform.interaction_models():
        counts[interaction.user_id] = counts.get(interaction.user_id, 0) + 1
    return sorted(counts, key=lambda u: (-counts[u], u))[:n]


def test_recommendations_recover_planted_tastes(stack: Stack) -> None:
    """Recommendations land in the planted categories, and find planted favourites at
    least 1.5 times as often as the popular list.

    History of the claim: 1.5 times with the collaborative scores when the search
    validated on each user's latest pairs and chose 16 factors (727 vs 449); "not fewer"
    once the trainer chose on a time cut, which prefers 128 factors here (more factors
    follow co-bookings rather than the planted tastes: 701 favourites at 16 factors, 366
    at 128), with a margin that moved with the hour (427 vs 448 seen). The learned hybrid
    adds the content and profile signals that carry the planted tastes: 774 favourites
    against the popular list's 429 (2026-12-01), so the 1.5 times claim is back with
    room for the hour's drift. The category claims keep their 1.5 times margin.
    """
    truth = stack.platform.truth
    users = active_users(stack.platform, 120)
    popular = [item["event_id"] for item in stack.serve.client.get(
        "/popular", params={"limit": 10}).json()["items"]]  # fmt: skip
    category_of = {event.event_id: event.category for event in stack.platform.events}
    ours_category, popular_category, ours_hits, popular_hits = 0.0, 0.0, 0, 0
    for user_id in users:
        body = stack.serve.recommend(user_id, limit=10)
        assert body["strategy"] == "personalised"
        assert body["model_version"] is not None
        recommended = [item["event_id"] for item in body["items"]]
        assert len(recommended) == 10
        liked = set(truth.user(user_id).preferred_categories)
        favourites = set(truth.favourite_events(user_id, 30))
        if liked:
            ours_category += sum(category_of[e] in liked for e in recommended) / 10
            popular_category += sum(category_of[e] in liked for e in popular) / 10
        ours_hits += len(favourites & set(recommended))
        popular_hits += len(favourites & set(popular))
    assert ours_category / len(users) >= 0.6
    assert ours_category >= 1.5 * popular_category
    # Planted favourites include the platform's hugely popular events (heavy-tailed since
    # #11), which the popular list finds too.
    assert ours_hits >= 1.5 * popular_hits, (ours_hits, popular_hits)


@ON_SERVER_AND_CLUSTER_STACKS
def test_never_shows_started_cancelled_booked_dismissed_or_rated(any_stack: Stack) -> None:
    stack = any_stack
    now = time.time()
    blocked = {
        event.event_id
        for event in stack.platform.events
        if event.status != "scheduled" or event.starts_at.timestamp() <= now
    }
    past = history(stack.platform)
    for user_id in active_users(stack.platform, 300)[::2]:
        for item in stack.serve.recommend(user_id, limit=50)["items"]:
            event_id = item["event_id"]
            assert event_id not in blocked, (user_id, event_id)
            for kind in ("booked", "dismissed", "rated"):
                assert event_id not in past[user_id][kind], (user_id, kind, event_id)


@ON_SERVER_AND_CLUSTER_STACKS
def test_every_filter_is_applied(any_stack: Stack) -> None:
    stack = any_stack
    user_id = active_users(stack.platform, 1)[0]
    after = datetime.now(UTC) + timedelta(days=10)
    before = after + timedelta(days=40)
    body = stack.serve.recommend(
        user_id,
        limit=50,
        city=["Colombo", "Kandy"],
        category=["music", "food"],
        min_price=500,
        max_price=6000,
        starts_after=after.isoformat(),
        starts_before=before.isoformat(),
    )
    assert body["items"]
    for item in body["items"]:
        assert item["city"] in {"Colombo", "Kandy"}
        assert item["category"] in {"music", "food"}
        assert 500 <= item["price"]["amount"] <= 6000
        assert after <= datetime.fromisoformat(item["starts_at"]) <= before
    excluded = body["items"][0]["event_id"]
    again = stack.serve.recommend(user_id, limit=50, exclude=[excluded])
    assert excluded not in {item["event_id"] for item in again["items"]}


@ON_SERVER_AND_CLUSTER_STACKS
def test_cold_start_uses_the_profile_and_unknown_users_are_fine(any_stack: Stack) -> None:
    stack = any_stack
    profile = {
        "schema_version": 1,
        "user_id": "newcomer-1",
        "city": "Galle",
        "preferred_categories": ["sports"],
    }
    produce(
        stack.settings,
        stack.settings.topic_users,
        [Message(b"newcomer-1", json.dumps(profile).encode(), True)],
    )

    def profiled() -> bool:
        body = stack.serve.recommend("newcomer-1", limit=5)
        return body["strategy"] == "hybrid_profile"

    # No interactions, a profile: the learned blend answers from the profile.
    wait_until(profiled, 10, "the newcomer's profile")
    items = stack.serve.recommend("newcomer-1", limit=5)["items"]
    matching = [item for item in items if item["city"] == "Galle" or item["category"] == "sports"]
    assert len(matching) >= 3, items
    stranger = stack.serve.recommend("never-seen-before", limit=5)
    assert stranger["strategy"] == "trending"
    assert len(stranger["items"]) == 5


@ON_SERVER_AND_CLUSTER_STACKS
def test_an_event_cancelled_on_the_events_topic_disappears_within_2s(any_stack: Stack) -> None:
    stack = any_stack
    user_id = active_users(stack.platform, 3)[2]
    first = stack.serve.recommend(user_id, limit=5)["items"][0]["event_id"]
    event = next(e for e in stack.platform.events if e.event_id == first)
    cancelled = event.model_copy(update={"status": EventStatus.CANCELLED})
    started = time.monotonic()
    produce(
        stack.settings,
        stack.settings.topic_events,
        [Message(first.encode(), encode(cancelled), True)],
    )

    def gone() -> bool:
        items = stack.serve.recommend(user_id, limit=50)["items"]
        popular = stack.serve.client.get("/popular", params={"limit": 50}).json()["items"]
        return first not in {i["event_id"] for i in items + popular}

    wait_until(gone, 2.0, f"{first} to disappear")
    assert time.monotonic() - started < 2.5


def booking(user_id: str, event_id: str, n: int) -> Message:
    body = {
        "schema_version": 1,
        "interaction_id": f"fresh-{user_id}-{n}",
        "user_id": user_id,
        "event_id": event_id,
        "type": "booking",
        "booking_id": f"fresh-booking-{n}",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    return Message(user_id.encode(), json.dumps(body).encode(), True, body=body)


@ON_SERVER_AND_CLUSTER_STACKS
@pytest.mark.parametrize("user_kind", ["existing", "brand-new"])
def test_a_new_booking_changes_the_next_response_within_2s(
    any_stack: Stack, user_kind: str
) -> None:
    stack = any_stack
    if user_kind == "existing":
        # A user with a short history and no taste for theatre: one booking must tell.
        truth = stack.platform.truth
        counts: dict[str, int] = {}
        for interaction in stack.platform.interaction_models():
            counts[interaction.user_id] = counts.get(interaction.user_id, 0) + 1
        user_id = next(
            u
            for u in sorted(counts, key=lambda u: (counts[u], u))
            if counts[u] >= 4 and "theatre" not in truth.user(u).preferred_categories
        )
    else:
        user_id = f"brand-new-{time.time_ns()}"
    # An existing user's history outweighs one booking: look deeper than the first page.
    limit = 50 if user_kind == "existing" else 20
    before = stack.serve.recommend(user_id, limit=limit)
    category_of = {event.event_id: event.category for event in stack.platform.events}
    venue_of = {event.event_id: event.venue for event in stack.platform.events}
    target_category = "theatre"
    candidates = [
        item["event_id"]
        for item in stack.serve.client.get(
            "/popular", params={"limit": 50, "category": target_category}
        ).json()["items"]
    ]
    # The most popular theatre event that shares its venue with another one on sale.
    target = next(
        (e for e in candidates if [c for c in candidates if venue_of[c] == venue_of[e]][1:]),
        None,
    )
    assert target is not None, "no two popular theatre events share a venue on this platform"

    def share(body: dict[str, Any]) -> int:
        return sum(category_of[i["event_id"]] == target_category for i in body["items"])

    def pull(body: dict[str, Any]) -> float:
        """The category's discounted gain in the list, the booked event left out: it is
        hidden once booked, so its own place before would count against the category."""
        return sum(
            1.0 / math.log2(position + 2)
            for position, item in enumerate(body["items"])
            if category_of[item["event_id"]] == target_category and item["event_id"] != target
        )

    def mates() -> dict[str, float]:
        """The scores of the other events at the booked event's venue, among the user's
        best theatre events."""
        body = stack.serve.recommend(user_id, limit=50, category=target_category)
        return {
            i["event_id"]: i["score"]
            for i in body["items"]
            if venue_of[i["event_id"]] == venue_of[target] and i["event_id"] != target
        }

    share_before, pull_before = share(before), pull(before)
    mates_before = mates() if user_kind == "existing" else {}
    if user_kind == "existing":
        assert mates_before, "no other event at the target's venue among the theatre events"
    started = time.monotonic()
    produce(stack.settings, stack.settings.topic_interactions, [booking(user_id, target, 1)])
    after: dict[str, Any] = {}
    mates_after: dict[str, float] = {}

    def reflected() -> bool:
        nonlocal after, mates_after
        after = stack.serve.recommend(user_id, limit=limit)
        if after["strategy"] != "personalised" or target in {i["event_id"] for i in after["items"]}:
            return False
        if user_kind == "brand-new":  # from nothing known to one booking: its category
            return pull(after) > pull_before
        # A history already says much; what one booking must change is how events like
        # it rank (a category of many venues may not rise as a whole: the booking can
        # take weight from the venue the user viewed before).
        mates_after = mates()
        return set(mates_after) >= set(mates_before) and all(
            mates_after[e] > score for e, score in mates_before.items()
        )

    try:
        wait_until(reflected, 2.0, "the booking to hide its event and pull alike ones up")
    except AssertionError as exc:
        seen = {i["event_id"] for i in after.get("items", [])}
        raise AssertionError(
            f"{exc}: strategy {after.get('strategy')}, target shown {target in seen}, "
            f"{target_category} {share(after) if after else None} of {limit} "
            f"(before {share_before}), its gain {pull(after) if after else None:.3f} "
            f"(before {pull_before:.3f}); at its venue {mates_after} (before {mates_before})"
        ) from None
    assert time.monotonic() - started < 2.5
    if user_kind == "brand-new":
        assert share(after) >= 3


def test_admin_endpoints_need_the_token(stack: Stack, tmp_path: Path) -> None:
    client = stack.serve.client
    assert client.post("/train").status_code == 401
    assert client.post("/train", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.post("/models/v000001/activate").status_code == 401
    good = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.post("/train", headers=good).status_code == 202
    assert client.post("/models/v999999/activate", headers=good).status_code == 404
    versions = client.get("/models").json()
    assert versions["serving"] == versions["versions"][-1]["version"]

    closed = ServeProcess(stack.settings, tmp_path / "closed.log", admin_token=None)
    try:
        closed.wait_ready()
        for path in ("/train", "/models/v000001/activate"):
            response = closed.client.post(path, headers=good)
            assert response.status_code == 403
            assert "admin disabled" in response.json()["detail"]
    finally:
        closed.stop()


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"user_id": "u", "limit": 0}, "limit"),
        ({"user_id": "u", "limit": 51}, "limit"),
        ({"limit": 5}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "u", "min_price": -1}, "min_price"),
        ({"user_id": "u", "min_price": 10, "max_price": 5}, "min_price must not exceed"),
        ({"user_id": "u", "starts_after": "2027-01-01T00:00:00"}, "time zone"),
        ({"user_id": "u", "starts_before": "soon"}, "starts_before"),
    ],
)
def test_bad_parameters_get_a_4xx_with_a_reason(
    stack: Stack, params: dict[str, Any], words: str
) -> None:
    response = stack.serve.client.get("/recommendations", params=params)
    assert response.status_code == 422
    assert words in response.text


@ON_SERVER_AND_CLUSTER_STACKS
def test_similar_events(any_stack: Stack) -> None:
    stack = any_stack
    client = stack.serve.client
    assert client.get("/events/no-such-event/similar").status_code == 404
    event_id = client.get("/popular", params={"limit": 1}).json()["items"][0]["event_id"]
    body = client.get(f"/events/{event_id}/similar", params={"limit": 5}).json()
    assert len(body["items"]) == 5
    assert event_id not in {item["event_id"] for item in body["items"]}


@ON_SERVER_AND_CLUSTER_STACKS
def test_version_switch_under_load(any_stack: Stack) -> None:
    stack = any_stack
    client = stack.serve.client
    old = client.get("/models").json()["serving"]
    trainer_once(stack.settings)
    versions = [v["version"] for v in client.get("/models").json()["versions"]]
    new = versions[-1]
    assert new != old
    good = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.post(f"/models/{old}/activate", headers=good).status_code == 200
    wait_until(lambda: client.get("/models").json()["serving"] == old, 5, "rollback loaded")

    failures: list[str] = []
    seen_versions: list[str | None] = []
    stop = threading.Event()
    user_id = active_users(stack.platform, 1)[0]

    def load() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=10) as own:
            while not stop.is_set():
                response = own.get("/recommendations", params={"user_id": user_id})
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                else:
                    seen_versions.append(response.json()["model_version"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    assert client.post(f"/models/{new}/activate", headers=good).status_code == 200
    time.sleep(2.0)
    stop.set()
    for worker in workers:
        worker.join()
    assert not failures
    assert old in seen_versions
    assert seen_versions[-1] == new
    assert stack.serve.recommend(user_id)["model_version"] == new


def concurrent_recommendations(client: httpx.Client, user_ids: list[str]) -> list[httpx.Response]:
    """One request per user, all at once (so serving holds several Redis connections)."""
    with ThreadPoolExecutor(len(user_ids)) as pool:
        return list(
            pool.map(lambda u: client.get("/recommendations", params={"user_id": u}), user_ids)
        )


def test_redis_outage_gives_503_and_serving_recovers(stack: Stack, services: LocalServices) -> None:
    client = stack.serve.client
    users = active_users(stack.platform, 8)
    user_id = users[0]
    base = str(client.base_url)
    with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_connections=8)) as many:
        assert {r.status_code for r in concurrent_recommendations(many, users)} == {200}
    services._stop(services.redis_dir, "redis")
    try:
        response = client.get("/recommendations", params={"user_id": user_id})
        assert response.status_code == 503
        assert "redis unavailable" in response.json()["detail"]
        assert response.headers["Retry-After"]
        assert client.get("/ready").status_code == 503
        assert client.get("/health").status_code == 200
    finally:
        services.up()
    wait_until(lambda: client.get("/ready").status_code == 200, 30, "ready again")
    # Every pooled connection died with the server: each reconnects, no request fails.
    with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_connections=8)) as many:
        responses = concurrent_recommendations(many, users)
    assert [r.status_code for r in responses] == [200] * len(users), responses[0].text
    assert stack.serve.recommend(user_id)["strategy"] == "personalised"


# -- serving under faults, in process (the app on the stack's data, settings of its own) --

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@contextmanager
def in_process(settings: Settings, **overrides: Any) -> Iterator[httpx.Client]:
    """The app served from a thread of this process, on the stack's Redis, own settings."""
    with in_process_app(settings, **overrides) as (client, _):
        yield client


@contextmanager
def in_process_app(settings: Settings, **overrides: Any) -> Iterator[tuple[httpx.Client, Any]]:
    """:func:`in_process`, and the app (its runtime: ``app.state.runtime``)."""
    own = settings.model_copy(update={"admin_token": ADMIN_TOKEN, **overrides})
    port = free_port()
    app = create_app(own)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="in-process-serve", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 60, "the in-process server")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client, app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_an_event_booked_after_the_version_is_no_longer_new(stack: Stack) -> None:
    """The version counts interactions up to its fit; serving reads the partitions' event
    lists as they grow, and an event booked since is not 'new' any more (nor explained as
    'nobody has booked it yet'), within a second or so, with no new version."""
    with in_process_app(stack.settings) as (client, app):
        caches = app.state.runtime.caches
        assert client.get("/ready").status_code == 200

        def new_events() -> list[str]:
            state = caches.state
            flags = state.hybrid.catalogue.new
            return [state.catalog.event_ids[p] for p in np.flatnonzero(flags > 0).tolist()]

        before = new_events()
        assert before, "the stack's version has no never-touched event to book"
        target = before[0]
        produce(
            stack.settings,
            stack.settings.topic_interactions,
            [booking("u-books-a-new-event", target, 7)],
        )
        wait_until(lambda: target not in new_events(), 10, f"{target} no longer new")
        assert new_events() == before[1:]  # only the booked one
        hybrid = caches.state.hybrid
        block_of = np.repeat(np.arange(hybrid.blocks.n_blocks), np.diff(hybrid.blocks.starts))
        expected = np.zeros(hybrid.blocks.n_blocks, dtype=bool)
        expected[block_of[hybrid.catalogue.new[hybrid.blocks.order] > 0]] = True
        assert hybrid.blocks.new.tolist() == expected.tolist()


def broken_copy(store: Store, version: str) -> str:
    """A new stored version equal to ``version`` but for damaged item factors."""
    loaded = load_version(store, version=version)
    metadata = {k: v for k, v in loaded.metadata.items() if k not in ("arrays", "checksum")}
    broken = write_version(store, loaded.arrays(), metadata)
    store.client.hset(
        store.keys.model_arrays(broken), "item_factors", loaded.item_factors.tobytes()[:-4]
    )
    return broken


def test_a_refused_version_leaves_replicas_ready_on_the_checked_one(stack: Stack) -> None:
    store = Store(connect(stack.settings.redis_url), stack.settings.key_prefix)
    good = current_version(store)
    assert good is not None
    broken = broken_copy(store, good)
    user_id = active_users(stack.platform, 1)[0]
    try:
        with in_process(stack.settings) as app:
            assert app.get("/ready").json()["model_version"] == good
            # Checked before activation: refused with the reason, nothing switched.
            refused = app.post(f"/models/{broken}/activate", headers=ADMIN)
            assert refused.status_code == 409
            assert "item_factors" in refused.json()["detail"]
            assert current_version(store) == good

            # Made current behind serving's back (an older tool): every replica refuses it
            # and stays ready on the version it checked.
            activate_version(store, broken)
            replicas = (app, stack.serve.client)
            wait_until(
                lambda: all(broken in r.get("/ready").json().get("refused", {}) for r in replicas),
                10,
                "both replicas refused it",
            )
            for replica in replicas:
                ready = replica.get("/ready")
                assert ready.status_code == 200, ready.text
                assert ready.json()["model_version"] == good
                assert "item_factors" in ready.json()["refused"][broken]
            listed = {v["version"]: v for v in app.get("/models").json()["versions"]}
            assert "item_factors" in listed[broken]["refused"]
            assert "refused" not in listed[good]
            answer = app.get("/recommendations", params={"user_id": user_id}).json()
            assert answer["model_version"] == good
            assert answer["strategy"] == "personalised"
    finally:
        activate_version(store, good)
        store.client.close()


def test_a_replica_stays_ready_on_the_checked_version_while_a_new_one_loads(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a publish every replica reloads at once: none may leave the balancer for it."""
    store = Store(connect(stack.settings.redis_url), stack.settings.key_prefix)
    good = current_version(store)
    assert good is not None
    loaded = load_version(store, version=good)
    metadata = {k: v for k, v in loaded.metadata.items() if k not in ("arrays", "checksum")}
    newer = write_version(store, loaded.arrays(), metadata)
    entered, release = threading.Event(), threading.Event()
    real_build = runtime_module.build_state

    def slow_build(*args: Any, **kwargs: Any) -> Any:
        if args[3] == newer:  # (store, topic, previous, version)
            entered.set()
            assert release.wait(60), "the test never released the load"
        return real_build(*args, **kwargs)

    monkeypatch.setattr(runtime_module, "build_state", slow_build)
    try:
        with in_process(stack.settings) as app:
            assert app.get("/ready").json()["model_version"] == good
            activate_version(store, newer)
            assert entered.wait(20), "the watcher never started loading the new version"
            ready = app.get("/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["model_version"] == good
            assert ready.json()["loading"] == newer
            release.set()
            wait_until(
                lambda: app.get("/ready").json()["model_version"] == newer, 20, "the new one"
            )
            assert app.get("/ready").json()["loading"] is None
    finally:
        release.set()
        activate_version(store, good)
        store.client.close()


def test_the_reload_watcher_outlives_a_failure_and_ready_shows_its_age(stack: Stack) -> None:
    store = Store(connect(stack.settings.redis_url), stack.settings.key_prefix)
    keys = store.keys
    trending = store.client.get(keys.model_trending)
    try:
        with in_process(stack.settings, serving_reload_max_age_seconds=2.0) as app:
            ready = app.get("/ready").json()
            assert ready["ready"] is True
            assert 0 <= ready["reload_age_seconds"] < 2
            # A reload that fails on something else than Redis or a refused version.
            store.client.set(keys.model_trending, b"{not json")
            store.client.incr(keys.model_switches)
            wait_until(lambda: app.get("/ready").status_code == 503, 20, "not ready")
            failing = app.get("/ready").json()
            assert failing["reload_age_seconds"] > 2
            assert "JSONDecodeError" in failing["reason"]
            store.client.set(keys.model_trending, trending)
            wait_until(lambda: app.get("/ready").status_code == 200, 30, "the watcher recovered")
            assert app.get("/ready").json()["reload_age_seconds"] < 2
    finally:
        store.client.set(keys.model_trending, trending)
        store.client.close()


@ON_SERVER_AND_CLUSTER_STACKS
def test_fallback_hides_own_events_and_finds_profiles_in_every_partition(any_stack: Stack) -> None:
    """Users under EVENTREC_MIN_INTERACTIONS_PERSONAL get trending, minus their own events;
    profiles are found in the partitions that hold them, not the configured count."""
    stack = any_stack
    settings = stack.settings
    store = Store(connect(settings.redis_url), settings.key_prefix)
    users = active_users(stack.platform, 80)
    own = history(stack.platform)
    with in_process(settings, min_interactions_personal=1_000_000, topic_partitions=1) as app:
        popular = {i["event_id"] for i in app.get("/popular", params={"limit": 50}).json()["items"]}
        exposed = 0
        for user_id in users:
            hidden = set().union(*own[user_id].values())
            exposed += bool(hidden & popular)
            body = app.get("/recommendations", params={"user_id": user_id, "limit": 50}).json()
            # Too few records for a vector: the blend from the profile, or trending.
            assert body["strategy"] in ("hybrid_profile", "trending"), body["strategy"]
            shown = {item["event_id"] for item in body["items"]}
            assert not shown & hidden, (user_id, shown & hidden)
        assert exposed >= 10  # the unmasked trending list would have shown them

        keys = store.keys

        def partition_of(user_id: str) -> int:
            found = [
                p
                for p in range(6)
                if store.client.hexists(keys.profiles(settings.topic_users, p), user_id)
            ]
            assert len(found) == 1
            return found[0]

        far = [u for u in users if partition_of(u) > 0][:10]
        assert len(far) == 10
        for user_id in far:
            body = app.get("/recommendations", params={"user_id": user_id}).json()
            assert body["strategy"] == "hybrid_profile", user_id
    store.client.close()


def test_admin_coalesces_train_requests_and_answers_503_without_redis(stack: Stack) -> None:
    store = Store(connect(stack.settings.redis_url), stack.settings.key_prefix)
    store.client.delete(store.keys.train_requests)
    try:
        with in_process(stack.settings) as app:
            first = app.post("/train", headers=ADMIN)
            second = app.post("/train", headers=ADMIN)
            assert (first.status_code, first.json()) == (202, {"queued": 1, "coalesced": False})
            assert (second.status_code, second.json()) == (202, {"queued": 1, "coalesced": True})
            assert store.client.llen(store.keys.train_requests) == 1
    finally:
        store.client.delete(store.keys.train_requests)
        store.client.close()

    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    with in_process(stack.settings, redis_url=nowhere) as app:
        for method, path in (
            ("POST", "/train"),
            ("POST", "/models/v000001/activate"),
            ("POST", "/models/v000001/pin"),
            ("DELETE", "/models/pin"),
            ("GET", "/models"),
        ):
            response = app.request(method, path, headers=ADMIN)
            assert response.status_code == 503, (path, response.text)
            assert "redis unavailable" in response.json()["detail"]
            assert response.headers["Retry-After"]


def test_serving_hybrid_off_answers_by_the_collaborative_scores(stack: Stack) -> None:
    """EVENTREC_SERVING_HYBRID=false: the same version answers by its collaborative part
    (the reasons of the collaborative answer, not the blend's), personal all the same."""
    users = active_users(stack.platform, 20)
    with (
        in_process(stack.settings) as hybrid,
        in_process(stack.settings, serving_hybrid=False) as plain,
    ):
        answers = [
            (hybrid.get("/recommendations", params={"user_id": u, "limit": 10}).json(),
             plain.get("/recommendations", params={"user_id": u, "limit": 10}).json())
            for u in users
        ]  # fmt: skip
    differ = 0
    for blended, collaborative in answers:
        assert blended["strategy"] == collaborative["strategy"] == "personalised"
        assert blended["model_version"] == collaborative["model_version"]
        ranked = [i["event_id"] for i in collaborative["items"]]
        assert len(ranked) == 10
        differ += ranked != [i["event_id"] for i in blended["items"]]
        # The blend names signals ("trending in ...", "in your city"); these never appear
        # in the collaborative answer's reasons, which name an event of the history.
        assert not any(i["reason"].startswith("trending in") for i in collaborative["items"])
    assert differ >= len(users) // 2
