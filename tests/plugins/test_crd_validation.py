"""The CRD validation engine (module_utils crd_schema, kube_cel) and the crd_errors filter.

Schemas are either small hand-made ones (one behaviour each) or the real CRDs of the karpenter-crd chart
of the pinned Karpenter version, read from the Go module cache (its templates only template annotations:
those lines are dropped). tests/functional/test_crd_validation_oracle.py holds the engine to the real
apiserver's verdicts.
"""
import copy
import re

import pytest
import yaml

from ansible_collections.eks_autoscaling.core.plugins.filter import crd, karpenter
from ansible_collections.eks_autoscaling.core.plugins.module_utils import crd_schema, kube_cel


@pytest.fixture(scope="module")
def chart_documents():
    from lab import labctl

    try:
        templates = labctl.karpenter_crd_chart() / "templates"
    except Exception as exc:  # noqa: BLE001 - no Go or no module proxy: say so
        pytest.skip(f"karpenter-crd chart not available: {exc}")
    documents = []
    for path in sorted(templates.glob("*.yaml")):
        text = "\n".join(line for line in path.read_text().splitlines() if "{{" not in line)
        documents.extend(d for d in yaml.safe_load_all(text) if d)
    return documents


@pytest.fixture(scope="module")
def schemas(chart_documents):
    return crd_schema.crd_schemas(chart_documents)


NODE_CLASSES = [{"name": "default", "role": "KarpenterNodeRole-eksworkshop", "ami_alias": "al2023@v20251120",
                 "subnet_selector_terms": [{"tags": {"karpenter.sh/discovery": "eksworkshop"}}],
                 "security_group_selector_terms": [{"tags": {"karpenter.sh/discovery": "eksworkshop"}}]}]
POOL = {"name": "default", "node_class": "default",
        "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}],
        "disruption": {"consolidation_policy": "WhenEmptyOrUnderutilized", "consolidate_after": "1m"}}


def pool_errors(chart_documents, **changes):
    pool = copy.deepcopy(POOL)
    pool.update(changes)
    return crd.crd_errors([karpenter.nodepool_manifest(pool, NODE_CLASSES)], chart_documents, "nodepools_list")


# -- kube_cel: the Kubernetes CEL library functions -----------------------------------------------------

def test_regex_find_returns_the_first_match_or_empty():
    assert kube_cel.evaluate('self.find("^([^/]+)")', self="karpenter.sh/capacity-type") == "karpenter.sh"
    assert kube_cel.evaluate('self.find("[0-9]+")', self="abc") == ""


def test_regex_find_all_honours_the_limit():
    assert kube_cel.evaluate('self.findAll("[0-9]+")', self="a1b22c333") == ["1", "22", "333"]
    assert kube_cel.evaluate('self.findAll("[0-9]+", 2)', self="a1b22c333") == ["1", "22"]
    assert kube_cel.evaluate('self.findAll("[0-9]+", 0)', self="a1") == []


def test_lists_is_sorted_and_the_stdlib_extensions_kubernetes_enables():
    assert kube_cel.evaluate("[1, 2, 2].isSorted() && !['b', 'a'].isSorted()") is True
    assert kube_cel.evaluate("[3, 1].min() == 1 && [1, 3].max() == 3 && [1, 2].sum() == 3") is True
    assert kube_cel.evaluate("self.split('@')[0]", self="al2023@latest") == "al2023"


@pytest.mark.parametrize("rule,value", [('self.find("[")', "x"), ("int(self) >= 0", "four"), ("self.missing == 1", {"a": 1})])
def test_a_failing_evaluation_is_an_error(rule, value):
    with pytest.raises(kube_cel.CelError):
        kube_cel.evaluate(rule, self=value)


def test_transition_rules_are_recognised_outside_string_literals():
    assert kube_cel.references("self.kind == oldSelf.kind", "oldSelf")
    assert not kube_cel.references("self != 'oldSelf'", "oldSelf")


# -- crd_schema on small schemas: one apiserver behaviour each ------------------------------------------

