"""The lab's binaries (built by lab/build.sh into a shared cache) and kubectl against the lab's cluster."""
import subprocess
from pathlib import Path

from lab.ctl.config import KUBECONFIG, REPO, LabError


def bin_dir(build=True):
    script = REPO / "lab" / "build.sh"
    if not build:
        result = subprocess.run([str(script), "--print"], capture_output=True, text=True)
        return Path(result.stdout.strip()) if result.returncode == 0 else None
    result = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise LabError("building the lab binaries failed (the line above says why)")
    return Path(result.stdout.strip().splitlines()[-1])


def tool(name, bins=None):
    bins = bins or bin_dir(build=False)
    if bins is None:
        raise LabError("the lab binaries are not built: run `make lab-build`")
    return str(bins / name)


def kubectl(*args, check=True, capture=True, timeout=60, stdin=None):
    cmd = [tool("kubectl"), "--kubeconfig", str(KUBECONFIG), *args]
    result = subprocess.run(cmd, input=stdin, capture_output=capture, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise LabError(f"kubectl {' '.join(args[:3])} failed: {(result.stderr or '').strip()}")
    return result
