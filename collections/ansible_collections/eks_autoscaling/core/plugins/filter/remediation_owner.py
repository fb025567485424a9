# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which cluster of a fleet an event belongs to: the one remediation acts there, and only there."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: remediation_owner
short_description: Decide whether this host's cluster owns a remediation's event
version_added: 0.2.0
author: Karpenter HPA EKS contributors
description:
  - One rulebook reads a fleet's queue and runs one remediation playbook on every cluster host; each host asks
    this filter whether the event is its cluster's, and only the owner acts.
  - "Ruled out at once, with no API call (C(candidate) false): an event of another account than the host's
    O(cluster.account_id) (when both say), and an instance event of another region than the host's."
  - "Instance events (node remediations, or an acknowledged event naming instances): owned when one of this
    cluster's Nodes runs one of the instances (O(nodes), found by C(spec.providerID)), or when an instance with no
    Node here carries this cluster's tag: C(kubernetes.io/cluster/<name>), C(eks:cluster-name) (managed node groups)
    or C(eks:eks-cluster-name) (Karpenter). Without O(nodes) and O(instances) (not read yet), C(owns) is false and
    C(candidate) says whether they are worth reading. An acknowledgement of an instance starting needs no reading:
    a candidate owns it."
  - "Cost events: owned by the cluster whose budget (O(cluster.budget_name)) or billing alarm
    (O(cluster.billing_alarm_name)) the notification names; their region is the billing region, not the cluster's."
  - The spot capacity review (a timer, no event) is every cluster's own.
options:
  _input:
    description: The event (the C(eks_autoscaling.core.sqs_events) shape).
    type: dict
    required: true
  action:
    description: The remediation the rulebook chose (C(remediation_action)).
    type: str
    required: true
  cluster:
    description: This host's cluster, as C(name), C(region), C(account_id) (empty when the inventory does not say),
      C(budget_name) and C(billing_alarm_name).
    type: dict
    required: true
  nodes:
    description: This cluster's Nodes that run the event's instances; V(null) when not read.
    type: list
    elements: dict
  instances:
    description: The event's instances that have no Node here, as C(amazon.aws.ec2_instance_info) returns them
      (with C(tags)); V(null) when not read.
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: Decide whether this cluster owns the event
  ansible.builtin.set_fact:
    remediation_owner: >-
      {{ remediation_event | eks_autoscaling.core.remediation_owner(remediation_action,
           {'name': eks_cluster_name, 'region': eks_cluster_region, 'account_id': eks_cluster_account_id,
            'budget_name': eks_cluster_budget_name, 'billing_alarm_name': eks_cluster_billing_alarm_name},
           remediation_event_nodes, remediation_nodeless_instances.instances | default([])) }}
"""

RETURN = r"""
_value:
  description: The decision.
  type: dict
  contains:
    candidate:
      description: The event may be this cluster's (same account and, for instances, region); worth reading Nodes for.
      type: bool
    owns:
      description: The event is this cluster's, to act on.
      type: bool
    why:
      description: The reason, for the run's output and the record of an event no cluster owns.
      type: str
"""

NODE_ACTIONS = ("drain_node", "cordon_node", "cleanup_node", "record_interruption")
COST_ACTIONS = ("cap_costs", "restore_costs")
COST_KINDS = ("alarm", "budget")
# Karpenter v1 tags its instances with both of the first two; managed node groups with the first and the last.
CLUSTER_TAG_KEYS = ("kubernetes.io/cluster/{name}", "eks:eks-cluster-name", "eks:cluster-name")


def _decision(candidate, owns, why):
    return {"candidate": candidate, "owns": owns, "why": why}


def _instance_ids(event):
    return list(event.get("instance_ids") or ([event["instance_id"]] if event.get("instance_id") else []))


def _tagged_for(instance, name):
    tags = instance.get("tags") or {}
    return tags.get(CLUSTER_TAG_KEYS[0].format(name=name)) in ("owned", "shared") or name in (
        tags.get(CLUSTER_TAG_KEYS[1]), tags.get(CLUSTER_TAG_KEYS[2]))


def remediation_owner(event, action, cluster, nodes=None, instances=None):
    event = event or {}
    name = cluster.get("name")
    if action == "review_spot_capacity":
        return _decision(True, True, "each cluster reviews its own NodePools")

    account, own_account = event.get("account"), cluster.get("account_id")
    if account and own_account and account != own_account:
        return _decision(False, False, "event of account %s, %s is in %s" % (account, name, own_account))

    if action in COST_ACTIONS or event.get("kind") in COST_KINDS:
        if event.get("kind") == "budget":
            wanted, named = cluster.get("budget_name"), event.get("budget_name")
            what = "budget"
        else:
            wanted, named = cluster.get("billing_alarm_name"), event.get("alarm_name")
            what = "billing alarm"
        if named and named == wanted:
            return _decision(True, True, "%s %s belongs to %s" % (what, named, name))
        return _decision(False, False, "%s %s is not the one of %s (%s)" % (what, named, name, wanted))

    ids = _instance_ids(event)
    if not ids:
        return _decision(False, False, "a %s event names no instance, budget or alarm" % event.get("kind"))
    region = event.get("region")
    if region and region != cluster.get("region"):
        return _decision(False, False, "instance event of %s, %s is in %s" % (region, name, cluster.get("region")))
    if action not in NODE_ACTIONS:
        # An instance starting or running: nothing to do anywhere, and nothing worth an API call to place it.
        return _decision(True, True, "instance in the region and account of %s, needs no remediation" % name)
    if nodes:
        return _decision(True, True, "node(s) %s of %s run the instance(s)" % (
            ", ".join(sorted(node["metadata"]["name"] for node in nodes)), name))
    tagged = sorted(instance.get("instance_id") for instance in instances or [] if _tagged_for(instance, name))
    if tagged:
        return _decision(True, True, "instance(s) %s tagged for %s (no node left)" % (", ".join(tagged), name))
    read = "no node of %s runs %s%s" % (name, ", ".join(ids), "" if instances is None else " and no instance is tagged for it")
    return _decision(True, False, read)


class FilterModule(object):
    def filters(self):
        return {"remediation_owner": remediation_owner}
