"""Karpenter's charts for the lab, packaged like the published ones, and a chart repository for upgrade tests.

The lab's controller is built from github.com/aws/karpenter-provider-aws (lab/build.sh), whose module holds
the two charts the karpenter role installs: `karpenter` and `karpenter-crd`. Their Chart.yaml is bumped
only when a release is published (v1.14.1's module says 1.13.0), so the lab packages them itself with the
module's version, as the OCI charts on EKS carry it; `helm list` on the lab then names the version that runs.

A chart directory or archive has one version only, so a change of karpenter_version is never exercised
there. For that, this also builds a classic repository like the one an EKS user points
karpenter_chart_repo_url at, holding both charts of an older release and of the lab's, served on loopback:

    python -m lab.chart_repo            build it (once; cached outside the repo) and print its directory
    python -m lab.chart_repo --serve    also serve it until interrupted, printing the URL

Everything comes from the Go module through `go` and its proxy, like every lab binary, and is packaged and
indexed by the lab's own helm.
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

from lab.ctl import config, tools

MODULE = "github.com/aws/karpenter-provider-aws"
CHART_NAME = "karpenter"
CRD_CHART_NAME = "karpenter-crd"
CHARTS = (CHART_NAME, CRD_CHART_NAME)
# The release before the lab's. It lives here, not in versions.env: that file keys the binary cache, and
# this release is never built, only its charts are packaged. v1.13.1's CRDs lack what v1.14 added (the
# capacitybuffers CRD, consolidationPolicy Balanced), which the upgrade test looks for.
PREVIOUS_KARPENTER_VERSION = "v1.13.1"
# Ports the lab may use (lab/ctl/config.py): the repository never listens there.
LAB_PORTS = range(36000, 36901)
# Part of the cache's directory names: archives packaged before the CRDs were put back are not reused.
LAYOUT = "-with-crds"


class ChartRepoError(config.LabError):
    """A failure building the charts or the repository, printed as one line."""


@dataclass(frozen=True)
class ChartRepo:
    path: Path
    chart: str
    crd_chart: str
    old_version: str
    new_version: str


def versions_file():
    # The same file build.sh sources, so the charts in the bin dir are the version read here.
    return Path(os.environ.get("LAB_VERSIONS_FILE", config.REPO / "lab" / "versions.env"))


def read_versions(path):
    """KEY=value lines of a versions.env, without comments."""
    versions = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            versions[key.strip()] = value.strip().strip("'\"")
    return versions


def lab_karpenter_version():
    """The Karpenter release the lab's controller and charts are built from (a Go module version)."""
    return read_versions(versions_file())["KARPENTER_AWS_VERSION"]


def chart_version(module_version):
    """v1.14.1 -> 1.14.1: how Karpenter numbers its published charts."""
    if not module_version.startswith("v") or module_version.count(".") != 2:
        raise ChartRepoError(f"{module_version!r} is not a Go module version like v1.14.1")
    return module_version[1:]


def repo_dir(cache_root, old, new):
    return Path(cache_root) / f"chart-repo-{old}-{new}{LAYOUT}"


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


def karpenter_crd_chart():
    """charts/karpenter-crd of the Karpenter AWS provider at the lab's Karpenter version, from the Go module cache.

    The nodepools role validates NodePools and EC2NodeClasses against the CRDs of this chart, as it does on EKS
    with the published OCI chart of the same version.
    """
    return module_dir(MODULE, lab_karpenter_version()) / "charts" / CRD_CHART_NAME


