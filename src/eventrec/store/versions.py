"""Model versions in Redis: raw arrays plus JSON metadata, one atomic switch, no pickle.

A version is written whole (arrays hash, metadata, entry in the versions set) before the
``current`` key may name it; switching is one SET inside a script that also bumps the
switch counter and publishes the new version, so serving reloads within a second. Arrays
are stored as raw little-endian bytes whose dtype and shape the metadata records, with a
sha256 over all of them: whoever can write Redis can corrupt a model, never run code.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import redis

from eventrec.errors import EventrecError
from eventrec.store.keys import Keys
from eventrec.store.store import Store

if TYPE_CHECKING:  # scikit-learn costs a second at start-up; only loading a model needs it
    from eventrec.model.blend import HybridBlend
    from eventrec.model.content import EventFeaturizer
    from eventrec.model.content_map import ContentMap
    from eventrec.model.hybrid_features import TextModel
    from eventrec.model.recommender import EventrecModel

__all__ = [
    "ARRAY_DTYPES",
    "LoadedModel",
    "ModelVersionError",
    "activate_version",
    "array_bytes",
    "checksum",
    "current_version",
    "data_marker",
    "export_version",
    "import_version",
    "list_versions",
    "load_version",
    "mark_training",
    "pinned_version",
    "prune_versions",
    "read_metadata",
    "read_trending",
    "request_training",
    "unpin_version",
    "write_trending",
    "write_version",
]

# Every array a version holds, with the one dtype it must have ("str": a JSON list).
ARRAY_DTYPES: Mapping[str, str] = {
    "item_factors": "<f4",
    "singular_values": "<f4",
    "column_scale": "<f4",
    "popularity": "<i8",
    "trending": "<f4",
    "content_coef": "<f4",
    "event_ids": "str",
    # The hybrid's TF-IDF: terms in column order and their idf (versions before it lack them).
    "text_terms": "str",
    "text_idf": "<f8",
}
OPTIONAL_ARRAYS = frozenset({"text_terms", "text_idf"})
REQUIRED_ARRAYS = tuple(name for name in ARRAY_DTYPES if name not in OPTIONAL_ARRAYS)
METADATA_FILE = "metadata.json"
ARRAYS_FILE = "arrays.npz"

# Switch the current version only if it exists and (when a token is given) the caller
# still holds the trainer lock: a trainer that lost its lock must not publish.
# A trainer (token given) does not switch while a version is pinned; an explicit activation
# moves the pin to the activated version. ARGV[4] = '1': pin it (set the pin) too.
ACTIVATE = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then return 0 end
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[4]) ~= ARGV[2] then return -1 end
  if redis.call('EXISTS', KEYS[5]) == 1 then return -2 end
elseif ARGV[4] == '1' or redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('SET', KEYS[5], ARGV[1])
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""

# Queue a fit unless one is queued, or a fit of the same data (stored offsets) is running.
REQUEST_TRAINING = """
if redis.call('LLEN', KEYS[1]) > 0 then return {0, redis.call('LLEN', KEYS[1])} end
if redis.call('EXISTS', KEYS[3]) == 1 and redis.call('GET', KEYS[2]) == ARGV[2] then
  return {0, 0}
end
return {1, redis.call('RPUSH', KEYS[1], ARGV[1])}
"""


class ModelVersionError(EventrecError):
    """A model version is missing, incomplete or corrupted; the message names it."""


def _client(store_or_client: Any) -> Any:
    return store_or_client.client if isinstance(store_or_client, Store) else store_or_client


def _keys(store_or_client: Any, prefix: str | None) -> Keys:
    if isinstance(store_or_client, Store) and prefix in (None, store_or_client.keys.prefix):
        return store_or_client.keys
    if prefix is None:
        raise ValueError("a plain Redis client needs the key prefix")
    return Keys(prefix)


def array_bytes(name: str, array: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """An array's raw bytes and its ``{"dtype", "shape", "bytes"}`` entry."""
    dtype = ARRAY_DTYPES.get(name)
    if dtype is None:
        raise ModelVersionError(f"unknown model array {name!r}")
    if dtype == "str":
        data = json.dumps([str(item) for item in np.asarray(array).tolist()]).encode("utf-8")
        shape = [len(array)]
    else:
        data = np.ascontiguousarray(np.asarray(array, dtype=dtype)).tobytes()
        shape = list(np.shape(array))
    return data, {"dtype": dtype, "shape": shape, "bytes": len(data)}


