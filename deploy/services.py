"""Install, start and stop the local servers: Mosquitto, Kafka (KRaft), InfluxDB 1.x and the
InfluxDB v2-write adapter. Loopback only; every process is started in its own session, its PID
written to ``<run_dir>/<name>.pid``, and stopped by that PID (never by name).

Readiness is polled (a TCP connect, an HTTP ping), never slept for.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from models.settings import Settings
from safecity.priority import lower_threads, niced

logger = logging.getLogger(__name__)

DEPLOY_DIR = Path(__file__).resolve().parent
KAFKA_POM = DEPLOY_DIR / "kafka" / "pom.xml"


class ServiceError(RuntimeError):
    pass


# --------------------------------------------------------------------------- process helpers
def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status < 300
    except (urllib.error.URLError, OSError):
        return False


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free right now (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def isolated_env(run_dir: Path) -> dict[str, str]:
    """The environment for a private set of local servers (free ports, own run directory), so a
    test session or a benchmark never touches a running demo: the SAFECITY_* variables of the
    current environment are replaced."""
    mqtt, kafka, controller, influx, rpc, adapter = free_ports(6)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFECITY_")}
    root = str(DEPLOY_DIR.parent)
    return env | {
        "SAFECITY_MQTT__PORT": str(mqtt),
        "SAFECITY_KAFKA__BOOTSTRAP": f"127.0.0.1:{kafka}",
        "SAFECITY_SERVICES__RUN_DIR": str(run_dir),
        "SAFECITY_SERVICES__KAFKA_CONTROLLER_PORT": str(controller),
        "SAFECITY_SERVICES__INFLUXDB_PORT": str(influx),
        "SAFECITY_SERVICES__INFLUXDB_RPC_PORT": str(rpc),
        "SAFECITY_INFLUX__URL": f"http://127.0.0.1:{adapter}",
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }


def stop_pid(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL after ``timeout``."""
    if not pid_alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not pid_alive(pid), timeout, f"PID {pid} to exit")
    except ServiceError:
        logger.warning("PID %s ignored SIGTERM for %.0fs; killing", pid, timeout)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not pid_alive(pid), 10, f"PID {pid} to die")


