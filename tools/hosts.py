"""Hosts on this machine for real: network namespaces on a bridge, emulated links, an sshd each.

    python -m tools.hosts [--hosts 2] [--workers W] [--rate 1gbit] [--delay 0.5ms] [--prefix vaecfh]
                          [--no-ssh] [--each] -- COMMAND...

makes ``--hosts`` N network namespaces ``PREFIX1..PREFIXN`` (host names ``h1..hN``, addresses
``10.77.0.1..N/24``, each on its own ``eth0``) joined by a bridge that lives in one more namespace
(``PREFIXsw``): the machine's own interfaces, routes and addresses are never touched, and the
namespaces reach nothing but each other. ``--rate`` (``tc tbf``) and ``--delay`` (``tc netem``)
shape each host's ``eth0``, its sending side: every byte a host sends pays the rate once, every
packet the delay once. Each namespace runs an sshd bound to its address, with host and client keys made for
this run; ``ip netns exec`` gives each namespace its own ``/etc/hosts`` (naming h1..hN) and
``/etc/ssh`` (that sshd's config, and an ssh client config that uses the run's key), so that
``ssh h2`` from h1 works as on a cluster and ``horovodrun -H h1:1,h2:1`` does what it does there.

Then COMMAND runs in h1 (as the user's shell on the first host of a cluster), or with ``--each``
as ``W/N`` tf.distribute workers per host, each with ``VAECF_WORKER=1`` and a ``TF_CONFIG`` naming
every worker by its host's address. The exit code is COMMAND's (with ``--each``, the first
failure's), 2 for bad input (one line, nothing made).

Tear-down always happens, in a reaper process started before anything is made: it holds the read
end of a pipe whose write end only the launcher holds, and when that pipe closes (the launcher
finished, failed, or was killed with SIGKILL) it kills every process in the namespaces and deletes
them (their veths and the bridge go with them) and the run's files. Needs root, ``ip``, ``tc``
(for a link setting) and, for ssh, Debian's ``openssh-server``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from vaecf.children import die_with_parent
from vaecf.launch import wait_world

SUBNET = "10.77.0"
"""The namespaces' /24: private, and routed nowhere but the bridge between them."""
NETNS_ETC = Path("/etc/netns")
"""Where ``ip netns exec NAME`` finds the files it bind-mounts over /etc (iproute2's convention)."""
SSHD = "/usr/sbin/sshd"
TF_PORT = 23456
"""The first TF_CONFIG port of a host's tf.distribute workers (a fresh namespace has every port free)."""
NO_IPV6 = ("echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
           "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
"""Run in each new namespace: no IPv6 (not even link-local), so a host's one address is its IPv4 one."""
PRIVSEP = Path("/run/sshd")
"""sshd's privilege-separation folder (systemd makes it on a booted system); made here when missing,
and removed again (``made-run-sshd`` in the state folder says so)."""
READY_TIMEOUT_S = 30.0
MAX_HOSTS = 60


class HostsError(Exception):
    """Bad input or a missing tool: one line for the user, raised before anything is made."""


@dataclass(frozen=True)
class Link:
    """One emulated link: ``rate`` as tc writes it (``10gbit``, ``500mbit``) and one-way ``delay`` (``0.5ms``)."""

    rate: str | None = None
    delay: str | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+)?[kmg]?bit", self.rate):
            raise HostsError(f"--rate {self.rate!r}: a rate as tc writes it, e.g. 10gbit, 500mbit")
        if self.delay is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+)?(us|ms)", self.delay):
            raise HostsError(f"--delay {self.delay!r}: a one-way delay as tc writes it, e.g. 0.5ms, 50us")

    @property
    def shaped(self) -> bool:
        return self.rate is not None or self.delay is not None

    def qdiscs(self) -> list[list[str]]:
        """The ``tc qdisc add dev eth0`` argument lists: netem's delay at the root, tbf's rate under it.

        The rate is tbf's (a token bucket: any kernel with ``sch_tbf``); the delay needs ``sch_netem``.
        The bucket holds a millisecond of the rate (at least 128 KiB: a GSO packet of 64 KiB must fit)
        and the queue 50 ms of it, so a fast link is shaped, not cut by drops.
        """
        qdiscs = [["root", "handle", "1:", "netem", "delay", self.delay, "limit", "100000"]] if self.delay else []
        if self.rate:
            burst = max(128 * 1024, int(rate_bits(self.rate) / 8 / 1000))
            parent = ["parent", "1:1"] if self.delay else ["root"]
            qdiscs.append([*parent, "handle", "2:", "tbf", "rate", self.rate, "burst", str(burst),
                           "latency", "50ms"])
        return qdiscs


