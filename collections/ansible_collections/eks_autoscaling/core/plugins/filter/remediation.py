# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions of the remediation playbooks: what to patch on NodePools and HPAs, and why.

The previous values live in annotations on the objects themselves, so a restore needs no other state
and any number of repeated alarms, interruptions or playbook runs converge on the same objects.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: remediation
short_description: Decide the NodePool and HPA patches of the remediation playbooks
version_added: 0.1.0
author: Karpenter HPA EKS contributors
description:
  - C(nodes_for_instances) returns the Nodes of a list of instance ids (those that have one), found by
    C(spec.providerID), which ends with C(/<instance id>).
  - C(nodepool_cost_cap) returns a merge patch capping a NodePool's C(spec.limits) (at a ceiling, or at what is
    provisioned now) and remembering the previous limits in an annotation; an empty dict when already capped.
  - C(nodepool_cost_restore) returns the merge patch that puts the remembered limits back exactly, or an empty dict.
  - C(hpa_cost_cap) and C(hpa_cost_restore) do the same for an HPA's C(maxReplicas).
  - C(spot_interruptions_patch) records spot interruptions (instance type, instance id, time) on a NodePool and,
    when N interruptions of one type fall within the window, widens its instance types or asks for the fallback
    pool's weight to rise; C(spot_revert_patch) undoes the widening
    after a quiet period. C(nodepool_interruptions) groups interrupted Nodes by their NodePool for it; its
    optional argument, EC2 instances as C(amazon.aws.ec2_instance_info) returns them, adds the instances whose
    Node is gone, by their C(karpenter.sh/nodepool) tag and instance type.
  - C(cordon_patches) returns the patches cordoning some Nodes, for one k8s task (state patched).
  - C(remediation_events) returns the Kubernetes Events recording a remediation on each object it touched.
  - >-
    C(remediation_held) keeps one writer per field: given the manifest a role is about to apply (a NodePool or
    an HPA) and the live object (empty when there is none), it returns C(manifest) (the manifest to apply, with
    every field a remediation holds now - a cost cap's C(spec.limits) or C(maxReplicas), a spot widening's
    C(requirements), a fallback's C(weight) - kept at its live value, and the annotation the remediation restores
    from set to what the manifest asks, so the restore puts back exactly the inventory's value) and C(held) (the
    held fields, as C(field), C(live), C(wanted) and C(by), for the role to report).
options:
  _input:
    description: The object (Node list, NodePool or HPA) the decision is about.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Cap a NodePool at what it has provisioned
  kubernetes.core.k8s:
    state: patched
    kind: NodePool
    api_version: karpenter.sh/v1
    name: default
    definition: "{{ nodepool | eks_autoscaling.core.nodepool_cost_cap('current', {}, 'alarm:eksworkshop-estimated-charges') }}"
"""

RETURN = r"""
_value:
  description: A merge patch (dict, empty when nothing is to change), or Nodes, patches or Events as a list.
  type: raw
