# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that validate HorizontalPodAutoscalers described in snake_case and render autoscaling/v2."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: hpa
short_description: Validate and render autoscaling/v2 HorizontalPodAutoscalers
version_added: 0.1.0
author: Karpenter HPA EKS contributors
description:
  - C(hpa_errors) returns a list of error strings, each naming the variable path of the bad field
    (for example C(hpa_autoscalers[0].min_replicas)). An empty list means the input is valid.
    It refuses min_replicas below 1, min_replicas above max_replicas, utilization outside 1..100,
    an unknown target kind, an HPA with no metric, unknown keys and malformed behavior policies.
  - C(hpa_manifest) renders one C(autoscaling/v2) HorizontalPodAutoscaler from the role's variables.
options:
  _input:
    description: The list of autoscalers (C(hpa_errors)) or one autoscaler (C(hpa_manifest)).
    type: raw
    required: true
  path:
    description: Variable name used in error messages (C(hpa_errors)).
    type: str
    default: hpa_autoscalers
"""

EXAMPLES = r"""
- name: Refuse bad autoscalers before anything changes
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ hpa_autoscalers | eks_autoscaling.core.hpa_errors('hpa_autoscalers') }}"

- name: Render one HPA
  ansible.builtin.debug:
    msg: "{{ {'name': 'web', 'namespace': 'shop', 'target': {'kind': 'Deployment', 'name': 'web'},
             'min_replicas': 2, 'max_replicas': 10, 'cpu_utilization': 60} | eks_autoscaling.core.hpa_manifest }}"
"""

RETURN = r"""
_value:
  description: A list of error strings (C(hpa_errors)) or an HPA manifest (C(hpa_manifest)).
  type: raw