def helm(helm_binary, *args):
    result = subprocess.run([str(helm_binary), *args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise ChartRepoError(f"helm {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def package(module_root, module_version, helm_binary, destination, charts_dir=None):
    """Package <karpenter, karpenter-crd> of a Karpenter module as <name>-<version>.tgz into destination.

    Laid out as the published charts are: in the repository, the karpenter chart's crds/ is a symlink
    to pkg/apis/crds, which a Go module zip leaves out, and the release process resolves. So the CRDs
    are put back, and `helm install karpenter` installs them as it does from public.ecr.aws.
    charts_dir: where the two chart directories are, if not in the module's charts/."""
    version = chart_version(module_version)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lab-charts-") as work:
        for name in CHARTS:
            shutil.copytree(Path(charts_dir or Path(module_root) / "charts") / name, Path(work) / name, symlinks=False)
        crds = Path(work) / CHART_NAME / "crds"
        shutil.rmtree(crds, ignore_errors=True)
        shutil.copytree(Path(module_root) / "pkg" / "apis" / "crds", crds)
        for path in Path(work).rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        for name in CHARTS:
            helm(helm_binary, "package", str(Path(work) / name), "--version", version, "--app-version", version,
                 "--destination", str(destination))
    return {name: destination / f"{name}-{version}.tgz" for name in CHARTS}


@contextlib.contextmanager
def _staged(final, cache_root):
    """A staging directory renamed to `final` when the block succeeds; a concurrent builder's result wins."""
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{final.name}.", dir=cache_root))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the cache from anyone but its builder
    try:
        yield staging
        try:
            staging.rename(final)
        except OSError:
            # Another caller finished first; what it built is the same.
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _bins(bins):
    bins = Path(bins) if bins else tools.bin_dir(build=False)
    if bins is None:
        raise ChartRepoError("the lab binaries are not built: run `make lab-build`")
    return bins


def lab_charts(bins=None, cache_root=None):
    """The lab's two charts as archives of the lab's Karpenter version: {chart name: path of its .tgz}.

    Packaged once per bin dir (build.sh copied the chart directories from the module it built the
    controller from; the CRDs come from that module too) and kept beside it, under the lab's cache root."""
    bins = _bins(bins)
    version = lab_karpenter_version()
    cache_root = Path(cache_root) if cache_root else bins.parent
    final = cache_root / f"charts-{bins.name}-{version}{LAYOUT}"
    archives = {name: final / f"{name}-{chart_version(version)}.tgz" for name in CHARTS}
    if not all(path.is_file() for path in archives.values()):
        with _staged(final, cache_root) as staging:
            package(module_dir(MODULE, version), version, tools.tool("helm", bins), staging, charts_dir=bins / "karpenter-aws-charts")
    return archives


def karpenter_chart_repo(bins=None, old=PREVIOUS_KARPENTER_VERSION, cache_root=None):
    """The repository of Karpenter's two charts at `old` and at the lab's version, built on first use."""
    bins = _bins(bins)
    new = lab_karpenter_version()
    # build.sh puts every bin dir directly under the lab's cache root (LAB_CACHE_DIR, else
    # $XDG_CACHE_HOME or ~/.cache, then karpenter-hpa-lab), so the repository lands next to them.
    cache_root = Path(cache_root) if cache_root else bins.parent
    final = repo_dir(cache_root, old, new)
    repo = ChartRepo(final, CHART_NAME, CRD_CHART_NAME, chart_version(old), chart_version(new))
    if (final / "index.yaml").is_file():
        return repo
    with _staged(final, cache_root) as staging:
        package(module_dir(MODULE, old), old, tools.tool("helm", bins), staging)
        for archive in lab_charts(bins, cache_root).values():
            shutil.copy2(archive, staging / archive.name)
        # No --url: the index names the archives relatively, so one build serves on any port.
        helm(tools.tool("helm", bins), "repo", "index", str(staging))
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
    parser.add_argument("--old", default=PREVIOUS_KARPENTER_VERSION, help="older Karpenter release (default %(default)s)")
    parser.add_argument("--serve", action="store_true", help="serve the repository on 127.0.0.1 until interrupted")
    args = parser.parse_args(argv)
    try:
        repo = karpenter_chart_repo(old=args.old)
    except config.LabError as error:
        config.log(f"error: {error}")
        return 1
    print(repo.path, flush=True)
    if args.serve:
        with serve(repo.path) as url:
            config.log(f"charts {repo.chart} and {repo.crd_chart} {repo.old_version} and {repo.new_version} at {url} (Ctrl-C stops)")
            print(url, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
