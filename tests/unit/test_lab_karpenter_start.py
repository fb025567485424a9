"""lab-up starts Karpenter again when it exits while starting (a lab port held as an ephemeral port)."""
import subprocess
import sys

import pytest

from lab import labctl


@pytest.fixture
def karpenter_starts(monkeypatch):
    """Real processes standing for Karpenter: the first `crashes` exit at once, the next ones keep running.
    The lab's ports count as answering whenever a process is running."""
    started = []

    def start(_bins, crashes):
        code = "raise SystemExit(2)" if len(started) < crashes else "import time; time.sleep(30)"
        proc = subprocess.Popen([sys.executable, "-c", code])
        started.append(proc)
        return proc

    monkeypatch.setattr(labctl, "http_ok", lambda url, insecure_tls=False: started[-1].poll() is None)
    monkeypatch.setattr(labctl, "port_open", lambda port, host="127.0.0.1": started[-1].poll() is None)
    yield started, start
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_karpenter_that_exits_while_starting_is_started_again(karpenter_starts, monkeypatch):
    started, start = karpenter_starts
    monkeypatch.setattr(labctl, "start_karpenter", lambda bins: start(bins, crashes=2))
    first = labctl.start_karpenter(None)
    labctl.karpenter_ready(None, first)
    assert len(started) == 3 and [p.poll() for p in started[:2]] == [2, 2] and started[2].poll() is None


def test_a_karpenter_that_keeps_exiting_fails_lab_up_after_three_tries(karpenter_starts, monkeypatch):
    started, start = karpenter_starts
    monkeypatch.setattr(labctl, "start_karpenter", lambda bins: start(bins, crashes=99))
    with pytest.raises(labctl.LabError, match="Karpenter kept exiting while starting"):
        labctl.karpenter_ready(None, labctl.start_karpenter(None))
    assert len(started) == 3
