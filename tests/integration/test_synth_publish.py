"""`eventrec synth --publish` against the real broker: every message arrives, keyed by id."""

from __future__ import annotations

from collections import defaultdict

import pytest
from kafka import KafkaConsumer

from eventrec.config import Settings
from eventrec.schemas import decode_event, decode_interaction, decode_profile
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import generate
from eventrec.synth.publish import publish

pytestmark = pytest.mark.integration


def _consume_all(settings: Settings, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    received: list[tuple[int, bytes, bytes]] = []
    try:
        for _ in range(120):
            for partition, messages in consumer.poll(timeout_ms=500).items():
                received.extend((partition.partition, m.key, m.value) for m in messages)
            if len(received) >= expected:
                break
    finally:
        consumer.close()
    return received


def test_published_platform_reads_back_with_keys_on_stable_partitions(
    settings: Settings,
) -> None:
    platform = generate(SynthConfig(n_users=300, n_events=80, n_interactions=6_000, seed=11))
    counts = publish(platform, settings, rate=None, progress=False)
    assert (counts.events, counts.users, counts.interactions) == (80, 300, 6_000)

    events = _consume_all(settings, settings.topic_events, 80)
    assert sorted(value for _, _, value in events) == sorted(
        v for _, v in platform.event_messages()
    )
    for _, key, value in events:
        event = decode_event(key, value)  # checks the key is the event_id
        assert event is not None

    users = _consume_all(settings, settings.topic_users, 300)
    assert sorted(value for _, _, value in users) == sorted(v for _, v in platform.user_messages())
    for _, key, value in users:
        assert decode_profile(key, value) is not None

    interactions = _consume_all(settings, settings.topic_interactions, 6_000)
    assert len(interactions) == 6_000
    sent = list(platform.interaction_messages())
    assert sorted(value for _, _, value in interactions) == sorted(value for _, value in sent)
    partitions_of_user: dict[bytes, set[int]] = defaultdict(set)
    order_of_user: dict[bytes, list[bytes]] = defaultdict(list)
    for partition, key, value in interactions:
        decode_interaction(key, value)  # checks the key is the user_id
        partitions_of_user[key].add(partition)
        order_of_user[key].append(value)
    # All of a user's interactions share one partition, so they are read in the order sent.
    assert all(len(partitions) == 1 for partitions in partitions_of_user.values())
    assert len({p for ps in partitions_of_user.values() for p in ps}) > 1
    sent_order: dict[bytes, list[bytes]] = defaultdict(list)
    for key, value in sent:
        sent_order[key].append(value)
    assert order_of_user == sent_order