def wrap(spec_schema):
    return {"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                             "metadata": {"type": "object"}, "spec": spec_schema}}


def check(spec, spec_schema):
    return crd_schema.validate({"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a"}, "spec": spec}, wrap(spec_schema))


def test_unknown_fields_are_errors_as_with_strict_field_validation():
    assert check({"a": 1, "b": 2}, {"type": "object", "properties": {"a": {"type": "integer"}}}) == ["spec.b: field not declared in schema"]
    assert check({"b": 2}, {"type": "object", "x-kubernetes-preserve-unknown-fields": True}) == []


def test_defaults_apply_recursively_before_validation():
    schema = {"type": "object", "properties": {"d": {"type": "object", "default": {}, "properties": {
        "p": {"type": "string", "default": "x", "enum": ["x"]}}, "x-kubernetes-validations": [{"rule": "self.p == 'x'"}]}}}
    manifest = {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a"}, "spec": {}}
    assert crd_schema.defaulted(manifest, wrap(schema))["spec"] == {"d": {"p": "x"}}
    assert check({}, schema) == []


def test_a_non_nullable_null_is_dropped_and_then_defaulted():
    schema = {"type": "object", "properties": {"a": {"type": "string", "default": "z"}, "b": {"type": "string"}}}
    assert check({"a": None, "b": None}, schema) == []


def test_int_or_string_patterns_apply_to_strings_only():
    schema = {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                                                         "pattern": "^[0-9]+Gi$"}}
    assert check({"memory": 4, "disk": "4Gi"}, schema) == []
    assert check({"memory": "4 gigs"}, schema)[0].startswith('spec[memory]: Invalid value: "4 gigs"')
    assert check({"memory": True}, schema)[0].startswith("spec[memory]: Invalid value: true: spec[memory] in body must be of type")


def test_string_array_and_object_bounds():
    schema = {"type": "object", "properties": {
        "s": {"type": "string", "maxLength": 3, "minLength": 2},
        "l": {"type": "array", "items": {"type": "string"}, "maxItems": 2, "x-kubernetes-list-type": "set"},
        "m": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 100}}, "required": ["n"]}
    errors = check({"s": "abcd", "l": ["a", "a", "b"], "m": {"a": "1", "b": "2"}, "n": 0}, schema)
    assert "spec.s: Too long: may not be more than 3 bytes" in errors
    assert "spec.l: Too many: 3: must have at most 2 items" in errors
    assert 'spec.l[1]: Duplicate value: "a"' in errors
    assert "spec.m: Too many: 2: must have at most 1 items" in errors
    assert "spec.n: Invalid value: 0: spec.n in body should be greater than or equal to 1" in errors
    assert check({}, schema)[0] == "spec.n: Required value"


def test_blocking_errors_skip_the_cel_rules_as_the_apiserver_does():
    schema = {"type": "object", "properties": {"a": {"type": "string", "enum": ["x"]}}, "x-kubernetes-validations": [{"rule": "false"}]}
    errors = check({"a": "y"}, schema)
    assert errors[0].startswith('spec.a: Unsupported value: "y"')
    assert "some validation rules were not checked" in errors[1] and len(errors) == 2


def test_cel_rule_message_message_expression_field_path_and_reason():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "x-kubernetes-validations": [
        {"rule": "self.a < 10", "messageExpression": "'a is ' + string(self.a)", "fieldPath": ".a"},
        {"rule": "self.a < 5", "message": "a too big", "reason": "FieldValueForbidden"},
        {"rule": "self.a == oldSelf.a", "message": "immutable"},
        {"rule": "self.a < 3"}]}
    assert check({"a": 12}, schema) == ['spec.a: Invalid value: "object": a is 12', "spec: Forbidden: a too big",
                                        'spec: Invalid value: "object": failed rule: self.a < 3']


