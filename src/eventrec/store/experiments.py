"""Experiment definitions in Redis: create, list, show, stop. Counts: ``store.attribution``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from eventrec.errors import ExperimentError
from eventrec.schemas.impressions import Experiment, ExperimentSpec, Variant
from eventrec.store.keys import Keys
from eventrec.store.versions import current_version

MAX_CODE = 2**16 - 1

# KEYS: definitions hash, codes counter, version counter. ARGV: name, JSON with "__CODE__".
CREATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
local code = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], (string.gsub(ARGV[2], '"__CODE__"', tostring(code))))
redis.call('INCR', KEYS[3])
return code
"""


class ExperimentStore:
    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)

    def create(self, spec: ExperimentSpec, now: datetime | None = None) -> Experiment:
        """Store a new running experiment; ``current`` and unset versions are resolved now.

        A variant with no version gets the version current at creation, so a later switch
        (or a pin) never changes what a variant serves.
        """
        current = current_version(self.client, self.keys.prefix)
        versions = {v.decode() for v in self.client.zrange(self.keys.model_versions, 0, -1)}
        variants = []
        for variant in spec.variants:
            version = variant.model_version
            if version in (None, "current"):
                if current is None and version == "current":
                    raise ExperimentError(
                        f"variant {variant.name}: model=current, but no model version exists yet"
                    )
                version = current
            elif version not in versions:
                raise ExperimentError(
                    f"variant {variant.name}: model version {version} does not exist "
                    f"(stored: {', '.join(sorted(versions)) or 'none'})"
                )
            variants.append(
                Variant(name=variant.name, model_version=version, strategy=variant.strategy)
            )
        draft = {
            **spec.model_dump(mode="json"),
            "variants": [v.model_dump(mode="json") for v in variants],
            "split": spec.weights,
            "code": 1,
            "status": "running",
            "created_at": (now or datetime.now(UTC)).isoformat(),
        }
        Experiment.model_validate(draft)  # everything but the code is checked before storing
        draft["code"] = "__CODE__"
        code = int(
            self.client.eval(
                CREATE,
                3,
                self.keys.experiments,
                self.keys.experiment_codes,
                self.keys.experiments_version,
                spec.name,
                json.dumps(draft, separators=(",", ":")),
            )
        )
        if code == 0:
            raise ExperimentError(f"experiment {spec.name} exists already (names are never reused)")
        if code > MAX_CODE:
            raise ExperimentError("no experiment codes left (65,535 experiments were created)")
        return self.get(spec.name)

    def get(self, name: str) -> Experiment:
        raw = self.client.hget(self.keys.experiments, name)
        if raw is None:
            raise ExperimentError(f"no experiment named {name!r}")
        return Experiment.model_validate_json(raw)

    def all(self) -> list[Experiment]:
        experiments = [
            Experiment.model_validate_json(raw)
            for raw in self.client.hgetall(self.keys.experiments).values()
        ]
        return sorted(experiments, key=lambda e: e.code)

    def running(self) -> list[Experiment]:
        return [e for e in self.all() if e.status == "running"]

    def stop(self, name: str, now: datetime | None = None) -> Experiment:
        """Stop assigning users; the counts stay for the report. Stopping twice is fine."""
        experiment = self.get(name)
        if experiment.status == "stopped":
            return experiment
        stopped = experiment.model_copy(
            update={"status": "stopped", "stopped_at": now or datetime.now(UTC)}
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.experiments, name, stopped.model_dump_json())
        pipe.incr(self.keys.experiments_version)
        pipe.execute()
        return stopped

    def version(self) -> int:
        return int(self.client.get(self.keys.experiments_version) or 0)