def checksum(raw: Mapping[str, bytes], layout: Mapping[str, Mapping[str, Any]]) -> str:
    """sha256 over every array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(raw):
        entry = layout[name]
        digest.update(f"{name}|{entry['dtype']}|{entry['shape']}|".encode())
        digest.update(raw[name])
    return "sha256:" + digest.hexdigest()


def _decode_array(version: str, name: str, data: bytes, entry: Mapping[str, Any]) -> Any:
    dtype, shape = entry.get("dtype"), [int(n) for n in entry.get("shape", [])]
    if dtype != ARRAY_DTYPES.get(name):
        raise ModelVersionError(
            f"model version {version}: array {name} has dtype {dtype!r}, "
            f"expected {ARRAY_DTYPES.get(name)!r}"
        )
    if dtype == "str":
        try:
            items = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelVersionError(f"model version {version}: {name} is not a JSON list") from None
        if not isinstance(items, list) or len(items) != shape[0]:
            raise ModelVersionError(
                f"model version {version}: {name} is not a list of {shape[0]} ids"
            )
        return items
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise ModelVersionError(
            f"model version {version}: array {name} is {len(data)} bytes, but dtype {dtype} "
            f"and shape {tuple(shape)} need {expected}"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ModelVersionError(
            f"model version {version}: array {name} has {int((~np.isfinite(array)).sum())} "
            f"non-finite values"
        )
    return array


@dataclass(frozen=True)
class LoadedModel:
    """A checked model version, ready for serving.

    Attributes
    ----------
    version : str
    metadata : dict
        The version's JSON metadata (params, metrics, data size, timings, gated, ...).
    event_ids : list of str
        Event index ``i`` of every array below is ``event_ids[i]``.
    item_factors : ndarray of shape (n_events, n_factors), float32
    singular_values : ndarray of shape (n_factors,), float32
    column_scale : ndarray of shape (n_events,), float32
    popularity : ndarray of shape (n_events,), int64
    trending : ndarray of shape (n_events,), float32
        Decayed recent bookings, saves and views at fit time.
    content_map : ContentMap
        Content features -> factor vector, for events newer than the version.
    featurizer : EventFeaturizer
    model : EventrecModel
        Scores users' current rows: ``model.score_rows`` / ``model.fold_in_rows``.
    blend : HybridBlend or None
        The learned hybrid blend (None: a version from before the hybrid, collaborative
        scores only).
    text : TextModel or None
        The hybrid's TF-IDF vocabulary and idf.
    """

    version: str
    metadata: dict[str, Any]
    event_ids: list[str]
    item_factors: npt.NDArray[np.float32]
    singular_values: npt.NDArray[np.float32]
    column_scale: npt.NDArray[np.float32]
    popularity: npt.NDArray[np.int64]
    trending: npt.NDArray[np.float32]
    content_map: ContentMap
    featurizer: EventFeaturizer
    model: EventrecModel
    blend: HybridBlend | None = None
    text: TextModel | None = None

    @property
    def n_factors(self) -> int:
        return int(self.item_factors.shape[1])

    def content_vectors(
        self, documents: Sequence[bytes | str | Mapping[str, Any]]
    ) -> npt.NDArray[np.float32]:
        """Factor vectors of events from their content (stored JSON or schema dicts).

        Returns
        -------
        ndarray of shape (len(documents), n_factors), float32
        """
        from eventrec.model.content import event_content

        features = self.featurizer.transform([event_content(d) for d in documents])
        return self.content_map.predict(features)

    def arrays(self) -> dict[str, Any]:
        """The version's arrays by name, as stored."""
        return {
            "item_factors": self.item_factors,
            "singular_values": self.singular_values,
            "column_scale": self.column_scale,
            "popularity": self.popularity,
            "trending": self.trending,
            "content_coef": self.content_map.coef_,
            "event_ids": self.event_ids,
            **(
                {}
                if self.text is None
                else {
                    "text_terms": sorted(
                        self.text.vocabulary_, key=self.text.vocabulary_.__getitem__
                    ),
                    "text_idf": self.text.idf_,
                }
            ),
        }


