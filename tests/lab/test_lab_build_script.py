"""lab/build.sh fails with one clear line when Go is missing or too old."""
import os
import subprocess

from lab import labctl

SCRIPT = str(labctl.REPO / "lab" / "build.sh")


def test_missing_go_is_one_clear_line(tmp_path):
    for tool in ("bash", "dirname", "cat", "sed", "sha256sum", "cut", "find", "sort", "python3"):
        path = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if path:
            os.symlink(path, tmp_path / tool)
    result = subprocess.run(["bash", SCRIPT], env={"PATH": str(tmp_path), "HOME": str(tmp_path)}, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == "lab build: Go is not installed: install Go >= 1.26 (the lab builds its binaries from Go modules)"


def test_old_go_is_refused(tmp_path):
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\n[ \"$1 $2\" = 'env GOVERSION' ] && echo go1.22.5\n")
    fake_go.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "Go go1.22.5 is too old: install Go >= 1.26" in result.stderr


def test_a_failed_build_is_one_clear_line(tmp_path):
    # A Kubernetes release that does not exist: the proxy answers 404 at once, nothing is built.
    versions = tmp_path / "versions.env"
    versions.write_text((labctl.REPO / "lab" / "versions.env").read_text().replace("KUBERNETES_VERSION=", "KUBERNETES_VERSION=v1.99.0 #"))
    env = {**os.environ, "LAB_VERSIONS_FILE": str(versions), "LAB_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lab build: cannot download k8s.io/kubernetes@v1.99.0 from the Go module proxy (see ")


def test_missing_jdk_is_one_clear_line():
    result = subprocess.run(["make", "-s", "check-java", "JAVA_HOME=/nonexistent"], cwd=labctl.REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert "make: no JDK 17 found: install openjdk-17-jdk or set JAVA_HOME (ansible-rulebook needs it)" in result.stdout + result.stderr
