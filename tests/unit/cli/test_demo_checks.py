"""`podnet demo`'s checks can fail: a DNS error is no answer, a refusal is not a drop."""
from __future__ import annotations

import subprocess

import pytest

from podnet.cli.demo import OUTSIDE_ECHO, curl_outcome, dig_short_answer


def dig(stdout: str, rc: int) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["dig"], rc, stdout, "")


@pytest.mark.parametrize("cp,want", [
    (dig(f"{OUTSIDE_ECHO}\n", 0), [OUTSIDE_ECHO]),
    (dig(";; communications error to 10.96.0.10#53: timed out\n", 9), []),
    (dig(";; communications error to 10.96.0.10#53: timed out\n;; no servers could be reached\n", 0), []),
    (dig("", 0), []),  # NXDOMAIN: +short prints nothing
    (dig("cname.example.test.\n203.0.113.99\n", 0), ["cname.example.test.", "203.0.113.99"]),
])
def test_only_records_count_as_a_dns_answer(cp, want):
    assert dig_short_answer(cp) == want


@pytest.mark.parametrize("rc,outcome", [(0, "answered"), (7, "refused"), (28, "timeout"), (56, "reset"),
                                        (6, "error 6")])
def test_curl_outcomes_tell_a_drop_from_a_refusal(rc, outcome):
    assert curl_outcome(rc) == outcome


def test_curl_exit_codes_are_what_the_outcomes_say(tmp_path):
    # real curl: a closed port on loopback refuses (7); nothing listens there
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cp = subprocess.run(["curl", "-s", "--max-time", "2", f"http://127.0.0.1:{port}/"], capture_output=True)
    assert curl_outcome(cp.returncode) == "refused"
