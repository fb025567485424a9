"""module_utils/helm_values.py: the release check of karpenter and metrics_server (eks_autoscaling.core.helm_values_check).

Helm is the lab's real helm, rendering real charts: the lab's Karpenter and CRD charts, and small charts made
here, one behaviour each (a values.schema.json, a custom resource whose CRD the chart brings, a kind nobody
defines). The cluster side is ClusterStandIn, KubeApi's interface over a list of served kinds, namespaces,
releases and scripted apiserver refusals, so each decision is tested without a cluster; the real apiserver
judges the real releases in tests/functional/test_bad_input.py.
"""
import json
import subprocess

import pytest
import yaml

from ansible_collections.eks_autoscaling.core.plugins.module_utils import helm_values
from ansible_collections.eks_autoscaling.core.plugins.module_utils.helm_values import (
    HelmValuesError,
    KubeApi,
    check_release,
    helm_message,
    split_rendered,
    template_args,
)
from lab import labctl

BINS = labctl.bin_dir(build=False)
HELM = BINS / "helm" if BINS else None
needs_helm = pytest.mark.skipif(HELM is None or not HELM.exists(), reason="the lab's helm is not built (lab/build.sh)")

BUILTIN = [
    {"group_version": "v1", "kind": "Namespace", "name": "namespaces", "namespaced": False},
    {"group_version": "v1", "kind": "ConfigMap", "name": "configmaps", "namespaced": True},
    {"group_version": "v1", "kind": "ServiceAccount", "name": "serviceaccounts", "namespaced": True},
    {"group_version": "v1", "kind": "Service", "name": "services", "namespaced": True},
    {"group_version": "apps/v1", "kind": "Deployment", "name": "deployments", "namespaced": True},
    {"group_version": "policy/v1", "kind": "PodDisruptionBudget", "name": "poddisruptionbudgets", "namespaced": True},
    {"group_version": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "name": "clusterroles", "namespaced": False},
    {"group_version": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "name": "clusterrolebindings", "namespaced": False},
    {"group_version": "rbac.authorization.k8s.io/v1", "kind": "Role", "name": "roles", "namespaced": True},
    {"group_version": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "name": "rolebindings", "namespaced": True},
    {"group_version": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "name": "customresourcedefinitions",
     "namespaced": False},
]


class ClusterStandIn:
    """KubeApi's interface: `refuse[(kind, name)]` is the apiserver's message for that object's dry run."""

    def __init__(self, resources=BUILTIN, namespaces=("default", "kube-system"), releases=(), refuse=None):
        self.resources = list(resources)
        self.namespaces = set(namespaces)
        self.releases = set(releases)
        self.refuse = dict(refuse or {})
        self.dry_runs = []

    def server_version(self):
        return "v1.33.1"

    def api_resources(self):
        return self.resources

    def namespace_exists(self, namespace):
        return namespace in self.namespaces

    def release_exists(self, namespace, name):
        return (namespace, name) in self.releases

    def dry_run(self, resource, manifest, namespace):
        self.dry_runs.append((manifest["kind"], namespace, manifest["metadata"].get("name")))
        return self.refuse.get((manifest["kind"], manifest["metadata"].get("name")))


class Helm:
    """Runs the real helm as the module does, and keeps each argv."""

    def __init__(self):
        self.argvs = []

    def __call__(self, argv, stdin):
        self.argvs.append(argv)
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
        return result.returncode, result.stdout, result.stderr


def make_chart(root, name, templates, values=None, schema=None, crds=None):
    chart = root / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": name, "version": "0.1.0"}))
    (chart / "values.yaml").write_text(yaml.safe_dump(values or {}))
    for file_name, text in templates.items():
        (chart / "templates" / file_name).write_text(text)
    if schema is not None:
        (chart / "values.schema.json").write_text(json.dumps(schema))
    if crds:
        (chart / "crds").mkdir()
        for file_name, document in crds.items():
            (chart / "crds" / file_name).write_text(yaml.safe_dump(document))
    return str(chart)