def _now_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def write_version(
    store_or_client: Any,
    arrays: Mapping[str, Any],
    metadata: Mapping[str, Any],
    prefix: str | None = None,
) -> str:
    """Write a new version (not activated); returns its id, e.g. ``v000012``.

    ``arrays`` must hold every name of :data:`ARRAY_DTYPES`; ``metadata`` is any JSON
    object (params, metrics, ...) to which the id, layout and checksum are added.
    """
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    missing = sorted(set(REQUIRED_ARRAYS) - set(arrays))
    if missing:
        raise ModelVersionError(f"a model version needs arrays {missing}")
    raw: dict[str, bytes] = {}
    layout: dict[str, dict[str, Any]] = {}
    for name in (n for n in ARRAY_DTYPES if n in arrays):
        array = np.asarray(arrays[name])
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ModelVersionError(f"refusing to write array {name}: non-finite values")
        raw[name], layout[name] = array_bytes(name, array)
    sequence = int(client.incr(keys.model_sequence))
    version = f"v{sequence:06d}"
    created = time.time()
    document = {
        **metadata,
        "version": version,
        "sequence": sequence,
        "created_at": _now_iso(created),
        "arrays": layout,
        "checksum": checksum(raw, layout),
    }
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.model_arrays(version), mapping=raw)
    pipe.set(keys.model_metadata(version), json.dumps(document, sort_keys=True))
    # Listed last: a version appears in the set only once its parts are written.
    pipe.zadd(keys.model_versions, {version: sequence})
    pipe.execute()
    return version


def activate_version(
    store_or_client: Any,
    version: str,
    prefix: str | None = None,
    lock_token: str = "",
    pin: bool = False,
) -> bool:
    """Make ``version`` current (one SET), bump the switch counter and announce it.

    With ``lock_token`` (the trainer), only while that token still holds the trainer lock,
    and not while a version is pinned: then nothing changes and the result is False.
    Without it (an operator), a pin moves to ``version``; ``pin=True`` sets one.
    """
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    result = int(
        client.eval(
            ACTIVATE,
            5,
            keys.model_current,
            keys.model_versions,
            keys.model_switches,
            keys.train_lock,
            keys.model_pin,
            version,
            lock_token,
            keys.model_channel,
            "1" if pin else "0",
        )
    )
    if result == 0:
        raise ModelVersionError(f"model version {version} does not exist")
    if result == -1:
        raise ModelVersionError(f"not activating {version}: this trainer lost the training lock")
    return result == 1


def pinned_version(store_or_client: Any, prefix: str | None = None) -> str | None:
    """The pinned version, or None when the trainer's versions go live."""
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    value = client.get(keys.model_pin)
    return None if value is None else value.decode()


def unpin_version(store_or_client: Any, prefix: str | None = None) -> str | None:
    """Remove the pin (the current version stays); the version that was pinned."""
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    pinned = pinned_version(client, keys.prefix)
    client.delete(keys.model_pin)
    return pinned


def current_version(store_or_client: Any, prefix: str | None = None) -> str | None:
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    value = client.get(keys.model_current)
    return None if value is None else value.decode()


