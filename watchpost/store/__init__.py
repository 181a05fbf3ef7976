"""PostgreSQL storage through psycopg 3: the only package that imports psycopg.

Callers own transactions: functions that write take a connection and expect the caller to
wrap them in ``with conn.transaction():``. Modules by subject: :mod:`.events` (schema,
migrations, events, dead letters, retention), :mod:`.alerts` (alerts, their lifecycle and
the live feed, and the lock that orders them), :mod:`.dispatch` (units, assignments, tier
clocks, the unit outbox), :mod:`.rules` (what rule detectors remember), :mod:`.stats`
(reports), :mod:`.crowd` (zone counts, alert snapshots, camera health).
"""

import os as _os
from collections.abc import Iterator as _Iterator
from contextlib import contextmanager as _contextmanager

import psycopg as _psycopg
from psycopg import sql as _sql

from watchpost.config import WatchpostConfig as _Config
from watchpost.store import alerts as _alerts
from watchpost.store import audit as _audit
from watchpost.store import crowd as _crowd
from watchpost.store import dispatch as _dispatch
from watchpost.store import events as _events
from watchpost.store import privacy as _privacy
from watchpost.store import rules as _rules
from watchpost.store import stats as _stats
from watchpost.store.alerts import *  # noqa: F403
from watchpost.store.audit import *  # noqa: F403
from watchpost.store.crowd import *  # noqa: F403
from watchpost.store.dispatch import *  # noqa: F403
from watchpost.store.events import *  # noqa: F403
from watchpost.store.events import layout_of, ping
from watchpost.store.privacy import *  # noqa: F403
from watchpost.store.rules import *  # noqa: F403
from watchpost.store.stats import *  # noqa: F403


def sync_configuration(conn: _psycopg.Connection, *, config: _Config) -> None:
    """Mirror the configuration's sites, devices, units and hotlist entries (one transaction)."""
    with conn.transaction():
        _events.sync_config(conn, config=config)
        _dispatch.sync_units(conn, config=config)
        _rules.sync_hotlists(conn, config=config)


@_contextmanager
def scratch_database(url: str, *, config: _Config, prefix: str = "watchpost_bench") -> _Iterator[str]:
    """A database of its own on the server of ``url`` (for a benchmark), migrated and holding
    ``config``; dropped afterwards, its connections ended first."""
    name = f"{prefix}_{_os.getpid()}"
    with _psycopg.connect(url, autocommit=True) as admin:
        admin.execute(_sql.SQL("DROP DATABASE IF EXISTS {}").format(_sql.Identifier(name)))
        admin.execute(_sql.SQL("CREATE DATABASE {}").format(_sql.Identifier(name)))
    scratch = _psycopg.conninfo.make_conninfo(url, dbname=name)
    try:
        with _events.connect(scratch) as conn:
            _events.migrate(conn, storage=config.storage)
            sync_configuration(conn, config=config)
        yield scratch
    finally:
        with _psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(_sql.SQL("DROP DATABASE IF EXISTS {}").format(_sql.Identifier(name)))


__all__ = [
    *_alerts.__all__,
    *_audit.__all__,
    *_crowd.__all__,
    *_dispatch.__all__,
    *_events.__all__,
    *_privacy.__all__,
    *_rules.__all__,
    *_stats.__all__,
    "layout_of",
    "ping",
    "scratch_database",
    "sync_configuration",
]