def spec(chart_ref, values=None, **changes):
    return {"helm": str(HELM), "release_name": "demo", "namespace": "demo", "chart_ref": chart_ref,
            "values": values or {}, "values_variable": "demo_extra_values", **changes}


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {{ toJson .Values.labels }}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec: {containers: [{name: app, image: nginx}]}
"""

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 # apiVersion, kind and metadata declared, as controller-gen declares them in every CRD.
                 "type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                                  "metadata": {"type": "object"}, "spec": {"type": "object", "properties": {
                     "size": {"type": "integer", "minimum": 1, "maximum": 10}}}}}}}]},
}
# Rendered only once Helm sees the kind among the cluster's API versions, as the chart's crds/ make it on install.
WIDGET = """{{- if .Capabilities.APIVersions.Has "example.com/v1/Widget" }}
apiVersion: example.com/v1
kind: Widget
metadata: {name: {{ .Release.Name }}}
spec: {size: {{ .Values.size }}}
{{- end }}
"""


# -- pure helpers ------------------------------------------------------------------------------------------

def test_template_args_carry_the_release_chart_version_and_the_clusters_capabilities():
    args = template_args({"helm": "/bin/helm", "namespace": "karpenter", "chart_repo_url": "https://charts.example",
                          "chart_version": "1.14.1"}, "karpenter", "karpenter", "v1.33.1", {"v1", "apps/v1/Deployment"},
                         is_upgrade=True)
    assert args[:4] == ["/bin/helm", "template", "karpenter", "karpenter"]
    assert args[args.index("--namespace") + 1] == "karpenter"
    assert args[args.index("--values") + 1] == "-"
    assert args[args.index("--repo") + 1] == "https://charts.example"
    assert args[args.index("--version") + 1] == "1.14.1"
    assert args[args.index("--kube-version") + 1] == "v1.33.1"
    assert args[args.index("--api-versions") + 1] == "apps/v1/Deployment,v1"
    assert "--is-upgrade" in args and "--include-crds" in args and "--skip-tests" in args
    # Client-side rendering: --validate would fail on kinds whose CRDs the install itself brings.
    assert "--validate" not in args


def test_template_args_leave_out_what_is_not_set():
    args = template_args({"helm": "helm", "namespace": "kube-system"}, "./chart", "ms", None, set())
    for flag in ("--repo", "--version", "--kube-version", "--api-versions", "--is-upgrade"):
        assert flag not in args


def test_helm_message_keeps_the_reason_and_drops_the_noise():
    stderr = "walk.go:75: found symbolic link\nError: values don't meet the specifications of the schema(s):\n\n- replicas: Invalid type\n"
    assert helm_message(stderr) == "values don't meet the specifications of the schema(s):; - replicas: Invalid type"


def test_split_rendered_tells_crds_of_the_crds_folder_from_the_release_objects():
    text = ("---\n# Source: demo/crds/widget.yaml\n" + yaml.safe_dump(WIDGET_CRD)
            + "---\n# Source: demo/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n")
    crds, objects = split_rendered(text)
    assert [c["metadata"]["name"] for c in crds] == ["widgets.example.com"]
    assert [(source, o["kind"]) for source, o in objects] == [("demo/templates/cm.yaml", "ConfigMap")]


@pytest.mark.parametrize("bad,option", [({"release_name": ""}, "release_name"), ({"values": ["x"]}, "values"),
                                        ({"values_variable": None}, "values_variable")])
def test_bad_options_are_refused_naming_them(bad, option):
    with pytest.raises(HelmValuesError, match=option):
        check_release(ClusterStandIn(), Helm(), {**spec("./chart"), **bad})


# -- helm and the decisions, on real charts -----------------------------------------------------------------

@needs_helm
def test_good_values_dry_run_every_object_in_the_namespace_the_install_would_create(tmp_path):
    chart = make_chart(tmp_path, "demo", {"deployment.yaml": DEPLOYMENT, "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"},
                       values={"labels": {"tier": "web"}, "replicas": 1})
    cluster = ClusterStandIn()
    result = check_release(cluster, Helm(), spec(chart, {"replicas": 2}, create_namespace=True))
    assert result["errors"] == []
    # "demo" does not exist yet: the install creates it, and a dry run there would be refused, so "default" stands in.
    assert sorted(cluster.dry_runs) == [("ConfigMap", "default", "cfg"), ("Deployment", "default", "demo")]
    assert {o["checked"] for o in result["objects"]} == {"server-side dry run"}
    assert result["is_upgrade"] is False and result["kube_version"] == "v1.33.1"


@needs_helm
def test_a_namespace_the_install_does_not_create_is_an_error(tmp_path):
    chart = make_chart(tmp_path, "demo", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"})
    result = check_release(ClusterStandIn(), Helm(), spec(chart))
    assert result["errors"] == ["demo_extra_values: the apiserver would refuse what the chart renders from them: "
                                "ConfigMap demo/cfg: namespace demo does not exist and the install does not create it"]


@needs_helm
def test_an_existing_release_renders_as_an_upgrade_in_its_own_namespace(tmp_path):
    chart = make_chart(tmp_path, "demo", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n"
                                                     "  annotations: {upgrade: {{ .Release.IsUpgrade | quote }}}\n"})
    helm = Helm()
    cluster = ClusterStandIn(namespaces={"default", "demo"}, releases={("demo", "demo")})
    result = check_release(cluster, helm, spec(chart))
    assert result["is_upgrade"] is True and result["errors"] == []
    assert "--is-upgrade" in helm.argvs[-1]
    assert cluster.dry_runs == [("ConfigMap", "demo", "cfg")]


@needs_helm
def test_the_apiservers_refusal_names_the_variable_the_object_its_template_and_the_field(tmp_path):
    chart = make_chart(tmp_path, "demo", {"deployment.yaml": DEPLOYMENT}, values={"labels": {}, "replicas": 1})
    refusal = 'Deployment.apps "demo" is invalid: metadata.labels: Invalid value: "web\\n": a valid label must be ...'
    cluster = ClusterStandIn(namespaces={"default", "demo"}, refuse={("Deployment", "demo"): refusal})
    result = check_release(cluster, Helm(), spec(chart, {"labels": {"tier": "web\n"}}))
    assert result["errors"] == [f"demo_extra_values: the apiserver would refuse what the chart renders from them: "
                                f"Deployment demo/demo (from demo/templates/deployment.yaml): {refusal}"]


@needs_helm
def test_values_the_charts_schema_refuses_fail_naming_the_variable_and_the_value(tmp_path):
    schema = {"$schema": "https://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"replicas": {"type": "integer", "minimum": 1}}}
    chart = make_chart(tmp_path, "demo", {"deployment.yaml": DEPLOYMENT}, values={"labels": {}, "replicas": 1}, schema=schema)
    cluster = ClusterStandIn(namespaces={"default", "demo"})
    result = check_release(cluster, Helm(), spec(chart, {"replicas": "two"}))
    [error] = result["errors"]
    assert error.startswith(f"demo_extra_values: the chart {chart} does not render with these values: ")
    assert "replicas" in error and "schema" in error
    assert cluster.dry_runs == []  # nothing reaches the apiserver


@needs_helm
def test_a_template_that_fails_names_the_variable(tmp_path):
    chart = make_chart(tmp_path, "demo", {"cm.yaml": '{{ required "image.tag is required" .Values.image.tag }}'},
                       values={"image": {}})
    result = check_release(ClusterStandIn(), Helm(), spec(chart))
    [error] = result["errors"]
    assert error.startswith("demo_extra_values: the chart") and "image.tag is required" in error


@needs_helm
def test_a_custom_resource_of_the_charts_own_crds_is_checked_against_its_crd_before_it_is_installed(tmp_path):
    chart = make_chart(tmp_path, "demo", {"widget.yaml": WIDGET}, values={"size": 3}, crds={"widget.yaml": WIDGET_CRD})
    cluster = ClusterStandIn(namespaces={"default", "demo"})  # a fresh cluster: example.com/v1 not served
    helm = Helm()
    good = check_release(cluster, helm, spec(chart))
    assert good["errors"] == []
    assert good["objects"] == [{"object": "Widget demo", "checked": "CRD schema (its CRD is not installed yet)"}]
    # Rendered a second time with the kinds of its crds/ among the API versions, as Helm renders on install.
    assert "example.com/v1/Widget" in helm.argvs[-1][helm.argvs[-1].index("--api-versions") + 1]
    bad = check_release(cluster, Helm(), spec(chart, {"size": 11}))
    [error] = bad["errors"]
    assert error.startswith("demo_extra_values: the apiserver would refuse what the chart renders from them: "
                            "Widget demo (from demo/templates/widget.yaml), against its CRD: spec.size")
    assert cluster.dry_runs == []


@needs_helm
def test_once_the_crd_is_served_the_custom_resource_is_dry_run(tmp_path):
    chart = make_chart(tmp_path, "demo", {"widget.yaml": WIDGET}, values={"size": 3}, crds={"widget.yaml": WIDGET_CRD})
    served = BUILTIN + [{"group_version": "example.com/v1", "kind": "Widget", "name": "widgets", "namespaced": False}]
    cluster = ClusterStandIn(resources=served, namespaces={"default", "demo"})
    result = check_release(cluster, Helm(), spec(chart))
    assert result["errors"] == [] and cluster.dry_runs == [("Widget", None, "demo")]


@needs_helm
def test_a_kind_neither_the_cluster_nor_the_install_defines_fails_as_the_install_would(tmp_path):
    chart = make_chart(tmp_path, "demo", {"sm.yaml": "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: sm}\n"})
    result = check_release(ClusterStandIn(namespaces={"default", "demo"}), Helm(), spec(chart))
    [error] = result["errors"]
    assert "ServiceMonitor sm" in error and "no matches for kind" in error and error.startswith("demo_extra_values:")


@needs_helm
def test_nodepools_of_a_release_are_checked_against_the_separate_crd_chart(tmp_path):
    from lab import chart_repo

    crd_chart = str(chart_repo.lab_charts(BINS)[chart_repo.CRD_CHART_NAME])
    nodepool = ("apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: default}\nspec:\n"
                "  limits: {cpu: {{ .Values.cpu | quote }}}\n"
                "  template: {spec: {nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}, requirements: []}}\n")
    chart = make_chart(tmp_path, "demo", {"nodepool.yaml": nodepool}, values={"cpu": "100"})
    cluster = ClusterStandIn(namespaces={"default", "demo"})
    good = check_release(cluster, Helm(), spec(chart, crd_chart_ref=crd_chart, crd_release_name="karpenter-crd"))
    assert good["errors"] == [] and good["objects"][0]["checked"].startswith("CRD schema")
    bad = check_release(cluster, Helm(), spec(chart, {"cpu": "1000 cores"}, crd_chart_ref=crd_chart))
    [error] = bad["errors"]
    assert "NodePool default" in error and "spec.limits" in error


@needs_helm
def test_the_lab_karpenter_chart_with_the_roles_values_checks_every_object(tmp_path):
    from lab import chart_repo

    charts = chart_repo.lab_charts(BINS)
    cluster = ClusterStandIn(namespaces={"default", "kube-system"})
    values = {"replicas": 2, "serviceAccount": {"name": "karpenter"}, "settings": {"clusterName": "eksworkshop"},
              "controller": {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}}
    result = check_release(cluster, Helm(), {**spec(str(charts[chart_repo.CHART_NAME]), values), "release_name": "karpenter",
                                             "namespace": "karpenter", "create_namespace": True,
                                             "crd_chart_ref": str(charts[chart_repo.CRD_CHART_NAME])})
    assert result["errors"] == []
    kinds = {dry_run[0] for dry_run in cluster.dry_runs}
    assert {"Deployment", "ServiceAccount", "ClusterRole", "PodDisruptionBudget"} <= kinds
    # Namespaced objects of the release namespace stand in "default"; the DNS Role stays in kube-system.
    assert ("Deployment", "default", "karpenter") in cluster.dry_runs
    assert ("Role", "kube-system", "karpenter-dns") in cluster.dry_runs


@needs_helm
def test_a_crd_chart_that_does_not_render_is_reported(tmp_path):
    chart = make_chart(tmp_path, "demo", {})
    result = check_release(ClusterStandIn(), Helm(), spec(chart, crd_chart_ref=str(tmp_path / "missing")))
    [error] = result["errors"]
    assert error.startswith(f"the CRD chart {tmp_path / 'missing'} does not render")


# -- KubeApi over the dynamic client's raw requests ------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(status)
        self.status, self.body = status, body


class Response:
    def __init__(self, payload):
        self.data = json.dumps(payload).encode()


class RawRequests:
    """DynamicClient.request(method, path, body, query_params, content_type, serialize=False) over a dict of paths."""

    def __init__(self, answers):
        self.answers = answers
        self.requests = []

    def request(self, method, path, body=None, query_params=None, content_type=None, serialize=True):
        assert serialize is False
        self.requests.append((method, path, dict(query_params or []), content_type, body))
        answer = self.answers.get((method, path))
        if isinstance(answer, ApiError):
            raise answer
        if answer is None:
            raise ApiError(404, json.dumps({"kind": "Status", "message": f"{path} not found"}))
        return Response(answer)


def test_kube_api_discovers_every_kind_and_leaves_out_a_group_that_is_down():
    raw = RawRequests({
        ("GET", "/apis"): {"groups": [{"versions": [{"groupVersion": "apps/v1"}]},
                                      {"versions": [{"groupVersion": "metrics.k8s.io/v1beta1"}]}]},
        ("GET", "/api/v1"): {"resources": [{"name": "pods", "kind": "Pod", "namespaced": True},
                                           {"name": "pods/eviction", "kind": "Eviction", "namespaced": True}]},
        ("GET", "/apis/apps/v1"): {"resources": [{"name": "deployments", "kind": "Deployment", "namespaced": True}]},
        ("GET", "/apis/metrics.k8s.io/v1beta1"): ApiError(503, "service unavailable"),
    })
    kube = KubeApi(raw, ApiError)
    assert kube.api_resources() == [
        {"group_version": "v1", "kind": "Pod", "name": "pods", "namespaced": True},
        {"group_version": "apps/v1", "kind": "Deployment", "name": "deployments", "namespaced": True},
    ]
    assert helm_values.served_api_versions(kube.api_resources()) == {"v1", "v1/Pod", "apps/v1", "apps/v1/Deployment"}


def test_kube_api_namespace_and_release_lookups():
    raw = RawRequests({("GET", "/api/v1/namespaces/karpenter"): {"metadata": {"name": "karpenter"}},
                       ("GET", "/api/v1/namespaces/karpenter/secrets"): {"items": [{"metadata": {"name": "sh.helm.release.v1.karpenter.v1"}}]},
                       ("GET", "/api/v1/namespaces/kube-system"): ApiError(403, "{}")})
    kube = KubeApi(raw, ApiError)
    assert kube.namespace_exists("karpenter") is True
    assert kube.namespace_exists("missing") is False
    with pytest.raises(ApiError):
        kube.namespace_exists("kube-system")  # not "missing": the caller reports it
    assert kube.release_exists("karpenter", "karpenter") is True
    assert raw.requests[-1][2] == {"labelSelector": "owner=helm,name=karpenter", "limit": 1}


def test_kube_api_dry_runs_by_server_side_apply_and_returns_the_apiservers_message():
    refusal = {"kind": "Status", "message": 'Deployment.apps "karpenter" is invalid: spec.replicas: Invalid value: -1'}
    raw = RawRequests({("PATCH", "/apis/apps/v1/namespaces/default/deployments/karpenter"): ApiError(422, json.dumps(refusal)),
                       ("PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterroles/karpenter"): {},
                       ("POST", "/api/v1/namespaces/default/pods"): {}})
    kube = KubeApi(raw, ApiError)
    deployment = {"group_version": "apps/v1", "kind": "Deployment", "name": "deployments", "namespaced": True}
    assert kube.dry_run(deployment, {"metadata": {"name": "karpenter"}}, "default") == refusal["message"]
    method, _path, query, content_type, _body = raw.requests[-1]
    assert method == "PATCH" and content_type == "application/apply-patch+yaml"
    assert query == {"dryRun": "All", "fieldManager": helm_values.FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
    role = {"group_version": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "name": "clusterroles", "namespaced": False}
    assert kube.dry_run(role, {"metadata": {"name": "karpenter"}}, None) is None
    pod = {"group_version": "v1", "kind": "Pod", "name": "pods", "namespaced": True}
    assert kube.dry_run(pod, {"metadata": {"generateName": "hook-"}}, "default") is None
    assert raw.requests[-1][0] == "POST" and raw.requests[-1][2]["dryRun"] == "All"
    assert helm_values.status_message(500, "plain text") == "HTTP 500: plain text"
