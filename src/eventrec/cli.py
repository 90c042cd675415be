"""`eventrec <command>`: the one entry point of every eventrec process and tool."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from eventrec.config import Settings, describe_settings, effective_settings, load_settings
from eventrec.errors import EventrecError
from eventrec.logs import configure_logging

Handler = Callable[[argparse.Namespace, Settings], int]


def _services(args: argparse.Namespace, settings: Settings) -> int:
    from eventrec.devstack import LocalServices

    services = LocalServices(settings)
    if args.action == "up":
        statuses = services.up(redis_cluster=args.redis_cluster)
    elif args.action == "down":
        statuses = services.down()
    else:
        statuses = services.status()
    for status in statuses:
        print(status.line())
    if args.action == "up" and not all(s.running or not s.managed for s in statuses):
        return 1
    if args.action == "up" and args.redis_cluster:
        print(f"processes use the cluster with: EVENTREC_REDIS_URL={services.cluster.url}")
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from eventrec.topics import create_topics, missing_topics

    if args.action == "create":
        for topic, outcome in create_topics(settings).items():
            print(f"{topic}: {outcome}")
        return 0
    missing = missing_topics(settings, settings.topics)
    if missing:
        print("missing topics: " + ", ".join(missing))
        return 1
    print("all topics exist: " + ", ".join(settings.topics))
    return 0


def _consumer(args: argparse.Namespace, settings: Settings) -> int:
    from eventrec.telemetry import use_multiprocess_dir

    if settings.consumer_processes > 1:
        # Before the metrics are defined: every member of this command writes to one place.
        use_multiprocess_dir()
    from eventrec.consumer.loop import run_consumer

    return run_consumer(settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from eventrec.telemetry import use_multiprocess_dir

    # Each worker process builds its own settings from the environment: pass flags on.
    for name in ("host", "port", "workers"):
        value = getattr(args, name)
        if value is not None:
            os.environ[f"EVENTREC_HTTP_{name.upper()}"] = str(value)
    settings = load_settings()
    host, port, workers = settings.http_host, settings.http_port, settings.http_workers
    if workers > 1:
        # Before serving's metrics are defined: every worker writes where /metrics reads.
        use_multiprocess_dir()
    from eventrec.serving.ops_server import OpsServer
    from eventrec.serving.workers import Supervisor, listening_socket, run_worker

    try:
        if workers == 1:
            sock = listening_socket(host, port, reuse_port=False)
        else:
            # First without SO_REUSEPORT: that fails if anything listens on the port, even
            # another eventrec serve whose sockets would otherwise share it silently.
            listening_socket(host, port, reuse_port=False).close()
            sockets = [listening_socket(host, port, reuse_port=True) for _ in range(workers)]
        ops_sock = (
            listening_socket(settings.ops_host, settings.ops_port, reuse_port=False)
            if settings.ops_port
            else None
        )
    except OSError as exc:
        raise EventrecError(str(exc)) from None
    serving_log = logging.getLogger("eventrec.serving")
    ops = OpsServer(settings, ops_sock) if ops_sock is not None else None
    if ops is not None:
        ops.start()
        serving_log.info(
            "metrics and dashboard on http://%s:%d/dashboard", settings.ops_host, ops.port
        )
    try:
        if workers == 1:
            try:
                run_worker(sock)
            finally:
                sock.close()
            return 0
        serving_log.info("serving with %d worker processes on %s:%d", workers, host, port)
        return Supervisor(sockets, run_worker).run()
    finally:
        if ops is not None:
            ops.stop()


def _settings(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        print("| variable | default | meaning |\n|---|---|---|")
    effective = dict(effective_settings(settings))
    for variable, default, description in describe_settings():
        if args.markdown:
            shown = f"`{default}`" if default else "(unset)"
            print(f"| `{variable}` | {shown} | {description} |")
        else:
            value = default if args.defaults else effective[variable]
            print(f"{variable}={value}\n    {description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventrec",
        description="Event recommendations: Kafka consumer, SVD trainer and HTTP serving.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    services = commands.add_parser(
        "services", help="start, stop or show the local Kafka broker and Redis server"
    )
    services.add_argument("action", choices=["up", "down", "status"])
    services.add_argument(
        "--redis-cluster",
        action="store_true",
        help="up: start a local Redis Cluster (3 masters, 3 replicas on "
        "EVENTREC_LOCAL_REDIS_CLUSTER_PORT..+5) instead of the single Redis server",
    )
    services.set_defaults(handler=_services, json_logs=False)

    topics = commands.add_parser("topics", help="create or check the Kafka topics")
    topics.add_argument("action", choices=["create", "check"])
    topics.set_defaults(handler=_topics, json_logs=False)

    consumer = commands.add_parser(
        "consumer", help="consume interactions, catalog and profiles from Kafka into Redis"
    )
    consumer.set_defaults(handler=_consumer, json_logs=True)

    serve = commands.add_parser("serve", help="run the recommendation HTTP API")
    serve.add_argument("--host", help="listen address (EVENTREC_HTTP_HOST)")
    serve.add_argument("--port", type=int, help="port (EVENTREC_HTTP_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (EVENTREC_HTTP_WORKERS)")
    serve.set_defaults(handler=_serve, json_logs=True)

    from eventrec.demo import register as register_demo
    from eventrec.dlq.command import register as register_dlq
    from eventrec.evaluation.command import register as register_evaluate
    from eventrec.experiments.command import register as register_experiment
    from eventrec.publish import register as register_publish
    from eventrec.synth.command import register as register_synth
    from eventrec.trainer.command import register as register_trainer

    register_synth(commands)
    register_evaluate(commands)
    register_trainer(commands)
    register_demo(commands)
    register_experiment(commands)
    register_publish(commands)
    register_dlq(commands)

    settings = commands.add_parser(
        "settings", help="list every setting with the value in effect here (secrets hidden)"
    )
    shown = settings.add_mutually_exclusive_group()
    shown.add_argument("--defaults", action="store_true", help="the defaults instead")
    shown.add_argument(
        "--markdown", action="store_true", help="the defaults as the README's table of settings"
    )
    settings.set_defaults(handler=_settings, json_logs=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except EventrecError as exc:
        print(f"eventrec: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json_lines=args.json_logs)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except EventrecError as exc:
        print(f"eventrec {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left early (`| head`): stop quietly, also at interpreter exit's flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
