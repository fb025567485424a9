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
