"""The one record header: what every record-writing command says about where it was made."""

from __future__ import annotations

import sys

import pytest

from vaecf import provenance

FIELDS = {"git_sha", "clean", "machine_name", "hostname", "cpu", "cpu_flags", "cores", "python", "versions",
          "command"}


def test_the_header_names_commit_cleanliness_machine_flags_versions_and_command(monkeypatch) -> None:
    monkeypatch.setenv("VAECF_MACHINE", "test-box")
    monkeypatch.setattr(provenance, "git_sha", lambda: "a" * 40 + "-dirty")
    head = provenance.header(["vaecf", "bench"])
    assert set(head) == FIELDS
    assert head["machine_name"] == "test-box" and head["command"] == ["vaecf", "bench"]
    assert head["clean"] is False and set(head["versions"]) == set(provenance.VERSIONED)
    assert set(head["cpu_flags"]) <= set(provenance.CPU_FLAGS)
    monkeypatch.setattr(provenance, "git_sha", lambda: "b" * 40)
    assert provenance.header()["clean"] is True and provenance.header()["command"] == sys.argv
    monkeypatch.setattr(provenance, "git_sha", lambda: None)  # not a git checkout
    assert provenance.header()["clean"] is False


def test_a_records_header_is_read_from_either_key() -> None:
    assert provenance.header_of({"machine": {"git_sha": "x"}}) == {"git_sha": "x"}
    assert provenance.header_of({"provenance": {"git_sha": "y"}}) == {"git_sha": "y"}  # calibrations made before
    # probes made before: the header under provenance, the bare machine name under machine
    old_probe = {"machine": "box", "provenance": {"git_sha": "z"}}
    assert provenance.header_of(old_probe) == {"git_sha": "z", "machine_name": "box"}
    with pytest.raises(KeyError):
        provenance.header_of({"rows": []})