# --------------------------------------------------------------------------- services
@dataclass
class Service:
    name: str
    run_dir: Path
    host: str
    port: int
    nice: int = 0  # CPU priority it starts at: >0 for work off the alarm path (safecity/priority.py)

    @property
    def dir(self) -> Path:
        return self.run_dir / self.name

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    # subclasses provide these
    def installed(self) -> str | None:
        """None when installed, else what is missing."""
        raise NotImplementedError

    def install(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files and initialise state before the first start."""

    def ready(self) -> bool:
        return port_open(self.host, self.port)

    def after_ready(self) -> None:
        """One-off setup once the server answers (e.g. create a database)."""

    startup_timeout: float = 60.0

    def start(self) -> int:
        pid = self.pid()
        if pid is not None:
            logger.info("%s already running (PID %s)", self.name, pid)
            return pid
        if port_open(self.host, self.port):
            raise ServiceError(f"{self.name}: port {self.host}:{self.port} is taken by another process")
        missing = self.installed()
        if missing:
            raise ServiceError(f"{self.name} is not installed ({missing}); run `safecity services install`")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        log = open(self.logfile, "ab")
        proc = subprocess.Popen(niced(self.command(), self.nice), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.dir, start_new_session=True, env=self.env())
        log.close()
        self.pidfile.write_text(str(proc.pid))
        try:
            wait_until(lambda: self.ready() or proc.poll() is not None, self.startup_timeout,
                       f"{self.name} on {self.host}:{self.port}")
            if proc.poll() is not None:
                raise ServiceError(f"{self.name} exited with {proc.returncode}; see {self.logfile}")
            self.after_ready()
        except BaseException:
            stop_pid(proc.pid)
            self.pidfile.unlink(missing_ok=True)
            raise
        logger.info("%s ready on %s:%s (PID %s)", self.name, self.host, self.port, proc.pid)
        return proc.pid

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            stop_pid(pid)
            logger.info("%s stopped (PID %s)", self.name, pid)
        self.pidfile.unlink(missing_ok=True)


def grant_to(user: str, path: Path) -> None:
    """Run as root, a server that drops to ``user`` must own its state directory and be able to
    reach it (every parent searchable). Nothing to do for anyone else."""
    if os.geteuid() != 0:
        return
    shutil.chown(path, user, user)
    for child in path.rglob("*"):
        shutil.chown(child, user, user)
    for parent in path.parents:
        if parent != Path("/") and not parent.stat().st_mode & 0o001:
            parent.chmod(parent.stat().st_mode | 0o001)


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise ServiceError(f"install {' '.join(packages)} with apt-get (needs root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env)


@dataclass
class Mosquitto(Service):
    max_inflight: int = 1000

    def installed(self) -> str | None:
        return None if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists() else "mosquitto"

    def install(self) -> None:
        if self.installed():
            _apt_install("mosquitto", "mosquitto-clients")

    def prepare(self) -> None:
        (self.dir / "data").mkdir(exist_ok=True)
        # Run as root, Mosquitto drops to the mosquitto user: without this its persistence fails
        # ("Permission denied" every autosave) and a restart loses every queued QoS 1 message.
        grant_to("mosquitto", self.dir / "data")
        (self.dir / "mosquitto.conf").write_text(
            f"# written by deploy/services.py: development broker, loopback only\n"
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir / 'data'}/\n"
            "autosave_interval 5\n"
            f"max_inflight_messages {self.max_inflight}\n"
            "max_queued_messages 200000\n"
            "max_queued_bytes 536870912\n"  # 512 MiB per session: a long Kafka outage cannot fill the disk
            "autosave_on_changes false\n"
            "set_tcp_nodelay true\n"  # no Nagle delay on small deliveries: an alert waited ~20 ms for a TCP ack
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )

    def command(self) -> list[str]:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        return [exe, "-c", str(self.dir / "mosquitto.conf")]


@dataclass
class Kafka(Service):
    controller_port: int = 9093
    libs: Path = Path(".")
    heap: str = "768m"
    partitions: int = 4
    cleaner_mb_s: float = 0.0  # log.cleaner.io.max.bytes.per.second in MB/s; 0: Kafka's default (unpaced)
    cleaner_nice: int = 0  # the log cleaner thread's niceness (safecity/priority.py); 0: the broker's
    startup_timeout: float = 120.0
    sasl_port: int | None = None  # a SASL/SCRAM listener (OPERATOR) beside the plaintext one
    scram_users: dict[str, str] = field(default_factory=dict)  # user -> password, SCRAM-SHA-512

    def installed(self) -> str | None:
        return None if any(self.libs.glob("kafka_2.13-*.jar")) else f"Kafka jars in {self.libs}"

    def install(self) -> None:
        if not self.installed():
            return
        if not shutil.which("mvn") or not shutil.which("java"):
            raise ServiceError("Kafka needs java (17+) and mvn on PATH")
        self.libs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mvn", "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
                        f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime"], check=True)

    def prepare(self) -> None:
        data = self.dir / "data"
        sasl = f",OPERATOR://{self.host}:{self.sasl_port}" if self.sasl_port else ""
        (self.dir / "server.properties").write_text(
            "# written by deploy/services.py: single-node KRaft broker, loopback only\n"
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.voters=1@{self.host}:{self.controller_port}\n"
            f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}{sasl}\n"
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}{sasl}\n"
            "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,OPERATOR:SASL_PLAINTEXT\n"
            + ("sasl.enabled.mechanisms=SCRAM-SHA-512\nlistener.name.operator.scram-sha-512.sasl.jaas.config="
               "org.apache.kafka.common.security.scram.ScramLoginModule required;\n" if self.sasl_port else "") +
            f"log.dirs={data}\nnum.partitions={self.partitions}\n"
            "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=8\n"
            "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\nauto.create.topics.enable=false\n"
            "message.max.bytes=2097152\nreplica.fetch.max.bytes=2097152\n"
            "log.retention.hours=168\nlog.segment.bytes=134217728\n"
            + (f"log.cleaner.io.max.bytes.per.second={self.cleaner_mb_s * 1e6:.0f}\n" if self.cleaner_mb_s else "")
        )
        (self.dir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\nlog4j.logger.kafka.server.BrokerServer=INFO\n"
        )
        if not (data / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            scram = [f"--add-scram=SCRAM-SHA-512=[name={user},password={pw}]" for user, pw in self.scram_users.items()]
            fmt = subprocess.run([*self._java(), "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                                  "-c", str(self.dir / "server.properties"), "--ignore-formatted", *scram],
                                 capture_output=True, text=True, cwd=self.dir)
            if fmt.returncode != 0:
                raise ServiceError(f"kafka storage format failed: {fmt.stdout[-500:]} {fmt.stderr[-500:]}")

    def _java(self) -> list[str]:
        return ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                "-cp", f"{self.libs}/*"]

    def command(self) -> list[str]:  # the broker's GC log, as Kafka's scripts write one (not the format tool's)
        return [*self._java(), f"-Xlog:gc*:file={self.dir / 'gc.log'}:time,uptime:filecount=3,filesize=20m",
                "kafka.Kafka", str(self.dir / "server.properties")]

    def ready(self) -> bool:
        return port_open(self.host, self.port) and _kafka_metadata_ok(self.host, self.port)

    def after_ready(self) -> None:
        """The log cleaner compacts the tables' changelogs in bursts of a few hundred ms of a core every
        few seconds (segments roll every 4 MiB): work that may wait, so it runs at ``cleaner_nice``
        and no longer sits in front of the produce and fetch requests on the alarm path."""
        pid = self.pid()
        if not self.cleaner_nice or pid is None:
            return
        try:  # kafka-log-cleaner-thread-0 starts with the log manager, about when the listener does
            wait_until(lambda: bool(lower_threads(pid, "kafka-log-clean", self.cleaner_nice)), 10,
                       "Kafka's log cleaner thread")
        except ServiceError:
            logger.warning("kafka: no log cleaner thread found to run at niceness %d", self.cleaner_nice)


def _kafka_cluster_id() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _kafka_metadata_ok(host: str, port: int) -> bool:
    """A Metadata v0 request answered with at least one broker: the broker serves clients."""
    import struct

    body = struct.pack(">hhih", 3, 0, 1, len(b"safecity-probe")) + b"safecity-probe" + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = sock.recv(4)
            if len(head) < 4:
                return False
            size = struct.unpack(">i", head)[0]
            data = b""
            while len(data) < size:
                chunk = sock.recv(size - len(data))
                if not chunk:
                    return False
                data += chunk
            brokers = struct.unpack(">i", data[4:8])[0]  # after correlation id
            return brokers > 0
    except OSError:
        return False


@dataclass
class InfluxDB(Service):
    rpc_port: int = 8088
    database: str = "safecity"

    def installed(self) -> str | None:
        return None if shutil.which("influxd") else "influxdb"

    def install(self) -> None:
        if self.installed():
            _apt_install("influxdb", "influxdb-client")

    def prepare(self) -> None:
        d = self.dir
        (d / "influxdb.conf").write_text(
            "# written by deploy/services.py: InfluxDB 1.x, loopback only\n"
            f'reporting-disabled = true\nbind-address = "{self.host}:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{d}/meta"\n'
            f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "{self.host}:{self.port}"\n  log-enabled = false\n'
            '[logging]\n  level = "warn"\n'
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )

    def command(self) -> list[str]:
        return [shutil.which("influxd") or "influxd", "-config", str(self.dir / "influxdb.conf")]

    def ready(self) -> bool:
        return http_ok(f"http://{self.host}:{self.port}/ping")

    def after_ready(self) -> None:
        query = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.database}"'}).encode()
        urllib.request.urlopen(f"http://{self.host}:{self.port}/query", data=query, timeout=10).close()


@dataclass
class InfluxV2Adapter(Service):
    upstream: str = "http://127.0.0.1:8086"

    def installed(self) -> str | None:
        return None

    def install(self) -> None:
        pass

    def command(self) -> list[str]:
        return [sys.executable, "-m", "deploy.influx_v2_adapter", "--listen", f"{self.host}:{self.port}",
                "--upstream", self.upstream]

    def env(self) -> dict[str, str]:
        root = str(DEPLOY_DIR.parent)
        return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))

    def ready(self) -> bool:
        return http_ok(f"http://{self.host}:{self.port}/ping")


def _pg_bin(name: str) -> str | None:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else None


@dataclass
class PostgreSQL(Service):
    """A private PostgreSQL cluster (Debian's server binaries), for the alert store's tests and
    local runs against PostgreSQL. Run as root it runs as the ``postgres`` user (PostgreSQL refuses
    root), in a data directory that user owns; trust authentication, loopback only."""

    database: str = "safecity"
    user: str = "safecity"
    startup_timeout: float = 60.0

    def installed(self) -> str | None:
        return None if _pg_bin("postgres") and _pg_bin("initdb") else "postgresql"

    def install(self) -> None:
        if self.installed():
            _apt_install("postgresql")

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def prepare(self) -> None:
        grant_to("postgres", self.dir)
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(self._as_owner([_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user,
                                           "-E", "UTF8", "--no-instructions"]),
                           check=True, capture_output=True)

    def command(self) -> list[str]:
        return self._as_owner([_pg_bin("postgres"), "-D", str(self.data), "-h", self.host, "-p", str(self.port),
                               "-k", str(self.dir), "-c", "fsync=off", "-c", "full_page_writes=off"])

    def url(self, database: str | None = None) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database or self.database}"

    def after_ready(self) -> None:
        import psycopg

        wait_until(lambda: self._connects(), 30, "postgres to accept connections")
        with psycopg.connect(f"host={self.host} port={self.port} user={self.user} dbname=postgres",
                             autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone():
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def _connects(self) -> bool:
        import psycopg

        try:
            psycopg.connect(f"host={self.host} port={self.port} user={self.user} dbname=postgres",
                            connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGINT)  # fast shutdown: clients are disconnected
            except ProcessLookupError:
                pass
            stop_pid(pid)
        self.pidfile.unlink(missing_ok=True)


def local_services(settings: Settings) -> list[Service]:
    """The local servers in start order."""
    svc = settings.services
    run_dir = svc.run_dir.resolve()
    kafka_host, _, kafka_port = settings.kafka.bootstrap.split(",")[0].rpartition(":")
    adapter = urllib.parse.urlsplit(settings.influx.url)
    influx_bucket = settings.influx.bucket.split("/")[0]
    return [
        Mosquitto("mosquitto", run_dir, settings.mqtt.host, settings.mqtt.port,
                  max_inflight=settings.mqtt.max_inflight),
        Kafka("kafka", run_dir, kafka_host, int(kafka_port), controller_port=svc.kafka_controller_port,
              libs=svc.kafka_libs, heap=svc.kafka_heap, partitions=settings.kafka.partitions,
              cleaner_mb_s=svc.kafka_cleaner_mb_s, cleaner_nice=settings.background_nice),
        InfluxDB("influxdb", run_dir, "127.0.0.1", svc.influxdb_port, rpc_port=svc.influxdb_rpc_port,
                 database=influx_bucket, nice=settings.background_nice),
        InfluxV2Adapter("influx-v2-adapter", run_dir, adapter.hostname or "127.0.0.1", adapter.port or 8087,
                        upstream=f"http://127.0.0.1:{svc.influxdb_port}", nice=settings.background_nice),
    ]


def install_all(settings: Settings) -> None:
    for service in local_services(settings):
        service.install()


def start_all(settings: Settings) -> list[Service]:
    """Start what is not running yet; returns every service, running. If one fails, stop only
    those this call started (a server that was already running is left alone)."""
    ready: list[Service] = []
    started: list[Service] = []
    try:
        for service in local_services(settings):
            fresh = service.pid() is None
            service.start()
            ready.append(service)
            if fresh:
                started.append(service)
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise
    return ready


def stop_all(settings: Settings) -> None:
    for service in reversed(local_services(settings)):
        service.stop()


def status(settings: Settings) -> dict[str, int | None]:
    return {s.name: s.pid() for s in local_services(settings)}
