"""A real network made by the test: Linux network namespaces on a bridge, NATS servers inside them.

Each `Network` has a unique id (6 hex digits) in every name it creates: namespaces `th-<id>-<node>`,
a bridge `thb<id>` in the root namespace (address `.1` of a free private /24, so the test process
reaches every node) and one veth pair per node (`th<id>h<n>` on the bridge, `th<id>n<n>` inside the
namespace). A node is partitioned by taking its bridge-side veth down (`ip link set ... down`): it then
reaches nothing and nothing reaches it; healing sets it up again. Processes run inside a namespace
with `ip netns exec` (which execs the command, so the pid is the command's own: SIGKILL hits it).

Teardown kills every process started, deletes the veths, the namespaces and the bridge, even after a
failed test. A run killed before its teardown leaves a marker file whose owner
pid is dead; the next `Network` sweeps those leftovers first, so runs never collide or accumulate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKERS = Path(os.environ.get("TRADEHALL_NETNS_MARKERS", "/tmp/tradehall-netns"))
"""One file per live network: id, owner pid, bridge, veths, namespaces (swept once the owner is dead)."""

ETC_NETNS = Path("/etc/netns")
"""Per-namespace files that `ip netns exec` mounts over /etc (its `hosts`)."""

NATS_CLIENT_PORT = 4222
NATS_CLUSTER_PORT = 6222
NATS_HTTP_PORT = 8222


def nats_server_binary() -> str | None:
    found = os.environ.get("TRADEHALL_NATS_SERVER") or shutil.which("nats-server")
    if found is None and Path("/usr/sbin/nats-server").exists():
        found = "/usr/sbin/nats-server"
    return found


def nats_server_version() -> tuple[int, int, int] | None:
    """The installed nats-server's version (`nats-server --version` prints `nats-server: v2.9.10`)."""
    binary = nats_server_binary()
    if binary is None:
        return None
    printed = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v(\d+)\.(\d+)\.(\d+)", printed)
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def unavailable_reason() -> str | None:
    """Why this machine cannot build a namespaced cluster, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the cluster tests as root)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if nats_server_binary() is None:
        return "nats-server is not installed (set TRADEHALL_NATS_SERVER to its path)"
    probe = f"th-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_leftovers() -> list[str]:
    """Deletes the namespaces and bridges of runs whose owner process is gone; returns their ids."""
    swept: list[str] = []
    if not MARKERS.is_dir():
        return swept
    for marker in MARKERS.glob("*.json"):
        try:
            record = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(int(record.get("owner", 0))):
            continue
        for veth in record.get("veths", []):
            _ip("link", "del", veth, check=False)
        for netns in record.get("namespaces", []):
            # only processes inside that namespace (never a recorded pid: it may have been reused)
            for pid in _ip("netns", "pids", netns, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", netns, check=False)
            shutil.rmtree(ETC_NETNS / netns, ignore_errors=True)
        _ip("link", "del", record.get("bridge", ""), check=False)
        marker.unlink(missing_ok=True)
        swept.append(str(record.get("id")))
    return swept


def _used_networks() -> list[ipaddress.IPv4Network]:
    done = _ip("-4", "-o", "addr", "show", check=False)
    used = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            used.append(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network)
    routes = _ip("-4", "route", "show", check=False)
    for line in routes.stdout.splitlines():
        head = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            if head != "default":
                used.append(ipaddress.IPv4Network(head, strict=False))
    return used


def _free_subnet(rng: random.Random) -> ipaddress.IPv4Network:
    used = _used_networks()
    for _ in range(200):
        candidate = ipaddress.IPv4Network(f"10.{rng.randrange(160, 250)}.{rng.randrange(0, 256)}.0/24")
        if not any(candidate.overlaps(other) for other in used):
            return candidate
    raise RuntimeError("no free private /24 for the test network")


@dataclass
class Node:
    """One namespace on the bridge: its name, address and the bridge-side end of its veth."""

    name: str
    netns: str
    address: str
    bridge_veth: str
    partitioned: bool = False


@dataclass
class Proc:
    """A process started inside a namespace, its output in `log`."""

    node: Node
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


@dataclass
class Network:
    """A bridge and namespaces on it; `close()` (always called by the fixture) removes everything."""

    workdir: Path
    id: str = field(default_factory=lambda: f"{random.randrange(1 << 24):06x}")
    nodes: dict[str, Node] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        sweep_leftovers()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bridge = f"thb{self.id}"
        self.subnet = _free_subnet(random.Random(self.id))
        self.gateway = str(self.subnet.network_address + 1)
        self._marker = MARKERS / f"{self.id}.json"
        self._save_marker()
        _ip("link", "add", self.bridge, "type", "bridge")
        self._save_marker()
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def _save_marker(self) -> None:
        MARKERS.mkdir(parents=True, exist_ok=True)
        self._marker.write_text(json.dumps({
            "id": self.id,
            "owner": os.getpid(),
            "bridge": self.bridge,
            "namespaces": [node.netns for node in self.nodes.values()],
            "veths": [node.bridge_veth for node in self.nodes.values()],
        }))

    def add_node(self, name: str) -> Node:
        index = len(self.nodes) + 1
        node = Node(
            name=name,
            netns=f"th-{self.id}-{name}",
            address=str(self.subnet.network_address + 1 + index),
            bridge_veth=f"th{self.id}h{index}",
        )
        inner = f"th{self.id}n{index}"
        self.nodes[name] = node
        _ip("netns", "add", node.netns)
        self._save_marker()
        _ip("link", "add", node.bridge_veth, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", node.netns)
        _ip("link", "set", node.bridge_veth, "master", self.bridge)
        _ip("link", "set", node.bridge_veth, "up")
        _ip("addr", "add", f"{node.address}/{self.subnet.prefixlen}", "dev", inner, netns=node.netns)
        _ip("link", "set", inner, "up", netns=node.netns)
        _ip("link", "set", "lo", "up", netns=node.netns)
        return node

    def hosts(self, node: Node, names: dict[str, str]) -> None:
        """Names that resolve inside `node`'s namespace (`ip netns exec` mounts /etc/netns/<ns>/hosts
        over /etc/hosts), as compose's or a LAN's DNS would."""
        folder = ETC_NETNS / node.netns
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", *(f"{address} {name}" for name, address in names.items())]
        (folder / "hosts").write_text("\n".join(lines) + "\n")

    def partition(self, node: Node) -> None:
        """Cuts `node` off from every other node and from the test process."""
        _ip("link", "set", node.bridge_veth, "down")
        node.partitioned = True

    def heal(self, node: Node) -> None:
        _ip("link", "set", node.bridge_veth, "up")
        node.partitioned = False

    def spawn(
        self, node: Node, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
        stdout_pipe: bool = False,
    ) -> Proc:
        """Runs `argv` in `node`'s namespace; stderr (and stdout unless piped) to <workdir>/<name>.log."""
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", node.netns, *argv],
                stdout=subprocess.PIPE if stdout_pipe else out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        proc = Proc(node, name, process, log)
        self.procs.append(proc)
        return proc

    def run(self, node: Node, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Runs `argv` to completion inside `node`'s namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", node.netns, *argv], capture_output=True, text=True, timeout=timeout
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.kill(signal.SIGKILL)
        for node in self.nodes.values():
            # deleting the veth explicitly: a namespace outlives `netns del` while orphaned sockets
            # (a killed process's, towards a peer it cannot reach) still hold it, and with it the veth
            _ip("link", "del", node.bridge_veth, check=False)
            _ip("netns", "del", node.netns, check=False)
            shutil.rmtree(ETC_NETNS / node.netns, ignore_errors=True)
        _ip("link", "del", self.bridge, check=False)
        self._marker.unlink(missing_ok=True)


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1,
    detail: Callable[[], str] | None = None,
) -> Any:
    """Polls `condition` until it returns something truthy (returned) or fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


@dataclass
class NatsNode:
    node: Node
    server_name: str
    store_dir: Path
    config: Path
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.node.address}:{NATS_CLIENT_PORT}"

    def monitor(self, path: str, timeout: float = 1.0) -> dict[str, Any] | None:
        """The server's monitoring endpoint `path` (e.g. `jsz`), None when unreachable."""
        try:
            with urllib.request.urlopen(
                f"http://{self.node.address}:{NATS_HTTP_PORT}/{path}", timeout=timeout
            ) as answer:
                body: dict[str, Any] = json.loads(answer.read())
                return body
        except (OSError, ValueError, urllib.error.URLError):
            return None