def rate_bits(rate: str) -> float:
    """A tc rate (``10gbit``) in bits per second."""
    number, unit = re.fullmatch(r"([0-9.]+)([kmg]?)bit", rate).groups()  # type: ignore[union-attr]
    return float(number) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[unit]


@dataclass(frozen=True)
class Spec:
    """What to make: ``hosts`` namespaces named ``prefix1..``, their link, and whether each runs an sshd."""

    hosts: int = 2
    prefix: str = "vaecfh"
    link: Link = Link()
    ssh: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.hosts <= MAX_HOSTS:
            raise HostsError(f"--hosts {self.hosts}: from 1 to {MAX_HOSTS}")
        if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", self.prefix):
            raise HostsError(f"--prefix {self.prefix!r}: a lower-case letter then up to 9 letters or digits")

    @property
    def namespaces(self) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(1, self.hosts + 1)]

    @property
    def switch(self) -> str:
        return f"{self.prefix}sw"

    @property
    def hostnames(self) -> list[str]:
        return [f"h{i}" for i in range(1, self.hosts + 1)]

    @property
    def addresses(self) -> list[str]:
        return [f"{SUBNET}.{i}" for i in range(1, self.hosts + 1)]


def check(spec: Spec) -> None:
    """Refuse, before anything is made, what cannot work here: not root, a missing tool, a name in use."""
    if os.geteuid() != 0:
        raise HostsError("network namespaces need root (this process runs as uid "
                         f"{os.geteuid()}); run as root, as CI does")
    needed = ["ip", *(["tc"] if spec.link.shaped else [])]
    for tool in needed:
        if shutil.which(tool) is None:
            raise HostsError(f"'{tool}' not found on PATH: install iproute2")
    if spec.ssh:
        for tool in (SSHD, "ssh", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise HostsError(f"'{tool}' not found: install Debian's openssh-server "
                                 "(apt-get install --no-install-recommends openssh-server), or pass --no-ssh")
    taken = sorted(set(existing_namespaces()) & {*spec.namespaces, spec.switch})
    if taken:
        raise HostsError(f"namespace {taken[0]} exists already (--prefix {spec.prefix}); "
                         "choose another --prefix or delete it with 'ip netns del'")
    stale = [ns for ns in [*spec.namespaces, spec.switch] if (NETNS_ETC / ns).exists()]
    if stale:
        raise HostsError(f"{NETNS_ETC / stale[0]} exists already; choose another --prefix or remove it")


def existing_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class Cluster:
    """The namespaces of a ``Spec``, made on entry and torn down on exit (or by the reaper, see above)."""

    def __init__(self, spec: Spec) -> None:
        check(spec)
        self.spec = spec
        self.state = Path(tempfile.mkdtemp(prefix=f"{spec.prefix}-hosts-"))
        self._pipe_w: int | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._sshds: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Cluster:
        self._start_reaper()
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- running things in a host ---------------------------------------------------------------------
    def popen(self, host: int, command: Sequence[str], env: Mapping[str, str] | None = None,
              **kwargs: Any) -> subprocess.Popen[bytes]:
        """``command`` in host ``host`` (0-based), dying with this process (``PR_SET_PDEATHSIG``)."""
        ns = self.spec.namespaces[host]
        return subprocess.Popen(["ip", "netns", "exec", ns, *command], env=dict(env or os.environ),
                                preexec_fn=die_with_parent, **kwargs)  # noqa: PLW1509

    def run(self, host: int, command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """``command`` in host ``host`` to the end, output captured as text."""
        ns = self.spec.namespaces[host]
        return subprocess.run(["ip", "netns", "exec", ns, *command], capture_output=True, text=True,
                              **kwargs)

    def set_link(self, host: int, link: Link) -> None:
        """Give host ``host``'s sending side this ``link`` (replacing the one it had)."""
        ns = self.spec.namespaces[host]
        subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", "eth0", "root"], capture_output=True)
        for qdisc in link.qdiscs():
            done = subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "eth0", *qdisc], capture_output=True,
                                  text=True)
            if done.returncode:
                kind = "netem" if "netem" in qdisc else "tbf"
                raise HostsError(f"tc cannot add a {kind} qdisc here ({done.stderr.strip()}): "
                                 f"{'--delay' if kind == 'netem' else '--rate'} needs the kernel's sch_{kind}")

    def cut(self, host: int) -> None:
        """Cut host ``host`` off: its one interface goes down (as a pulled cable)."""
        _ip_run(["ip", "-n", self.spec.namespaces[host], "link", "set", "eth0", "down"])

    def pids(self) -> list[int]:
        """Every process in the cluster's namespaces."""
        return namespace_pids([*self.spec.namespaces, self.spec.switch])

    # -- making and tearing down ----------------------------------------------------------------------
    def _start_reaper(self) -> None:
        r, w = os.pipe()
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "tools.hosts", "--reap", self.spec.prefix, str(self.spec.hosts), str(self.state)],
            stdin=r, start_new_session=True, cwd=Path(__file__).resolve().parent.parent)
        os.close(r)
        os.set_inheritable(w, False)
        self._pipe_w = w

    def _make(self) -> None:
        s = self.spec
        for ns in [s.switch, *s.namespaces]:
            _ip_run(["ip", "netns", "add", ns])
            _ip_run(["ip", "netns", "exec", ns, "sh", "-c", NO_IPV6])
        _ip_run(["ip", "-n", s.switch, "link", "add", "br0", "type", "bridge"])
        _ip_run(["ip", "-n", s.switch, "link", "set", "br0", "up"])
        if not NETNS_ETC.exists():
            NETNS_ETC.mkdir()
            (self.state / "made-etc-netns").touch()
        hosts = "127.0.0.1 localhost\n" + "".join(f"{a} {h}\n" for a, h in zip(s.addresses, s.hostnames))
        machine = socket.gethostname()  # the namespaces share it: each resolves it to itself, as a host does
        for i, (ns, address) in enumerate(zip(s.namespaces, s.addresses), start=1):
            _ip_run(["ip", "-n", s.switch, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0",
                     "netns", ns])
            _ip_run(["ip", "-n", s.switch, "link", "set", f"v{i}", "master", "br0", "up"])
            _ip_run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
            _ip_run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            _ip_run(["ip", "-n", ns, "link", "set", "lo", "up"])
            etc = NETNS_ETC / ns
            etc.mkdir()
            (etc / "hosts").write_text(f"{hosts}{address} {machine}\n")
            if s.link.shaped:
                self.set_link(i - 1, s.link)
        if s.ssh:
            self._start_sshds()

    def _start_sshds(self) -> None:
        s = self.spec
        key, host_key = self.state / "id_ed25519", self.state / "host_ed25519"
        for path in (key, host_key):
            _ip_run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{s.prefix}-hosts", "-f", str(path)])
        (self.state / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        if not PRIVSEP.exists():
            PRIVSEP.mkdir(mode=0o755)
            (self.state / "made-run-sshd").touch()
        for ns, address in zip(s.namespaces, s.addresses):
            ssh = NETNS_ETC / ns / "ssh"
            ssh.mkdir()
            (ssh / "sshd_config").write_text(
                f"ListenAddress {address}\nHostKey {host_key}\nAuthorizedKeysFile {self.state}/authorized_keys\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "UsePAM no\nStrictModes no\nPidFile none\nPrintMotd no\nClientAliveInterval 2\n"
                "ClientAliveCountMax 3\nMaxStartups 100\nMaxSessions 100\nLogLevel ERROR\n")
            (ssh / "ssh_config").write_text(
                f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile /dev/null\n"
                "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  BatchMode yes\n  LogLevel ERROR\n"
                "  ConnectTimeout 10\n  ServerAliveInterval 2\n  ServerAliveCountMax 3\n")
            log = open(self.state / f"sshd-{ns}.log", "wb")  # noqa: SIM115 (the child keeps it)
            self._sshds.append(subprocess.Popen(["ip", "netns", "exec", ns, SSHD, "-D", "-e"], stdout=log,
                                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent))  # noqa: PLW1509
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        for host in s.hostnames:  # every sshd answers h1's ssh with the run's key
            while self.run(0, ["ssh", host, "true"]).returncode != 0:
                if time.monotonic() > deadline:
                    raise HostsError(f"the sshd of {host} did not answer within {READY_TIMEOUT_S:.0f} s "
                                     f"(log: {self.state}/sshd-*.log)")
                time.sleep(0.2)

    def close(self) -> None:
        """Tear everything down (through the reaper, which does the same when this process dies)."""
        if self._pipe_w is not None:
            os.close(self._pipe_w)
            self._pipe_w = None
        if self._reaper is not None:
            self._reaper.wait()
            self._reaper = None


def _ip_run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise HostsError(f"'{' '.join(command)}' failed: {done.stderr.strip() or done.returncode}")


def namespace_pids(namespaces: Sequence[str]) -> list[int]:
    pids: list[int] = []
    for ns in namespaces:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        pids += [int(p) for p in out.stdout.split()] if out.returncode == 0 else []
    return pids


def teardown(prefix: str, hosts: int, state: Path) -> None:
    """Kill every process in the namespaces, delete them and the run's files; safe to repeat."""
    spec = Spec(hosts=hosts, prefix=prefix)
    names = [*spec.namespaces, spec.switch]
    for _ in range(50):  # a dying process may have started another: until none is left
        pids = namespace_pids(names)
        if not pids:
            break
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    existing = set(existing_namespaces())
    for ns in names:
        if ns in existing:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
    for made, folder in (("made-etc-netns", NETNS_ETC), ("made-run-sshd", PRIVSEP)):
        if (state / made).exists():  # made by this run, and empty unless another run uses it now
            with suppress(OSError):
                folder.rmdir()
    shutil.rmtree(state, ignore_errors=True)


def _reap(prefix: str, hosts: int, state: Path) -> int:
    """The reaper: wait for EOF on stdin (the launcher is gone or done), then tear down."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # Ctrl-C or a kill of the launcher's group must not stop it
    while os.read(0, 4096):
        pass
    teardown(prefix, hosts, state)
    return 0


def tf_configs(spec: Spec, per_host: int) -> list[list[str]]:
    """Each host's workers' TF_CONFIGs: every worker named by its host's address, ranks host by host."""
    workers = [f"{a}:{TF_PORT + k}" for a in spec.addresses for k in range(per_host)]
    cluster = {"worker": workers}
    return [[json.dumps({"cluster": cluster, "task": {"type": "worker", "index": h * per_host + k}})
             for k in range(per_host)] for h in range(spec.hosts)]


def run_each(cluster: Cluster, command: Sequence[str], per_host: int, env: Mapping[str, str] | None = None,
             timeout: float | None = None) -> int:
    """``command`` as ``per_host`` tf.distribute workers in every host; the first failure's code, else 0.

    When one fails (or at ``timeout``: 124) the others are stopped, as ``vaecf.launch`` stops a world.
    """
    procs = []
    for host, configs in enumerate(tf_configs(cluster.spec, per_host)):
        for local, config in enumerate(configs):
            mine = {**(env or os.environ), "VAECF_WORKER": "1", "VAECF_LOCAL_RANK": str(local), "TF_CONFIG": config}
            procs.append(cluster.popen(host, command, env=mine, start_new_session=True))
    return wait_world(procs, timeout)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.hosts", description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", type=int, default=2, help="namespaces (hosts h1..hN)")
    p.add_argument("--workers", type=int, help="with --each: workers in all, a multiple of --hosts "
                                               "(default: one per host)")
    p.add_argument("--rate", help="each host's sending rate, e.g. 10gbit (default: unlimited)")
    p.add_argument("--delay", help="each host's one-way delay, e.g. 0.5ms (default: none)")
    p.add_argument("--prefix", default="vaecfh", help="namespace names: PREFIX1.., PREFIXsw (default: vaecfh)")
    p.add_argument("--no-ssh", dest="ssh", action="store_false", help="no sshd in the namespaces")
    p.add_argument("--each", action="store_true", help="run COMMAND as tf.distribute workers in every host "
                                                       "(default: once, in h1)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND...")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--reap"]:
        return _reap(argv[1], int(argv[2]), Path(argv[3]))
    args = build_parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        if not command:
            raise HostsError("no COMMAND: give one after --")
        spec = Spec(hosts=args.hosts, prefix=args.prefix, link=Link(args.rate, args.delay), ssh=args.ssh)
        workers = spec.hosts if args.workers is None else args.workers
        if workers < 1 or workers % spec.hosts:
            raise HostsError(f"--workers {workers} for --hosts {spec.hosts}: a positive multiple of the hosts, "
                             "the same number on each")
        if args.workers is not None and not args.each:
            raise HostsError("--workers goes with --each (a command run once chooses its own workers)")
        with Cluster(spec) as cluster:
            print(f"hosts: {' '.join(f'{h}={a}' for h, a in zip(spec.hostnames, spec.addresses))} ready",
                  file=sys.stderr, flush=True)
            if args.each:
                return run_each(cluster, command, workers // spec.hosts)
            proc = cluster.popen(0, command)
            try:
                return proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    except HostsError as e:
        print(f"hosts: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hosts: interrupted; everything made was torn down", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
