"""lab/chart_repo.py: the lab's Karpenter charts packaged with their release's version, and the two-version
chart repository the upgrade test installs from.

The build needs Go (the older charts come through the module proxy) and the lab's binaries (helm and the
current charts); without them those tests skip. No lab has to be running.
"""
import os
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from lab import chart_repo, labctl


def test_chart_versions_are_the_module_versions_without_the_v():
    assert chart_repo.chart_version("v1.13.0") == "1.13.0"
    for bad in ("1.13.0", "v1.13", "latest"):
        with pytest.raises(chart_repo.ChartRepoError):
            chart_repo.chart_version(bad)


def test_the_previous_release_is_older_than_the_labs():
    current = chart_repo.lab_karpenter_version()

    def key(version):
        return tuple(int(part) for part in chart_repo.chart_version(version).split("."))

    assert key(chart_repo.PREVIOUS_KARPENTER_VERSION) < key(current)


def test_read_versions_ignores_comments(tmp_path):
    versions = tmp_path / "versions.env"
    versions.write_text("# KARPENTER_VERSION=v0.1.0\nKARPENTER_VERSION=v1.14.1  # pinned\nHELM_VERSION='v3.21.4'\n")
    assert chart_repo.read_versions(versions) == {"KARPENTER_VERSION": "v1.14.1", "HELM_VERSION": "v3.21.4"}


def test_index_versions_lists_one_charts_entries(tmp_path):
    index = {"apiVersion": "v1", "entries": {"karpenter": [{"version": "1.14.1"}, {"version": "1.13.0"}], "other": [{"version": "9.9.9"}]}}
    (tmp_path / "index.yaml").write_text(yaml.safe_dump(index))
    assert chart_repo.index_versions(tmp_path) == ["1.14.1", "1.13.0"]
    assert chart_repo.index_versions(tmp_path, "missing") == []


def test_repo_dir_is_named_after_both_versions(tmp_path):
    assert chart_repo.repo_dir(tmp_path, "v1.13.0", "v1.14.1") == tmp_path / f"chart-repo-v1.13.0-v1.14.1{chart_repo.LAYOUT}"


