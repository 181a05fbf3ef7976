"""The ``watchpost`` command line: the entry point, on top of every other layer.

Settings come from the environment (see :class:`Settings`) and the configuration folder;
both are built here once and passed down. With no database or broker configured, ``run``
starts embedded ones so that a newcomer needs nothing but Python.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from detectors.crowd.cli import parse_size
from detectors.crowd.cli import register as register_crowd
from watchpost.config import ConfigError, ReloadError, WatchpostConfig, load_config, zone_changes

__all__ = ["Settings", "main"]

log = logging.getLogger("watchpost")

_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_CONFIG = _ROOT / "configs" / "demo"


@dataclass(frozen=True, slots=True)
class Settings:
    """Process settings from ``WATCHPOST_*`` environment variables."""

    database_url: str | None
    mqtt_url: str | None
    config_path: Path
    data_dir: Path
    api_host: str
    api_port: int
    environment: str
    log_level: str
    jwt_secret: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        environment = env.get("WATCHPOST_ENV", "development")
        settings = cls(
            database_url=env.get("WATCHPOST_DATABASE_URL") or None,
            mqtt_url=env.get("WATCHPOST_MQTT_URL") or None,
            config_path=Path(env.get("WATCHPOST_CONFIG", str(_DEFAULT_CONFIG))),
            data_dir=Path(env.get("WATCHPOST_DATA_DIR", str(_ROOT / "var"))),
            api_host=env.get("WATCHPOST_API_HOST", "127.0.0.1"),
            api_port=int(env.get("WATCHPOST_API_PORT", "8000")),
            environment=environment,
            log_level=env.get("WATCHPOST_LOG_LEVEL", "INFO"),
            jwt_secret=env.get("WATCHPOST_JWT_SECRET") or None,
        )
        if environment == "production" and not (settings.database_url and settings.mqtt_url):
            raise SystemExit(
                "WATCHPOST_ENV=production needs WATCHPOST_DATABASE_URL and WATCHPOST_MQTT_URL:"
                " embedded servers are for development only"
            )
        return settings


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if logging.getLogger().level > logging.DEBUG:
        # httpx logs every request at INFO: a snapshot camera polled twice a second would fill the log
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.handler(args, settings) or 0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="watchpost", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--config", type=Path, help="configuration file or folder (default: $WATCHPOST_CONFIG or configs/demo)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="everything in one process: ingest, API and (by default) the simulator")
    run.add_argument(
        "--no-simulator",
        action="store_true",
        help="no simulated device traffic and no simulated patrol terminals (units with demo keys)",
    )
    run.add_argument("--rate", type=float, default=5.0, help="simulated messages per second (default 5)")
    run.add_argument("--workers", type=int, default=1, help="ingest workers in this process (default 1)")
    run.add_argument("--no-crowd", action="store_true", help="do not count people on the configured cameras")
    run.set_defaults(handler=_cmd_run)

    ingest = sub.add_parser("ingest", help="one ingest worker (run several for a shared subscription)")
    ingest.add_argument(
        "--worker-id",
        default=os.environ.get("WATCHPOST_WORKER_ID", socket_name()),
        help="stable id of this worker; its MQTT session is resumed by it",
    )
    ingest.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port")
    ingest.add_argument("--no-rules", action="store_true", help="store events only; raise no alerts")
    ingest.set_defaults(handler=_cmd_ingest)

    disp = sub.add_parser("dispatch", help="the dispatcher: units, 1-3-5 clocks, escalation, clock-driven rules")
    disp.add_argument(
        "--name",
        default=os.environ.get("WATCHPOST_DISPATCHER", "dispatcher-0"),
        help="name of this dispatcher (several may run: one leads, the rest stand by)",
    )
    disp.set_defaults(handler=_cmd_dispatch)

    api = sub.add_parser("api", help="the HTTP API alone")
    api.set_defaults(handler=_cmd_api)

    parse = sub.add_parser("parse", help="print the normalised events of one raw payload as JSON lines")
    parse.add_argument("file", type=Path, help="raw payload file ('-' for standard input)")
    parse.add_argument("--topic", help="MQTT topic it arrived on (chooses the adapter like ingest does)")
    parse.add_argument("--device", help="configured device id it came from (its format and time zone apply)")
    parse.set_defaults(handler=_cmd_parse)

    sim = sub.add_parser("simulate", help="publish realistic device traffic in every format")
    sim.add_argument("--rate", type=float, default=10.0, help="messages per second (default 10)")
    sim.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60; 0 = forever)")
    sim.add_argument("--broker", help="broker URL (default: $WATCHPOST_MQTT_URL)")
    sim.add_argument("--seed", type=int, default=None, help="random seed for repeatable traffic")
    sim.set_defaults(handler=_cmd_simulate)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="WHAT")
    b_ingest = bench_sub.add_parser("ingest", help="raw broker ceiling vs Watchpost publish-to-commit")
    b_ingest.add_argument("--messages", "-n", type=int, default=20000, help="messages per throughput run")
    b_ingest.add_argument("--rate", type=float, default=2000.0, help="offered rate for the latency run")
    b_ingest.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    b_ingest.add_argument("--repeat", type=int, default=3, help="throughput runs per figure; the median is reported")
    b_ingest.add_argument(
        "--broker",
        help="broker URL to measure (default: a private Mosquitto with the"
        " deployment's settings, or the embedded broker where Mosquitto is not installed)",
    )
    b_ingest.add_argument("--json", action="store_true", help="print one JSON object")
    b_ingest.set_defaults(handler=_cmd_bench_ingest)
    b_alerts = bench_sub.add_parser("alerts", help="publish -> alert on the SSE stream and on the unit's topic")
    b_alerts.add_argument("--rate", type=float, default=2000.0, help="background ordinary events per second")
    b_alerts.add_argument("--probes", type=int, default=80, help="alert-raising events to time")
    b_alerts.add_argument("--interval", type=float, default=0.25, help="seconds between probes")
    b_alerts.add_argument("--broker", help="broker URL (default: a private Mosquitto, as for bench ingest)")
    b_alerts.add_argument("--json", action="store_true", help="print one JSON object")
    b_alerts.set_defaults(handler=_cmd_bench_alerts)
    b_soak = bench_sub.add_parser(
        "soak", help="the whole service under a steady mixed load: throughput, latency, memory"
    )
    b_soak.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    b_soak.add_argument("--rate", type=float, default=1000.0, help="messages per second (default 1,000)")
    b_soak.add_argument("--broker", help="broker URL (default: a private Mosquitto, as for bench ingest)")
    b_soak.add_argument("--json", action="store_true", help="print one JSON object")
    b_soak.set_defaults(handler=_cmd_bench_soak)
    b_gather = bench_sub.add_parser(
        "gathering", help="a crowd forms -> its alert on the console, beside the rule's own dwell; and its clearing"
    )
    b_gather.add_argument("--dwell", type=_positive, default=20.0, help="seconds the crowd must stay (default 20)")
    b_gather.add_argument("--release", type=_positive, default=20.0, help="seconds gone before it clears (20)")
    b_gather.add_argument("--smooth", type=float, default=5.0, help="moving-average window, seconds (default 5)")
    b_gather.add_argument("--sample-fps", type=_positive, default=2.0, help="frames counted a second (default 2)")
    b_gather.add_argument("--trials", type=int, default=3, help="gatherings to time (default 3)")
    b_gather.add_argument(
        "--growth", type=float, help="also raise when the crowd grows by this factor within 60 s (default: not)"
    )
    b_gather.add_argument("--broker", help="broker URL (default: a private Mosquitto, as for bench ingest)")
    b_gather.add_argument("--json", action="store_true", help="print one JSON object")
    b_gather.set_defaults(handler=_cmd_bench_gathering)

    b_crowd = bench_sub.add_parser(
        "crowd", help="cameras one crowd worker keeps up with, beside the decoding and counting ceilings"
    )
    b_crowd.add_argument(
        "--size",
        type=parse_size,
        default=(1920, 1080),
        help="the cameras' resolution, WxH (default 1920x1080; a sub-stream: 640x360)",
    )
    b_crowd.add_argument("--fps", type=_positive, default=25.0, help="the cameras' frame rate (default 25)")
    b_crowd.add_argument("--sample-fps", type=_positive, default=2.0, help="frames counted a second (default 2)")
    b_crowd.add_argument(
        "--seconds", type=_positive, default=10.0, help="measured seconds per worker size (default 10)"
    )
    b_crowd.add_argument(
        "--cameras",
        type=_camera_counts,
        help="worker sizes to measure, e.g. 1,4,8 (default: double until it falls behind, then bisect)",
    )
    b_crowd.add_argument(
        "--processes",
        type=_camera_counts,
        help="worker processes to split the cameras over, e.g. 1,2 (default: 1, and one per core)",
    )
    b_crowd.add_argument(
        "--model", type=Path, help="count with this camera model (default: one calibrated on the synthetic scene)"
    )
    b_crowd.add_argument(
        "--codec",
        choices=("auto", "h264", "h265", "mp4v"),
        default="auto",
        help="the clip's codec (auto: H.264 where PyAV is installed, else MPEG-4 part 2)",
    )
    b_crowd.add_argument("--json", action="store_true", help="print one JSON object")
    b_crowd.set_defaults(handler=_cmd_bench_crowd)

    crowd = register_crowd(sub)
    crowd_run = crowd.add_parser("run", help="the crowd worker: count people on the configured cameras")
    crowd_run.add_argument(
        "--camera", action="append", help="only this camera (repeat for several; default: every counting camera)"
    )
    crowd_run.add_argument(
        "--name", default=os.environ.get("WATCHPOST_CROWD_WORKER", "crowd-0"), help="name of this worker"
    )
    crowd_run.add_argument(
        "--processes",
        type=_processes,
        default=os.environ.get("WATCHPOST_CROWD_PROCESSES", "auto"),  # a string default goes through type
        help="worker processes to split the cameras over (default auto: one per two cores, at most one per"
        " camera; see `watchpost bench crowd`)",
    )
    crowd_run.set_defaults(handler=_cmd_crowd_run)
    crowd_label = crowd.add_parser(
        "label", help="a local page to click the heads in a folder of frames, writing labels.json for calibrate"
    )
    crowd_label.add_argument("--frames", type=Path, required=True, help="folder of JPEG or PNG frames (crowd grab)")
    crowd_label.add_argument(
        "--labels", type=Path, help="labels.json to write (and resume from); default FRAMES/labels.json"
    )
    crowd_label.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: the frames show people)"
    )
    crowd_label.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    crowd_label.set_defaults(handler=_cmd_crowd_label)

    mig = sub.add_parser("migrate", help="apply database migrations and exit")
    mig.set_defaults(handler=_cmd_migrate)

    check = sub.add_parser("check-config", help="validate the configuration and exit")
    check.set_defaults(handler=_cmd_check_config)
    _add_credential_commands(sub)
    return parser


# --- credentials for access (api.auth) ----------------------------------------------------------


def _add_credential_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    hashpw = sub.add_parser("hash-password", help="print the scrypt hash of a password for access.users")
    hashpw.set_defaults(handler=_cmd_hash_password)
    key = sub.add_parser("new-api-key", help="print a new random API key and its access.api_keys line")
    key.add_argument("--name", required=True, help="who holds the key, e.g. terminal-lotus-ebike-1")
    key.add_argument(
        "--role", required=True, choices=["operator", "patrol", "supervisor", "admin", "auditor"], help="its role"
    )
    key.add_argument("--unit", help="the unit a patrol key belongs to")
    key.set_defaults(handler=_cmd_new_api_key)


def _cmd_hash_password(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from api.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")  # one line; the newline is not part of it
    if not password:
        print("an empty password cannot be used", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def _cmd_new_api_key(args: argparse.Namespace, settings: Settings) -> int:
    from api.auth import new_api_key, sha256_hex

    if args.role == "patrol" and not args.unit:
        print("a patrol key must name its unit: --unit UNIT", file=sys.stderr)
        return 2
    key = new_api_key()
    unit = f", unit: {args.unit}" if args.unit else ""
    print(f"API key (shown once, store it now): {key}")
    print("Add under access.api_keys:")
    print(f'  - {{name: {args.name}, role: {args.role}{unit}, key_sha256: "{sha256_hex(key)}"}}')
    return 0


def socket_name() -> str:
    """A default worker id: the host name (stable across restarts of one container)."""
    import socket

    return socket.gethostname().split(".")[0] or "0"


def _config(args: argparse.Namespace, settings: Settings) -> WatchpostConfig:
    return load_config(args.config or settings.config_path)


class Reloader:
    """On SIGHUP, read the configuration again and hand it to ``targets`` (each takes a config and
    returns the camera ids whose zones it took up) when only camera zones changed.

    Operators redraw zones in the console, paste them into devices.yaml and send SIGHUP
    (``docker compose kill -s HUP crowd-1 api-1 api-2``): counting goes on with the new zones,
    the console shows them. A configuration that does not validate, or that changes anything
    else, is refused as a whole with the reason in the log; the services keep the one they have.
    The reading and handing over happen in a thread of their own, not in the signal handler.
    """

    def __init__(
        self,
        load: Callable[[], WatchpostConfig],
        config: WatchpostConfig,
        targets: Sequence[Callable[[WatchpostConfig], object]],
        *,
        service: str,
    ) -> None:
        self._service = service
        self._load = load
        self.config = config
        self._targets = list(targets)
        self._wake = threading.Event()

    def install(self) -> Reloader:
        signal.signal(signal.SIGHUP, lambda *_: self._wake.set())
        threading.Thread(target=self._run, name="config-reload", daemon=True).start()
        return self

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.reload()

    def reload(self) -> str:
        """Read the configuration and apply its zones; what happened, in one line (also logged)."""
        try:
            config = self._load()
            changed = zone_changes(self.config, config)
        except (ConfigError, ReloadError, OSError) as exc:
            outcome = f"{self._service}: configuration not reloaded: {exc}"
            log.error("%s", outcome)
            return outcome
        for target in self._targets:
            try:
                target(config)
            except Exception:  # one service's failure must not end reloading for the others
                log.exception("configuration reload failed in %r", target)
        self.config = config
        if not self._targets:
            outcome = f"{self._service}: configuration read; camera zones are not used here"
        elif changed:
            outcome = f"{self._service}: configuration reloaded: zones of {', '.join(changed)} taken up"
        else:
            outcome = f"{self._service}: configuration reloaded: no zone changed"
        log.info("%s", outcome)
        return outcome


def _on_hangup(
    args: argparse.Namespace,
    settings: Settings,
    config: WatchpostConfig,
    *targets: Callable[[WatchpostConfig], object],
    service: str,
) -> None:
    """Reload this command's configuration on SIGHUP into ``targets`` (see :class:`Reloader`)."""
    Reloader(lambda: _config(args, settings), config, targets, service=service).install()


