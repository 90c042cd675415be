"""The message handlers: plain functions from one partition's messages to a store batch.

They validate, resolve ids and pack records; they do not talk to Kafka, so they are
unit-tested without a broker. Invalid messages come back as dead letters, never raised.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from eventrec.errors import InvalidMessageError
from eventrec.model.records import MAX_VALUE, RECORD_DTYPE, TYPE_CODES, booking_hash
from eventrec.schemas import DeadLetter, Event, Interaction, InteractionType
from eventrec.schemas.decode import (
    InteractionFields,
    decode_event,
    decode_interaction_fields,
    decode_profile,
)
from eventrec.store.store import InteractionBatch, dedup_hash

_RECORD = struct.Struct("<IIBBH")
_TYPE_CODE = {InteractionType(name): code for name, code in TYPE_CODES.items()}
_MAX_TIME = 2**32 - 1


class Message(Protocol):
    """What the handlers need of a Kafka message (kafka-python's ConsumerRecord fits)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


OwnerResolver = Callable[[Sequence[str], int], list[int]]


@dataclass(frozen=True)
class Route:
    """A valid interaction that arrived on a partition other than its user's owner."""

    owner: int
    message: Message


@dataclass
class PreparedInteractions:
    batch: InteractionBatch
    dead_letters: list[DeadLetter] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)


@dataclass
class PreparedEntities:
    changes: list[tuple[str, bytes | None]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def _dead(topic: str, partition: int, message: Message, reason: str) -> DeadLetter:
    return DeadLetter.of(
        reason=reason,
        topic=topic,
        partition=partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
    )


def record_value(interaction: Interaction) -> int:
    """The record's ``value`` byte: rating, booking quantity, or 1."""
    if interaction.type == InteractionType.RATING:
        return int(interaction.rating or 0)
    if interaction.type == InteractionType.BOOKING:
        return min(interaction.quantity or 1, MAX_VALUE)
    return 1


def pack_interaction(interaction: Interaction, event_index: int) -> bytes:
    """One interaction as a 12-byte matrix record (see ``model.records``)."""
    seconds = min(max(int(interaction.occurred_at.timestamp()), 0), _MAX_TIME)
    return _RECORD.pack(
        event_index,
        seconds,
        TYPE_CODES[interaction.type.value],
        record_value(interaction),
        booking_hash(interaction.booking_id),
    )


@dataclass
class DecodedInteractions:
    """One partition's batch after validation: its valid interactions and dead letters."""

    topic: str
    partition: int
    expected_offset: int
    next_offset: int
    messages: list[Message] = field(default_factory=list)
    fields: list[InteractionFields] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def user_ids(self) -> list[str]:
        return [f.user_id for f in self.fields]


def decode_interactions(
    topic: str,
    partition: int,
    expected_offset: int,
    messages: Sequence[Message],
    latest: float | None = None,
) -> DecodedInteractions:
    """Validate one partition's messages; the invalid ones become dead letters.

    ``latest``: the latest acceptable ``occurred_at`` (clock plus allowed skew).
    """
    decoded = DecodedInteractions(topic, partition, expected_offset, messages[-1].offset + 1)
    for message in messages:
        try:
            fields = decode_interaction_fields(message.key, message.value, latest=latest)
        except InvalidMessageError as exc:
            decoded.dead_letters.append(_dead(topic, partition, message, exc.reason))
            continue
        decoded.messages.append(message)
        decoded.fields.append(fields)
    return decoded


def prepare_interactions(
    topic: str,
    partition: int,
    expected_offset: int,
    messages: Sequence[Message],
    claim_owners: OwnerResolver,
    latest: float | None = None,
) -> PreparedInteractions:
    """Validate one partition's messages and build its atomic store batch."""
    decoded = decode_interactions(topic, partition, expected_offset, messages, latest)
    return assemble_interactions(decoded, claim_owners(decoded.user_ids, partition))


def assemble_interactions(
    decoded: DecodedInteractions, owners: Sequence[int]
) -> PreparedInteractions:
    """The store batch of validated interactions, given each one's owner partition.

    Interactions of users owned by another partition come back as routes, not records.
    Every valid message's event is named in the batch, in offset order, so the step gives
    it its partition-local index whether it is applied here or not (docs/design.md).
    """
    partition = decoded.partition
    dead = decoded.dead_letters
    search, rating, booking = (
        InteractionType.SEARCH,
        InteractionType.RATING,
        InteractionType.BOOKING,
    )
    batch = InteractionBatch(
        topic=decoded.topic,
        partition=partition,
        expected_offset=decoded.expected_offset,
        next_offset=decoded.next_offset,
    )
    event_slot: dict[str, int] = {}
    routes: list[Route] = []
    record_users: list[str] = []
    record_events: list[int] = []
    record_times: list[float] = []
    record_types: list[int] = []
    record_values: list[int] = []
    record_aux: list[int] = []
    record_hashes: list[bytes] = []
    type_code = _TYPE_CODE
    for message, fields, owner in zip(decoded.messages, decoded.fields, owners, strict=True):
        (
            interaction_id,
            user_id,
            kind,
            event_id,
            rating_value,
            query,
            booking_id,
            quantity,
            _,
            seconds,
        ) = fields
        slot = 0
        if kind is not search:
            assert event_id is not None
            slot = event_slot.get(event_id, 0)
            if not slot:
                slot = event_slot[event_id] = len(event_slot) + 1
        if owner != partition:
            routes.append(Route(owner, message))
            continue
        if kind is search:
            batch.add_search(user_id, query or "", dedup_hash(user_id, interaction_id))
            continue
        record_users.append(user_id)
        record_events.append(slot)
        record_times.append(seconds)
        record_types.append(type_code[kind])
        if kind is rating:
            record_values.append(rating_value or 0)
        elif kind is booking:
            record_values.append(min(quantity or 1, MAX_VALUE))
        else:
            record_values.append(1)
        record_aux.append(booking_hash(booking_id) if booking_id else 0)
        record_hashes.append(dedup_hash(user_id, interaction_id))
    batch.event_ids = list(event_slot)
    if record_users:
        records = np.empty(len(record_users), dtype=RECORD_DTYPE)
        records["event"] = record_events
        records["time"] = np.clip(np.floor(record_times), 0, _MAX_TIME)
        records["type"] = record_types
        records["value"] = record_values
        records["aux"] = record_aux
        batch.add_records(record_users, records.tobytes(), record_hashes)
    batch.dead_lettered = len(dead)
    batch.routed = len(routes)
    return PreparedInteractions(batch=batch, dead_letters=dead, routes=routes)


def prepare_entities(
    kind: str, topic: str, partition: int, messages: Sequence[Message]
) -> PreparedEntities:
    """Validate catalog (``kind="events"``) or profile (``"users"``) messages.

    A valid message becomes an upsert of its canonical JSON; a tombstone a deletion.
    """
    decode = decode_event if kind == "events" else decode_profile
    prepared = PreparedEntities()
    for message in messages:
        try:
            entity = decode(message.key, message.value)
        except InvalidMessageError as exc:
            prepared.dead_letters.append(_dead(topic, partition, message, exc.reason))
            continue
        if entity is None:
            assert message.key is not None
            prepared.changes.append((message.key.decode("utf-8", errors="replace"), None))
        else:
            entity_id = entity.event_id if isinstance(entity, Event) else entity.user_id
            prepared.changes.append((entity_id, entity.model_dump_json().encode("utf-8")))
    return prepared
