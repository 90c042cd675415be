"""Settings: defaults, environment variable names, and failures that name the variable."""

from __future__ import annotations

import pytest

from eventrec.config import Settings, describe_settings, load_settings
from eventrec.errors import ConfigError

REQUIRED_NAMES = {
    "EVENTREC_KAFKA_BOOTSTRAP_SERVERS",
    "EVENTREC_REDIS_URL",
    "EVENTREC_KEY_PREFIX",
    "EVENTREC_CONSUMER_GROUP",
    "EVENTREC_TOPIC_INTERACTIONS",
    "EVENTREC_TOPIC_EVENTS",
    "EVENTREC_TOPIC_USERS",
    "EVENTREC_TOPIC_DLQ",
    "EVENTREC_TOPIC_PARTITIONS",
    "EVENTREC_ADMIN_TOKEN",
    "EVENTREC_TRAIN_INTERVAL_SECONDS",
}


def test_defaults_point_at_the_local_services() -> None:
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.redis_url == "redis://127.0.0.1:16379/0"
    assert settings.topics == ["interactions", "events", "users", "interactions.dlq", "impressions"]
    assert settings.topic_partitions == 6
    assert settings.admin_token is None


def test_every_named_setting_exists_and_is_described() -> None:
    rows = {name: description for name, _, description in describe_settings()}
    assert set(rows) >= REQUIRED_NAMES
    assert all(description for description in rows.values())


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTREC_KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092, kafka-2:9092")
    monkeypatch.setenv("EVENTREC_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("EVENTREC_ADMIN_TOKEN", "s3cret-token-of-enough-length")
    settings = load_settings()
    assert settings.bootstrap_servers == ["kafka-1:9092", "kafka-2:9092"]
    assert settings.topic_partitions == 12
    assert settings.admin_token == "s3cret-token-of-enough-length"
    assert "kafka_bootstrap_servers" in settings.model_fields_set


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EVENTREC_REDIS_URL", "localhost:6379"),
        ("EVENTREC_KAFKA_BOOTSTRAP_SERVERS", "no-port-here"),
        ("EVENTREC_TRAIN_INTERVAL_SECONDS", "-5"),
        ("EVENTREC_TOPIC_PARTITIONS", "0"),
        ("EVENTREC_TOPIC_INTERACTIONS", "bad topic name"),
        ("EVENTREC_KEY_PREFIX", "has space"),
        ("EVENTREC_ADMIN_TOKEN", "short"),
        ("EVENTREC_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_wrong_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.key_prefix = "other"  # type: ignore[misc]


def test_unset_urls_follow_the_local_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTREC_LOCAL_KAFKA_PORT", "19392")
    monkeypatch.setenv("EVENTREC_LOCAL_REDIS_PORT", "16679")
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19392"
    assert settings.bootstrap_servers == ["127.0.0.1:19392"]
    assert settings.redis_url == "redis://127.0.0.1:16679/0"
    # Still unset: `eventrec services` manages the local servers on the moved ports.
    assert "kafka_bootstrap_servers" not in settings.model_fields_set
    assert "redis_url" not in settings.model_fields_set


def test_set_urls_win_over_the_local_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTREC_LOCAL_KAFKA_PORT", "19392")
    monkeypatch.setenv("EVENTREC_LOCAL_REDIS_PORT", "16679")
    monkeypatch.setenv("EVENTREC_KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092")
    monkeypatch.setenv("EVENTREC_REDIS_URL", "redis://redis-1:6379/2")
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "kafka-1:9092"
    assert settings.redis_url == "redis://redis-1:6379/2"
