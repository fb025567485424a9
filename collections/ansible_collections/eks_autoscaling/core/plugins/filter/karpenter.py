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
  - C(nodepool_errors) returns a list of error strings, each naming the variable path of the bad field
    (for example C(nodepools_list[0].requirements[1].operator)). An empty list means the input is valid.
  - C(nodepool_warnings) returns advice that does not block, such as a spot NodePool allowing fewer than
    five instance types, which the Karpenter best practices warn hurts spot availability.
  - C(nodepool_manifest) renders one NodePool (C(karpenter.sh/v1)) and C(nodeclass_manifest) one node class
    (C(karpenter.k8s.aws/v1) EC2NodeClass or C(karpenter.kwok.sh/v1alpha1) KWOKNodeClass) from the role's
    snake_case variables.
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

import re

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
CONSOLIDATION_POLICIES = ("WhenEmpty", "WhenEmptyOrUnderutilized")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
BUDGET_REASONS = ("Underutilized", "Empty", "Drifted")
NODECLASS_KINDS = {
    "EC2NodeClass": ("karpenter.k8s.aws", "v1"),
    "KWOKNodeClass": ("karpenter.kwok.sh", "v1alpha1"),
}
KNOWN_VALUES = {
    "karpenter.sh/capacity-type": ("spot", "on-demand", "reserved"),
    "kubernetes.io/arch": ("amd64", "arm64"),
    "kubernetes.io/os": ("linux", "windows"),
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Karpenter v1 durations: Go durations in s/m/h, or "Never".
DURATION = re.compile(r"^(Never|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
AMI_ALIAS = re.compile(r"^(al2|al2023|bottlerocket|windows2019|windows2022|windows2025)@(v[0-9]{8}|v[0-9]+\.[0-9]+\.[0-9]+|latest)$")
MIN_SPOT_INSTANCE_TYPES = 5


def _values(requirement):
    return [str(v) for v in (requirement.get("values") or [])]


def _requirement_errors(requirements, path):
    errors = []
    by_key = {}
    for index, requirement in enumerate(requirements or []):
        here = "%s[%d]" % (path, index)
        if not isinstance(requirement, dict):
            errors.append("%s: must be a mapping with key, operator and values" % here)
            continue
        key, operator, values = requirement.get("key"), requirement.get("operator"), _values(requirement)
        if not key:
            errors.append("%s.key: is required" % here)
            continue
        if operator not in OPERATORS:
            errors.append("%s.operator: %r is not one of %s" % (here, operator, ", ".join(OPERATORS)))
            continue
        if operator in ("In", "NotIn") and not values:
            errors.append("%s.values: %s needs at least one value" % (here, operator))
        if operator in ("Exists", "DoesNotExist") and values:
            errors.append("%s.values: %s takes no values" % (here, operator))
        if operator in ("Gt", "Lt"):
            if len(values) != 1 or not values[0].lstrip("-").isdigit():
                errors.append("%s.values: %s takes exactly one integer value" % (here, operator))
        known = KNOWN_VALUES.get(key)
        if known and operator in ("In", "NotIn"):
            unknown = [v for v in values if v not in known]
            if unknown:
                errors.append("%s.values: %s for %s; allowed: %s" % (here, ", ".join(unknown), key, ", ".join(known)))
        min_values = requirement.get("min_values", requirement.get("minValues"))
        if min_values is not None:
            if not isinstance(min_values, int) or isinstance(min_values, bool) or min_values < 1:
                errors.append("%s.min_values: must be a positive integer" % here)
            elif operator == "In" and min_values > len(values):
                errors.append("%s.min_values: %d is more than the %d values allowed" % (here, min_values, len(values)))
        by_key.setdefault(key, []).append((here, operator, values))
    for key, entries in by_key.items():
        errors.extend(_contradictions(key, entries))
    return errors


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
        elif operator == "Gt" and values and values[0].lstrip("-").isdigit():
            lower = int(values[0]) if lower is None else max(lower, int(values[0]))
        elif operator == "Lt" and values and values[0].lstrip("-").isdigit():
            upper = int(values[0]) if upper is None else min(upper, int(values[0]))
    last = entries[-1][0]
    if allowed is not None and not (allowed - denied):
        errors.append("%s: requirements on %s contradict each other: no value is both allowed (In) and not excluded (NotIn)" % (last, key))
    if does_not_exist and (exists or allowed is not None or lower is not None or upper is not None):
        errors.append("%s: %s cannot both be required (In/Exists/Gt/Lt) and DoesNotExist" % (does_not_exist, key))
    if lower is not None and upper is not None and lower + 1 >= upper:
        errors.append("%s: requirements on %s contradict each other: Gt %d and Lt %d leave no value" % (last, key, lower, upper))
    return errors


def _disruption_errors(disruption, path):
    errors = []
    disruption = disruption or {}
    policy = disruption.get("consolidation_policy", "WhenEmptyOrUnderutilized")
    if policy not in CONSOLIDATION_POLICIES:
        errors.append("%s.consolidation_policy: %r is not one of %s" % (path, policy, ", ".join(CONSOLIDATION_POLICIES)))
    after = disruption.get("consolidate_after")
    if after is None:
        errors.append("%s.consolidate_after: is required by karpenter.sh/v1 (a duration such as 30s or 5m, or Never)" % path)
    elif not DURATION.match(str(after)):
        errors.append("%s.consolidate_after: %r is not a duration (30s, 5m, 1h) or Never" % (path, after))
    for index, budget in enumerate(disruption.get("budgets") or []):
        here = "%s.budgets[%d]" % (path, index)
        nodes = str(budget.get("nodes", ""))
        if not re.match(r"^([0-9]+|[0-9]+%)$", nodes) or (nodes.endswith("%") and int(nodes[:-1]) > 100):
            errors.append("%s.nodes: %r must be a count or a percentage up to 100%%" % (here, budget.get("nodes")))
        if bool(budget.get("schedule")) != bool(budget.get("duration")):
            errors.append("%s: schedule and duration go together" % here)
        if budget.get("duration") and not DURATION.match(str(budget["duration"])):
            errors.append("%s.duration: %r is not a duration" % (here, budget["duration"]))
        bad = [r for r in budget.get("reasons") or [] if r not in BUDGET_REASONS]
        if bad:
            errors.append("%s.reasons: %s not in %s" % (here, ", ".join(bad), ", ".join(BUDGET_REASONS)))
    return errors


def _taint_errors(taints, path):
    errors = []
    for index, taint in enumerate(taints or []):
        here = "%s[%d]" % (path, index)
        if not taint.get("key"):
            errors.append("%s.key: is required" % here)
        if taint.get("effect") not in TAINT_EFFECTS:
            errors.append("%s.effect: %r is not one of %s" % (here, taint.get("effect"), ", ".join(TAINT_EFFECTS)))
    return errors


def nodeclass_errors(node_classes, path="nodepools_node_classes"):
    errors = []
    seen = set()
    for index, node_class in enumerate(node_classes or []):
        here = "%s[%d]" % (path, index)
        name = node_class.get("name")
        if not name or not DNS_SUBDOMAIN.match(str(name)):
            errors.append("%s.name: %r is not a valid Kubernetes name" % (here, name))
        if name in seen:
            errors.append("%s.name: %r is defined twice" % (here, name))
        seen.add(name)
        kind = node_class.get("kind", "EC2NodeClass")
        if kind not in NODECLASS_KINDS:
            errors.append("%s.kind: %r is not one of %s" % (here, kind, ", ".join(NODECLASS_KINDS)))
            continue
        if kind != "EC2NodeClass":
            continue
        if bool(node_class.get("role")) == bool(node_class.get("instance_profile")):
            errors.append("%s: set exactly one of role and instance_profile" % here)
        alias = node_class.get("ami_alias")
        if not node_class.get("ami_selector_terms"):
            if not alias:
                errors.append("%s.ami_alias: is required (or ami_selector_terms), e.g. al2023@v20251120" % here)
            elif not AMI_ALIAS.match(str(alias)):
                errors.append("%s.ami_alias: %r is not family@version (al2023, bottlerocket, ...)" % (here, alias))
            elif str(alias).endswith("@latest") and not node_class.get("allow_latest_ami", False):
                errors.append("%s.ami_alias: %r is not pinned; pin a version or set allow_latest_ami" % (here, alias))
        for field in ("subnet_selector_terms", "security_group_selector_terms"):
            if not node_class.get(field):
                errors.append("%s.%s: at least one selector term is required" % (here, field))
    return errors


def nodepool_errors(nodepools, node_classes=None, path="nodepools_list"):
    """Every problem in a list of NodePools, each naming the variable path of the bad field."""
    if not isinstance(nodepools, list):
        return ["%s: must be a list of NodePools" % path]
    errors = []
    class_names = set(c.get("name") for c in (node_classes or []))
    seen = set()
    for index, pool in enumerate(nodepools):
        here = "%s[%d]" % (path, index)
        if not isinstance(pool, dict):
            errors.append("%s: must be a mapping" % here)
            continue
        name = pool.get("name")
        if not name or not DNS_SUBDOMAIN.match(str(name)):
            errors.append("%s.name: %r is not a valid Kubernetes name" % (here, name))
        if name in seen:
            errors.append("%s.name: %r is defined twice" % (here, name))
        seen.add(name)
        if node_classes is not None and pool.get("node_class") not in class_names:
            errors.append("%s.node_class: %r is not one of the node classes (%s)" % (here, pool.get("node_class"), ", ".join(sorted(class_names))))
        errors.extend(_requirement_errors(pool.get("requirements"), here + ".requirements"))
        errors.extend(_disruption_errors(pool.get("disruption"), here + ".disruption"))
        errors.extend(_taint_errors(pool.get("taints"), here + ".taints"))
        errors.extend(_taint_errors(pool.get("startup_taints"), here + ".startup_taints"))
        weight = pool.get("weight")
        if weight is not None and (not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100):
            errors.append("%s.weight: %r must be an integer from 1 to 100" % (here, weight))
        for resource, quantity in (pool.get("limits") or {}).items():
            if not QUANTITY.match(str(quantity)):
                errors.append("%s.limits.%s: %r is not a Kubernetes quantity" % (here, resource, quantity))
        expire = pool.get("expire_after")
        if expire is not None and not DURATION.match(str(expire)):
            errors.append("%s.expire_after: %r is not a duration (720h) or Never" % (here, expire))
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
    result = {"key": requirement["key"], "operator": requirement["operator"]}
    if requirement.get("values"):
        result["values"] = [str(v) for v in requirement["values"]]
    min_values = requirement.get("min_values", requirement.get("minValues"))
    if min_values is not None:
        result["minValues"] = min_values
    return result


def nodepool_manifest(pool, node_classes, managed_by="eks_autoscaling"):
    """A karpenter.sh/v1 NodePool from the role's snake_case description."""
    node_class = next(c for c in node_classes if c.get("name") == pool["node_class"])
    kind = node_class.get("kind", "EC2NodeClass")
    disruption = pool.get("disruption") or {}
    template_spec = {
        "nodeClassRef": {"group": NODECLASS_KINDS[kind][0], "kind": kind, "name": node_class["name"]},
        "requirements": [_camel_requirement(r) for r in pool.get("requirements") or []],
    }
    for field, key in (("taints", "taints"), ("startup_taints", "startupTaints")):
        if pool.get(field):
            template_spec[key] = pool[field]
    if pool.get("expire_after") is not None:
        template_spec["expireAfter"] = str(pool["expire_after"])
    if pool.get("termination_grace_period") is not None:
        template_spec["terminationGracePeriod"] = str(pool["termination_grace_period"])
    spec = {
        "template": {"metadata": {"labels": dict(pool.get("labels") or {})}, "spec": template_spec},
        "disruption": {
            "consolidationPolicy": disruption.get("consolidation_policy", "WhenEmptyOrUnderutilized"),
            "consolidateAfter": str(disruption["consolidate_after"]),
        },
    }
    if pool.get("annotations"):
        spec["template"]["metadata"]["annotations"] = dict(pool["annotations"])
    if disruption.get("budgets"):
        spec["disruption"]["budgets"] = [dict((k, str(v) if k == "nodes" else v) for k, v in b.items()) for b in disruption["budgets"]]
    if pool.get("limits"):
        spec["limits"] = dict((k, str(v)) for k, v in pool["limits"].items())
    if pool.get("weight") is not None:
        spec["weight"] = pool["weight"]
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": pool["name"], "labels": {"app.kubernetes.io/managed-by": managed_by}},
        "spec": spec,
    }


def nodeclass_manifest(node_class, cluster_name, managed_by="eks_autoscaling"):
    """An EC2NodeClass (karpenter.k8s.aws/v1) or KWOKNodeClass (the lab) from the role's description."""
    kind = node_class.get("kind", "EC2NodeClass")
    group, version = NODECLASS_KINDS[kind]
    manifest = {
        "apiVersion": "%s/%s" % (group, version),
        "kind": kind,
        "metadata": {"name": node_class["name"], "labels": {"app.kubernetes.io/managed-by": managed_by}},
    }
    if kind != "EC2NodeClass":
        return manifest
    spec = {
        "subnetSelectorTerms": node_class["subnet_selector_terms"],
        "securityGroupSelectorTerms": node_class["security_group_selector_terms"],
        "tags": dict({"karpenter.sh/discovery": cluster_name}, **(node_class.get("tags") or {})),
    }
    if node_class.get("ami_selector_terms"):
        spec["amiSelectorTerms"] = node_class["ami_selector_terms"]
    else:
        spec["amiSelectorTerms"] = [{"alias": node_class["ami_alias"]}]
    if node_class.get("role"):
        spec["role"] = node_class["role"]
    else:
        spec["instanceProfile"] = node_class["instance_profile"]
    for field, key in (("block_device_mappings", "blockDeviceMappings"), ("metadata_options", "metadataOptions"), ("user_data", "userData")):
        if node_class.get(field):
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
