"""A classic Helm chart repository with two releases of Karpenter's kwok chart, for upgrade tests.

The lab installs Karpenter's chart from a directory, which has one version only, so a change of
karpenter_version is never exercised there. This builds a repository like the one an EKS user points
chart_repo_url at, holding the lab's chart and the chart of an older Karpenter release, and serves it
on loopback:

    python -m lab.chart_repo            build it (once; cached outside the repo) and print its directory
    python -m lab.chart_repo --serve    also serve it until interrupted, printing the URL

Both charts come from the sigs.k8s.io/karpenter Go module, through `go` and its proxy like every
other lab binary, and are packaged and indexed by the lab's own helm.
"""
import argparse
import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from lab import labctl

CHART_NAME = "karpenter"
MODULE = "sigs.k8s.io/karpenter"
# The minor before KARPENTER_VERSION. It lives here, not in versions.env: that file keys the binary
# cache, and this release is never built, only its chart is packaged.
PREVIOUS_KARPENTER_VERSION = "v1.13.0"
# Ports the lab may use (lab/labctl.py): the repository never listens there.
LAB_PORTS = range(36000, 36901)


class ChartRepoError(labctl.LabError):
    """A failure building the repository, printed as one line."""


@dataclass(frozen=True)
class ChartRepo:
    path: Path
    chart: str
    old_version: str
    new_version: str


def versions_file():
    # The same file build.sh sources, so the chart in the bin dir is the version read here.
    return Path(os.environ.get("LAB_VERSIONS_FILE", labctl.REPO / "lab" / "versions.env"))


def read_versions(path):
    """KEY=value lines of a versions.env, without comments."""
    versions = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            versions[key.strip()] = value.strip().strip("'\"")
    return versions


def chart_version(module_version):
    """v1.13.0 -> 1.13.0: how Karpenter numbers its published charts."""
    if not module_version.startswith("v") or module_version.count(".") != 2:
        raise ChartRepoError(f"{module_version!r} is not a Go module version like v1.14.1")
    return module_version[1:]


def repo_dir(cache_root, old, new):
    return Path(cache_root) / f"chart-repo-{old}-{new}"


def index_versions(path, chart=CHART_NAME):
    """The versions of `chart` that the repository's index.yaml lists, newest first as helm writes them."""
    import yaml

    index = yaml.safe_load((Path(path) / "index.yaml").read_text())
    return [entry["version"] for entry in (index.get("entries") or {}).get(chart, [])]


def module_dir(module, version):
    """The extracted source of module@version, downloaded through the Go module proxy if needed."""
    if shutil.which("go") is None:
        raise ChartRepoError("Go is not installed: install Go >= 1.26 (the lab takes its charts from Go modules)")
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOWORK": "off", "GOFLAGS": "-mod=mod"}
    # Outside any go.mod: `go mod download module@version` then neither reads nor edits one.
    with tempfile.TemporaryDirectory(prefix="lab-chart-repo-") as outside:
        result = subprocess.run(
            ["go", "mod", "download", "-json", f"{module}@{version}"], cwd=outside, env=env, capture_output=True, text=True, timeout=600
        )
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or "Dir" not in info:
        detail = info.get("Error") or result.stderr.strip() or f"exit status {result.returncode}"
        raise ChartRepoError(f"cannot download {module}@{version} from the Go module proxy: {detail}")
    return Path(info["Dir"])


def helm(helm_binary, *args):
    result = subprocess.run([str(helm_binary), *args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise ChartRepoError(f"helm {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def build(old_chart, new_chart, old, new, helm_binary, destination):
    """Package both chart directories at the chart versions of old/new and index them into destination."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for source, module_version in ((old_chart, old), (new_chart, new)):
        version = chart_version(module_version)
        # The kwok chart's Chart.yaml is not bumped on release (0.35.0 in both v1.13.0 and v1.14.1):
        # only the module version tells two releases apart.
        helm(helm_binary, "package", str(source), "--version", version, "--app-version", version, "--destination", str(destination))
    # No --url: the index names the archives relatively, so one build serves on any port.
    helm(helm_binary, "repo", "index", str(destination))
    return destination


def karpenter_chart_repo(bins=None, old=PREVIOUS_KARPENTER_VERSION, cache_root=None):
    """The repository of Karpenter's kwok chart at `old` and at the lab's version, built on first use."""
    bins = Path(bins) if bins else labctl.bin_dir(build=False)
    if bins is None:
        raise ChartRepoError("the lab binaries are not built: run `make lab-build`")
    # The bin dir's chart is the one build.sh took from this version's module.
    new = read_versions(versions_file())["KARPENTER_VERSION"]
    # build.sh puts every bin dir directly under the lab's cache root (LAB_CACHE_DIR, else
    # $XDG_CACHE_HOME or ~/.cache, then karpenter-hpa-lab), so the repository lands next to them.
    cache_root = Path(cache_root) if cache_root else bins.parent
    final = repo_dir(cache_root, old, new)
    repo = ChartRepo(final, CHART_NAME, chart_version(old), chart_version(new))
    if (final / "index.yaml").is_file():
        return repo
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{final.name}.", dir=cache_root))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the cache from anyone but its builder
    try:
        build(module_dir(MODULE, old) / "kwok" / "charts", labctl.karpenter_dir(bins) / "chart", old, new, labctl.tool("helm", bins), staging)
        try:
            staging.rename(final)
        except OSError:
            # Another caller finished first; its repository is the same.
            if not (final / "index.yaml").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return repo


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args):
        pass


def _bind(handler, attempts=20):
    # The kernel's ephemeral range covers the lab's ports: take what it gives unless it is one of those.
    for _ in range(attempts):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if server.server_address[1] not in LAB_PORTS:
            return server
        server.server_close()
    raise ChartRepoError(f"no port outside {LAB_PORTS.start}-{LAB_PORTS.stop - 1} after {attempts} tries")


@contextlib.contextmanager
def serve(directory):
    """Serve directory over HTTP on 127.0.0.1; yields the base URL, stops on exit."""
    server = _bind(functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, name="chart-repo", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lab.chart_repo", description=__doc__.splitlines()[0])
    parser.add_argument("--old", default=PREVIOUS_KARPENTER_VERSION, help="older sigs.k8s.io/karpenter release (default %(default)s)")
    parser.add_argument("--serve", action="store_true", help="serve the repository on 127.0.0.1 until interrupted")
    args = parser.parse_args(argv)
    try:
        repo = karpenter_chart_repo(old=args.old)
    except labctl.LabError as error:
        labctl.log(f"error: {error}")
        return 1
    print(repo.path, flush=True)
    if args.serve:
        with serve(repo.path) as url:
            labctl.log(f"chart {repo.chart} {repo.old_version} and {repo.new_version} at {url} (Ctrl-C stops)")
            print(url, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