class NatsCluster:
    """Three (or `size`) nats-server processes with JetStream clustering, one per namespace."""

    def __init__(
        self, network: Network, size: int = 3, prefix: str = "nats", config: Path | None = None
    ) -> None:
        """`config`: one configuration file for every server (`$NATS_SERVER_NAME` set to nats1..,
        the names nats1.. resolving to the servers, `--store_dir` overriding its store), as deployed;
        without it, a configuration written here per server."""
        self.network = network
        self.shared_config = config
        self.name = f"th{network.id}"
        self.servers: list[NatsNode] = []
        binary = nats_server_binary()
        assert binary is not None
        self.binary = binary
        for index in range(1, size + 1):
            node = network.add_node(f"{prefix}{index}")
            store = network.workdir / f"{node.name}-store"
            store.mkdir(parents=True, exist_ok=True)
            config = network.workdir / f"{node.name}.conf"
            self.servers.append(NatsNode(node, f"{prefix}{index}", store, config))
        for server in self.servers:
            routes = ", ".join(
                f"nats-route://{peer.node.address}:{NATS_CLUSTER_PORT}"
                for peer in self.servers if peer is not server
            )
            server.config.write_text(
                f'server_name: "{server.server_name}"\n'
                f"listen: 0.0.0.0:{NATS_CLIENT_PORT}\n"
                f"http: 0.0.0.0:{NATS_HTTP_PORT}\n"
                f'jetstream {{ store_dir: "{server.store_dir}", max_memory_store: 64MB, '
                f"max_file_store: 1GB }}\n"
                + (  # one server alone is not a cluster (JetStream refuses a cluster without routes)
                    f'cluster {{ name: "{self.name}", listen: 0.0.0.0:{NATS_CLUSTER_PORT}, '
                    f"routes: [{routes}] }}\n" if size > 1 else ""
                )
            )

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self, server: NatsNode | None = None) -> None:
        names = {peer.server_name: peer.node.address for peer in self.servers}
        for each in [server] if server is not None else self.servers:
            if self.shared_config is None:
                argv = [self.binary, "-c", str(each.config)]
            else:
                self.network.hosts(each.node, names)
                argv = [self.binary, "-c", str(self.shared_config)]
            env = {"NATS_SERVER_NAME": each.server_name, "NATS_STORE_DIR": str(each.store_dir)}
            each.proc = self.network.spawn(each.node, each.server_name, argv, env=env)

    def server(self, name: str) -> NatsNode:
        return next(server for server in self.servers if server.server_name == name)

    def logs(self) -> str:
        return "\n".join(
            f"--- {server.server_name}\n{server.proc.tail(15)}" for server in self.servers if server.proc
        )

    def meta_leader(self, server: NatsNode) -> str | None:
        """Who `server` believes leads the JetStream meta group (None: nobody / unreachable)."""
        jsz = server.monitor("jsz")
        if jsz is None:
            return None
        leader = (jsz.get("meta_cluster") or {}).get("leader")
        return str(leader) if leader else None

    def wait_formed(self, timeout: float = 45) -> str:
        """Until every server is healthy and all agree on one meta leader; returns its name."""

        def formed() -> str | None:
            dead = [server.server_name for server in self.servers if server.proc and not server.proc.alive()]
            if dead:
                raise AssertionError(f"nats-server {dead} exited\n{self.logs()}")
            leaders = set()
            for server in self.servers:
                health = server.monitor("healthz")
                if health is None or health.get("status") != "ok":
                    return None
                leaders.add(self.meta_leader(server) if len(self.servers) > 1 else server.server_name)
            return leaders.pop() if len(leaders) == 1 and None not in leaders else None

        leader: str = wait_for(formed, timeout, "the JetStream cluster to form", 0.2, self.logs)
        # a meta leader is not yet a JetStream that takes requests (503 "temporarily unavailable" for a
        # while): until a replicated stream can be made and removed
        wait_for(self._accepts_streams, timeout, "JetStream to accept a replicated stream", 0.5, self.logs)
        return leader

    def _accepts_streams(self) -> bool:
        async def probe() -> None:
            import nats  # the harness is also imported where nats-py is not needed

            client = await nats.connect(self.urls, connect_timeout=2, allow_reconnect=False)
            try:
                js = client.jetstream(timeout=3)
                await js.add_stream(name="TH_READY", subjects=["th.ready"], num_replicas=len(self.servers))
                await js.delete_stream("TH_READY")
            finally:
                await client.close()

        try:  # in a thread of its own: the caller may be inside an event loop (an async test)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, probe()).result()
        except Exception:  # not yet: any refusal or timeout means try again
            return False
        return True
