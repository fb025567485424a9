"""`make ee`: ansible-builder writes the execution and decision environment build contexts without a container engine,
and each holds our collection and installs every Python package at requirements-dev.txt's pin (one list of pins)."""
import re
import shutil
import subprocess

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.paths import REPO

COLLECTION = REPO / "collections" / "ansible_collections" / "eks_autoscaling" / "core"
PINS = {canonicalize_name(name): version for name, version in
        re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", (REPO / "requirements-dev.txt").read_text(), re.M)}
DEFINITIONS = {"ee": "execution-environment.yml", "de": "decision-environment.yml"}


@pytest.fixture(scope="module")
def contexts(tmp_path_factory):
    """Both contexts, written as `make ee` writes them (build/ee, build/de), here in a temporary folder."""
    root = tmp_path_factory.mktemp("contexts")
    for name, definition in DEFINITIONS.items():
        result = subprocess.run(
            [str(REPO / ".venv" / "bin" / "ansible-builder"), "create", "-f", str(REPO / "ee" / definition),
             "-c", str(root / name), "--output-filename", "Containerfile"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    return root


def containerfile(contexts, name):
    return (contexts / name / "Containerfile").read_text()


def requirement_names(path):
    return [Requirement(line.split("#")[0].strip()) for line in path.read_text().splitlines() if line.split("#")[0].strip()]


@pytest.mark.parametrize("name", DEFINITIONS)
def test_the_context_holds_our_collection_and_installs_it(contexts, name):
    copied = contexts / name / "_build" / "eks_autoscaling.core"
    assert (copied / "galaxy.yml").read_text() == (COLLECTION / "galaxy.yml").read_text()
    for path in [*COLLECTION.glob("plugins/*/*.py"), *COLLECTION.glob("extensions/eda/plugins/event_source/*.py")]:
        assert (copied / path.relative_to(COLLECTION)).read_bytes() == path.read_bytes(), path
    assert re.search(r"^RUN ansible-galaxy collection install --no-deps --collections-path /usr/share/ansible/collections "
                     r"\S*eks_autoscaling\.core", containerfile(contexts, name), re.M)


def test_the_decision_environment_has_the_sqs_event_source(contexts):
    assert (contexts / "de" / "_build" / "eks_autoscaling.core" / "extensions" / "eda" / "plugins" / "event_source" / "sqs_events.py").is_file()


@pytest.mark.parametrize("name", DEFINITIONS)
def test_every_pip_install_is_constrained_by_the_dev_pins(contexts, name):
    assert (contexts / name / "_build" / "pins" / "requirements-dev.txt").read_bytes() == (REPO / "requirements-dev.txt").read_bytes()
    lines = containerfile(contexts, name).splitlines()
    constraint = lines.index("ENV PIP_CONSTRAINT=/etc/eks-autoscaling/requirements-dev.txt")
    assert lines.index("COPY _build/pins/requirements-dev.txt /etc/eks-autoscaling/requirements-dev.txt") < constraint
    # Set in the base stage, which the galaxy, builder and final stages all start from.
    assert constraint < lines.index("FROM base AS builder")
    first_pip = next(i for i, line in enumerate(lines) if re.search(r"pip_install|pip install", line))
    assert constraint < first_pip


@pytest.mark.parametrize(("name", "expected"), [("ee", {"boto3", "botocore", "kubernetes"}), ("de", {"ansible-rulebook", "boto3"})])
def test_every_python_package_named_has_a_pin(contexts, name, expected):
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile(contexts, name), re.M).group(1).split()
    assert refs == ["ansible-core", "ansible-runner"]
    named = {canonicalize_name(r.name) for r in requirement_names(contexts / name / "_build" / "requirements.txt")} | set(refs)
    assert expected <= named
    assert {n: PINS.get(canonicalize_name(n)) for n in named if canonicalize_name(n) not in PINS} == {}
    # Versions stay in requirements-dev.txt alone.
    assert all(not r.specifier for r in requirement_names(contexts / name / "_build" / "requirements.txt"))


def test_the_collections_python_requirements_are_pinned_and_satisfied(contexts, tmp_path):
    """ansible-builder's own introspection (run in the image's builder stage) over requirements.yml's collections at the
    versions the venv has: each requirement they add must be pinned, at a version they accept."""
    collections = tmp_path / "ansible_collections"
    venv_collections = next((REPO / ".venv" / "lib").glob("python3*/site-packages/ansible_collections"))
    for name in ("amazon/aws", "community/aws", "kubernetes/core"):
        shutil.copytree(venv_collections / name, collections / name)
    shutil.copytree(COLLECTION, collections / "eks_autoscaling" / "core")
    written = tmp_path / "requirements.txt"
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), str(contexts / "ee" / "_build" / "scripts" / "introspect.py"), "introspect",
         "--user-pip", str(contexts / "ee" / "_build" / "requirements.txt"), "--write-pip", str(written), str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    requirements = requirement_names(written)
    assert {canonicalize_name(r.name) for r in requirements} >= {"boto3", "botocore", "kubernetes"}
    for requirement in requirements:
        pin = PINS.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement} has no pin in requirements-dev.txt"
        assert requirement.specifier.contains(pin, prereleases=True), f"{requirement} refuses the pin {pin}"


def test_the_execution_environment_has_the_collections_of_requirements_yml_and_helm_at_the_lab_pin(contexts):
    assert (contexts / "ee" / "_build" / "requirements.yml").read_bytes() == (REPO / "requirements.yml").read_bytes()
    assert (contexts / "ee" / "_build" / "pins" / "versions.env").read_bytes() == (REPO / "lab" / "versions.env").read_bytes()
    text = containerfile(contexts, "ee")
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in text
    assert re.search(r"\. /build/versions\.env .*go install .*helm\.sh/helm/v3/cmd/helm@\$HELM_VERSION", text)
    assert "RUN install -m 0755 /output/bin/helm /usr/local/bin/helm" in text


def test_the_decision_environment_has_java_17_for_drools(contexts):
    assert "java-17-openjdk" in (contexts / "de" / "_build" / "bindep.txt").read_text()
    assert "ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk" in containerfile(contexts, "de")