def read_metadata(store_or_client: Any, version: str, prefix: str | None = None) -> dict[str, Any]:
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    raw = client.get(keys.model_metadata(version))
    if raw is None:
        raise ModelVersionError(f"model version {version} does not exist")
    try:
        document: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelVersionError(f"model version {version}: metadata is not JSON: {exc}") from None
    return document


def list_versions(store_or_client: Any, prefix: str | None = None) -> list[dict[str, Any]]:
    """Every stored version's metadata, oldest first, with ``current`` true for one."""
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    versions = [v.decode() for v in client.zrange(keys.model_versions, 0, -1)]
    current = current_version(client, keys.prefix)
    listed = []
    for version in versions:
        try:
            metadata = read_metadata(client, version, keys.prefix)
        except ModelVersionError as exc:
            metadata = {"version": version, "error": str(exc)}
        metadata["current"] = version == current
        listed.append(metadata)
    return listed


def prune_versions(store_or_client: Any, keep: int, prefix: str | None = None) -> list[str]:
    """Delete all but the newest ``keep`` versions, never the current one nor one that a
    running experiment's variant serves; the deleted."""
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    keep = max(1, keep)
    in_experiments = _experiment_versions(client, keys)
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                # A concurrent activate of a version about to go aborts this transaction.
                pipe.watch(keys.model_current)
                versions = [v.decode() for v in pipe.zrange(keys.model_versions, 0, -1)]
                current = pipe.get(keys.model_current)
                current_name = None if current is None else current.decode()
                doomed = [
                    v for v in versions[:-keep] if v != current_name and v not in in_experiments
                ]
                if not doomed:
                    pipe.unwatch()
                    return []
                pipe.multi()
                pipe.zrem(keys.model_versions, *doomed)
                for version in doomed:
                    pipe.delete(keys.model_metadata(version), keys.model_arrays(version))
                pipe.execute()
                return doomed
            except redis.WatchError:
                continue


def _experiment_versions(client: Any, keys: Keys) -> set[str]:
    """Model versions pinned by the variants of running experiments (``store.experiments``)."""
    versions: set[str] = set()
    for raw in client.hvals(keys.experiments):
        document = json.loads(raw)
        if document.get("status") == "running":
            versions.update(
                v["model_version"] for v in document.get("variants", ()) if v.get("model_version")
            )
    return versions


def load_version(
    store_or_client: Any, prefix: str | None = None, version: str | None = None
) -> LoadedModel:
    """Read and check a version (default: the current one) for serving.

    Checks every array's dtype, byte length against its shape, the sha256 checksum,
    finiteness, and that the arrays agree on the number of events and factors.

    Raises
    ------
    ModelVersionError
        Naming the version and what is wrong; never returns a partly checked model.
    """
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    if version is None:
        version = current_version(client, keys.prefix)
        if version is None:
            raise ModelVersionError(
                "no model version is current yet: the trainer has not published"
            )
    metadata = read_metadata(client, version, keys.prefix)
    layout = metadata.get("arrays")
    if (
        not isinstance(layout, dict)
        or not set(REQUIRED_ARRAYS) <= set(layout)
        or not set(layout) <= set(ARRAY_DTYPES)
    ):
        raise ModelVersionError(f"model version {version}: metadata does not list its arrays")
    stored = client.hgetall(keys.model_arrays(version))
    raw = {name.decode(): data for name, data in stored.items()}
    missing = sorted(set(layout) - set(raw))
    if missing:
        raise ModelVersionError(f"model version {version}: arrays {missing} are missing")
    return _assemble(version, metadata, {name: raw[name] for name in layout})


