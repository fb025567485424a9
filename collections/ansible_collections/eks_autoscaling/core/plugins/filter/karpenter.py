# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that validate Karpenter v1 NodePools and node classes and render them as manifests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: karpenter
short_description: Validate and render Karpenter v1 NodePools and node classes
version_added: 0.1.0
author: Karpenter HPA EKS contributors
description:
  - >-
    C(nodepool_errors) and C(nodeclass_errors) return what the CRDs cannot check, each error naming the
    variable path of the bad field (for example C(nodepools_list[0].node_class)) - a NodePool naming a node
    class that is not defined, names defined twice, values Karpenter knows no instance for on well-known
    labels, requirements that contradict each other, an unpinned C(@latest) AMI alias. An empty list means
    none of these. Everything the CRDs check (types, patterns, enums, CEL rules) is left to C(crd_errors),
    which reads the rules from the CRD chart that will be installed.
  - C(nodepool_warnings) returns advice that does not block, such as a spot NodePool allowing fewer than
    five instance types, which the Karpenter best practices warn hurts spot availability.
  - C(nodepool_manifest) renders one NodePool (C(karpenter.sh/v1)) and C(nodeclass_manifest) one node class
    (C(karpenter.k8s.aws/v1) EC2NodeClass) from the role's snake_case variables. They render what they are given without judging it, so C(crd_errors) can name
    what the apiserver would refuse.
options:
  _input:
    description: The list of NodePools (C(nodepool_errors), C(nodepool_warnings)) or one NodePool / node class.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse bad NodePools before anything changes
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ nodepools_list | eks_autoscaling.core.nodepool_errors(nodepools_node_classes, 'nodepools_list') }}"

- name: Render the manifests
  ansible.builtin.set_fact:
    manifests: "{{ nodepools_list | map('eks_autoscaling.core.nodepool_manifest', nodepools_node_classes) | list }}"
"""

RETURN = r"""
_value:
  description: A list of error or warning strings, or a manifest (dict) for the render filters.
  type: raw
