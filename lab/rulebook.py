"""ansible-rulebook running rulebooks/cluster_events.yml against the lab, as `make rulebook` runs it.

Used by the integration tests and the benchmarks; a process group of its own, so a kill takes the
playbook it is running with it, as a crash would.
"""
import os
import signal
import subprocess
from pathlib import Path

from lab.ctl import config, tools

JAVA_HOME = os.environ.get("JAVA_HOME") or "/usr/lib/jvm/java-17-openjdk-amd64"


def lab_environment():
    bins = tools.bin_dir(build=False)
    venv_bin = config.REPO / ".venv" / "bin"
    return {
        **os.environ,
        "KUBECONFIG": str(config.KUBECONFIG),
        **config.AWS_ENV,
        # ansible-rulebook looks collections up with ansible-galaxy, which must be on PATH.
        "PATH": f"{venv_bin}:{bins}:{os.environ['PATH']}",
        "JAVA_HOME": JAVA_HOME,
        "ANSIBLE_CONFIG": str(config.REPO / "ansible.cfg"),
        "PYTHONUNBUFFERED": "1",
    }


class Rulebook:
    def __init__(self, log_path, vars_file="rulebooks/vars/lab.yml"):
        self.log_path = Path(log_path)
        self.vars_file = vars_file
        self.process = None

    def start(self):
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [str(config.REPO / ".venv" / "bin" / "ansible-rulebook"), "-r", "rulebooks/cluster_events.yml",
                 "-i", "inventories/lab", "--vars", self.vars_file, "-v"],
                cwd=config.REPO, env=lab_environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self):
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rss_mib(self):
        """Resident memory of the rulebook and everything it runs at this moment."""
        if not self.alive():
            return 0.0
        pids = [self.process.pid]
        children = subprocess.run(["pgrep", "-g", str(self.process.pid)], capture_output=True, text=True).stdout.split()
        pids += [int(p) for p in children if int(p) != self.process.pid]
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024
