"""Fault tests run on the real lab too, with tests/functional's fixtures (a fresh lab per session)."""
from tests.functional.conftest import aws, kube_json, kubectl, lab, lab_env  # noqa: F401 - fixtures
