"""Attribution's message handlers: plain functions, unit-tested without Kafka or Redis.

- :func:`prepare_attribution` turns one ``impressions`` partition's messages into the
  store's attribution batch (invalid ones into dead letters);
- :func:`outcomes_of` picks, from one ``interactions`` batch, the valid views, saves
  and bookings that carry a ``recommendation_id`` and are applied on that partition, and
  makes each an ``outcome`` message for the ``impressions`` topic (key ``user_id``: the
  partition of that user's impressions), so the two meet in one partition's step
  whichever arrives first. The consumer delivers them with the batch's dead letters and
  routed copies, acknowledged before the batch's step.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

from eventrec.consumer.delivery import Outgoing
from eventrec.consumer.handler import Message
from eventrec.errors import InvalidMessageError
from eventrec.model.impressions import pack_impression, pack_pending
from eventrec.schemas import DeadLetter
from eventrec.schemas.decode import decode_interaction, format_validation_error
from eventrec.schemas.impressions import Impression, Outcome
from eventrec.store.attribution import AttributionBatch
from eventrec.store.store import interaction_hash

ATTRIBUTED_TYPES = frozenset({"view", "save", "booking"})


@dataclass
class PreparedAttribution:
    batch: AttributionBatch
    dead_letters: list[DeadLetter] = field(default_factory=list)


def decode_attribution(key: bytes | None, value: bytes | None) -> Impression | Outcome:
    """One message of the impressions topic, or :class:`InvalidMessageError` with why."""
    if value is None:
        raise InvalidMessageError("value: an impressions message cannot be empty")
    try:
        kind = orjson.loads(value).get("kind")
    except (orjson.JSONDecodeError, AttributeError):
        raise InvalidMessageError("value: not a JSON object") from None
    model: type[Impression] | type[Outcome]
    if kind == "impression":
        model = Impression
    elif kind == "outcome":
        model = Outcome
    else:
        raise InvalidMessageError("kind: expected 'impression' or 'outcome'")
    try:
        message = model.model_validate_json(value)
    except ValidationError as exc:
        raise InvalidMessageError(format_validation_error(exc)) from None
    if key is not None and key != message.user_id.encode():
        shown = key[:140].decode("utf-8", errors="replace")
        raise InvalidMessageError(f"key: {shown!r} does not match user_id {message.user_id!r}")
    return message


def prepare_attribution(
    topic: str, partition: int, expected_offset: int, messages: Sequence[Message]
) -> PreparedAttribution:
    batch = AttributionBatch(topic, partition, expected_offset, messages[-1].offset + 1, [])
    dead: list[DeadLetter] = []
    for message in messages:
        try:
            decoded = decode_attribution(message.key, message.value)
        except InvalidMessageError as exc:
            dead.append(
                DeadLetter.of(
                    reason=exc.reason,
                    topic=topic,
                    partition=partition,
                    offset=message.offset,
                    key=message.key,
                    value=message.value,
                )
            )
            continue
        if isinstance(decoded, Impression):
            record = pack_impression(
                decoded.user_id,
                decoded.request_id,
                decoded.shown_at.timestamp(),
                decoded.experiment_code,
                decoded.variant_index,
                decoded.event_ids,
            )
            batch.items.append(("i", decoded.user_id, record))
        else:
            id_hash = interaction_hash(f"{decoded.user_id}\x00{decoded.interaction_id}")
            entry = pack_pending(
                decoded.user_id,
                decoded.recommendation_id,
                decoded.event_id,
                decoded.occurred_at.timestamp(),
                decoded.type,
            )
            batch.items.append(("o", decoded.user_id, id_hash + entry))
    batch.dead_lettered = len(dead)
    return PreparedAttribution(batch, dead)


def outcomes_of(
    topic: str, messages: Sequence[Message], skip_offsets: Collection[int] = ()
) -> list[Outgoing]:
    """An outcome message for ``topic`` per attributable interaction of a batch.

    Skips what is dead-lettered or routed to its owner (``skip_offsets``: the owner
    forwards a routed interaction's outcome when it applies it) and what has no
    ``recommendation_id``; a re-sent interaction makes the same outcome, which
    attribution de-duplicates.
    """
    out: list[Outgoing] = []
    for message in messages:
        value = message.value
        if value is None or b"recommendation_id" not in value or message.offset in skip_offsets:
            continue
        try:
            interaction = decode_interaction(message.key, value)
        except InvalidMessageError:
            continue
        if (
            interaction.recommendation_id is None
            or interaction.event_id is None
            or interaction.type.value not in ATTRIBUTED_TYPES
        ):
            continue
        outcome = Outcome(
            schema_version=1,
            kind="outcome",
            user_id=interaction.user_id,
            interaction_id=interaction.interaction_id,
            recommendation_id=interaction.recommendation_id,
            event_id=interaction.event_id,
            type=interaction.type.value,
            occurred_at=interaction.occurred_at,
        )
        body = outcome.model_dump_json().encode()
        out.append(Outgoing(topic, interaction.user_id.encode(), body, []))
    return out
