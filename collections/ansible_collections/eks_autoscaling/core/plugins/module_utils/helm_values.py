# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Check the values of a Helm release before anything changes: render the chart with them, then have the
apiserver judge every object they render, without storing any.

1. The chart is rendered by `helm template`, with the release's name, namespace, chart, version and values.
   Helm checks the values against the chart's values.schema.json when the chart has one, and the
   templates' own `required`/`fail` checks run. The cluster's version and API versions are passed as
   --kube-version/--api-versions (read here through the kubernetes client), so the chart renders what
   `helm upgrade --install` would render on this cluster; --is-upgrade is set when the release already
   exists, as it would be then. Not --validate: it builds every object against the cluster's kinds, so a
   chart rendering a custom resource whose CRD the install itself brings fails on a fresh cluster, and its
   client-side OpenAPI check is a subset of step 2.
2. Each rendered object of a kind the cluster serves is sent with dryRun=All (server-side apply, strict
   field validation; a create for generateName objects): the apiserver validates, defaults and runs
   admission, and stores nothing. An object in the release namespace that the install would create
   (create_namespace) is dry-run in "default", since the apiserver refuses any request in a namespace
   that does not exist; one in another missing namespace is an error, as it would be on install.
3. An object of a kind the cluster does not serve yet, whose CRD the install brings (the chart's crds/
   folder, or the separate CRD chart installed just before), is checked offline against that CRD's
   schema and CEL rules (crd_schema, as the apiserver would check it once the CRD exists): admission
   webhooks cannot be run for it. Any other kind the cluster does not serve is an error: the install
   would fail with "no matches for kind".

Every error names the variable that carried the values and the field the chart or the apiserver names.
The Kubernetes calls are behind KubeApi, which answers with plain dicts; Helm runs through a `run`
callable (AnsibleModule.run_command in the module).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.eks_autoscaling.core.plugins.module_utils import crd_schema

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core depends on PyYAML
    yaml = None

FIELD_MANAGER = "eks-autoscaling-helm-values-check"
# Where the apiserver lets a dry run stand in for an object of a namespace that does not exist yet.
STAND_IN_NAMESPACE = "default"
SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)


class HelmValuesError(Exception):
    """Bad input to the check itself (not the values): a message naming the option."""


def validate_spec(spec):
    for option in ("helm", "release_name", "chart_ref", "namespace", "values_variable"):
        if not isinstance(spec.get(option), str) or not spec[option]:
            raise HelmValuesError("%s must be a non-empty string, got %r" % (option, spec.get(option)))
    if not isinstance(spec.get("values"), dict):
        raise HelmValuesError("values must be a dictionary, got %r" % (spec.get("values"),))


# -- helm -------------------------------------------------------------------------------------------------

def template_args(spec, chart_ref, release_name, kube_version, api_versions, is_upgrade=False):
    """argv of `helm template` for chart_ref, its values read from stdin."""
    args = [spec["helm"], "template", release_name, chart_ref, "--namespace", spec["namespace"],
            "--values", "-", "--include-crds", "--skip-tests"]
    if spec.get("chart_repo_url"):
        args += ["--repo", spec["chart_repo_url"]]
    if spec.get("chart_version"):
        args += ["--version", spec["chart_version"]]
    if kube_version:
        args += ["--kube-version", kube_version]
    if api_versions:
        args += ["--api-versions", ",".join(sorted(api_versions))]
    if is_upgrade:
        args.append("--is-upgrade")
    return args


