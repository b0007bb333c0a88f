"""Hosts on this machine (``tools/hosts.py``): namespaces made and always torn down, and bad input.

Namespace tests need root and ``ip`` (as on CI); elsewhere they skip and say why. The training
across namespaces is in ``tests/test_multihost.py`` (``nox -s multihost``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import hosts
from tools.hosts import Cluster, HostsError, Link, Spec

REPO = Path(__file__).resolve().parent.parent
NO_NAMESPACES = ("network namespaces need root and iproute2's 'ip'" if os.geteuid() != 0 or not shutil.which("ip")
                 else None)
needs_namespaces = pytest.mark.skipif(NO_NAMESPACES is not None, reason=NO_NAMESPACES or "")
NO_SSHD = None if Path(hosts.SSHD).exists() else (
    f"{hosts.SSHD} not found: install Debian's openssh-server (nox -s multihost does, as root)")


def prefix(tag: str) -> str:
    """Namespace names of this test process alone."""
    return f"t{os.getpid() % 100000}{tag}"


def leftovers(p: str) -> list[str]:
    """What a cluster of prefix ``p`` could leave: namespaces, /etc/netns entries, state folders, links."""
    found = [ns for ns in (hosts.existing_namespaces() if shutil.which("ip") else []) if ns.startswith(p)]
    found += [str(e) for e in hosts.NETNS_ETC.glob(f"{p}*")] if hosts.NETNS_ETC.exists() else []
    found += [str(d) for d in Path(os.environ.get("TMPDIR", "/tmp")).glob(f"{p}-hosts-*")]
    if shutil.which("ip"):
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        found += [line for line in links.splitlines() if p in line]
    return found


def hosts_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.hosts", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--hosts", "0", "--", "true"], "--hosts 0: from 1 to"),
    (["--hosts", "2", "--workers", "3", "--each", "--", "true"], "--workers 3 for --hosts 2"),
    (["--workers", "2", "--", "true"], "--workers goes with --each"),
    (["--rate", "fast", "--", "true"], "--rate 'fast'"),
    (["--delay", "1", "--", "true"], "--delay '1'"),
    (["--prefix", "Bad-Name", "--", "true"], "--prefix 'Bad-Name'"),
    ([], "no COMMAND"),
])
def test_bad_input_is_one_line_and_makes_nothing(args: list[str], message: str) -> None:
    p = prefix("b")
    done = hosts_cli("--prefix", p, *args)  # a --prefix in args comes later and wins
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert leftovers(p) == []


def test_not_root_is_refused_before_anything(monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(HostsError, match="need root"):
        Cluster(Spec(prefix=prefix("r")))


@needs_namespaces
@pytest.mark.parametrize("missing, args", [("ip", []), ("tc", ["--rate", "1gbit"])])
def test_a_missing_tool_is_one_line(tmp_path: Path, missing: str, args: list[str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in {"ip", "tc"} - {missing}:
        (bin_dir / tool).symlink_to(shutil.which(tool))  # type: ignore[arg-type]
    p = prefix("m")
    done = hosts_cli("--prefix", p, "--no-ssh", *args, "--", "true", env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"'{missing}' not found" in done.stderr
    assert leftovers(p) == []


@needs_namespaces
def test_a_namespace_that_exists_is_refused_and_kept(monkeypatch) -> None:
    p = prefix("e")
    subprocess.run(["ip", "netns", "add", f"{p}2"], check=True)
    try:
        done = hosts_cli("--prefix", p, "--no-ssh", "--", "true")
        assert done.returncode == 2 and done.stderr.count("\n") == 1
        assert f"namespace {p}2 exists already" in done.stderr
        assert leftovers(p) == [f"{p}2"]  # the user's namespace stays; nothing of ours was made
    finally:
        subprocess.run(["ip", "netns", "del", f"{p}2"], check=True)


@needs_namespaces
@pytest.mark.skipif(NO_SSHD is not None, reason=NO_SSHD or "")
def test_hosts_reach_each_other_by_name_over_ssh_and_nothing_else() -> None:
    p = prefix("c")
    with Cluster(Spec(hosts=2, prefix=p, link=Link(rate="1gbit"))) as cluster:
        remote = cluster.run(0, ["ssh", "h2", "ip -o addr show; ss -ltn"], timeout=30)
        assert remote.returncode == 0, remote.stderr
        addresses = [line.split()[3] for line in remote.stdout.splitlines() if " inet" in line]
        assert sorted(addresses) == ["10.77.0.2/24", "127.0.0.1/8"]  # h2 has its address, and loopback
        assert "10.77.0.2:22 " in remote.stdout and "0.0.0.0:22" not in remote.stdout  # sshd on it alone
        qdisc = cluster.run(1, ["tc", "qdisc", "show", "dev", "eth0"]).stdout
        assert "tbf" in qdisc and "rate 1Gbit" in qdisc
        cluster.cut(1)
        assert cluster.run(0, ["ssh", "-o", "ConnectTimeout=2", "h2", "true"], timeout=60).returncode != 0
        assert cluster.pids()  # two sshds at least
    assert leftovers(p) == []


@needs_namespaces
@pytest.mark.skipif(NO_SSHD is not None, reason=NO_SSHD or "")
def test_a_launcher_killed_with_sigkill_leaves_nothing_behind() -> None:
    p = prefix("k")
    folders_before = [hosts.NETNS_ETC.exists(), hosts.PRIVSEP.exists()]
    launcher = subprocess.Popen([sys.executable, "-m", "tools.hosts", "--prefix", p, "--",
                                 "sh", "-c", "ssh h2 sleep 600 & sleep 600"],
                                cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        assert launcher.stderr is not None
        assert "ready" in launcher.stderr.readline()
        deadline = time.monotonic() + 30
        spec = Spec(prefix=p)
        while len(pids := hosts.namespace_pids([*spec.namespaces, spec.switch])) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)  # two sshds, h1's sh, sleep and ssh, h2's session
        assert len(pids) >= 5 and leftovers(p)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 30
        while (leftovers(p) or any(_alive(pid) for pid in pids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert leftovers(p) == []
        assert [pid for pid in pids if _alive(pid)] == []
        assert [hosts.NETNS_ETC.exists(), hosts.PRIVSEP.exists()] == folders_before  # made for the run, removed
    finally:
        if launcher.poll() is None:
            launcher.kill()
        hosts.teardown(p, 2, Path("/nonexistent"))


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_tf_configs_name_every_worker_by_its_host_address() -> None:
    configs = hosts.tf_configs(Spec(hosts=2), per_host=2)
    parsed = [json.loads(c) for per_host in configs for c in per_host]
    assert {tuple(c["cluster"]["worker"]) for c in parsed} == {
        ("10.77.0.1:23456", "10.77.0.1:23457", "10.77.0.2:23456", "10.77.0.2:23457")}
    assert [c["task"]["index"] for c in parsed] == [0, 1, 2, 3]


def test_rate_and_delay_become_tbf_under_netem() -> None:
    assert Link(rate="1gbit").qdiscs() == [["root", "handle", "2:", "tbf", "rate", "1gbit", "burst", "131072",
                                             "latency", "50ms"]]
    both = Link(rate="10gbit", delay="0.5ms").qdiscs()
    assert both[0][:4] == ["root", "handle", "1:", "netem"] and "0.5ms" in both[0]
    assert both[1][:2] == ["parent", "1:1"] and "1250000" in both[1]  # a millisecond of 10 Gbit/s
