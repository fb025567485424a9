"""Fault tests run on the real lab too, with the integration tests' fixtures (a fresh lab per session)."""
from tests.integration.conftest import aws, kube_json, kubectl, lab, lab_env  # noqa: F401 - fixtures