"""

from ansible_collections.eks_autoscaling.core.plugins.module_utils import input_rules

# What the HPA controller can scale through the /scale subresource, by kind.
TARGET_API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "ReplicaSet": "apps/v1"}
POLICY_TYPES = ("Pods", "Percent")
SELECT_POLICIES = ("Max", "Min", "Disabled")
AUTOSCALER_KEYS = {"name", "namespace", "target", "min_replicas", "max_replicas", "cpu_utilization", "memory_utilization", "behavior"}
TARGET_KEYS = {"kind", "name", "api_version"}
BEHAVIOR_KEYS = {"scale_up", "scale_down"}
RULES_KEYS = {"stabilization_window_seconds", "select_policy", "policies"}
POLICY_KEYS = {"type", "value", "period_seconds"}
# Kubernetes' own bounds for behavior fields (autoscaling/v2 validation).
MAX_STABILIZATION_SECONDS = 3600
MAX_PERIOD_SECONDS = 1800


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown_keys(item, allowed, path):
    return [f"{path}.{key} is not a known field (known: {', '.join(sorted(allowed))})" for key in sorted(set(item) - allowed)]


def _rules_errors(rules, path):
    if not isinstance(rules, dict):
        return [f"{path} must be a dict"]
    errors = _unknown_keys(rules, RULES_KEYS, path)
    window = rules.get("stabilization_window_seconds")
    if window is not None and not (_is_int(window) and 0 <= window <= MAX_STABILIZATION_SECONDS):
        errors.append(f"{path}.stabilization_window_seconds must be an integer from 0 to {MAX_STABILIZATION_SECONDS}, got {window!r}")
    if rules.get("select_policy") is not None and rules["select_policy"] not in SELECT_POLICIES:
        errors.append(f"{path}.select_policy must be one of {', '.join(SELECT_POLICIES)}, got {rules['select_policy']!r}")
    policies = rules.get("policies")
    if policies is None:
        return errors
    if not isinstance(policies, list):
        return errors + [f"{path}.policies must be a list"]
    for index, policy in enumerate(policies):
        where = f"{path}.policies[{index}]"
        if not isinstance(policy, dict):
            errors.append(f"{where} must be a dict")
            continue
        errors += _unknown_keys(policy, POLICY_KEYS, where)
        if policy.get("type") not in POLICY_TYPES:
            errors.append(f"{where}.type must be one of {', '.join(POLICY_TYPES)}, got {policy.get('type')!r}")
        if not (_is_int(policy.get("value")) and policy["value"] > 0):
            errors.append(f"{where}.value must be an integer above 0, got {policy.get('value')!r}")
        period = policy.get("period_seconds")
        if not (_is_int(period) and 1 <= period <= MAX_PERIOD_SECONDS):
            errors.append(f"{where}.period_seconds must be an integer from 1 to {MAX_PERIOD_SECONDS}, got {period!r}")
    return errors


def _autoscaler_errors(item, path):
    if not isinstance(item, dict):
        return [f"{path} must be a dict"]
    errors = _unknown_keys(item, AUTOSCALER_KEYS, path)
    for field, kind, what in (("name", "dns_subdomain", "a DNS subdomain"), ("namespace", "dns_label", "a DNS label")):
        value = item.get(field)
        if not input_rules.is_k8s_name(value, kind):
            errors.append(f"{path}.{field} is required and must be {what}, got {value!r}")

    target = item.get("target")
    if not isinstance(target, dict):
        errors.append(f"{path}.target is required: a dict with kind and name")
    else:
        errors += _unknown_keys(target, TARGET_KEYS, f"{path}.target")
        if target.get("kind") not in TARGET_API_VERSIONS:
            errors.append(f"{path}.target.kind must be one of {', '.join(TARGET_API_VERSIONS)}, got {target.get('kind')!r}")
        if not input_rules.is_k8s_name(target.get("name"), "dns_subdomain"):
            errors.append(f"{path}.target.name is required and must be a DNS subdomain, got {target.get('name')!r}")

    low, high = item.get("min_replicas"), item.get("max_replicas")
    if not (_is_int(low) and low >= 1):
        errors.append(f"{path}.min_replicas must be an integer of at least 1, got {low!r}")
    if not (_is_int(high) and high >= 1):
        errors.append(f"{path}.max_replicas must be an integer of at least 1, got {high!r}")
    if _is_int(low) and _is_int(high) and low > high:
        errors.append(f"{path}.min_replicas ({low}) must not be greater than max_replicas ({high})")

    metrics = [field for field in ("cpu_utilization", "memory_utilization") if item.get(field) is not None]
    if not metrics:
        errors.append(f"{path} needs cpu_utilization or memory_utilization (or both)")
    for field in metrics:
        value = item[field]
        if not (_is_int(value) and 1 <= value <= 100):
            errors.append(f"{path}.{field} must be an integer percentage from 1 to 100, got {value!r}")

    behavior = item.get("behavior")
    if behavior is not None:
        if not isinstance(behavior, dict):
            errors.append(f"{path}.behavior must be a dict")
        else:
            errors += _unknown_keys(behavior, BEHAVIOR_KEYS, f"{path}.behavior")
            for direction in ("scale_up", "scale_down"):
                if behavior.get(direction) is not None:
                    errors += _rules_errors(behavior[direction], f"{path}.behavior.{direction}")
    return errors


def hpa_errors(autoscalers, path="hpa_autoscalers"):
    if not isinstance(autoscalers, list):
        return [f"{path} must be a list"]
    errors = []
    seen = set()
    for index, item in enumerate(autoscalers):
        errors += _autoscaler_errors(item, f"{path}[{index}]")
        if isinstance(item, dict):
            key = (item.get("namespace"), item.get("name"))
            if key in seen:
                errors.append(f"{path}[{index}] repeats HPA {key[0]}/{key[1]}")
            seen.add(key)
    return errors


def _rules_manifest(rules):
    rendered = {}
    if rules.get("stabilization_window_seconds") is not None:
        rendered["stabilizationWindowSeconds"] = rules["stabilization_window_seconds"]
    if rules.get("select_policy") is not None:
        rendered["selectPolicy"] = rules["select_policy"]
    if rules.get("policies"):
        rendered["policies"] = [{"type": p["type"], "value": p["value"], "periodSeconds": p["period_seconds"]} for p in rules["policies"]]
    return rendered


def hpa_manifest(item, managed_by="eks_autoscaling"):
    target = item["target"]
    metrics = [
        {"type": "Resource", "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": item[field]}}}
        for resource, field in (("cpu", "cpu_utilization"), ("memory", "memory_utilization"))
        if item.get(field) is not None
    ]
    spec = {
        "scaleTargetRef": {
            "apiVersion": target.get("api_version") or TARGET_API_VERSIONS[target["kind"]],
            "kind": target["kind"],
            "name": target["name"],
        },
        "minReplicas": item["min_replicas"],
        "maxReplicas": item["max_replicas"],
        "metrics": metrics,
    }
    behavior = item.get("behavior") or {}
    rendered = {key: _rules_manifest(behavior[field]) for field, key in (("scale_up", "scaleUp"), ("scale_down", "scaleDown")) if behavior.get(field)}
    if rendered:
        spec["behavior"] = rendered
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": item["name"], "namespace": item["namespace"], "labels": {"app.kubernetes.io/managed-by": managed_by}},
        "spec": spec,
    }


class FilterModule(object):
    def filters(self):
        return {"hpa_errors": hpa_errors, "hpa_manifest": hpa_manifest}
