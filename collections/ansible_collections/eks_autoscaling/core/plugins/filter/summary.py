# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Summaries of cluster state for the end of site.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: nodes_by_capacity_type
short_description: Count nodes by capacity type, whoever launched them
version_added: 0.1.0
author: Karpenter HPA EKS contributors (!UNKNOWN)
description:
  - >-
    Karpenter labels its nodes C(karpenter.sh/capacity-type) (C(spot), C(on-demand)); EKS managed
    nodegroups label theirs C(eks.amazonaws.com/capacityType) (C(SPOT), C(ON_DEMAND)). Returns one count
    per capacity type and origin, for example C(karpenter spot) 2 and C(nodegroup on-demand) 3.
options:
  _input:
    description: Node objects, as kubernetes.core.k8s_info returns them.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Print nodes by capacity type
  ansible.builtin.debug:
    msg: "{{ nodes.resources | eks_autoscaling.core.nodes_by_capacity_type }}"
"""

RETURN = r"""
_value:
  description: Counts keyed by "<origin> <capacity type>".
  type: dict
"""


def nodes_by_capacity_type(nodes):
    counts = {}
    for node in nodes or []:
        labels = (node.get("metadata") or {}).get("labels") or {}
        if "karpenter.sh/capacity-type" in labels:
            key = "karpenter " + labels["karpenter.sh/capacity-type"]
        elif "eks.amazonaws.com/capacityType" in labels:
            key = "nodegroup " + labels["eks.amazonaws.com/capacityType"].lower().replace("_", "-")
        else:
            key = "other"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


class FilterModule(object):
    def filters(self):
        return {"nodes_by_capacity_type": nodes_by_capacity_type}