"""

from ansible_collections.eks_autoscaling.core.plugins.module_utils import input_rules

NODECLASS_KINDS = {
    "EC2NodeClass": ("karpenter.k8s.aws", "v1"),
}
# Values Karpenter knows for these well-known labels: a typo (e.g. "spots") is valid for the CRD but
# matches no instance, so the NodePool would never launch a node.
KNOWN_VALUES = {
    "karpenter.sh/capacity-type": ("spot", "on-demand", "reserved"),
    "kubernetes.io/arch": ("amd64", "arm64"),
    "kubernetes.io/os": ("linux", "windows"),
}
MIN_SPOT_INSTANCE_TYPES = 5
# EC2NodeClass spec fields taken from the role's snake_case keys as they are (their content is in the
# EC2NodeClass API's own camelCase, e.g. block_device_mappings: [{deviceName: ..., ebs: {...}}]).
NODECLASS_FIELDS = (
    ("ami_family", "amiFamily"),
    ("kubelet", "kubelet"),
    ("block_device_mappings", "blockDeviceMappings"),
    ("metadata_options", "metadataOptions"),
    ("user_data", "userData"),
    ("associate_public_ip_address", "associatePublicIPAddress"),
    ("detailed_monitoring", "detailedMonitoring"),
    ("instance_store_policy", "instanceStorePolicy"),
    ("capacity_reservation_selector_terms", "capacityReservationSelectorTerms"),
    ("context", "context"),
)


# What the EC2NodeClass CRD stores without knowing IAM's and EC2's rules: a role or instance profile name IAM
# refuses, or a tag EC2 refuses, would only fail when Karpenter launches a node.
NODECLASS_AWS_FIELDS = (
    ("role", lambda value, where: input_rules.aws_name_errors(value, where, "iam_role")),
    ("instance_profile", lambda value, where: input_rules.aws_name_errors(value, where, "iam_instance_profile")),
    ("tags", input_rules.aws_tag_errors),
)


def _values(requirement):
    return [str(v) for v in (requirement.get("values") or [])]


def _requirement_errors(requirements, path):
    """What the CRD cannot see: values no instance has, and requirements that contradict each other."""
    errors = []
    by_key = {}
    for index, requirement in enumerate(requirements if isinstance(requirements, list) else []):
        here = "%s[%d]" % (path, index)
        if not isinstance(requirement, dict) or not requirement.get("key"):
            continue  # the CRD check names it
        key, operator, values = requirement["key"], requirement.get("operator"), _values(requirement)
        known = KNOWN_VALUES.get(key)
        if known and operator in ("In", "NotIn"):
            unknown = [v for v in values if v not in known]
            if unknown:
                errors.append("%s.values: %s for %s; allowed: %s" % (here, ", ".join(unknown), key, ", ".join(known)))
        by_key.setdefault(key, []).append((here, operator, values))
    for key, entries in by_key.items():
        errors.extend(_contradictions(key, entries))
    return errors


def _integer(values):
    return int(values[0]) if len(values) == 1 and values[0].lstrip("-").isdigit() else None


def _contradictions(key, entries):
    """Requirements on one key that no node can satisfy together."""
    errors = []
    allowed = None
    denied = set()
    exists = does_not_exist = None
    lower = upper = None
    for here, operator, values in entries:
        if operator == "In":
            allowed = set(values) if allowed is None else allowed & set(values)
        elif operator == "NotIn":
            denied |= set(values)
        elif operator == "Exists":
            exists = here
        elif operator == "DoesNotExist":
            does_not_exist = here
        elif operator in ("Gt", "Gte") and _integer(values) is not None:
            bound = _integer(values) - (operator == "Gte")
            lower = bound if lower is None else max(lower, bound)
        elif operator in ("Lt", "Lte") and _integer(values) is not None:
            bound = _integer(values) + (operator == "Lte")
            upper = bound if upper is None else min(upper, bound)
    last = entries[-1][0]
    if allowed is not None and not (allowed - denied):
        errors.append("%s: requirements on %s contradict each other: no value is both allowed (In) and not excluded (NotIn)" % (last, key))
    if does_not_exist and (exists or allowed is not None or lower is not None or upper is not None):
        errors.append("%s: %s cannot both be required (In/Exists/Gt/Lt) and DoesNotExist" % (does_not_exist, key))
    if lower is not None and upper is not None and lower + 1 >= upper:
        errors.append("%s: requirements on %s contradict each other: Gt %d and Lt %d leave no value" % (last, key, lower, upper))
    return errors


def nodeclass_errors(node_classes, path="nodepools_node_classes"):
    """What the EC2NodeClass CRD does not check: duplicate names, unknown kinds, unpinned AMIs."""
    if not isinstance(node_classes, list):
        return ["%s: must be a list of node classes" % path]
    errors = []
    seen = set()
    for index, node_class in enumerate(node_classes):
        here = "%s[%d]" % (path, index)
        if not isinstance(node_class, dict):
            errors.append("%s: must be a mapping" % here)
            continue
        name = node_class.get("name")
        if name in seen:
            errors.append("%s.name: %r is defined twice" % (here, name))
        seen.add(name)
        kind = node_class.get("kind", "EC2NodeClass")
        if kind not in NODECLASS_KINDS:
            errors.append("%s.kind: %r is not one of %s" % (here, kind, ", ".join(NODECLASS_KINDS)))
            continue
        for field, check in NODECLASS_AWS_FIELDS:
            if node_class.get(field) is not None:
                errors.extend(check(node_class[field], "%s.%s" % (here, field)))
        alias = node_class.get("ami_alias")
        if kind == "EC2NodeClass" and not node_class.get("ami_selector_terms") and str(alias or "").endswith("@latest") \
                and not node_class.get("allow_latest_ami", False):
            errors.append("%s.ami_alias: %r is not pinned (every AMI release would replace every node); pin a version "
                          "or set allow_latest_ami" % (here, alias))
    return errors


def nodepool_errors(nodepools, node_classes=None, path="nodepools_list"):
    """What the NodePool CRD does not check, each naming the variable path: duplicate names, a node_class
    that is not defined, values no instance has, contradictory requirements."""
    if not isinstance(nodepools, list):
        return ["%s: must be a list of NodePools" % path]
    errors = []
    class_names = set(c.get("name") for c in (node_classes or []) if isinstance(c, dict))
    seen = set()
    for index, pool in enumerate(nodepools):
        here = "%s[%d]" % (path, index)
        if not isinstance(pool, dict):
            errors.append("%s: must be a mapping" % here)
            continue
        name = pool.get("name")
        if name in seen:
            errors.append("%s.name: %r is defined twice" % (here, name))
        seen.add(name)
        if node_classes is not None and pool.get("node_class") not in class_names:
            errors.append("%s.node_class: %r is not one of the node classes (%s)" % (here, pool.get("node_class"), ", ".join(sorted(class_names))))
        errors.extend(_requirement_errors(pool.get("requirements"), here + ".requirements"))
    return errors


def nodepool_warnings(nodepools, path="nodepools_list"):
    warnings = []
    for index, pool in enumerate(nodepools or []):
        requirements = pool.get("requirements") or []
        capacity = [r for r in requirements if r.get("key") == "karpenter.sh/capacity-type" and r.get("operator") == "In"]
        if not any("spot" in _values(r) for r in capacity):
            continue
        types = [r for r in requirements if r.get("key") == "node.kubernetes.io/instance-type" and r.get("operator") == "In"]
        if types and min(len(_values(r)) for r in types) < MIN_SPOT_INSTANCE_TYPES:
            warnings.append(
                "%s[%d] (%s): a spot NodePool limited to %d instance types; allow at least %d so Karpenter can pick "
                "from enough spot pools (best practices: over-constraining spot hurts availability)"
                % (path, index, pool.get("name"), min(len(_values(r)) for r in types), MIN_SPOT_INSTANCE_TYPES)
            )
    return warnings


def _camel_requirement(requirement):
    if not isinstance(requirement, dict):
        return requirement  # the CRD check names it
    result = dict((k, v) for k, v in requirement.items() if k not in ("values", "min_values", "minValues"))
    if requirement.get("values") is not None:
        result["values"] = [str(v) for v in requirement["values"]]
    min_values = requirement.get("min_values", requirement.get("minValues"))
    if min_values is not None:
        result["minValues"] = min_values
    return result


def _str(value):
    # YAML reads 1m, 720h as strings, but 30 or 1.5 as numbers: the CRD wants strings.
    return value if isinstance(value, str) else str(value)


def nodepool_manifest(pool, node_classes, managed_by="eks_autoscaling"):
    """A karpenter.sh/v1 NodePool from the role's snake_case description.

    Renders what it is given, without judging it: the CRD check (crd_errors) names what is wrong.
    """
    node_class = next((c for c in node_classes or [] if isinstance(c, dict) and c.get("name") == pool.get("node_class")), {})
    kind = node_class.get("kind", "EC2NodeClass")
    disruption = dict(pool.get("disruption") or {})
    template_spec = {
        "nodeClassRef": {"group": NODECLASS_KINDS.get(kind, ("", ""))[0], "kind": kind, "name": pool.get("node_class")},
        "requirements": [_camel_requirement(r) for r in pool.get("requirements") or []],
    }
    for field, key in (("taints", "taints"), ("startup_taints", "startupTaints")):
        if pool.get(field):
            template_spec[key] = pool[field]
    if pool.get("expire_after") is not None:
        template_spec["expireAfter"] = _str(pool["expire_after"])
    if pool.get("termination_grace_period") is not None:
        template_spec["terminationGracePeriod"] = _str(pool["termination_grace_period"])
    spec_disruption = {"consolidationPolicy": disruption.pop("consolidation_policy", "WhenEmptyOrUnderutilized")}
    if "consolidate_after" in disruption:
        spec_disruption["consolidateAfter"] = _str(disruption.pop("consolidate_after"))
    if disruption.get("budgets"):
        spec_disruption["budgets"] = [
            dict((k, _str(v) if k in ("nodes", "duration") else v) for k, v in b.items()) if isinstance(b, dict) else b
            for b in disruption.pop("budgets")
        ]
    disruption.pop("budgets", None)
    spec_disruption.update(disruption)  # anything else: the CRD check names unknown fields
    spec = {
        "template": {"metadata": {"labels": dict(pool.get("labels") or {})}, "spec": template_spec},
        "disruption": spec_disruption,
    }
    if pool.get("annotations"):
        spec["template"]["metadata"]["annotations"] = dict(pool["annotations"])
    if pool.get("limits"):
        spec["limits"] = dict((k, v if isinstance(v, int) and not isinstance(v, bool) else _str(v)) for k, v in pool["limits"].items())
    if pool.get("weight") is not None:
        spec["weight"] = pool["weight"]
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": pool.get("name"), "labels": {"app.kubernetes.io/managed-by": managed_by}},
        "spec": spec,
    }


def nodeclass_manifest(node_class, cluster_name, managed_by="eks_autoscaling"):
    """An EC2NodeClass (karpenter.k8s.aws/v1) from the role's description.

    Renders what it is given, without judging it: the CRD check (crd_errors) names what is wrong.
    """
    kind = node_class.get("kind", "EC2NodeClass")
    group, version = NODECLASS_KINDS.get(kind, ("unknown", "v1"))
    manifest = {
        "apiVersion": "%s/%s" % (group, version),
        "kind": kind,
        "metadata": {"name": node_class.get("name"), "labels": {"app.kubernetes.io/managed-by": managed_by}},
    }
    spec = {"tags": dict({"karpenter.sh/discovery": cluster_name}, **(node_class.get("tags") or {}))}
    for field, key in (("subnet_selector_terms", "subnetSelectorTerms"), ("security_group_selector_terms", "securityGroupSelectorTerms")):
        if node_class.get(field) is not None:
            spec[key] = node_class[field]
    if node_class.get("ami_selector_terms"):
        spec["amiSelectorTerms"] = node_class["ami_selector_terms"]
    elif node_class.get("ami_alias"):
        spec["amiSelectorTerms"] = [{"alias": node_class["ami_alias"]}]
    for field, key in (("role", "role"), ("instance_profile", "instanceProfile")):
        if node_class.get(field) is not None:
            spec[key] = node_class[field]
    for field, key in NODECLASS_FIELDS:
        if node_class.get(field) is not None:
            spec[key] = node_class[field]
    manifest["spec"] = spec
    return manifest


class FilterModule(object):
    def filters(self):
        return {
            "nodepool_errors": nodepool_errors,
            "nodeclass_errors": nodeclass_errors,
            "nodepool_warnings": nodepool_warnings,
            "nodepool_manifest": nodepool_manifest,
            "nodeclass_manifest": nodeclass_manifest,
        }
