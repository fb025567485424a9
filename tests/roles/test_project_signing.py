"""`make sign`: ansible-sign signs every file of the project (MANIFEST.in), and its verification, the one automation
controller runs before a job of a signed project, passes, and fails on a changed or an unsigned added file."""
import os
import shutil
import subprocess

import pytest

from tests.paths import REPO

ANSIBLE_SIGN = str(REPO / ".venv" / "bin" / "ansible-sign")
pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg (GnuPG) is not installed")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A copy of the project's files as a checkout has them, signed by `make sign` with a throwaway key."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key",
                    "eks-autoscaling test <test@example.invalid>", "ed25519", "sign", "never"],
                   check=True, capture_output=True, timeout=60)
    project = tmp_path_factory.mktemp("project")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file() and not (REPO / name).is_symlink():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
    # Local leftovers a working tree has: MANIFEST.in must keep them out of the signature.
    (project / ".lab").mkdir()
    (project / ".lab" / "kubeconfig").write_text("local")
    (project / "plugins_cache.pyc").write_bytes(b"\0")
    env = {**os.environ, "GNUPGHOME": str(home)}
    result = subprocess.run(["make", "-s", "-f", str(REPO / "Makefile"), "sign", f"VENV={REPO / '.venv'}", "STAMP="],
                            cwd=project, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return project, env


def verify(project, env):
    return subprocess.run([ANSIBLE_SIGN, "project", "gpg-verify", str(project)], env=env, capture_output=True, text=True, timeout=60)


def test_the_signature_covers_the_content_and_verifies(signed):
    project, env = signed
    listed = (project / ".ansible-sign" / "sha256sum.txt").read_text()
    for name in ("playbooks/site.yml", "roles/controller/tasks/main.yml", "rulebooks/cluster_events_controller.yml",
                 "collections/ansible_collections/eks_autoscaling/core/galaxy.yml", "ansible.cfg", "requirements.yml"):
        assert f"  {name}\n" in listed, name
    assert ".lab/" not in listed and ".pyc" not in listed
    result = verify(project, env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("change", ["modified", "added"])
def test_verification_fails_on_a_modified_or_an_unsigned_file(signed, tmp_path, change):
    project, env = signed
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    if change == "modified":
        with open(copy / "playbooks" / "site.yml", "a") as playbook:
            playbook.write("# not what was signed\n")
    else:
        (copy / "playbooks" / "unsigned.yml").write_text("---\n")
    result = verify(copy, env)
    assert result.returncode != 0 and "Checksum validation failed" in result.stdout + result.stderr