def test_serve_answers_on_loopback_outside_the_lab_ports_and_stops(tmp_path):
    (tmp_path / "index.yaml").write_text("apiVersion: v1\n")
    with chart_repo.serve(tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        assert url.startswith("http://127.0.0.1:") and port not in chart_repo.LAB_PORTS
        with urllib.request.urlopen(f"{url}/index.yaml", timeout=5) as response:  # noqa: S310 - loopback
            assert response.read() == b"apiVersion: v1\n"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/index.yaml", timeout=2)  # noqa: S310 - loopback


@pytest.fixture(scope="module")
def lab_bins():
    if shutil.which("go") is None:
        pytest.skip("Go is not installed")
    bins = labctl.bin_dir(build=False)
    if bins is None or not (bins / "helm").exists():
        pytest.skip("the lab binaries (helm, Karpenter's chart) are not built: make lab-build")
    return bins


@pytest.fixture(scope="module")
def built(lab_bins, tmp_path_factory):
    return chart_repo.karpenter_chart_repo(lab_bins, cache_root=tmp_path_factory.mktemp("cache"))


def chart_yaml(archive_path, name):
    with tarfile.open(archive_path) as archive:
        return yaml.safe_load(archive.extractfile(f"{name}/Chart.yaml"))


def rendered_crds(built, lab_bins, version):
    """The CRDs the karpenter-crd chart of `version` installs, by name, as helm renders them."""
    out = subprocess.run([str(lab_bins / "helm"), "template", "karpenter-crd", str(built.path / f"karpenter-crd-{version}.tgz")],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(out) if d and d["kind"] == "CustomResourceDefinition"}


def test_the_lab_charts_carry_the_version_of_the_labs_controller(lab_bins, tmp_path):
    version = chart_repo.chart_version(chart_repo.lab_karpenter_version())
    charts = chart_repo.lab_charts(lab_bins, cache_root=tmp_path)
    assert sorted(charts) == ["karpenter", "karpenter-crd"]
    for name, archive in charts.items():
        chart = chart_yaml(archive, name)
        assert (chart["name"], chart["version"], chart["appVersion"]) == (name, version, version)
    # As published: the controller chart installs the CRDs too, the same as the CRD chart's.
    with tarfile.open(charts["karpenter"]) as archive:
        crds = sorted(Path(n).name for n in archive.getnames() if n.startswith("karpenter/crds/"))
    with tarfile.open(charts["karpenter-crd"]) as archive:
        crd_templates = sorted(Path(n).name for n in archive.getnames() if n.startswith("karpenter-crd/templates/"))
    assert crds == crd_templates and "karpenter.sh_nodepools.yaml" in crds
    # Packaged once: a second call finds the archives.
    assert chart_repo.lab_charts(lab_bins, cache_root=tmp_path) == charts
    assert len(list(tmp_path.iterdir())) == 1


def test_repository_holds_both_charts_of_the_older_release_and_the_labs(built):
    current = chart_repo.lab_karpenter_version()
    assert (built.chart, built.crd_chart, built.old_version, built.new_version) == (
        "karpenter", "karpenter-crd", chart_repo.chart_version(chart_repo.PREVIOUS_KARPENTER_VERSION), chart_repo.chart_version(current))
    for name in ("karpenter", "karpenter-crd"):
        assert sorted(chart_repo.index_versions(built.path, name)) == sorted([built.old_version, built.new_version])
        for version in (built.old_version, built.new_version):
            chart = chart_yaml(built.path / f"{name}-{version}.tgz", name)
            assert (chart["name"], chart["version"], chart["appVersion"]) == (name, version, version)


def test_the_newer_crds_add_what_the_upgrade_test_looks_for(built, lab_bins):
    """v1.14 added the capacitybuffers CRD and consolidationPolicy Balanced: the upgrade test shows both arrive."""
    def consolidation_policies(crds):
        (version,) = crds["nodepools.karpenter.sh"]["spec"]["versions"]
        return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["disruption"]["properties"]["consolidationPolicy"]["enum"]

    old, new = rendered_crds(built, lab_bins, built.old_version), rendered_crds(built, lab_bins, built.new_version)
    assert set(new) - set(old) == {"capacitybuffers.autoscaling.x-k8s.io"}
    assert consolidation_policies(old) == ["WhenEmpty", "WhenEmptyOrUnderutilized"]
    assert consolidation_policies(new) == ["WhenEmpty", "WhenEmptyOrUnderutilized", "Balanced"]


def test_a_second_call_reuses_the_repository(built, lab_bins, monkeypatch):
    before = (built.path / "index.yaml").stat().st_mtime_ns

    def no_download(*_args):
        raise AssertionError("the cached repository was rebuilt")

    monkeypatch.setattr(chart_repo, "module_dir", no_download)
    again = chart_repo.karpenter_chart_repo(lab_bins, cache_root=built.path.parent)
    assert again == built
    assert (built.path / "index.yaml").stat().st_mtime_ns == before
    assert sorted(p.name for p in built.path.parent.iterdir() if p.name.startswith("chart-repo-")) == [built.path.name]


def test_helm_finds_both_versions_in_the_served_repository(built, lab_bins, tmp_path):
    env = {**os.environ, **{f"HELM_{kind}_HOME": str(tmp_path / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}}
    with chart_repo.serve(built.path) as url:
        for name in ("karpenter", "karpenter-crd"):
            for version in (built.old_version, built.new_version):
                result = subprocess.run([str(lab_bins / "helm"), "show", "chart", name, "--repo", url, "--version", version],
                                        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
                assert result.returncode == 0, result.stderr
                assert yaml.safe_load(result.stdout)["version"] == version
