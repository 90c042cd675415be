"""Freshness benchmark: one interaction published to Kafka → the first response reflecting it.

Runs the real stack on a broker and Redis of its own: a small synthetic platform published
to Kafka, `eventrec consumer`, `eventrec trainer --once`, `eventrec serve`. Then, per
trial, publishes one booking and polls ``/recommendations`` back to back until the
response reflects it:

- an existing user books the event at the top of their recommendations: done when that
  event is gone from the response;
- a brand-new user (every fourth trial) books a popular event: done when the strategy
  is ``personalised`` and the booked event is not shown.

The clock starts before the send and stops at the first reflecting response. A trial
that never reflects counts as its timeout. Prints one JSON line ``{"trials", "p50_ms",
"p99_ms"}`` (plus the slowest and the timeouts). Usage: python benchmarks/freshness.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from kafka import KafkaProducer

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.store.store import Store, connect
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import generate
from eventrec.synth.publish import KeyHashPartitioner, publish
from eventrec.topics import create_topics

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = REPO / ".local" / "bench-freshness"
# Another checkout's benchmark may run beside this one: BENCH_PORT_OFFSET moves every port.
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))
KAFKA_PORT = 37192 + PORT_OFFSET
CONTROLLER_PORT = 37193 + PORT_OFFSET
REDIS_PORT = 37479 + PORT_OFFSET
SERVE_PORT = 37880 + PORT_OFFSET


def log(message: str) -> None:
    print(f"[freshness-bench] {message}", file=sys.stderr, flush=True)


def process_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTREC_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"EVENTREC_{name.upper()}"] = str(value)
    env["EVENTREC_LOG_LEVEL"] = "WARNING"
    return env


def start(args: list[str], settings: Settings, log_name: str) -> subprocess.Popen[bytes]:
    with (STATE_DIR / log_name).open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "eventrec.cli", *args],
            env=process_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(what: str, check: Any, timeout: float, *processes: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args} exited with {process.returncode}")
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def booking(user_id: str, event_id: str) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "interaction_id": f"fresh-{uuid.uuid4().hex}",
            "user_id": user_id,
            "event_id": event_id,
            "type": "booking",
            "booking_id": f"fresh-booking-{uuid.uuid4().hex}",
            "quantity": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    ).encode()


def one_trial(
    client: httpx.Client,
    producer: KafkaProducer,
    topic: str,
    user_id: str,
    event_id: str,
    brand_new: bool,
    timeout: float,
) -> float:
    """Seconds from the send to the first response that reflects the booking."""
    params = {"user_id": user_id, "limit": 10}
    started = time.perf_counter()
    producer.send(topic, key=user_id.encode(), value=booking(user_id, event_id))
    producer.flush()
    while time.perf_counter() - started < timeout:
        body = client.get("/recommendations", params=params).json()
        shown = {item["event_id"] for item in body["items"]}
        personal = body["strategy"] == "personalised"
        if event_id not in shown and (personal or not brand_new):
            return time.perf_counter() - started
    return timeout


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per trial")
    args = parser.parse_args()

    STATE_DIR.mkdir(parents=True, exist_ok=True)
    local = LocalServices(
        Settings(
            state_dir=STATE_DIR,
            cache_dir=REPO / ".cache",
            local_kafka_port=KAFKA_PORT,
            local_kafka_controller_port=CONTROLLER_PORT,
            local_redis_port=REDIS_PORT,
        )
    )
    local.up()
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap_servers=local.kafka_address,
        redis_url=local.redis_url,
        key_prefix=f"bench-fresh-{tag}",
        consumer_group=f"bench-fresh-{tag}",
        topic_interactions=f"bench-fresh-{tag}.interactions",
        topic_events=f"bench-fresh-{tag}.events",
        topic_users=f"bench-fresh-{tag}.users",
        topic_dlq=f"bench-fresh-{tag}.dlq",
        http_port=SERVE_PORT,
    )
    store = Store(connect(settings.redis_url), settings.key_prefix)
    consumer = server = None
    producer: KafkaProducer | None = None
    try:
        create_topics(settings)
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        platform = generate(
            SynthConfig(n_users=2000, n_events=400, n_interactions=60_000, seed=11, now=now)
        )
        publish(platform, settings, progress=False)
        total = len(platform.interactions)
        log(f"published {total} interactions, {len(platform.events)} events")

        consumer = start(["consumer"], settings, "consumer.log")
        topic = settings.topic_interactions
        partitions = range(settings.topic_partitions)
        wait_for(
            "every interaction applied",
            lambda: sum(o or 0 for o in store.stored_offsets(topic, partitions).values()) >= total,
            180,
            consumer,
        )
        log("consumer caught up")
        trainer = subprocess.run(
            [sys.executable, "-m", "eventrec.cli", "trainer", "--once"],
            env=process_env(settings),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if trainer.returncode != 0:
            raise RuntimeError(f"trainer --once failed: {trainer.stderr[-2000:]}")
        log("trainer published a version")

        server = start(
            ["serve", "--port", str(SERVE_PORT), "--workers", "1"], settings, "serve.log"
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{SERVE_PORT}", timeout=10)

        def ready() -> bool:
            try:
                return client.get("/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_for("serving ready", ready, 120, server)
        log("serving ready")

        counts: dict[str, int] = {}
        for interaction in platform.interaction_models():
            counts[interaction.user_id] = counts.get(interaction.user_id, 0) + 1
        existing = [u for u in sorted(counts, key=lambda u: (-counts[u], u)) if counts[u] >= 3]
        popular = [
            item["event_id"]
            for item in client.get("/popular", params={"limit": 50}).json()["items"]
        ]
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            partitioner=KeyHashPartitioner(),
            linger_ms=0,
            acks=1,
        )
        latencies: list[float] = []
        timeouts = 0
        for trial in range(args.trials):
            brand_new = trial % 4 == 3
            if brand_new:
                user_id = f"fresh-user-{tag}-{trial}"
                event_id = popular[trial % len(popular)]
            else:
                user_id = existing[trial]
                items = client.get(
                    "/recommendations", params={"user_id": user_id, "limit": 10}
                ).json()["items"]
                event_id = items[0]["event_id"]
            seconds = one_trial(client, producer, topic, user_id, event_id, brand_new, args.timeout)
            timeouts += seconds >= args.timeout
            latencies.append(seconds)
            if trial % 10 == 9:
                log(f"{trial + 1} trials, last {seconds * 1000:.0f} ms")
        milliseconds = np.array(latencies) * 1000
        result = {
            "trials": len(latencies),
            "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
            "p99_ms": round(float(np.percentile(milliseconds, 99)), 1),
            "max_ms": round(float(milliseconds.max()), 1),
            "timeouts": int(timeouts),
        }
        client.close()
        print(json.dumps(result))
    finally:
        if producer is not None:
            producer.close()
        stop(server)
        stop(consumer)
        keys = list(store.client.scan_iter(match=f"{settings.key_prefix}:*", count=5000))
        for start_at in range(0, len(keys), 5000):
            store.client.delete(*keys[start_at : start_at + 5000])
        store.client.close()
        local.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