"""

import hashlib
import json

ANNOTATION_PREFIX = "eks-autoscaling.io/"
LIMITS_BEFORE = ANNOTATION_PREFIX + "limits-before-cost-cap"
CAPPED_BY = ANNOTATION_PREFIX + "cost-capped-by"
MAX_REPLICAS_BEFORE = ANNOTATION_PREFIX + "max-replicas-before-cost-cap"
INTERRUPTIONS = ANNOTATION_PREFIX + "spot-interruptions"
REQUIREMENTS_BEFORE = ANNOTATION_PREFIX + "requirements-before-widening"
WEIGHT_BEFORE = ANNOTATION_PREFIX + "weight-before-spot-fallback"
WIDENED_AT = ANNOTATION_PREFIX + "spot-widened-at"
INSTANCE_TYPE_KEY = "node.kubernetes.io/instance-type"
# Reasons of remediations that undo an earlier one: recorded as Normal Events.
NORMAL_REASONS = ("CostCapRestored", "SpotWideningReverted")
# No annotation grows without bound: interruptions older than the window are dropped, and at most this many kept.
MAX_RECORDED_INTERRUPTIONS = 50


def _annotations(obj):
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def node_for_instance(nodes, instance_id):
    if not instance_id:
        return {}
    for node in nodes or []:
        provider_id = ((node.get("spec") or {}).get("providerID") or "")
        if provider_id.rsplit("/", 1)[-1] == instance_id:
            return node
    return {}


def nodes_for_instances(nodes, instance_ids):
    """The Nodes of several instances (an AWS Health event may name many), in the order of the ids."""
    found = [node_for_instance(nodes, instance_id) for instance_id in instance_ids or []]
    return [node for node in found if node]


def remediation_events(objects, reason, message, component, timestamp, key):
    """One Kubernetes Event per object a remediation touched, for one k8s task to apply them all.

    Each is named after its object and the key (the SQS message id), so handling a message again
    changes nothing; Normal for the undoing reasons, Warning otherwise.
    """
    suffix = hashlib.sha1(str(key).encode()).hexdigest()[:12]
    events = []
    for obj in objects or []:
        metadata = obj.get("metadata") or {}
        involved = {"apiVersion": obj.get("apiVersion") or "v1", "kind": obj.get("kind") or "Node", "name": metadata["name"]}
        if metadata.get("namespace"):
            involved["namespace"] = metadata["namespace"]
        if metadata.get("uid"):
            involved["uid"] = metadata["uid"]
        events.append({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{metadata['name']}.{suffix}", "namespace": metadata.get("namespace") or "default"},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": "Normal" if reason in NORMAL_REASONS else "Warning",
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
        })
    return events


def nodepool_interruptions(nodes, instances=None):
    """The interruptions of some Nodes, by the Karpenter NodePool that made them (nodes of none are left out):
    [{"nodepool": name, "interruptions": [{"type": instance type, "id": instance id}]}], in first-seen order.

    instances: EC2 instances (as amazon.aws.ec2_instance_info returns them) whose Node is already gone, as
    when Karpenter drained and deleted it first; Karpenter tags each instance it launches with its NodePool."""
    pools = {}
    seen = set()
    for node in nodes or []:
        labels = (node.get("metadata") or {}).get("labels") or {}
        pool = labels.get("karpenter.sh/nodepool")
        if not pool:
            continue
        instance_id = (((node.get("spec") or {}).get("providerID")) or "").rsplit("/", 1)[-1] or None
        seen.add(instance_id)
        pools.setdefault(pool, []).append({"type": labels.get(INSTANCE_TYPE_KEY, "unknown"), "id": instance_id})
    for instance in instances or []:
        pool = (instance.get("tags") or {}).get("karpenter.sh/nodepool")
        if not pool or instance.get("instance_id") in seen:
            continue
        seen.add(instance.get("instance_id"))
        pools.setdefault(pool, []).append({"type": instance.get("instance_type") or "unknown", "id": instance.get("instance_id")})
    return [{"nodepool": name, "interruptions": items} for name, items in pools.items()]


def cordon_patches(nodes):
    """Patches marking Nodes unschedulable, for one k8s task (state: patched) to cordon them all."""
    return [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": node["metadata"]["name"]}, "spec": {"unschedulable": True}}
            for node in nodes or []]


def nodepool_cost_cap(nodepool, mode="current", ceiling=None, reason="cost alarm"):
    """Cap spec.limits; remember the limits before the first cap only, so repeated alarms keep the original."""
    if LIMITS_BEFORE in _annotations(nodepool):
        return {}
    spec = nodepool.get("spec") or {}
    before = dict(spec.get("limits") or {})
    provisioned = ((nodepool.get("status") or {}).get("resources")) or {}
    if mode == "current":
        # What runs now stays; nothing more is launched. A pool with nothing provisioned is capped at 0.
        capped = {resource: str(provisioned.get(resource, "0")) for resource in ("cpu", "memory")}
    elif mode == "ceiling":
        capped = {resource: str(value) for resource, value in (ceiling or {}).items()}
        if not capped:
            raise ValueError("nodepool_cost_cap: mode 'ceiling' needs a ceiling such as {'cpu': '100', 'memory': '400Gi'}")
    else:
        raise ValueError(f"nodepool_cost_cap: mode must be 'current' or 'ceiling', got {mode!r}")
    return {
        "metadata": {"annotations": {LIMITS_BEFORE: json.dumps(before, sort_keys=True), CAPPED_BY: str(reason)}},
        "spec": {"limits": capped},
    }


def nodepool_cost_restore(nodepool):
    annotations = _annotations(nodepool)
    if LIMITS_BEFORE not in annotations:
        return {}
    before = json.loads(annotations[LIMITS_BEFORE])
    current = (nodepool.get("spec") or {}).get("limits") or {}
    # A merge patch removes a key by setting it to null: limits the pool did not have before go away.
    limits = {key: None for key in current if key not in before}
    limits.update(before)
    return {"metadata": {"annotations": {LIMITS_BEFORE: None, CAPPED_BY: None}}, "spec": {"limits": limits or None}}


def hpa_cost_cap(hpa, reason="cost alarm"):
    """Lower maxReplicas to the replicas running now (never below minReplicas)."""
    if MAX_REPLICAS_BEFORE in _annotations(hpa):
        return {}
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    capped = max(int(spec.get("minReplicas", 1)), int(status.get("currentReplicas", 0)))
    if capped >= int(spec["maxReplicas"]):
        return {}
    return {
        "metadata": {"annotations": {MAX_REPLICAS_BEFORE: str(spec["maxReplicas"]), CAPPED_BY: str(reason)}},
        "spec": {"maxReplicas": capped},
    }


def hpa_cost_restore(hpa):
    annotations = _annotations(hpa)
    if MAX_REPLICAS_BEFORE not in annotations:
        return {}
    return {
        "metadata": {"annotations": {MAX_REPLICAS_BEFORE: None, CAPPED_BY: None}},
        "spec": {"maxReplicas": int(annotations[MAX_REPLICAS_BEFORE])},
    }


def _recent(records, now, window_seconds):
    return [r for r in records if now - r.get("t", 0) <= window_seconds][-MAX_RECORDED_INTERRUPTIONS:]


def spot_interruptions_patch(nodepool, interruptions, now, threshold=3, window_seconds=1800,
                             extra_instance_types=None, action="widen"):
    """Record interruptions ({"type", "id"} each); widen the pool (or ask for the fallback's weight) when one
    type reaches the threshold within the window.

    Returns {"patch": merge patch for this NodePool, "widen": bool, "count": interruptions in the window of
    the type seen most}. An id already recorded counts once, so a redelivered event changes nothing.
    """
    annotations = _annotations(nodepool)
    records = _recent(json.loads(annotations.get(INTERRUPTIONS, "[]")), now, window_seconds)
    known = {r.get("id") for r in records if r.get("id")}
    added = False
    types = []
    for interruption in interruptions or []:
        instance_type, event_id = interruption.get("type") or "unknown", interruption.get("id")
        types.append(instance_type)
        if event_id and event_id in known:
            continue
        records.append({"t": int(now), "type": instance_type, **({"id": event_id} if event_id else {})})
        known.add(event_id)
        added = True
    records = records[-MAX_RECORDED_INTERRUPTIONS:]
    count = max([len([r for r in records if r.get("type") == t]) for t in types] or [0])
    if not added:
        return {"patch": {}, "widen": False, "count": count}
    patch = {"metadata": {"annotations": {INTERRUPTIONS: json.dumps(records, separators=(",", ":"))}}}
    widen = count >= threshold and WIDENED_AT not in annotations
    if widen:
        patch["metadata"]["annotations"][WIDENED_AT] = str(int(now))
        if action == "widen":
            requirements = ((nodepool.get("spec") or {}).get("template") or {}).get("spec", {}).get("requirements") or []
            widened = _widened_requirements(requirements, extra_instance_types or [])
            if widened != requirements:
                patch["metadata"]["annotations"][REQUIREMENTS_BEFORE] = json.dumps(requirements, sort_keys=True)
                patch["spec"] = {"template": {"spec": {"requirements": widened}}}
    return {"patch": patch, "widen": widen, "count": count}


def _widened_requirements(requirements, extra_instance_types):
    widened = []
    for requirement in requirements:
        if requirement.get("key") == INSTANCE_TYPE_KEY and requirement.get("operator") == "In":
            values = list(requirement.get("values") or [])
            requirement = {**requirement, "values": values + [t for t in extra_instance_types if t not in values]}
        widened.append(requirement)
    return widened


def spot_revert_patch(nodepool, now, quiet_seconds=3600):
    """After quiet_seconds without an interruption, put the requirements back and forget the widening."""
    annotations = _annotations(nodepool)
    if WIDENED_AT not in annotations:
        return {}
    records = json.loads(annotations.get(INTERRUPTIONS, "[]"))
    last = max([int(annotations[WIDENED_AT])] + [int(r.get("t", 0)) for r in records])
    if now - last < quiet_seconds:
        return {}
    patch = {"metadata": {"annotations": {WIDENED_AT: None, INTERRUPTIONS: None, REQUIREMENTS_BEFORE: None}}}
    if REQUIREMENTS_BEFORE in annotations:
        patch["spec"] = {"template": {"spec": {"requirements": json.loads(annotations[REQUIREMENTS_BEFORE])}}}
    return patch


def fallback_weight_patch(nodepool, weight):
    """Raise a fallback pool's weight, remembering the weight it had."""
    if WEIGHT_BEFORE in _annotations(nodepool):
        return {}
    before = (nodepool.get("spec") or {}).get("weight")
    return {"metadata": {"annotations": {WEIGHT_BEFORE: json.dumps(before)}}, "spec": {"weight": int(weight)}}


def fallback_weight_restore(nodepool):
    annotations = _annotations(nodepool)
    if WEIGHT_BEFORE not in annotations:
        return {}
    return {"metadata": {"annotations": {WEIGHT_BEFORE: None}}, "spec": {"weight": json.loads(annotations[WEIGHT_BEFORE])}}


# The fields remediations hold while they are in effect, per kind: the annotation that remembers the value
# to restore, the field's path, and how the annotation encodes it.
_HELD_FIELDS = {
    "NodePool": (
        # Encoded as the remediation encodes them, so an unchanged inventory rewrites the same string.
        (LIMITS_BEFORE, ("spec", "limits"), lambda v: json.dumps(v, sort_keys=True), json.loads),
        (REQUIREMENTS_BEFORE, ("spec", "template", "spec", "requirements"), lambda v: json.dumps(v, sort_keys=True), json.loads),
        (WEIGHT_BEFORE, ("spec", "weight"), json.dumps, json.loads),
    ),
    "HorizontalPodAutoscaler": (
        (MAX_REPLICAS_BEFORE, ("spec", "maxReplicas"), str, int),
    ),
}


def _get(obj, path):
    for key in path:
        obj = (obj or {}).get(key) if isinstance(obj, dict) else None
    return obj


def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    if value is None:
        obj.pop(path[-1], None)
    else:
        obj[path[-1]] = value


def _same_object(manifest, obj):
    meta, other = manifest.get("metadata") or {}, (obj or {}).get("metadata") or {}
    return (obj or {}).get("kind", manifest.get("kind")) == manifest.get("kind") and other.get("name") == meta.get("name") \
        and other.get("namespace", "") == meta.get("namespace", other.get("namespace", ""))


def remediation_held(manifest, live=None):
    """The manifest to apply without undoing a remediation in effect on the live object, and what it holds.

    live is the live object, or a list of live objects (as k8s_info returns them) to find it in by name."""
    if isinstance(live, list):
        live = next((obj for obj in live if _same_object(manifest, obj)), {})
    annotations = _annotations(live)
    result = json.loads(json.dumps(manifest))
    held = []
    for annotation, path, encode, decode in _HELD_FIELDS.get(manifest.get("kind"), ()):
        if annotation not in annotations:
            continue
        wanted, live_value = _get(manifest, path), _get(live, path)
        _set(result, path, json.loads(json.dumps(live_value)))
        # The restore puts back what the annotation says: from now on, what the inventory asks.
        restore_to = wanted if wanted is not None else ({} if annotation == LIMITS_BEFORE else None)
        result.setdefault("metadata", {}).setdefault("annotations", {})[annotation] = encode(restore_to)
        if CAPPED_BY in annotations and annotation in (LIMITS_BEFORE, MAX_REPLICAS_BEFORE):
            result["metadata"]["annotations"][CAPPED_BY] = annotations[CAPPED_BY]
        held.append({"field": ".".join(path), "live": live_value, "wanted": wanted,
                     "by": annotations.get(CAPPED_BY, annotation.split("/", 1)[1])})
    # The widening's own bookkeeping (WIDENED_AT, INTERRUPTIONS) is not in the manifest: a server-side apply
    # leaves fields it does not name to their writer.
    return {"manifest": result, "held": held}


class FilterModule(object):
    def filters(self):
        return {
            "nodes_for_instances": nodes_for_instances,
            "nodepool_cost_cap": nodepool_cost_cap,
            "nodepool_cost_restore": nodepool_cost_restore,
            "hpa_cost_cap": hpa_cost_cap,
            "hpa_cost_restore": hpa_cost_restore,
            "spot_interruptions_patch": spot_interruptions_patch,
            "nodepool_interruptions": nodepool_interruptions,
            "remediation_events": remediation_events,
            "cordon_patches": cordon_patches,
            "spot_revert_patch": spot_revert_patch,
            "fallback_weight_patch": fallback_weight_patch,
            "fallback_weight_restore": fallback_weight_restore,
            "remediation_held": remediation_held,
        }