def test_metadata_name_and_labels_are_checked():
    manifest = {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "Bad_Name", "labels": {"a/b/c": "x"}, "nme": 1}, "spec": {}}
    errors = crd_schema.validate(manifest, wrap({"type": "object"}))
    assert errors[0] == "metadata.nme: field not declared in schema"
    assert any(e.startswith('metadata.name: Invalid value: "Bad_Name"') for e in errors)
    assert any(e.startswith('metadata.labels: Invalid value: "a/b/c"') for e in errors)


# -- the chart's CRDs through the crd_errors filter: where our old checks disagreed with the apiserver ------

def test_the_chart_has_the_nodepool_and_ec2nodeclass_crds(schemas):
    assert ("karpenter.sh", "v1", "NodePool") in schemas and ("karpenter.k8s.aws", "v1", "EC2NodeClass") in schemas


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"expire_after": "1.5h"}, 'nodepools_list[0] (default): spec.template.spec.expireAfter: Invalid value: "1.5h"'),
        ({"disruption": {"consolidate_after": "500ms"}}, 'spec.disruption.consolidateAfter: Invalid value: "500ms"'),
        ({"disruption": {"consolidate_after": "1m", "budgets": [{"nodes": "0", "schedule": "@daily", "duration": "30s"}]}},
         'spec.disruption.budgets[0].duration: Invalid value: "30s"'),
        ({"requirements": [{"key": "karpenter.k8s.aws/instance-cpu", "operator": "Gt", "values": ["-1"]}]},
         "must have a single positive integer value"),
        ({"labels": {"karpenter.sh/custom": "x"}}, 'label domain "karpenter.sh" is restricted'),
        ({"requirements": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["a"]}]},
         'spec.template.spec.requirements[0].key: Invalid value: "kubernetes.io/hostname": label "kubernetes.io/hostname" is restricted'),
        ({"termination_grace_period": "2d"}, 'spec.template.spec.terminationGracePeriod: Invalid value: "2d"'),
        ({"disruption": {}}, "nodepools_list[0] (default): spec.disruption.consolidateAfter: Required value"),
    ],
)
def test_values_the_apiserver_refuses_are_refused_naming_variable_and_field(chart_documents, changes, expected):
    errors = pool_errors(chart_documents, **changes)
    assert any(expected in e for e in errors), errors


def test_balanced_consolidation_and_never_pass(chart_documents):
    assert pool_errors(chart_documents, disruption={"consolidation_policy": "Balanced", "consolidate_after": "Never"}, expire_after="Never") == []


def test_the_nodepool_defaults_come_from_the_crd(schemas):
    manifest = karpenter.nodepool_manifest(POOL, NODE_CLASSES)
    stored = crd_schema.defaulted(manifest, schemas[("karpenter.sh", "v1", "NodePool")])
    assert stored["spec"]["template"]["spec"]["expireAfter"] == "720h"
    assert stored["spec"]["disruption"]["budgets"] == [{"nodes": "10%"}]


def test_a_version_the_chart_does_not_serve_is_reported_not_checked(chart_documents):
    # v1beta1 was served until Karpenter v1.1; a chart of this version has v1 only.
    old = dict(karpenter.nodeclass_manifest(NODE_CLASSES[0], "eksworkshop"), apiVersion="karpenter.k8s.aws/v1beta1")
    assert crd.crd_errors([old], chart_documents, "nodepools_node_classes") == []
    (message,) = crd.crd_unchecked([old], chart_documents, "nodepools_node_classes")
    assert message.startswith("nodepools_node_classes[0] (default): not validated against a CRD: no CRD for karpenter.k8s.aws/v1beta1 EC2NodeClass")


def test_rendered_chart_text_is_accepted_as_helm_prints_it(chart_documents):
    text = yaml.safe_dump_all(chart_documents)
    manifest = karpenter.nodeclass_manifest(dict(NODE_CLASSES[0], tags={"eks:eks-cluster-name": "x"}), "eksworkshop")
    (error,) = crd.crd_errors([manifest], text, "nodepools_node_classes")
    assert re.match(r"nodepools_node_classes\[0\] \(default\): spec.tags: .*restricted tag matching eks:eks-cluster-name", error)
