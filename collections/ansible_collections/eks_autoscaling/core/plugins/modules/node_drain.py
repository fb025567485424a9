#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: node_drain
version_added: 0.1.0
short_description: Cordon and drain several Kubernetes nodes at once, waiting out PodDisruptionBudgets
description:
  - Cordons every node of O(names) and evicts its pods through the eviction API, all nodes at once (up to
    O(max_concurrency)), then waits until the evicted pods are gone. Made for the nodes of interrupted spot
    instances, which have two minutes.
  - An eviction that a PodDisruptionBudget refuses is tried again every O(poll_interval) seconds until
    O(timeout), as C(kubectl drain) does; M(kubernetes.core.k8s_drain) fails on it at once and handles one
    node per call.
  - Pods are judged as C(kubectl drain) judges them. Mirror pods, finished pods and (with
    O(ignore_daemonsets)) DaemonSet pods are left alone. A pod without a controller needs O(force), one with
    C(emptyDir) data needs O(delete_emptydir_data); without them the node is cordoned, nothing on it is
    evicted and the task fails naming the pods.
  - A node that does not exist counts as drained (the instance is already gone).
  - Idempotent. A cordoned node with nothing left to evict changes nothing.
author:
  - Karpenter HPA EKS contributors (!UNKNOWN)
options:
  names:
    description:
      - Names of the nodes to drain. An empty list does nothing.
    type: list
    elements: str
    required: true
    aliases: [nodes]
  timeout:
    description:
      - Seconds each node may take, evictions refused by a PodDisruptionBudget and waiting for the evicted
        pods included, 1 to 3600. A node not drained by then fails the task (it stays cordoned).
    type: int
    default: 90
  poll_interval:
    description:
      - Seconds between tries of a refused eviction, and between looks at evicted pods.
    type: float
    default: 1.0
  grace_period:
    description:
      - Termination grace period given to evicted pods, in seconds. Default is each pod's own.
    type: int
  force:
    description:
      - Also evict pods that no controller would recreate.
    type: bool
    default: false
  ignore_daemonsets:
    description:
      - Leave DaemonSet pods alone. With V(false) a node running one cannot be drained.
    type: bool
    default: true
  delete_emptydir_data:
    description:
      - Also evict pods with C(emptyDir) volumes, whose data is lost.
    type: bool
    default: false
  max_concurrency:
    description:
      - Most nodes drained at the same time, 1 to 100.
    type: int
    default: 10
notes:
  - Supports check mode (nothing is cordoned or evicted; the result says what would be) and diff mode.
  - Needs get and patch on nodes, list and get on pods, and create on pods/eviction.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
"""

EXAMPLES = r"""
- name: Drain the nodes of interrupted spot instances within the two-minute notice
  eks_autoscaling.core.node_drain:
    names: "{{ interrupted_nodes | map(attribute='metadata.name') | list }}"
    timeout: 90
    grace_period: 25
    force: true
    delete_emptydir_data: true

- name: See what draining a node would evict
  eks_autoscaling.core.node_drain:
    names: [ip-192-168-10-20.ap-southeast-1.compute.internal]
  check_mode: true
  diff: true
  register: drain_plan
"""

RETURN = r"""
nodes:
  description: One entry per node, in the order of O(names) (repeats removed).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The node.
      type: str
      sample: ip-192-168-10-20.ap-southeast-1.compute.internal
    found:
      description: V(false) when the node does not exist.
      type: bool
      sample: true
    was_unschedulable:
      description: Whether the node was cordoned before this run; V(null) when not found.
      type: bool
      sample: false
    cordoned:
      description: Whether this run cordoned it (would, in check mode).
      type: bool
      sample: true
    evicted:
      description: Pods evicted (to evict, in check mode), as namespace/name.
      type: list
      elements: str
      sample: [nlb-app-karpenter/nginx-deployment-7c5ddbdf54-8kz2x]
    ignored:
      description: Pods left on the node and why (C(pod), C(why)).
      type: list
      elements: dict
      sample: [{pod: kube-system/aws-node-5tq2x, why: DaemonSet pod}]
    error:
      description: Why the node could not be drained, or V(null).
      type: str
      sample: null
failed_nodes:
  description: Names of the nodes that could not be drained; the task fails when there is any.
  returned: always
  type: list
  elements: str
  sample: []
"""

import copy

from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

from ansible_collections.eks_autoscaling.core.plugins.module_utils.node_drain import NodeApi
from ansible_collections.eks_autoscaling.core.plugins.module_utils.node_drain import NodeDrainError
from ansible_collections.eks_autoscaling.core.plugins.module_utils.node_drain import NodeDrainer
from ansible_collections.eks_autoscaling.core.plugins.module_utils.node_drain import ensure_drained
from ansible_collections.eks_autoscaling.core.plugins.module_utils.node_drain import validate

try:
    from kubernetes.client.api import core_v1_api
    from kubernetes.client.exceptions import ApiException
except ImportError:
    pass  # AnsibleK8SModule reports the missing library


def main():
    argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
    argument_spec.update(
        names=dict(type="list", elements="str", required=True, aliases=["nodes"]),
        timeout=dict(type="int", default=90),
        poll_interval=dict(type="float", default=1.0),
        grace_period=dict(type="int"),
        force=dict(type="bool", default=False),
        ignore_daemonsets=dict(type="bool", default=True),
        delete_emptydir_data=dict(type="bool", default=False),
        max_concurrency=dict(type="int", default=10),
    )
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        validate(params["names"], params["timeout"], params["poll_interval"], params["max_concurrency"], params["grace_period"])
        # get_api_client gives kubernetes.core's wrapper of a dynamic client; CoreV1Api wants the ApiClient inside it.
        api = NodeApi(core_v1_api.CoreV1Api(get_api_client(module=module).client.client), ApiException)
        drainer = NodeDrainer(api, timeout=params["timeout"], poll_interval=params["poll_interval"],
                              grace_period=params["grace_period"], force=params["force"],
                              ignore_daemonsets=params["ignore_daemonsets"], delete_emptydir_data=params["delete_emptydir_data"])
        changed, result = ensure_drained(drainer, params["names"], params["max_concurrency"], module.check_mode)
    except (NodeDrainError, CoreException) as e:
        module.fail_json(msg=str(e))
    diff = result.pop("diff")
    failed = result.pop("failed")
    if failed:
        errors = "; ".join(node["error"] for node in result["nodes"] if node["error"])
        module.fail_json(msg=f"could not drain {len(failed)} node(s): {errors}", changed=changed, failed_nodes=failed, **result)
    module.exit_json(changed=changed, failed_nodes=failed, diff=diff, **result)


if __name__ == "__main__":
    main()
