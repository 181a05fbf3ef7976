"""``watchpost bench ingest``: the broker's raw ceiling beside Watchpost's publish-to-commit rate.

In one run, on the same broker and a scratch database on the same server:

1. raw ceiling: a paho subscriber that acknowledges and does nothing else;
2. Watchpost with 1 and with 2 ingest worker processes (QoS 1, ack after commit);
3. publish-to-commit latency p50/p99 at a fixed offered rate.

Messages are a repeatable mix of every vendor format for the configured devices. The
publisher runs in its own process so that it does not share an interpreter with the
consumer under test. Rates are messages / (last one handled - first one published).
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from ingest.mqtt import RECONNECT_S, BrokerAddress, Publisher, RawCounter
from ingest.normalise import Normaliser
from ingest.pipeline import IngestWorker
from ingest.simulator import traffic
from ingest.writer import DetectorFactory
from watchpost import store
from watchpost.config import Route, WatchpostConfig
from watchpost.model import ReceivedMessage

__all__ = ["run_ingest_bench"]

Corpus = list[tuple[str, bytes]]


def run_ingest_bench(
    *,
    config: WatchpostConfig,
    database_url: str,
    broker_url: str,
    messages: int,
    rate: float,
    seconds: float,
    as_json: bool,
    repeat: int = 3,
    detector_factory: DetectorFactory | None = None,
) -> int:
    """Run the three measurements and print them (or one JSON object); return the exit status.

    The worker processes run the configured rule detectors (as ``watchpost ingest`` does); the
    latency run does when ``detector_factory`` is given.
    """
    tag = uuid.uuid4().hex[:8]
    cfg = _bench_config(config, tag)
    broker = BrokerAddress.parse(broker_url)
    say = (lambda *_: None) if as_json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    with store.scratch_database(database_url, config=cfg) as db_url:
        say(f"bench: {messages} mixed-format messages per run, broker {broker}, scratch database on the same server")
        corpus = _corpus(cfg, messages, seed=1)
        mix = Counter(_format_of(cfg, t) for t, _ in corpus)
        say("bench: formats " + ", ".join(f"{k} {v * 100 // len(corpus)}%" for k, v in mix.most_common()))

        say("bench: raw ceiling (a bare paho subscriber that does nothing; paho acknowledges)...")
        runs = []
        for i in range(repeat):
            phase = _bench_config(config, f"{tag}raw{i}")
            runs.append(_raw_rate(broker, phase, _corpus(phase, messages, seed=1)))
        raw = statistics.median(runs)
        say("bench:   " + ", ".join(f"{r:,.0f}" for r in runs) + " msg/s")
        results = {}
        for workers in (1, 2):
            say(f"bench: Watchpost, {workers} worker process(es), publish -> commit...")
            runs = []
            for attempt in range(repeat):
                phase = _bench_config(config, f"{tag}w{workers}r{attempt}")
                corpus = _corpus(phase, messages, seed=100 * workers + attempt)  # fresh events: no replays
                runs.append(_watchpost_rate(broker, broker_url, phase, db_url, corpus, workers=workers, tag=tag))
            results[workers] = statistics.median(runs)
            say("bench:   " + ", ".join(f"{r:,.0f}" for r in runs) + " msg/s")
            cpu = _CPU_PER_MESSAGE.get(workers, [])
            if cpu:
                say(f"bench:   worker CPU per message: {statistics.median(cpu):.0f} us (all worker processes)")
        say(f"bench: latency at {rate:,.0f} msg/s offered for {seconds:.0f} s (1 worker)...")
        p50, p99, offered = _latency(
            broker, _bench_config(config, f"{tag}lat"), db_url, rate=rate, seconds=seconds, detectors=detector_factory
        )

    report = {
        "raw_msgs_per_s": round(raw, 1),
        "msgs_per_s_1_worker": round(results[1], 1),
        "msgs_per_s_2_workers": round(results[2], 1),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "offered_msgs_per_s": round(offered, 1),
        "ratio_1_worker": round(results[1] / raw, 3),
        "ratio_2_workers": round(results[2] / raw, 3),
        "messages": messages,
        "repeat": repeat,
        "broker": str(broker),
    }
    if as_json:
        print(json.dumps(report))
    else:
        print(
            f"raw ceiling, paho subscriber doing nothing : {raw:>10,.0f} msg/s\n"
            f"Watchpost, 1 worker, publish -> commit     : {results[1]:>10,.0f} msg/s"
            f"  ({results[1] / raw:.2f} of raw; goal >= 0.5)\n"
            f"Watchpost, 2 workers                       : {results[2]:>10,.0f} msg/s"
            f"  ({results[2] / raw:.2f} of raw, {results[2] / results[1]:.2f}x 1 worker)\n"
            f"publish -> commit latency at {offered:,.0f} msg/s   : p50 {p50:.1f} ms, p99 {p99:.1f} ms"
            f"  (goal p99 < 100 ms)"
        )
    return 0


# --- set-up -------------------------------------------------------------------------------------


def _bench_config(config: WatchpostConfig, tag: str) -> WatchpostConfig:
    """The configuration for one measurement: topics, share group and client ids of its own.

    Sessions of an earlier measurement stay subscribed at the broker for a while; on shared
    topics each of their groups would get (and the broker queue, and persist) a copy of
    every later message. Its own topics keep each measurement alone with the broker.
    """
    ingest = config.ingest.model_copy(
        update={
            "routes": [
                Route(topic=f"bench{tag}/devices/{{device}}/#"),
                Route(topic=f"bench{tag}/frigate/events", format="frigate"),
            ],
            "share_group": f"bench{tag}",
            "client_id": f"wp-bench-{tag}",
            # Every message of a run may be in flight at once: a stock Mosquitto queues only
            # 1,000 more per session and would drop the rest while a consumer catches up.
            "receive_maximum": 65535,
            "session_expiry_s": 60,
        }
    )
    return config.model_copy(update={"ingest": ingest})


def _format_of(config: WatchpostConfig, topic: str) -> str:
    if "frigate" in topic:
        return "frigate"
    device = topic.split("/")[2]
    return config.device_index[device].format or "canonical"


def _corpus(config: WatchpostConfig, n: int, *, seed: int) -> Corpus:
    start = datetime.now(UTC) - timedelta(seconds=n / 1000)
    return list(itertools.islice(traffic(config, seed=seed, start=start, step=timedelta(milliseconds=1)), n))


def _expected_events(config: WatchpostConfig, corpus: Corpus) -> int:
    normaliser = Normaliser(config)
    now = datetime.now(UTC)
    total = 0
    for topic, payload in corpus:
        outcome = normaliser.normalise(ReceivedMessage(topic=topic, payload=payload, received_at=now))
        if outcome.dead is not None:
            raise RuntimeError(f"bench corpus has a bad message: {outcome.dead.reason}: {outcome.dead.detail}")
        total += len(outcome.events)
    return total


# --- the publisher process ----------------------------------------------------------------------


def _publish(
    broker_url: str, corpus: Corpus, rate: float, reconnect_s: tuple[int, int], out: mp.connection.Connection
) -> None:
    """In a child process: publish ``corpus`` (paced at ``rate`` if > 0); send back the send times."""
    sent_at = []
    with Publisher(BrokerAddress.parse(broker_url), reconnect_s=reconnect_s) as pub:
        out.send("ready")
        out.recv()  # go
        started = time.monotonic()
        for i, (topic, payload) in enumerate(corpus):
            if rate > 0:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            sent_at.append(time.time())
            pub.publish(topic, payload)
    out.send(sent_at)


@contextmanager
def _publisher(
    broker: BrokerAddress, corpus: Corpus, rate: float = 0.0, *, reconnect_s: tuple[int, int] = RECONNECT_S
) -> Iterator[tuple[callable, callable]]:
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_publish, args=(str(broker), corpus, rate, reconnect_s, theirs), daemon=True)
    proc.start()
    if ours.recv() != "ready":
        raise RuntimeError("publisher did not connect")
    try:
        yield (lambda: ours.send("go")), (lambda: ours.recv())
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()


# --- measurements -------------------------------------------------------------------------------


def _raw_rate(broker: BrokerAddress, config: WatchpostConfig, corpus: Corpus) -> float:
    n = len(corpus)
    counter = RawCounter(
        broker,
        filters=[f"$share/{config.ingest.share_group}/{r.subscription}" for r in config.ingest.routes],
        expected=n,
        client_id=f"{config.ingest.client_id}-raw",
    ).start()
    try:
        with _publisher(broker, corpus) as (go, sent_times):
            go()
            sent = sent_times()
        if not counter.done.wait(120):
            raise RuntimeError(f"raw subscriber saw {counter.count} of {n}")
        return n / (counter.last_at - sent[0])
    finally:
        counter.stop()


def _watchpost_rate(
    broker: BrokerAddress,
    broker_url: str,
    config: WatchpostConfig,
    db_url: str,
    corpus: Corpus,
    *,
    workers: int,
    tag: str,
) -> float:
    expected = _expected_events(config, corpus)
    with store.connect(db_url) as conn:
        conn.execute("TRUNCATE events, event_keys, dead_letters")
    with tempfile.TemporaryDirectory() as tmp:
        cfg_file = Path(tmp) / "bench.yaml"
        cfg_file.write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
        env = {
            **os.environ,
            "WATCHPOST_DATABASE_URL": db_url,
            "WATCHPOST_MQTT_URL": broker_url,
            "WATCHPOST_LOG_LEVEL": "WARNING",
        }
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "watchpost.cli",
                    "--config",
                    str(cfg_file),
                    "ingest",
                    "--worker-id",
                    f"bench-{tag}-{i}",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for i in range(workers)
        ]
        try:
            for p in procs:
                line = p.stdout.readline().decode()  # type: ignore[union-attr]
                if "consuming" not in line:
                    raise RuntimeError(f"ingest worker did not start: {line.strip()}")
            time.sleep(1.0)  # subscribed
            cpu_before = sum(_cpu_seconds(p.pid) for p in procs)
            with store.connect(db_url) as conn, _publisher(broker, corpus) as (go, sent_times):
                go()
                deadline = time.monotonic() + 300
                while True:
                    stored = conn.execute("SELECT count(*) FROM event_keys").fetchone()[0]
                    if stored >= expected:
                        finished = time.time()
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {stored} of {expected} events stored")
                    time.sleep(0.01)
                sent = sent_times()
            cpu = sum(_cpu_seconds(p.pid) for p in procs) - cpu_before
            _CPU_PER_MESSAGE.setdefault(workers, []).append(cpu / len(corpus) * 1e6)
            return len(corpus) / (finished - sent[0])
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()


_LAST_LATENCIES: list[float] = []  # of the last latency run, in publish order (for diagnosis)
_CPU_PER_MESSAGE: dict[int, list[float]] = {}  # worker CPU microseconds per message, per run


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` and its children have used so far.

    An ingest worker is a receiving process and its writer process, so both count.
    Reads /proc; 0 where there is none.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(int(child)) for child in children)


def _latency(
    broker: BrokerAddress,
    config: WatchpostConfig,
    db_url: str,
    *,
    rate: float,
    seconds: float,
    detectors: DetectorFactory | None = None,
) -> tuple[float, float, float]:
    corpus = _corpus(config, max(1, int(rate * seconds)), seed=99)
    index = {payload: i for i, (_, payload) in enumerate(corpus)}
    committed: dict[int, float] = {}

    def on_commit(batch: list[ReceivedMessage], at: datetime) -> None:
        stamp = at.timestamp()
        for message in batch:
            i = index.get(message.payload)
            if i is not None:
                committed.setdefault(i, stamp)

    with store.connect(db_url) as conn:
        conn.execute("TRUNCATE events, event_keys, dead_letters")
    worker = IngestWorker(
        config=config,
        database_url=db_url,
        broker=broker,
        worker_id="bench-latency",
        on_commit=on_commit,
        detector_factory=detectors,
    ).start()
    try:
        if not worker.wait_ready(15):
            raise RuntimeError(f"worker could not subscribe: {worker.subscriber.detail}")
        with _publisher(broker, corpus, rate) as (go, sent_times):
            go()
            sent = sent_times()
        deadline = time.monotonic() + 60
        while len(committed) < len(corpus) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    if len(committed) < len(corpus):
        raise RuntimeError(f"only {len(committed)} of {len(corpus)} messages committed")
    _LAST_LATENCIES[:] = [(committed[i] - sent[i]) * 1000 for i in range(len(corpus))]
    latencies = sorted(_LAST_LATENCIES)
    offered = len(corpus) / (sent[-1] - sent[0]) if len(sent) > 1 else rate
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies), p99, offered
