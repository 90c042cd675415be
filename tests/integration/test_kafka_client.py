"""kafka-python against the pinned broker: produce, consume in a group, commit."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from eventrec.config import Settings

pytestmark = pytest.mark.integration


def test_produce_consume_in_a_group_and_commit(settings: Settings) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    sent = {f"user-{n}".encode(): f"interaction-{n}".encode() for n in range(200)}
    for key, value in sent.items():
        producer.send(settings.topic_interactions, key=key, value=value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        settings.topic_interactions,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.consumer_group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: dict[bytes, bytes] = {}
    partitions_of_key: dict[bytes, int] = {}
    try:
        for _ in range(100):
            for partition, messages in consumer.poll(timeout_ms=500).items():
                for message in messages:
                    received[message.key] = message.value
                    partitions_of_key[message.key] = partition.partition
            if len(received) == len(sent):
                break
        consumer.commit()
        assignment = consumer.assignment()
        committed = sum(consumer.committed(tp) or 0 for tp in assignment)
    finally:
        consumer.close()

    assert received == sent
    assert len(assignment) == settings.topic_partitions
    assert committed == len(sent)
    # The default partitioner is deterministic: the same key always lands on one partition.
    again = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    metadata = again.send(settings.topic_interactions, key=b"user-7", value=b"x").get(timeout=10)
    again.close()
    assert metadata.partition == partitions_of_key[b"user-7"]
    assert TopicPartition(settings.topic_interactions, metadata.partition) in assignment
