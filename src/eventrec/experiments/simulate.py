"""Simulated users in an experiment: real requests to serving, outcomes with planted odds.

Each simulated user has a taste: the categories of their profile (or, when the profile
lists none, one category drawn at random that serving cannot know). For every event a
response shows at position ``p`` (1-based) the user views it with probability
``view · taste_lift^[event in taste] · position_decay^(p-1)``; a viewed event is saved
with ``save_given_view`` and booked with ``booking_given_view``. Every outcome is
published to ``interactions`` with the response's ``request_id`` as its
``recommendation_id``, as a real client would, and goes through the consumer and
attribution like any other interaction.

So no variant is better by decree: a variant wins only if what it shows matches the
users' tastes better (for example serving's profile-aware default against plain
trending), and two identical variants differ only by chance.
"""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
from kafka import KafkaProducer

from eventrec.config import Settings
from eventrec.errors import ExperimentError
from eventrec.store.experiments import ExperimentStore
from eventrec.store.store import Store, connect


@dataclass(frozen=True)
class Propensities:
    view: float = 0.05
    taste_lift: float = 3.0
    position_decay: float = 0.9
    save_given_view: float = 0.3
    booking_given_view: float = 0.15


@dataclass
class SimulationResult:
    users: int = 0
    requests: int = 0
    outside: int = 0
    interactions: int = 0
    # variant -> outcome type ("view", "save", "booking", "impressions") -> count
    per_variant: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "requests": self.requests,
            "outside_the_experiment": self.outside,
            "interactions_published": self.interactions,
            "per_variant": {k: dict(v) for k, v in sorted(self.per_variant.items())},
            "seconds": round(self.seconds, 1),
        }


class _Client:
    """Keep-alive GETs against serving (stdlib only: the simulation ships with eventrec)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ExperimentError(f"serving URL {base_url!r}: expected http://host:port")
        self.host, self.port = parts.hostname, parts.port or 80
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        target = f"{path}?{urlencode(params)}"
        for attempt in (1, 2):
            try:
                self.connection.request("GET", target)
                response = self.connection.getresponse()
                body = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt == 2:
                    raise
        if response.status != 200:
            raise ExperimentError(f"GET {target}: {response.status} {body[:200]!r}")
        document: dict[str, Any] = json.loads(body)
        return document

    def close(self) -> None:
        self.connection.close()


def _tastes(
    settings: Settings, rng: np.random.Generator, n_users: int
) -> list[tuple[str, frozenset[str]]]:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    try:
        profiles = store.entity_documents("users", settings.topic_users)
        categories = sorted(
            {
                str(json.loads(doc).get("category"))
                for doc in store.entity_documents("events", settings.topic_events).values()
            }
        )
    finally:
        store.client.close()
    if not profiles:
        raise ExperimentError(
            f"no user profiles in Redis (topic {settings.topic_users}) to simulate"
        )
    user_ids = sorted(profiles)
    chosen = rng.choice(len(user_ids), size=min(n_users, len(user_ids)), replace=False)
    tastes = []
    for index in sorted(chosen.tolist()):
        user_id = user_ids[index]
        listed = json.loads(profiles[user_id]).get("preferred_categories") or []
        taste = frozenset(listed) if listed else frozenset({str(rng.choice(categories))})
        tastes.append((user_id, taste))
    return tastes


def simulate_experiment(
    settings: Settings,
    experiment_name: str,
    serving_url: str,
    users: int = 2000,
    requests_per_user: int = 3,
    seed: int = 0,
    propensities: Propensities | None = None,
) -> SimulationResult:
    """Run the simulation; interactions are flushed to Kafka before it returns."""
    odds = propensities or Propensities()
    client_redis = connect(settings.redis_url)
    try:
        experiment = ExperimentStore(client_redis, settings.key_prefix).get(experiment_name)
    finally:
        client_redis.close()
    if experiment.status != "running":
        raise ExperimentError(f"experiment {experiment_name} is {experiment.status}")
    rng = np.random.default_rng(seed)
    tastes = _tastes(settings, rng, users)
    result = SimulationResult(users=len(tastes))
    started = time.monotonic()
    client = _Client(serving_url)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20)
    decay = odds.position_decay ** np.arange(255)
    try:
        for _ in range(requests_per_user):
            for user_id, taste in tastes:
                response = client.get("/recommendations", {"user_id": user_id, "limit": 10})
                result.requests += 1
                assigned = response.get("experiment") or {}
                if assigned.get("name") != experiment_name:
                    result.outside += 1
                    continue
                counts = result.per_variant.setdefault(assigned["variant"], Counter())
                counts["impressions"] += 1
                items = response["items"]
                if not items:
                    continue
                lift = np.array([odds.taste_lift if i["category"] in taste else 1.0 for i in items])
                viewed = rng.random(len(items)) < np.minimum(
                    odds.view * lift * decay[: len(items)], 1.0
                )
                now = datetime.now(UTC).isoformat()
                for position in np.flatnonzero(viewed).tolist():
                    kinds = ["view"]
                    if rng.random() < odds.save_given_view:
                        kinds.append("save")
                    if rng.random() < odds.booking_given_view:
                        kinds.append("booking")
                    for kind in kinds:
                        interaction = {
                            "schema_version": 1,
                            "interaction_id": f"sim-{response['request_id']}-{position}-{kind}",
                            "user_id": user_id,
                            "event_id": items[position]["event_id"],
                            "type": kind,
                            "recommendation_id": response["request_id"],
                            "occurred_at": now,
                        }
                        if kind == "booking":
                            interaction["quantity"] = 1
                        producer.send(
                            settings.topic_interactions,
                            key=user_id.encode(),
                            value=json.dumps(interaction).encode(),
                        )
                        counts[kind] += 1
                        result.interactions += 1
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
        client.close()
    result.seconds = time.monotonic() - started
    return result