# --- services -----------------------------------------------------------------------------------


def _services(settings: Settings, *, need_broker: bool = True):  # type: ignore[no-untyped-def]
    """Database and broker URLs: the configured ones, or embedded ones started now."""
    from watchpost.embedded import EmbeddedServices, start_broker, start_postgres

    services = EmbeddedServices(database_url=settings.database_url, broker_url=settings.mqtt_url)
    if services.database_url is None:
        print("No WATCHPOST_DATABASE_URL: starting an embedded PostgreSQL in", settings.data_dir / "pgdata")
        start_postgres(settings.data_dir / "pgdata", services)
    if need_broker and services.broker_url is None:
        print("No WATCHPOST_MQTT_URL: starting an embedded MQTT 5 broker")
        start_broker(settings.data_dir / "broker", services)
    return services


def _prepare_database(url: str, config: WatchpostConfig) -> str:
    from watchpost import store

    with store.connect(url, application_name="watchpost-migrate") as conn:
        layout = store.migrate(conn, storage=config.storage)
        store.sync_configuration(conn, config=config)
    return layout


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    config = _config(args, settings)
    services = _services(settings, need_broker=False)
    try:
        assert services.database_url is not None
        print("events layout:", _prepare_database(services.database_url, config))
    finally:
        services.stop()
    return 0


