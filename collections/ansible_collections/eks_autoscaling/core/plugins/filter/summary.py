# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Summaries of cluster state for the end of site.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: summary
short_description: Summaries of nodes, autoscalers and services for the end of site.yml
version_added: 0.1.0
author: Karpenter HPA EKS contributors (!UNKNOWN)
description:
  - >-
    C(nodes_by_capacity_type): Karpenter labels its nodes C(karpenter.sh/capacity-type) (C(spot), C(on-demand)); EKS managed
    nodegroups label theirs C(eks.amazonaws.com/capacityType) (C(SPOT), C(ON_DEMAND)). Returns one count
    per capacity type and origin, for example C(karpenter spot) 2 and C(nodegroup on-demand) 3.
  - >-
    C(hpa_targets): one line per HorizontalPodAutoscaler, as C(kubectl get hpa) shows it, for example
    C(nlb-app-karpenter/nginx-deployment Deployment/nginx-deployment cpu 0%/10% replicas 3 (min 3, max 12)).
  - >-
    C(service_endpoint): the load balancer address of the first Service given, C(pending) while it has none
    (always in the lab, which runs no load balancer controller), or C(not deployed).
options:
  _input:
    description: Objects as kubernetes.core.k8s_info returns them (nodes, HPAs or services).
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
  description: Counts keyed by "<origin> <capacity type>" (C(nodes_by_capacity_type)), a list of lines
    (C(hpa_targets)) or a string (C(service_endpoint)).
  type: raw
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


def _metric_line(spec_metric, current_metrics):
    resource = spec_metric.get("resource") or {}
    name = resource.get("name", "?")
    target = (resource.get("target") or {}).get("averageUtilization")
    current = next(
        ((m.get("resource") or {}).get("current", {}).get("averageUtilization") for m in current_metrics
         if (m.get("resource") or {}).get("name") == name),
        None,
    )
    # kubectl prints <unknown> until metrics-server has two samples of every pod.
    return f"{name} {'<unknown>' if current is None else str(current) + '%'}/{target}%"


def hpa_targets(autoscalers):
    lines = []
    for hpa in autoscalers or []:
        meta, spec, status = hpa.get("metadata") or {}, hpa.get("spec") or {}, hpa.get("status") or {}
        ref = spec.get("scaleTargetRef") or {}
        metrics = ", ".join(_metric_line(m, status.get("currentMetrics") or []) for m in spec.get("metrics") or [] if m.get("type") == "Resource")
        lines.append(
            f"{meta.get('namespace')}/{meta.get('name')} {ref.get('kind')}/{ref.get('name')} {metrics or 'no resource metrics'} "
            f"replicas {status.get('currentReplicas', 0)} (min {spec.get('minReplicas', 1)}, max {spec.get('maxReplicas')})"
        )
    return lines


def service_endpoint(services):
    if not services:
        return "not deployed"
    service = services[0]
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ports = [str(p.get("port")) for p in (service.get("spec") or {}).get("ports") or []]
    for entry in ingress:
        address = entry.get("hostname") or entry.get("ip")
        if address:
            return f"http://{address}" + (f":{ports[0]}" if ports and ports[0] != "80" else "")
    return "pending (no load balancer address yet)"


class FilterModule(object):
    def filters(self):
        return {"nodes_by_capacity_type": nodes_by_capacity_type, "hpa_targets": hpa_targets, "service_endpoint": service_endpoint}
