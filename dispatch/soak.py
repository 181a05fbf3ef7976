"""``watchpost bench soak --minutes N``: the whole service under a steady mixed load for N minutes.

The ingest worker (rules in its transaction), the dispatcher and the API run as deployed, each
in its own process, on a scratch database and a private broker. A publisher process sends the
simulator's traffic (every vendor format, alarms and hotlist hits included) at a steady rate;
this process publishes a timed probe every second and polls for it, and once a minute reports
throughput, probe latency, dead letters, open alerts and the memory (RSS) of each service's
process tree. At the end: whether memory grew, and every figure as a table (or JSON).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from dispatch import bench as alerts_bench
from ingest.bench import _bench_config, _corpus, _publisher
from ingest.mqtt import BrokerAddress, Publisher
from watchpost import store
from watchpost.config import WatchpostConfig
from watchpost.embedded import free_port

__all__ = ["run_soak"]

_PROBE_DEVICE = "lotus-gate-s"


def run_soak(
    *, config: WatchpostConfig, database_url: str, broker_url: str, minutes: float, rate: float, as_json: bool
) -> int:
    """Run the soak; print one line a minute (stderr) and the summary; return the exit status."""
    say = (lambda *_: None) if as_json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    tag = uuid.uuid4().hex[:8]
    cfg = alerts_bench._config(_bench_config(config, tag), tag, "soak-key-unused")
    cfg = cfg.model_copy(update={"alerts": config.alerts})  # repeats fold as configured
    logging.getLogger("httpx").setLevel(logging.WARNING)
    broker = BrokerAddress.parse(broker_url)
    seconds = minutes * 60
    traffic = _corpus(cfg, int(rate * seconds) + 1, seed=21)
    topic = cfg.ingest.routes[0].topic.replace("{device}", _PROBE_DEVICE).replace("#", "events")
    rows: list[dict[str, Any]] = []
    with store.scratch_database(database_url, config=cfg) as db_url, store.connect(db_url) as conn:
        store.sync_configuration(conn, config=cfg)
        port = free_port()
        with alerts_bench._services(cfg, db_url, broker_url, port, tag) as procs:
            say(f"soak: {minutes:g} min at {rate:,.0f} msg/s of mixed traffic; one probe a second")
            with _publisher(broker, traffic, rate) as (go, sent_times), Publisher(broker) as probes:
                go()
                started = time.monotonic()
                minute = _Minute(conn)
                probe = 0
                while time.monotonic() - started < seconds:
                    probe += 1
                    ref = f"soak-{tag}-{probe}"
                    body = {"kind": "access", "code": "card_pass", "id": ref}
                    published = time.time()
                    probes.publish(topic, json.dumps(body).encode())
                    minute.probe(ref, published, wait_s=max(0.0, started + probe - 0.05 - time.monotonic()))
                    time.sleep(max(0.0, started + probe - time.monotonic()))
                    if time.monotonic() - minute.started >= 60 or time.monotonic() - started >= seconds:
                        row = minute.close(procs)
                        rows.append(row)
                        say(
                            f"soak: min {len(rows):>3}: {row['stored_per_s']:>7,.0f} events/s stored,"
                            f" probe p50 {row['probe_p50_ms']:.0f} ms p99 {row['probe_p99_ms']:.0f} ms,"
                            f" dead letters {row['dead_letters']}, open alerts {row['open_alerts']},"
                            f" RSS {row['rss_mb']}"
                        )
                        minute = _Minute(conn)
                sent = sent_times()
    offered = len(sent) / (sent[-1] - sent[0]) if len(sent) > 1 else 0.0
    growth = _growth(rows)
    latencies = [x for r in rows for x in r.pop("_latencies")]
    report = {
        "minutes": len(rows),
        "offered_msgs_per_s": round(offered, 1),
        "stored_per_s": round(statistics.mean(r["stored_per_s"] for r in rows), 1) if rows else 0.0,
        "probe_p50_ms": round(_pct(latencies, 0.5), 1),
        "probe_p99_ms": round(_pct(latencies, 0.99), 1),
        "probes_lost": sum(r["probes_lost"] for r in rows),
        "dead_letters": rows[-1]["dead_letters"] if rows else 0,
        "rss_growth_mb": growth,
        "per_minute": rows,
    }
    if as_json:
        print(json.dumps(report))
    else:
        print(
            f"offered {offered:,.0f} msg/s; stored {report['stored_per_s']:,.0f} events/s on average\n"
            f"probe publish -> stored: p50 {report['probe_p50_ms']} ms, p99 {report['probe_p99_ms']} ms,"
            f" lost {report['probes_lost']}\n"
            f"dead letters: {report['dead_letters']}\n"
            "memory growth from the second minute to the last (MB): "
            + ", ".join(f"{k} {v:+.1f}" for k, v in growth.items())
        )
    return 0 if report["probes_lost"] == 0 else 1


class _Minute:
    """One minute's figures: stored events, probe latencies, dead letters, open alerts, memory."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.started = time.monotonic()
        self.stored0 = store.count_events(conn)
        self.pending: dict[str, float] = {}
        self.latencies: list[float] = []

    def probe(self, ref: str, published: float, *, wait_s: float) -> None:
        """Note a probe and poll for it (and any still pending) for up to ``wait_s``."""
        self.pending[ref] = published
        self._poll(wait_s)

    def _poll(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while self.pending:
            rows = self.conn.execute(
                "SELECT ref, received_at FROM events WHERE ref = ANY(%s)", (list(self.pending),)
            ).fetchall()
            now = time.time()
            for ref, _ in rows:
                self.latencies.append((now - self.pending.pop(ref)) * 1000)
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)

    def close(self, procs: dict[str, Any]) -> dict[str, Any]:
        self._poll(10.0)
        elapsed = time.monotonic() - self.started
        stored = store.count_events(self.conn) - self.stored0
        return {
            "stored_per_s": round(stored / elapsed, 1),
            "probe_p50_ms": round(_pct(self.latencies, 0.5), 1),
            "probe_p99_ms": round(_pct(self.latencies, 0.99), 1),
            "probes_lost": len(self.pending),
            "dead_letters": sum(store.dead_letter_counts(self.conn).values()),
            "open_alerts": int(
                self.conn.execute(
                    "SELECT count(*) FROM alerts WHERE state NOT IN ('resolved', 'cancelled')"
                ).fetchone()[0]  # type: ignore[index]
            ),
            "rss_mb": {name: round(_rss_kb(p.pid) / 1024, 1) for name, p in procs.items()},
            "_latencies": self.latencies,
        }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _growth(rows: list[dict[str, Any]]) -> dict[str, float]:
    """RSS change per service from the second minute (after warm-up) to the last."""
    if len(rows) < 2:
        return {}
    first, last = rows[1 if len(rows) > 2 else 0]["rss_mb"], rows[-1]["rss_mb"]
    return {name: round(last[name] - first[name], 1) for name in last}


def _rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (the ingest worker's writer is a child), in kB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    own = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return own + sum(_rss_kb(int(c)) for c in children)


if os.name != "posix":  # pragma: no cover - /proc is how memory is read
    raise ImportError("the soak benchmark reads process memory from /proc")