def _assemble(version: str, metadata: dict[str, Any], raw: Mapping[str, bytes]) -> LoadedModel:
    from eventrec.model.content import EventFeaturizer
    from eventrec.model.content_map import ContentMap
    from eventrec.model.recommender import EventrecModel

    layout = metadata["arrays"]
    decoded = {name: _decode_array(version, name, raw[name], layout[name]) for name in layout}
    found = checksum(raw, layout)
    if found != metadata.get("checksum"):
        raise ModelVersionError(
            f"model version {version}: checksum {found} does not match the recorded "
            f"{metadata.get('checksum')}"
        )
    factors = decoded["item_factors"]
    n_events = len(decoded["event_ids"])
    if factors.ndim != 2 or factors.shape[0] != n_events:
        raise ModelVersionError(
            f"model version {version}: item_factors {factors.shape} do not match "
            f"{n_events} event ids"
        )
    for name in ("column_scale", "popularity", "trending"):
        if decoded[name].shape != (n_events,):
            raise ModelVersionError(
                f"model version {version}: {name} has shape {decoded[name].shape}, "
                f"expected ({n_events},)"
            )
    if decoded["singular_values"].shape != (factors.shape[1],) or (
        decoded["content_coef"].ndim != 2 or decoded["content_coef"].shape[1] != factors.shape[1]
    ):
        raise ModelVersionError(f"model version {version}: factor counts of the arrays differ")
    content = metadata.get("content") or {}
    try:
        featurizer = EventFeaturizer.from_dict(content["featurizer"])
        model = EventrecModel.from_arrays(
            {
                "item_factors": factors,
                "singular_values": decoded["singular_values"],
                "column_scale": decoded["column_scale"],
                "popularity": decoded["popularity"],
                "now": np.array(float(metadata["model"]["now"])),
                "params": np.array(json.dumps(metadata["params"])),
            }
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelVersionError(f"model version {version}: incomplete metadata: {exc!r}") from None
    if len(featurizer.vocabulary_) != decoded["content_coef"].shape[0]:
        raise ModelVersionError(
            f"model version {version}: {len(featurizer.vocabulary_)} content features but "
            f"{decoded['content_coef'].shape[0]} rows of content_coef"
        )
    content_map = ContentMap.from_arrays(
        {"coef": decoded["content_coef"], "alpha": np.array(float(content.get("alpha", 1.0)))}
    )
    blend, text = _hybrid_parts(version, metadata, decoded)
    return LoadedModel(
        version=version,
        metadata=metadata,
        event_ids=decoded["event_ids"],
        item_factors=factors,
        singular_values=decoded["singular_values"],
        column_scale=decoded["column_scale"],
        popularity=decoded["popularity"],
        trending=decoded["trending"],
        content_map=content_map,
        featurizer=featurizer,
        model=model,
        blend=blend,
        text=text,
    )


def _hybrid_parts(
    version: str, metadata: Mapping[str, Any], decoded: Mapping[str, Any]
) -> tuple[HybridBlend | None, TextModel | None]:
    """The version's blend (from its metadata) and TF-IDF (from its arrays), if it has them."""
    from eventrec.model.hybrid import blend_from_metadata
    from eventrec.model.hybrid_features import TextModel

    document = (metadata.get("hybrid") or {}).get("blend")
    if document is None:
        return None, None
    terms, idf = decoded.get("text_terms"), decoded.get("text_idf")
    if terms is None or idf is None or len(terms) != len(idf):
        raise ModelVersionError(f"model version {version}: a blend without its TF-IDF arrays")
    try:
        blend = blend_from_metadata(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelVersionError(f"model version {version}: unreadable blend: {exc!r}") from None
    min_df = int(((metadata.get("hybrid") or {}).get("text") or {}).get("min_df", 1))
    text = TextModel.from_dict(
        {"min_df": min_df, "vocabulary": {t: i for i, t in enumerate(terms)}, "idf": idf}
    )
    return blend, text


def export_version(
    store_or_client: Any, version: str, directory: str | Path, prefix: str | None = None
) -> Path:
    """Write a checked version as ``arrays.npz`` + ``metadata.json`` (for backups)."""
    loaded = load_version(store_or_client, prefix, version)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    arrays = loaded.arrays()
    arrays["event_ids"] = np.array(loaded.event_ids, dtype=np.str_)
    np.savez(target / ARRAYS_FILE, **arrays)
    (target / METADATA_FILE).write_text(json.dumps(loaded.metadata, indent=2, sort_keys=True))
    return target


def import_version(store_or_client: Any, directory: str | Path, prefix: str | None = None) -> str:
    """Write an exported version back as a new version (not activated); its new id.

    The arrays must match the exported checksum; the metadata keeps everything else and
    records ``imported_from``.
    """
    source = Path(directory)
    try:
        metadata = json.loads((source / METADATA_FILE).read_text())
        with np.load(source / ARRAYS_FILE, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise ModelVersionError(f"cannot read an exported version from {source}: {exc}") from None
    missing = sorted(set(REQUIRED_ARRAYS) - set(arrays))
    if missing:
        raise ModelVersionError(f"{source}: arrays {missing} are missing")
    raw, layout = {}, {}
    for name in (n for n in ARRAY_DTYPES if n in arrays):
        raw[name], layout[name] = array_bytes(name, arrays[name])
    original = metadata.get("version", "?")
    if checksum(raw, layout) != metadata.get("checksum"):
        raise ModelVersionError(
            f"{source}: arrays do not match the checksum recorded for version {original}"
        )
    _assemble(str(original), metadata, raw)
    kept = {
        k: v
        for k, v in metadata.items()
        if k not in ("version", "sequence", "created_at", "arrays", "checksum", "current")
    }
    kept["imported_from"] = original
    return write_version(store_or_client, arrays, kept, prefix)


def write_trending(
    store_or_client: Any,
    event_ids: Sequence[str],
    scores: np.ndarray,
    metadata: Mapping[str, Any],
    prefix: str | None = None,
) -> None:
    """Replace the trending list (events with a positive score, best first)."""
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > 0]
    document = {
        **metadata,
        "event_ids": [event_ids[i] for i in order.tolist()],
        "scores": [round(float(s), 6) for s in scores[order].tolist()],
    }
    client.set(keys.model_trending, json.dumps(document))


def read_trending(store_or_client: Any, prefix: str | None = None) -> dict[str, Any] | None:
    """The trending list: ``event_ids`` and ``scores`` best first, ``computed_at``; or None."""
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    raw = client.get(keys.model_trending)
    if raw is None:
        return None
    document: dict[str, Any] = json.loads(raw)
    return document


def data_marker(store: Store, topic: str) -> str:
    """The data a fit would read, as the stored offsets of the interactions' partitions."""
    partitions = store.owner_partitions()
    offsets = store.stored_offsets(topic, partitions)
    return json.dumps([[p, offsets[p]] for p in partitions])


def mark_training(store: Store, marker: str | None, seconds: float = 3600.0) -> None:
    """Record the data the running fit reads (None: no fit runs)."""
    if marker is None:
        store.client.delete(store.keys.train_running)
    else:
        store.client.set(store.keys.train_running, marker, ex=max(1, int(seconds)))


def request_training(
    store_or_client: Any, prefix: str | None = None, reason: str = "", topic: str | None = None
) -> tuple[int, bool]:
    """Queue an on-demand fit for the trainer (``POST /train``): (queue length, coalesced).

    Coalesced (nothing queued) when a request is already queued, or, given the
    interactions ``topic`` of a :class:`Store`, when the running fit read the same data.
    """
    client, keys = _client(store_or_client), _keys(store_or_client, prefix)
    marker = ""
    if topic is not None and isinstance(store_or_client, Store):
        marker = data_marker(store_or_client, topic)
    request = {"requested_at": _now_iso(time.time()), "reason": reason}
    queued, length = client.eval(
        REQUEST_TRAINING,
        3,
        keys.train_requests,
        keys.train_running,
        keys.train_lock,
        json.dumps(request),
        marker or "-",
    )
    return int(length), not int(queued)