def helm_message(stderr):
    """Helm's error without its "Error: " prefix and blank lines: one readable line per problem."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("WARNING:", "walk.go:", "Pulled:", "Digest:"))]
    text = "; ".join(lines)
    return text[len("Error: "):] if text.startswith("Error: ") else text


def split_rendered(text):
    """(crds, objects) of `helm template` output: CRDs of the chart's crds/ folders, and the release's objects,
    each object paired with the template it came from."""
    crds, objects = [], []
    for chunk in re.split(r"^---\s*$", text or "", flags=re.MULTILINE):
        match = SOURCE.search(chunk)
        source = match.group(1).strip() if match else ""
        for document in yaml.safe_load_all(chunk):
            if not isinstance(document, dict) or not document:
                continue
            if "/crds/" in "/" + source:
                crds.append(document)
            else:
                objects.append((source, document))
    return crds, objects


def render(run, spec, chart_ref, release_name, values, kube_version, api_versions, is_upgrade=False):
    """(rc, crds, objects, message) of rendering chart_ref with values."""
    rc, out, err = run(template_args(spec, chart_ref, release_name, kube_version, api_versions, is_upgrade),
                       json.dumps(values))
    if rc != 0:
        return rc, [], [], helm_message(err) or "helm exited with %s" % rc
    crds, objects = split_rendered(out)
    return 0, crds, objects, ""


def crd_api_versions(crds):
    """What Capabilities.APIVersions would hold once these CRDs are installed: group/version and
    group/version/Kind of each served version."""
    found = set()
    for document in crds:
        spec = document.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        for version in spec.get("versions") or []:
            if version.get("served", True):
                found.add("%s/%s" % (spec.get("group"), version.get("name")))
                found.add("%s/%s/%s" % (spec.get("group"), version.get("name"), kind))
    return found


# -- the cluster --------------------------------------------------------------------------------------------

def served_api_versions(resources):
    """Capabilities.APIVersions as Helm reads it from discovery: group/version and group/version/Kind."""
    found = set()
    for resource in resources:
        found.add(resource["group_version"])
        found.add("%s/%s" % (resource["group_version"], resource["kind"]))
    return found


def describe(manifest, namespace=None):
    metadata = manifest.get("metadata") or {}
    name = metadata.get("name") or (metadata.get("generateName") or "") + "*"
    return "%s %s" % (manifest.get("kind"), "%s/%s" % (namespace, name) if namespace else name)


def target_namespace(manifest, resource, spec, existing_namespaces, kube):
    """(namespace to dry-run in or None for cluster-scoped, error or None)."""
    if not resource["namespaced"]:
        return None, None
    namespace = (manifest.get("metadata") or {}).get("namespace") or spec["namespace"]
    if namespace not in existing_namespaces:
        existing_namespaces[namespace] = kube.namespace_exists(namespace)
    if existing_namespaces[namespace]:
        return namespace, None
    if namespace == spec["namespace"] and spec.get("create_namespace"):
        return STAND_IN_NAMESPACE, None
    return None, "%s: namespace %s does not exist and the install does not create it" % (
        describe(manifest, namespace), namespace)


def check_objects(kube, spec, objects, crds):
    """(checked, errors): one {"object", "checked"} per rendered object and "<object>: <why>" per refusal."""
    served = {(r["group_version"], r["kind"]): r for r in kube.api_resources()}
    schemas = crd_schema.crd_schemas(crds)
    checked, errors, namespaces = [], [], {}
    for source, manifest in objects:
        api_version, kind = str(manifest.get("apiVersion") or ""), manifest.get("kind")
        resource = served.get((api_version, kind))
        if resource is not None:
            namespace, error = target_namespace(manifest, resource, spec, namespaces, kube)
            if error is None:
                body = json.loads(json.dumps(manifest))
                if namespace is not None:
                    body.setdefault("metadata", {})["namespace"] = namespace
                error = kube.dry_run(resource, body, namespace)
                if error is not None:
                    error = "%s (from %s): %s" % (describe(manifest, namespace), source, error)
            checked.append({"object": describe(manifest, namespace), "checked": "server-side dry run"})
        else:
            group, _sep, version = api_version.rpartition("/")
            schema = schemas.get((group, version, kind))
            if schema is None:
                error = ("%s (from %s): the cluster serves no %s %s and no CRD the install brings defines it "
                         "(the install would fail: no matches for kind)" % (describe(manifest), source, api_version, kind))
            else:
                found = crd_schema.validate(manifest, schema)
                error = "; ".join(found) if found else None
                if error:
                    error = "%s (from %s), against its CRD: %s" % (describe(manifest), source, error)
            checked.append({"object": describe(manifest), "checked": "CRD schema (its CRD is not installed yet)"})
        if error:
            errors.append(error)
    return checked, errors


def check_release(kube, run, spec):
    """Render the release with spec["values"] and dry-run what it renders. Returns a dict: is_upgrade,
    kube_version, objects (what was checked and how) and errors (each naming spec["values_variable"])."""
    validate_spec(spec)
    variable = spec["values_variable"]
    kube_version = kube.server_version()
    api_versions = served_api_versions(kube.api_resources())
    crds = []
    if spec.get("crd_chart_ref"):
        crd_spec = dict(spec, chart_repo_url=spec.get("crd_chart_repo_url", spec.get("chart_repo_url")))
        rc, crd_crds, crd_objects, message = render(run, crd_spec, spec["crd_chart_ref"], spec.get("crd_release_name") or "crds",
                                                    {}, kube_version, api_versions)
        if rc != 0:
            return {"is_upgrade": False, "kube_version": kube_version, "objects": [],
                    "errors": ["the CRD chart %s does not render: %s" % (spec["crd_chart_ref"], message)]}
        crds = crd_crds + [document for _source, document in crd_objects if document.get("kind") == "CustomResourceDefinition"]
    api_versions |= crd_api_versions(crds)
    is_upgrade = kube.release_exists(spec["namespace"], spec["release_name"])
    result = {"is_upgrade": is_upgrade, "kube_version": kube_version, "objects": [], "errors": []}
    rc, chart_crds, objects, message = render(run, spec, spec["chart_ref"], spec["release_name"], spec["values"],
                                              kube_version, api_versions, is_upgrade)
    if rc == 0 and not crd_api_versions(chart_crds) <= api_versions:
        # Helm installs the chart's crds/ before rendering its templates: render again seeing their kinds.
        api_versions |= crd_api_versions(chart_crds)
        rc, chart_crds, objects, message = render(run, spec, spec["chart_ref"], spec["release_name"], spec["values"],
                                                  kube_version, api_versions, is_upgrade)
    if rc != 0:
        result["errors"] = ["%s: the chart %s does not render with these values: %s" % (variable, spec["chart_ref"], message)]
        return result
    checked, errors = check_objects(kube, spec, objects, crds + chart_crds)
    result["objects"] = checked
    result["errors"] = ["%s: the apiserver would refuse what the chart renders from them: %s" % (variable, error)
                        for error in errors]
    return result


# -- the Kubernetes API ---------------------------------------------------------------------------------------

def status_message(status, body):
    """The apiserver's reason for refusing a request, from its Status body."""
    try:
        parsed = json.loads(body) if isinstance(body, (str, bytes)) else body
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("message"):
        return parsed["message"]
    return "HTTP %s: %s" % (status, (body or "").strip() if isinstance(body, str) else body)


