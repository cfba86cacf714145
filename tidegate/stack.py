"""The whole stack as separate processes: embedded PostgreSQL and broker (unless URLs are
given), then `python -m services.<name>` for each service, each with its own port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tidegate.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from tidegate.keys import first_admin_key

SERVICES = ("gateway", "validator", "loader", "auditor")


class Stack:
    def __init__(
        self, home: Path, *, gateway_port: int | None = None, pg_preload: tuple[str, ...] = ()
    ) -> None:
        self.home = home
        self.pg_preload = pg_preload
        self.gateway_port = gateway_port or free_port()
        self.ports = {name: free_port() for name in SERVICES if name != "gateway"}
        self.ports["gateway"] = self.gateway_port
        self.database_url = os.environ.get("DATABASE_URL", "")
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        self._postgres: EmbeddedPostgres | None = None
        self._broker: EmbeddedBroker | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.first_admin_key: str | None = None  # set by start() when it made one
        self.env: dict[str, str] = {}  # added to every service's environment

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def service_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DATABASE_URL"] = self.database_url
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap
        for name, port in self.ports.items():
            env[f"TIDEGATE_{name.upper()}_PORT"] = str(port)
        # Backups of the embedded stack live with its data, unless told otherwise.
        env.setdefault("TIDEGATE_BACKUP_DIR", str(self.home.resolve() / "backups"))
        env.update(self.env)
        return env

    def start(self, timeout: float = 90.0) -> None:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self._postgres = EmbeddedPostgres(self.home / "pgdata", preload=self.pg_preload)
            self.database_url = self._postgres.start()
        if not self.bootstrap:
            self._broker = EmbeddedBroker()
            self.bootstrap = self._broker.start()
        for name in SERVICES:
            self.spawn(name)
        self.wait_healthy(SERVICES, timeout)
        self.first_admin_key = asyncio.run(first_admin_key(self.database_url))

    def spawn(self, name: str) -> None:
        """Start (or start again) one service as `python -m services.<name>`."""
        with (self.home / "logs" / f"{name}.log").open("ab") as log:  # the child keeps a copy
            self.processes[name] = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", f"services.{name}"],
                env=self.service_env(),
                stdout=log,
                stderr=log,
            )

    def wait_healthy(self, names: tuple[str, ...], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        waiting = set(names)
        last: dict[str, str] = {}  # each service's last answer, to say why it is not ready
        while waiting:
            for name in sorted(waiting):
                process = self.processes[name]
                if process.poll() is not None:
                    self.stop()
                    raise RuntimeError(
                        f"{name} exited with code {process.returncode}; "
                        f"see {self.home / 'logs' / (name + '.log')}"
                    )
                url = f"http://127.0.0.1:{self.ports[name]}/readyz"
                try:
                    with urllib.request.urlopen(url, timeout=1) as answer:
                        if answer.status == 200:
                            waiting.discard(name)
                except urllib.error.HTTPError as refused:
                    last[name] = refused.read().decode(errors="replace")[:2000]
                except (urllib.error.URLError, OSError) as exc:
                    last[name] = repr(exc)
            if time.monotonic() > deadline:
                self.stop()
                why = "; ".join(f"{name}: {last.get(name, '?')}" for name in sorted(waiting))
                raise RuntimeError(f"not healthy after {timeout}s: {why}")
            time.sleep(0.2)

    def stop(self) -> dict[str, int]:
        """SIGTERM every service (each finishes the chunk in hand), then the components.
        Returns each service's exit code (0 when it stopped cleanly)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        self.processes.clear()
        if self._broker is not None:
            self._broker.stop()
        if self._postgres is not None:
            self._postgres.stop()
        return codes
