"""Attribution through the real consumer, killed with SIGKILL while it works.

Impressions (as serving publishes them) and interactions carrying ``recommendation_id``
(as clients publish them) are produced in an interleaved order, so some outcomes reach
the consumer before their impression. Whatever the kills, every outcome on a shown event
counts exactly once for its variant, per user, and nothing else counts.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from kafka import KafkaProducer

from eventrec.config import Settings
from eventrec.store.attribution import AttributionStore
from tests.integration.ingest_helpers import ConsumerProcess, wait_until

pytestmark = pytest.mark.integration

CODE = 3
COUNTERS = ["impressions", "view", "save", "booking"]


def build_stream(
    n_users: int, per_user: int, seed: int
) -> tuple[list[tuple[str, str, dict[str, object]]], list[dict[str, Counter[str]]]]:
    """(topic kind, key, message) in publish order, and the expected per-variant counts."""
    rng = random.Random(seed)
    shown_at = datetime.now(UTC) - timedelta(minutes=30)
    stream: list[tuple[str, str, dict[str, object]]] = []
    expected: list[dict[str, Counter[str]]] = [{c: Counter() for c in COUNTERS} for _ in range(2)]
    for u in range(n_users):
        user = f"u-{u:05d}"
        variant = u % 2
        for r in range(per_user):
            request = f"r-{user}-{r}"
            events = [f"e-{rng.randrange(500)}" for _ in range(10)]
            impression = {
                "schema_version": 1, "kind": "impression", "request_id": request,
                "user_id": user, "experiment": "crash", "experiment_code": CODE,
                "variant": f"v{variant}", "variant_index": variant, "model_version": None,
                "strategy": "trending", "event_ids": events, "shown_at": shown_at.isoformat(),
            }  # fmt: skip
            outcomes = []
            expected[variant]["impressions"][user] += 1
            for position in rng.sample(range(10), 2):
                kind = rng.choice(["view", "view", "save", "booking"])
                outcomes.append((kind, events[position], f"i-{r}-{position}"))
                expected[variant][kind][user] += 1
            outcomes.append(("view", "e-not-shown", f"i-{r}-x"))  # not in that response
            interactions = [
                {
                    "schema_version": 1,
                    "interaction_id": interaction_id,
                    "user_id": user,
                    "event_id": event,
                    "type": kind,
                    "recommendation_id": request,
                    "occurred_at": (shown_at + timedelta(minutes=1)).isoformat(),
                }
                for kind, event, interaction_id in outcomes
            ]
            # Half the time the client's interactions are published before the impression.
            items = [("impression", user, impression)] + [
                ("interaction", user, body) for body in interactions
            ]
            if rng.random() < 0.5:
                items = items[1:] + items[:1]
            # A producer's re-send of the first interaction: counted once.
            items.append(items[0] if items[0][0] == "interaction" else items[1])
            stream.extend(items)
    return stream, expected


def publish(
    settings: Settings, stream: list[tuple[str, str, dict[str, object]]], chunks: int
) -> threading.Thread:
    def run() -> None:
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20
        )
        size = -(-len(stream) // chunks)
        for start in range(0, len(stream), size):
            for kind, key, body in stream[start : start + size]:
                topic = (
                    settings.topic_impressions
                    if kind == "impression"
                    else settings.topic_interactions
                )
                producer.send(topic, key=key.encode(), value=json.dumps(body).encode())
            producer.flush()
            time.sleep(0.3)
        producer.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_kill_9_while_attributing_counts_every_outcome_once(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    stream, expected = build_stream(n_users=1500, per_user=4, seed=8)
    producer = publish(settings, stream, chunks=8)
    log_path = tmp_path / "consumer.log"
    consumer = ConsumerProcess(settings, log_path).start()
    chance = random.Random(3)
    attribution = AttributionStore(redis_client, settings.key_prefix)

    def counts() -> list[dict[str, dict[str, int]]]:
        return attribution.user_counts(settings.topic_impressions, CODE, 2, COUNTERS)

    want = [{c: dict(v[c]) for c in COUNTERS} for v in expected]
    try:
        for _ in range(4):
            time.sleep(chance.uniform(0.5, 2.0))
            consumer.kill()
            consumer = ConsumerProcess(settings, log_path).start()
        producer.join(timeout=300)
        assert not producer.is_alive()
        wait_until(lambda: counts() == want, 240, "every outcome attributed once")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert counts() == want
    stats = attribution.stats(settings.topic_impressions)
    assert stats["impressions"] == 1500 * 4
    # One outcome per response names an event it did not show.
    assert stats["unmatched"] == 1500 * 4