class KubeApi(object):
    """The calls the check makes, over a kubernetes DynamicClient's raw requests; answers are plain dicts."""

    def __init__(self, dynamic_client, api_exception):
        self.dynamic = dynamic_client
        self.api_exception = api_exception
        self._resources = None

    def _call(self, method, path, query=None, body=None, content_type=None):
        response = self.dynamic.request(method, path, body=body, query_params=list((query or {}).items()),
                                        content_type=content_type, serialize=False)
        return json.loads(response.data.decode("utf-8") or "{}")

    def server_version(self):
        return self._call("GET", "/version").get("gitVersion")

    def api_resources(self):
        """[{group_version, kind, name, namespaced}] of every kind served; a group whose discovery fails (an
        aggregated API that is down) is left out, as Helm leaves it out of its capabilities."""
        if self._resources is not None:
            return self._resources
        group_versions = ["v1"]
        for group in self._call("GET", "/apis").get("groups") or []:
            group_versions += [version["groupVersion"] for version in group.get("versions") or []]
        resources = []
        for group_version in group_versions:
            path = "/api/v1" if group_version == "v1" else "/apis/" + group_version
            try:
                listing = self._call("GET", path)
            except self.api_exception:
                continue
            for resource in listing.get("resources") or []:
                if "/" not in resource["name"]:
                    resources.append({"group_version": group_version, "kind": resource["kind"], "name": resource["name"],
                                      "namespaced": bool(resource.get("namespaced"))})
        self._resources = resources
        return resources

    def namespace_exists(self, namespace):
        try:
            self._call("GET", "/api/v1/namespaces/" + namespace)
        except self.api_exception as e:
            if e.status == 404:
                return False
            raise
        return True

    def release_exists(self, namespace, release_name):
        """Whether Helm (its default storage, Secrets) holds a release of this name: `helm upgrade --install`
        then upgrades it."""
        listing = self._call("GET", "/api/v1/namespaces/%s/secrets" % namespace,
                             query={"labelSelector": "owner=helm,name=%s" % release_name, "limit": 1})
        return bool(listing.get("items"))

    def dry_run(self, resource, manifest, namespace):
        """None if the apiserver accepts manifest (dryRun=All, nothing stored), else its message."""
        prefix = "/api/v1" if resource["group_version"] == "v1" else "/apis/" + resource["group_version"]
        collection = "%s/namespaces/%s/%s" % (prefix, namespace, resource["name"]) if namespace else "%s/%s" % (prefix, resource["name"])
        name = (manifest.get("metadata") or {}).get("name")
        try:
            if name:
                self._call("PATCH", "%s/%s" % (collection, name), body=manifest, content_type="application/apply-patch+yaml",
                           query={"dryRun": "All", "fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"})
            else:
                self._call("POST", collection, body=manifest, content_type="application/json",
                           query={"dryRun": "All", "fieldManager": FIELD_MANAGER, "fieldValidation": "Strict"})
        except self.api_exception as e:
            return status_message(e.status, e.body)
        return None
