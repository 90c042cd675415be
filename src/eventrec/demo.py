"""`eventrec demo-wait` and `eventrec demo-report`: the steps of `make demo` that talk to
the running stack — wait for the consumer and the trainer, then show what users get."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from eventrec.config import Settings
from eventrec.model.records import TYPE_NAMES
from eventrec.store.store import Store, connect
from eventrec.store.versions import current_version, pinned_version, read_metadata


def _progress(text: str) -> None:
    print(f"\r{text:<78}", end="", file=sys.stderr, flush=True)


def wait_ingested(settings: Settings, timeout: float) -> int:
    """Wait until the consumer has applied every interaction on the topic; their count."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    topic = settings.topic_interactions
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    ends = consumer.end_offsets(partitions)
    consumer.close()
    total = sum(int(offset) for offset in ends.values())
    store = Store(connect(settings.redis_url), settings.key_prefix)
    deadline = time.monotonic() + timeout
    while True:
        stored = store.stored_offsets(topic, [tp.partition for tp in partitions])
        applied = sum(stored[tp.partition] or 0 for tp in partitions)
        _progress(f"consumer: {applied:,}/{total:,} interactions in Redis")
        if applied >= total:
            print(file=sys.stderr)
            return total
        if time.monotonic() > deadline:
            raise SystemExit(f"\nthe consumer applied {applied:,} of {total:,} in {timeout:.0f}s")
        time.sleep(0.5)


def model_sequence(settings: Settings) -> int:
    """How many model versions were ever written (the next one is numbered above it)."""
    store = Store(connect(settings.redis_url), settings.key_prefix)
    return int(store.client.get(store.keys.model_sequence) or 0)


def wait_model(
    settings: Settings, min_interactions: int, timeout: float, newer_than: int = 0
) -> dict[str, Any]:
    """Wait for a current model version fitted on at least ``min_interactions`` and
    numbered above ``newer_than`` (a second demo must not announce the first one's)."""
    store = Store(connect(settings.redis_url), settings.key_prefix)
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while time.monotonic() < deadline:
        version = current_version(store)
        if version is not None:
            metadata = read_metadata(store, version)
            fitted_on = int(metadata.get("data", {}).get("interactions", 0))
            if fitted_on >= min_interactions and int(metadata["sequence"]) > newer_than:
                print(file=sys.stderr)
                return metadata
        pinned = pinned_version(store)
        if pinned is not None:
            raise SystemExit(
                f"\nversion {pinned} is pinned: new versions are stored but do not go live "
                f"(`eventrec model unpin`)"
            )
        _progress(f"trainer: fitting ({time.monotonic() - started:.0f}s)")
        time.sleep(1.0)
    raise SystemExit(f"\nno model version within {timeout:.0f}s: see the trainer's log")


def _get(api: str, path: str, **params: Any) -> dict[str, Any]:
    query = urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(f"{api}{path}?{query}", timeout=10) as response:  # noqa: S310
        body: dict[str, Any] = json.load(response)
        return body


def report(settings: Settings, api: str, users: int = 3) -> None:
    """Three users' recent history beside their top 5 recommendations, with reasons."""
    store = Store(connect(settings.redis_url), settings.key_prefix)
    topic = settings.topic_interactions
    event_ids = {p: store.partition_event_ids(topic, p) for p in store.owner_partitions()}
    catalog = {
        event_id: json.loads(doc)
        for event_id, doc in store.entity_documents("events", settings.topic_events).items()
    }
    shown = 0
    user_ids = [u for p in event_ids for u in store.partition_users(topic, p)]
    for user_id in user_ids[::97]:
        found = store.user_row(topic, user_id)
        if found is None or len(found[1]) < 6:
            continue
        partition, records = found
        body = _get(api, "/recommendations", user_id=user_id, limit=5)
        if body["strategy"] != "personalised":
            continue
        print(f"\n── user {user_id} ({len(records)} interactions) " + "─" * 30)
        print("  recent history:")
        for record in records[-5:][::-1]:
            event = catalog.get(event_ids[partition][int(record["event"])], {})
            when = datetime.fromtimestamp(int(record["time"]), UTC).strftime("%Y-%m-%d")
            kind = TYPE_NAMES.get(int(record["type"]), "?")
            if kind == "rating":
                kind = f"rated {int(record['value'])}★"
            print(
                f"    {when}  {kind:<18} {event.get('title', '?')[:40]:<40} "
                f"{event.get('category', '')}, {event.get('city', '')}"
            )
        print("  top 5 recommendations:")
        for item in body["items"]:
            price = item["price"]
            print(
                f"    {item['title'][:38]:<38} {item['category']:<10} {item['city']:<12} "
                f"{item['starts_at'][:10]}  {price['amount']:>7,.0f} {price['currency']}"
            )
            print(f"      ↳ {item['reason']}")
        shown += 1
        if shown == users:
            break


def register(commands: Any) -> None:
    wait = commands.add_parser(
        "demo-wait", help="(make demo) wait for the consumer, or for a model version"
    )
    wait.add_argument(
        "what",
        choices=["ingest", "model", "sequence"],
        help="ingest: every interaction applied; model: a published version; "
        "sequence: print the number of versions written so far and exit",
    )
    wait.add_argument("--timeout", type=float, default=600, help="seconds (default: 600)")
    wait.add_argument(
        "--newer-than",
        type=int,
        default=0,
        metavar="SEQUENCE",
        help="model: wait for a version numbered above this (from `demo-wait sequence`)",
    )
    wait.set_defaults(handler=_wait, json_logs=False)
    show = commands.add_parser(
        "demo-report", help="(make demo) sample users' history beside their recommendations"
    )
    show.add_argument("--api", default="http://127.0.0.1:8000")
    show.set_defaults(handler=_report, json_logs=False)


def _wait(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "ingest":
        total = wait_ingested(settings, args.timeout)
        print(f"all {total:,} interactions are in Redis")
        return 0
    if args.what == "sequence":
        print(model_sequence(settings))
        return 0
    metadata = wait_model(settings, 1, args.timeout, newer_than=args.newer_than)
    metrics = metadata.get("metrics", {})
    print(
        f"model {metadata['version']} published: validation NDCG@10 "
        f"{metrics.get('validation_ndcg@10', float('nan')):.3f} against popularity "
        f"{metrics.get('popularity_validation_ndcg@10', float('nan')):.3f}"
    )
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report(settings, args.api.rstrip("/"))
    except urllib.error.URLError as exc:
        print(f"the API at {args.api} did not answer: {exc}", file=sys.stderr)
        return 1
    return 0