def _cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    from detectors.crowd.service import check_cameras

    config = _config(args, settings)
    notes, problems = check_cameras(config)  # model files are read: what the crowd worker would meet
    if problems:
        print("invalid configuration:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 2
    print(
        f"ok: {len(config.sites)} sites, {len(config.devices)} devices, {len(config.units)} units,"
        f" {len(config.hotlists.plates)} hotlisted plates, {len(config.ingest.routes)} routes"
    )
    for note in notes:
        print(f"  {note}")
    return 0


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app, reload_config
    from detectors.crowd.service import CrowdWorker, counting_cameras
    from detectors.rules import RuleEngine
    from ingest.mqtt import BrokerAddress
    from ingest.pipeline import IngestWorker

    config = _config(args, settings)
    services = _services(settings)
    assert services.database_url and services.broker_url
    stop = threading.Event()
    workers: list[IngestWorker] = []
    dispatcher = None
    crowd = None
    try:
        layout = _prepare_database(services.database_url, config)
        broker = BrokerAddress.parse(services.broker_url)
        for i in range(max(1, args.workers)):
            workers.append(
                IngestWorker(
                    config=config,
                    database_url=services.database_url,
                    broker=broker,
                    worker_id=f"run-{i}",
                    detector_factory=RuleEngine,
                ).start()
            )
        for w in workers:
            if not w.wait_ready(15):
                print(f"ingest worker {w.worker_id}: not subscribed yet ({w.subscriber.detail or 'no answer'})")
        dispatcher = _dispatcher(config, services.database_url, broker, name="run-dispatcher").start()
        health_sources = [*(_health_source(w) for w in workers), _dispatcher_health(dispatcher)]
        if not args.no_crowd and counting_cameras(config):
            crowd = CrowdWorker(config=config, database_url=services.database_url, broker=broker, name="run-crowd")
            crowd.start()
            health_sources.append(_crowd_health(crowd))
        sim_thread = None
        if not args.no_simulator:
            from detectors.crowd.simulator import FrameSimulator
            from dispatch.terminals import PatrolTerminals
            from ingest.simulator import Simulator

            host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
            terminals = PatrolTerminals(config=config, broker=broker, api_url=f"http://{host}:{settings.api_port}")
            # The crews report their units' positions; the trackers they carry stay quiet in the device traffic.
            played = {t.unit.tracker for t in terminals.terminals.values() if t.unit.tracker}
            # A third of the benchmark's alarm rate: the demo's handful of units can keep up.
            sim = Simulator(config=config, broker=broker, rate=args.rate, seed=None, exclude=played, alarm_scale=0.3)
            sim_thread = threading.Thread(target=sim.run, kwargs={"duration": 0, "stop": stop}, daemon=True)
            sim_thread.start()
            frames = FrameSimulator(config=config, broker=broker)
            threading.Thread(target=frames.run, args=(stop,), daemon=True).start()
            threading.Thread(target=terminals.run, kwargs={"stop": stop}, daemon=True, name="terminals").start()
        app = create_app(
            config=config,
            database_url=services.database_url,
            health_sources=health_sources,
            jwt_secret=settings.jwt_secret,
            production=settings.environment == "production",
        )
        # SIGHUP takes up new camera zones in the API and the crowd worker; ingest and dispatch do not use them
        targets = [lambda c: reload_config(app, c), *([crowd.reload] if crowd is not None else [])]
        _on_hangup(args, settings, config, *targets, service="watchpost run")
        print(
            f"Watchpost is running: http://{settings.api_host}:{settings.api_port}"
            f"  (events layout: {layout}; broker: {broker};"
            f" simulator: {'off' if args.no_simulator else f'{args.rate}/s, patrol terminals played'})"
        )
        uvicorn.run(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            timeout_graceful_shutdown=5,  # open event streams must not hold a stop
        )
    finally:
        stop.set()
        if crowd is not None:
            crowd.stop()
        if dispatcher is not None:
            dispatcher.stop()
        for w in workers:
            w.stop()
        services.stop()
    return 0


def _crowd_health(worker):  # type: ignore[no-untyped-def]
    def report() -> dict[str, object]:
        h = worker.health()
        return {
            "worker": h.name,
            "healthy": h.healthy,
            "database_ok": h.database_ok,
            "detail": h.detail,
            "broker": h.broker,
            "dropped_observations": h.dropped_observations,
            "cameras": {
                c.device_id: {
                    "state": c.state,
                    "reason": c.reason,
                    "people": c.people,
                    "frames": c.frames,
                    "errors": c.errors,
                    "last_frame_at": c.last_frame_at.isoformat() if c.last_frame_at else None,
                    "last_error": c.last_error,
                }
                for c in h.cameras
            },
        }

    return report


def _cmd_crowd_label(args: argparse.Namespace, _settings: Settings) -> int:
    import uvicorn

    from api.labelling import LabelBook, create_labelling_app
    from detectors.crowd.labels import LabelError

    labels = args.labels or args.frames / "labels.json"
    try:
        book = LabelBook(args.frames, labels)
    except (ValueError, LabelError) as exc:
        print(f"crowd label: {exc}", file=sys.stderr)
        return 2
    print(
        f"crowd label: open http://{args.host}:{args.port}/ to label {len(book.frames)} frames"
        f" ({len(book.labels)} labelled); every change is saved to {labels}; Ctrl+C to stop",
        flush=True,
    )
    uvicorn.run(create_labelling_app(book), host=args.host, port=args.port, log_level="warning")
    return 0


def _processes(text: str) -> int:
    """``auto`` (0: one per core) or a number of processes."""
    if text.strip().lower() == "auto":
        return 0
    if not text.strip().isdigit() or not 0 < int(text) <= 256:
        raise argparse.ArgumentTypeError(f"{text!r}: expected auto or a number of processes from 1 to 256")
    return int(text)


def _crowd_processes(args: argparse.Namespace, services, groups: list[list[str]]) -> int:  # type: ignore[no-untyped-def]
    """Supervise one ``crowd run`` process per group of cameras: SIGHUP and SIGTERM are passed on, and a
    process that ends by itself is started again (after 1 s, doubling to 60 s while it keeps failing).

    A process's cameras share one interpreter, whose lock counting holds most of its time (two threads
    count about 1.2x as fast as one: ``watchpost bench crowd``): a larger host needs several processes
    to keep its cores busy.
    """
    env = {**os.environ}
    if services.database_url:
        env["WATCHPOST_DATABASE_URL"] = services.database_url  # embedded servers started here, too
    if services.broker_url:
        env["WATCHPOST_MQTT_URL"] = services.broker_url
    base = [sys.executable, "-m", "watchpost.cli", *(["--config", str(args.config)] if args.config else [])]
    names = [f"{args.name}-{i + 1}" for i in range(len(groups))]
    commands = [
        [*base, "crowd", "run", "--processes", "1", "--name", name, *(x for cam in ids for x in ("--camera", cam))]
        for name, ids in zip(names, groups, strict=True)
    ]
    children: list[subprocess.Popen[bytes] | None] = [None] * len(groups)
    started = [0.0] * len(groups)
    due = [0.0] * len(groups)
    failures = [0] * len(groups)
    stopping = threading.Event()

    def pass_on(signum: int, _frame: object) -> None:
        for child in children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGHUP, pass_on)
    print(
        f"crowd worker {args.name}: {len(groups)} processes, "
        + "; ".join(f"{n}: {', '.join(ids)}" for n, ids in zip(names, groups, strict=True)),
        flush=True,
    )
    try:
        while True:
            now = time.monotonic()
            for i, child in enumerate(children):
                if child is None:
                    if now >= due[i]:
                        children[i], started[i] = subprocess.Popen(commands[i], env=env), now
                    continue
                code = child.poll()
                if code is None:
                    if now - started[i] > 60:
                        failures[i] = 0  # it has run a while: the next failure starts the backoff again
                    continue
                if code == 2:  # a usage or configuration error: starting it again would fail the same way
                    print(f"crowd worker {names[i]} refused its configuration (exit 2): stopping", file=sys.stderr)
                    return 2
                delay = min(60.0, 2.0 ** failures[i])
                failures[i] += 1
                print(
                    f"crowd worker {names[i]} ended (exit {code}): starting it again in {delay:.0f} s", file=sys.stderr
                )
                children[i], due[i] = None, now + delay
            if stopping.wait(0.5):
                return 0
    except KeyboardInterrupt:
        return 130
    finally:
        for child in children:
            if child is not None and child.poll() is None:
                child.terminate()
        for child in children:
            if child is not None:
                try:
                    child.wait(20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


def _cmd_crowd_run(args: argparse.Namespace, settings: Settings) -> int:
    from detectors.crowd.service import CrowdWorker, auto_processes, counting_cameras, partition_cameras
    from ingest.mqtt import BrokerAddress, LinkState

    config = _config(args, settings)
    try:
        cameras = counting_cameras(config, args.camera)
    except ValueError as exc:
        print(f"crowd run: {exc}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    if not cameras:
        # Idle rather than exit, so that a supervisor that restarts stopped services does not spin.
        print("crowd run: no camera has a crowd source (devices[].crowd) in the configuration: idle", flush=True)
        _on_hangup(args, settings, config, service="crowd worker (idle)")
        while not stopping.wait(1.0):
            pass
        return 0
    needs_broker = any(d.crowd is not None and d.crowd.from_mqtt for d in cameras)
    groups = partition_cameras(cameras, args.processes or auto_processes())  # at most one per camera
    services = _services(settings, need_broker=needs_broker)
    assert services.database_url
    try:
        _prepare_database(services.database_url, config)
        if len(groups) > 1:
            return _crowd_processes(args, services, groups)
        worker = CrowdWorker(
            config=config,
            database_url=services.database_url,
            broker=BrokerAddress.parse(services.broker_url) if services.broker_url else None,
            name=str(args.name),
            cameras=args.camera,
        ).start()
        _on_hangup(args, settings, config, worker.reload, service=f"crowd worker {args.name}")
        print(f"crowd worker {args.name} counting on {', '.join(d.id for d in cameras)}", flush=True)
        while not stopping.wait(1.0):
            if worker.subscriber is not None and worker.subscriber.state is LinkState.REFUSED:
                print(worker.subscriber.detail, file=sys.stderr)
                worker.stop()
                return 3
        worker.stop()
    finally:
        services.stop()
    return 0


def _dispatcher(config: WatchpostConfig, database_url: str, broker, *, name: str):  # type: ignore[no-untyped-def]
    """A dispatcher that also runs the clock-driven rules (offline, held open, response level)."""
    from detectors.sentinel import Sentinel
    from dispatch.service import Dispatcher

    sentinel = Sentinel(config)
    return Dispatcher(
        config=config,
        database_url=database_url,
        broker=broker,
        name=name,
        periodic=[lambda conn, now: sentinel.check(conn, now=now)],
    )


def _dispatcher_health(dispatcher):  # type: ignore[no-untyped-def]
    def report() -> dict[str, object]:
        h = dispatcher.health()
        return {
            "dispatcher": h.name,
            "healthy": h.healthy,
            "leader": h.leader,
            "database_ok": h.database_ok,
            "detail": h.detail,
            "broker": h.broker,
            "last_pass_at": h.last_pass_at.isoformat() if h.last_pass_at else None,
            "outbox_in_flight": h.outbox_in_flight,
        }

    return report


def _cmd_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.mqtt import BrokerAddress

    config = _config(args, settings)
    services = _services(settings)
    assert services.database_url and services.broker_url
    try:
        _prepare_database(services.database_url, config)
        dispatcher = _dispatcher(
            config, services.database_url, BrokerAddress.parse(services.broker_url), name=str(args.name)
        ).start()
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        _on_hangup(args, settings, config, service=f"dispatcher {args.name}")
        print(f"dispatcher {args.name} started (one leads; others stand by)", flush=True)
        while not stopping.wait(1.0):
            pass
        dispatcher.stop()
    finally:
        services.stop()
    return 0


def _health_source(worker):  # type: ignore[no-untyped-def]
    def report() -> dict[str, object]:
        h = worker.health()
        return {
            "worker": h.worker,
            "healthy": h.healthy,
            "broker": h.broker,
            "broker_detail": h.broker_detail,
            "database_ok": h.database_ok,
            "database_detail": h.database_detail,
            "queue_depth": h.queue_depth,
            "last_commit_at": h.last_commit_at.isoformat() if h.last_commit_at else None,
            "stored": h.stored,
            "duplicates": h.duplicates,
            "dead_letters": h.dead_letters,
        }

    return report


def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from prometheus_client import start_http_server

    from detectors.rules import RuleEngine
    from ingest.mqtt import BrokerAddress, LinkState
    from ingest.pipeline import IngestWorker

    config = _config(args, settings)
    services = _services(settings)
    assert services.database_url and services.broker_url
    try:
        _prepare_database(services.database_url, config)
        if args.metrics_port:
            start_http_server(args.metrics_port)
        worker = IngestWorker(
            config=config,
            database_url=services.database_url,
            broker=BrokerAddress.parse(services.broker_url),
            worker_id=str(args.worker_id),
            detector_factory=None if args.no_rules else RuleEngine,
        ).start()
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        _on_hangup(args, settings, config, service=f"ingest worker {args.worker_id}")
        print(f"ingest worker {args.worker_id} consuming from {services.broker_url}", flush=True)
        while not stopping.wait(1.0):
            if worker.subscriber.state is LinkState.REFUSED:
                print(worker.subscriber.detail, file=sys.stderr)
                worker.stop()
                return 3
        worker.stop()
    finally:
        services.stop()
    return 0


def _cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app, reload_config

    config = _config(args, settings)
    services = _services(settings, need_broker=False)
    assert services.database_url
    try:
        _prepare_database(services.database_url, config)
        app = create_app(
            config=config,
            database_url=services.database_url,
            jwt_secret=settings.jwt_secret,
            production=settings.environment == "production",
        )
        _on_hangup(args, settings, config, lambda c: reload_config(app, c), service="api")
        uvicorn.run(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    finally:
        services.stop()
    return 0


def _cmd_parse(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.normalise import Normaliser
    from watchpost.model import ReceivedMessage

    config = _config(args, settings)
    if args.device and args.device not in config.device_index:
        print(f"unknown device {args.device!r}; configured: {', '.join(sorted(config.device_index))}", file=sys.stderr)
        return 2
    try:
        raw = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    topic = args.topic or (f"watchpost/devices/{args.device}/events" if args.device else "watchpost/parse")
    message = ReceivedMessage(topic=topic, payload=raw, received_at=datetime.now(UTC))
    outcome = Normaliser(config, require_device=args.device is not None).normalise(message, device_id=args.device)
    for event in outcome.events:
        print(json.dumps(event.as_json(), ensure_ascii=False))
    if outcome.dead is not None:
        print(f"dead letter: {outcome.dead.reason.value}: {outcome.dead.detail}", file=sys.stderr)
        return 2
    return 0


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.mqtt import BrokerAddress
    from ingest.simulator import Simulator

    config = _config(args, settings)
    url = args.broker or settings.mqtt_url
    if not url:
        print("no broker: pass --broker mqtt://host:port or set WATCHPOST_MQTT_URL", file=sys.stderr)
        return 2
    sim = Simulator(config=config, broker=BrokerAddress.parse(url), rate=args.rate, seed=args.seed)
    started = time.monotonic()
    sent = sim.run(duration=args.duration)
    print(f"published {sent} messages in {time.monotonic() - started:.1f}s to {url}")
    return 0


def _bench_broker(args: argparse.Namespace, settings: Settings, services) -> str:  # type: ignore[no-untyped-def]
    """The broker a benchmark measures: --broker, else a private Mosquitto with the production settings."""
    from watchpost.embedded import start_broker, start_mosquitto

    # A stock Mosquitto drops what one client has not acknowledged past a few MB, which
    # would measure the broker's limits, not ours.
    return (
        args.broker
        or start_mosquitto(
            settings.data_dir / "bench-mosquitto",
            services,
            production_conf=_ROOT / "deploy" / "mosquitto" / "mosquitto.conf",
        )
        or start_broker(settings.data_dir / "bench-broker", services)
    )


def _bench(args: argparse.Namespace, settings: Settings, run) -> int:  # type: ignore[no-untyped-def]
    """Run a benchmark on the configured (or an embedded) database and its own broker; stop what it started."""
    config = _config(args, settings)
    services = _services(settings, need_broker=False)
    assert services.database_url
    try:
        return int(
            run(config=config, database_url=services.database_url, broker_url=_bench_broker(args, settings, services))
        )
    finally:
        services.stop()


def _cmd_bench_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from dispatch.bench import run_alerts_bench

    return _bench(
        args,
        settings,
        lambda **common: run_alerts_bench(
            **common, background_rate=args.rate, probes=args.probes, probe_interval=args.interval, as_json=args.json
        ),
    )


def _cmd_bench_gathering(args: argparse.Namespace, settings: Settings) -> int:
    from detectors.crowd.bench_gathering import run_gathering_bench

    if args.trials < 1 or args.smooth < 0 or (args.growth is not None and args.growth <= 1):
        raise SystemExit("bench gathering: --trials must be at least 1, --smooth not negative, --growth above 1")

    def run(**common: object) -> int:
        run_gathering_bench(
            **common,
            dwell_s=args.dwell,
            release_s=args.release,
            smooth_s=args.smooth,
            sample_fps=args.sample_fps,
            trials=args.trials,
            growth=args.growth,
            as_json=args.json,
        )
        return 0

    return _bench(args, settings, run)


def _cmd_bench_soak(args: argparse.Namespace, settings: Settings) -> int:
    from dispatch.soak import run_soak

    return _bench(
        args, settings, lambda **common: run_soak(**common, minutes=args.minutes, rate=args.rate, as_json=args.json)
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value


def _camera_counts(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and 0 < int(p) <= 128 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers from 1 to 128, e.g. 1,4,8")
    return [int(p) for p in parts]


def _cmd_bench_crowd(args: argparse.Namespace, settings: Settings) -> int:
    from detectors.crowd.bench import run_crowd_bench

    if args.model is not None and not args.model.is_file():
        raise SystemExit(f"--model {args.model}: no such file")
    config = _config(args, settings)
    services = _services(settings, need_broker=False)
    assert services.database_url
    try:
        figures = run_crowd_bench(
            config=config,
            database_url=services.database_url,
            size=args.size,
            clip_fps=args.fps,
            sample_fps=args.sample_fps,
            seconds=args.seconds,
            cameras=args.cameras,
            processes=args.processes,
            model_path=args.model,
            codec=args.codec,
            as_json=args.json,
        )
    finally:
        services.stop()
    return 0 if any(figures["cameras_kept_up"].values()) else 1  # type: ignore[attr-defined]


def _cmd_bench_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from detectors.rules import RuleEngine
    from ingest.bench import run_ingest_bench

    return _bench(
        args,
        settings,
        lambda **common: run_ingest_bench(
            **common,
            detector_factory=RuleEngine,
            messages=args.messages,
            rate=args.rate,
            seconds=args.seconds,
            repeat=max(1, args.repeat),
            as_json=args.json,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
