"""The lab's own processes (each in its own process group, its pid under the state dir) and its ports."""
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from lab.ctl.config import LOGS, PIDS, STATE, LabError


def port_open(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def read_pid(path):
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def start_process(name, argv, env=None):
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    logfile = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=str(STATE),
        start_new_session=True,  # its own process group: lab-down can stop it and its children
    )
    (PIDS / f"{name}.pid").write_text(str(proc.pid))
    return proc


def stop_process(name, timeout=10):
    pid = read_pid(PIDS / f"{name}.pid")
    if pid is None:
        return
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + timeout
        while pid_alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)


def lab_processes():
    """PIDs of every process whose command line points into the lab's state or binaries."""
    # Only the state dir marks a process as ours: the binaries are shared by every lab on the machine.
    markers = [str(STATE)]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(marker in cmdline for marker in markers) and pid_alive(int(entry.name)):
            found.append((int(entry.name), cmdline.strip()[:160]))
    return found


def wait_for(description, predicate, timeout, interval=0.25):
    deadline = time.time() + timeout
    last_error = None
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception as error:  # noqa: BLE001 - keep polling, report the last one
            last_error = error
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise LabError(f"timed out after {timeout}s waiting for {description}{detail}")


def http_ok(url, insecure_tls=False):
    context = ssl._create_unverified_context() if insecure_tls else None  # noqa: S323 - loopback self-signed
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310 - fixed loopback URLs
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False
