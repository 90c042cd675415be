"""`eventrec trainer` and `eventrec model list|show|activate|pin|unpin|export|import`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from eventrec.config import Settings
from eventrec.store import Store, connect
from eventrec.store.versions import (
    activate_version,
    export_version,
    import_version,
    list_versions,
    load_version,
    pinned_version,
    read_metadata,
    unpin_version,
)

__all__ = ["register"]


def _trainer(args: argparse.Namespace, settings: Settings) -> int:
    from eventrec.trainer.loop import run_trainer

    return run_trainer(settings, once=args.once)


def _store(settings: Settings) -> Store:
    return Store(connect(settings.redis_url), settings.key_prefix)


def _summary(metadata: dict[str, Any]) -> str:
    metrics = metadata.get("metrics") or {}
    params = metadata.get("params") or {}
    data = metadata.get("data") or {}

    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    return (
        f"{'*' if metadata.get('current') else ' '} {metadata.get('version', '?'):<9} "
        f"{metadata.get('trained_at', '?')[:19]:<19}  "
        f"ndcg@10 {number(metrics.get('validation_ndcg@10'))} "
        f"(trending {number(metrics.get('trending_validation_ndcg@10'))}, "
        f"popularity {number(metrics.get('popularity_validation_ndcg@10'))})  "
        f"k={params.get('n_factors', '?')} beta={params.get('beta', '?')} "
        f"{params.get('weights_name', '?')}  gated={metadata.get('gated')}  "
        f"{data.get('interactions', '?')} interactions"
        + (f"  imported from {metadata['imported_from']}" if "imported_from" in metadata else "")
        + (f"  ERROR {metadata['error']}" if "error" in metadata else "")
    )


def blend_table(metadata: dict[str, Any]) -> str:
    """The version's hybrid blend as a table: each feature's learned weight and share."""
    blend = (metadata.get("hybrid") or {}).get("blend")
    if not blend:
        return "no hybrid blend: a version from before the hybrid (collaborative scores only)"
    how = (
        f"fixed, collaborative only ({blend.get('fallback', '')})"
        if blend.get("model") != "logistic_regression"
        else f"learned ({blend.get('model')}) on {blend.get('pairs', 0)} validation pairs"
    )
    lines = [f"hybrid blend: {how}", f"  {'feature':<16}{'weight':>10}{'share':>9}"]
    shares = blend.get("shares") or {}
    for name in blend.get("features") or []:
        weight = float(blend["weights"][name])
        lines.append(f"  {name:<16}{weight:>+10.4f}{float(shares.get(name, 0.0)):>9.1%}")
    exposure = blend.get("exposure") or {}
    if "raised_by" in exposure:
        lines.append(
            f"  new: learned {float(exposure['learned_weight']):+.4f}, raised by "
            f"{float(exposure['raised_by']):.4f} at publish so that {exposure['users']} users' "
            f"top {exposure['k']} hold {float(exposure['new_in_top_k']):.2f} never-touched "
            f"events, as {exposure['reference']} alone would"
        )
    return "\n".join(lines)


def _model(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    if args.action == "list":
        versions = list_versions(store)
        if not versions:
            print("no model versions yet")
        for metadata in versions:
            print(_summary(metadata))
        pinned = pinned_version(store)
        if pinned is not None:
            print(f"pinned: {pinned} (the trainer stores new versions but does not switch)")
        return 0
    if args.action == "show":
        metadata = read_metadata(store, args.version)
        # Load too, so `show` says whether serving would accept the version.
        load_version(store, version=args.version)
        print(json.dumps(metadata, indent=2, sort_keys=True))
        # For people: the blend's weights and shares (stdout stays one JSON document).
        print(blend_table(metadata), file=sys.stderr)
        return 0
    if args.action in ("activate", "pin"):
        load_version(store, version=args.version)
        activate_version(store, args.version, pin=args.action == "pin")
        pinned = pinned_version(store)
        print(f"current model version: {args.version}" + (" (pinned)" if pinned else ""))
        return 0
    if args.action == "unpin":
        was = unpin_version(store)
        print(f"unpinned {was}" if was else "no version was pinned")
        return 0
    if args.action == "export":
        target = export_version(store, args.version, args.directory)
        print(f"exported {args.version} to {target}")
        return 0
    version = import_version(store, args.directory)
    if args.activate:
        load_version(store, version=version)
        activate_version(store, version)
    print(f"imported {args.directory} as {version}" + (" (now current)" if args.activate else ""))
    return 0


def register(commands: Any) -> None:
    """Add the ``trainer`` and ``model`` subcommands to ``eventrec``'s sub-parsers."""
    trainer: argparse.ArgumentParser = commands.add_parser(
        "trainer",
        help="refit the model on a schedule and on request, publishing versions to Redis",
        description="Fits at start, then every EVENTREC_TRAIN_INTERVAL_SECONDS and whenever "
        "a training request is queued (POST /train). One trainer fits at a time.",
    )
    trainer.add_argument("--once", action="store_true", help="fit once, publish, and exit")
    trainer.set_defaults(handler=_trainer, json_logs=True)

    model: argparse.ArgumentParser = commands.add_parser(
        "model", help="list, inspect, roll back, pin, export or import model versions"
    )
    actions = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every stored version; * marks the current one")
    show = actions.add_parser("show", help="a version's metadata (and whether it loads)")
    show.add_argument("version")
    activate = actions.add_parser(
        "activate", help="make a stored version current (rollback); moves a pin to it"
    )
    activate.add_argument("version")
    pin = actions.add_parser(
        "pin", help="make a stored version current and keep it: the trainer's versions wait"
    )
    pin.add_argument("version")
    actions.add_parser("unpin", help="let the trainer's next version go live again")
    export = actions.add_parser("export", help="write a version as arrays.npz + metadata.json")
    export.add_argument("version")
    export.add_argument("directory", type=Path)
    imported = actions.add_parser("import", help="store an exported version as a new version")
    imported.add_argument("directory", type=Path)
    imported.add_argument("--activate", action="store_true", help="and make it current")
    model.set_defaults(handler=_model, json_logs=False)
