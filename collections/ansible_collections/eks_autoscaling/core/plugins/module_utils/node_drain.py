# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Cordon and drain several Kubernetes nodes at once, through the eviction API.

A spot interruption gives two minutes. kubernetes.core.k8s_drain drains one node per call, gives up at
the first eviction a PodDisruptionBudget refuses, and looks at evicted pods every 5 seconds; a batch of
interrupted nodes drained that way one after another runs out of time. Here every node is drained in its
own thread, a refused eviction is tried again until the timeout (the budget allows it once a replacement
is ready elsewhere), and evicted pods are looked at every poll_interval seconds.

The Kubernetes calls are behind NodeApi, which answers with plain dicts, so the decisions can be tested
without a cluster; the lab's integration tests drain real nodes through it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import concurrent.futures
import time

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
FINISHED_PHASES = ("Succeeded", "Failed")


class NodeDrainError(Exception):
    pass


class EvictionBlocked(Exception):
    """The API server refused an eviction (429): a PodDisruptionBudget allows no disruption now."""


def validate(names, timeout, poll_interval, max_concurrency, grace_period):
    """Refuse bad input before any call; the message names the option."""
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise NodeDrainError(f"names must be a list of node names, got {names!r}")
    if not 1 <= int(timeout) <= 3600:
        raise NodeDrainError(f"timeout must be 1 to 3600 seconds, got {timeout}")
    if not 0 < float(poll_interval) <= 60:
        raise NodeDrainError(f"poll_interval must be more than 0 and at most 60 seconds, got {poll_interval}")
    if not 1 <= int(max_concurrency) <= 100:
        raise NodeDrainError(f"max_concurrency must be 1 to 100, got {max_concurrency}")
    if grace_period is not None and int(grace_period) < 0:
        raise NodeDrainError(f"grace_period must be 0 or more seconds, got {grace_period}")


def _pod_key(pod):
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def classify_pods(pods, force=False, ignore_daemonsets=True, delete_emptydir_data=False):
    """What a drain does with each pod of a node, as kubectl drain decides it.

    Returns (to_evict, ignored, refusals): pods to evict, {"pod", "why"} for pods left alone (mirror pods
    the kubelet owns, DaemonSet pods that would come back, finished pods), and the reasons the node cannot
    be drained with these options (nothing is evicted then).
    """
    to_evict, ignored, refusals = [], [], []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        key = _pod_key(pod)
        owners = metadata.get("ownerReferences") or []
        if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
            ignored.append({"pod": key, "why": "mirror pod"})
        elif ((pod.get("status") or {}).get("phase")) in FINISHED_PHASES:
            ignored.append({"pod": key, "why": "finished"})
        elif any(owner.get("kind") == "DaemonSet" for owner in owners):
            if ignore_daemonsets:
                ignored.append({"pod": key, "why": "DaemonSet pod"})
            else:
                refusals.append(f"{key} belongs to a DaemonSet (set ignore_daemonsets)")
        else:
            volumes = (pod.get("spec") or {}).get("volumes") or []
            if any("emptyDir" in volume for volume in volumes) and not delete_emptydir_data:
                refusals.append(f"{key} has emptyDir data (set delete_emptydir_data)")
            elif not owners and not force:
                refusals.append(f"{key} has no controller to recreate it (set force)")
            else:
                to_evict.append(pod)
    return to_evict, ignored, refusals


class NodeApi:
    """The calls a drain makes, on a kubernetes.client.CoreV1Api, answering with plain dicts."""

    def __init__(self, core_v1, api_exception):
        self.api = core_v1
        self.api_exception = api_exception

    def _plain(self, obj):
        return self.api.api_client.sanitize_for_serialization(obj)

    def read_node(self, name):
        try:
            return self._plain(self.api.read_node(name=name))
        except self.api_exception as e:
            if e.status == 404:
                return None
            raise NodeDrainError(f"reading node {name}: {e.status} {e.reason}") from e

    def cordon(self, name):
        try:
            self.api.patch_node(name=name, body={"spec": {"unschedulable": True}})
        except self.api_exception as e:
            raise NodeDrainError(f"cordoning node {name}: {e.status} {e.reason}") from e

    def pods_on(self, name):
        try:
            answer = self.api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}")
        except self.api_exception as e:
            raise NodeDrainError(f"listing the pods of node {name}: {e.status} {e.reason}") from e
        return self._plain(answer).get("items") or []

    def evict(self, namespace, name, grace_period=None):
        """True when evicted, False when the pod is already gone; EvictionBlocked on a 429."""
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        if grace_period is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": int(grace_period)}
        try:
            self.api.create_namespaced_pod_eviction(name=name, namespace=namespace, body=body)
            return True
        except self.api_exception as e:
            if e.status == 404:
                return False
            if e.status == 429:
                raise EvictionBlocked(f"{namespace}/{name}") from e
            raise NodeDrainError(f"evicting {namespace}/{name}: {e.status} {e.reason} {e.body or ''}".strip()) from e

    def read_pod(self, namespace, name):
        try:
            return self._plain(self.api.read_namespaced_pod(name=name, namespace=namespace))
        except self.api_exception as e:
            if e.status == 404:
                return None
            raise NodeDrainError(f"reading pod {namespace}/{name}: {e.status} {e.reason}") from e


class NodeDrainer:
    def __init__(self, api, timeout=90, poll_interval=1.0, grace_period=None, force=False, ignore_daemonsets=True,
                 delete_emptydir_data=False, clock=time.monotonic, sleep=time.sleep):
        self.api = api
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.grace_period = grace_period
        self.options = {"force": force, "ignore_daemonsets": ignore_daemonsets, "delete_emptydir_data": delete_emptydir_data}
        self.clock = clock
        self.sleep = sleep

    def drain_one(self, name, check_mode=False):
        """Cordon one node and evict its pods; never raises, the error is in the result."""
        result = {"name": name, "found": False, "was_unschedulable": None, "cordoned": False, "evicted": [], "ignored": [],
                  "error": None}
        try:
            node = self.api.read_node(name)
            if node is None:
                return result  # already gone: nothing left to drain
            result["found"] = True
            result["was_unschedulable"] = bool((node.get("spec") or {}).get("unschedulable"))
            if not result["was_unschedulable"]:
                if not check_mode:
                    self.api.cordon(name)
                result["cordoned"] = True
            # Listed after the cordon: nothing new can land on the node between the list and the evictions.
            to_evict, result["ignored"], refusals = classify_pods(self.api.pods_on(name), **self.options)
            if refusals:
                raise NodeDrainError(f"node {name} cannot be drained: " + "; ".join(refusals))
            result["evicted"] = [_pod_key(pod) for pod in to_evict]
            if not check_mode and to_evict:
                self._evict_and_wait(name, to_evict)
        except NodeDrainError as e:
            result["error"] = str(e)
        return result

    def _evict_and_wait(self, name, pods):
        deadline = self.clock() + self.timeout
        pending = list(pods)
        evicted = []
        while pending:
            blocked = []
            for pod in pending:
                metadata = pod["metadata"]
                try:
                    if self.api.evict(metadata["namespace"], metadata["name"], self.grace_period):
                        evicted.append(pod)
                except EvictionBlocked:
                    blocked.append(pod)
            pending = blocked
            if pending:
                if self.clock() >= deadline:
                    raise NodeDrainError(
                        f"node {name}: a PodDisruptionBudget still refuses evicting "
                        f"{', '.join(_pod_key(pod) for pod in pending)} after {self.timeout}s"
                    )
                self.sleep(self.poll_interval)
        waiting = evicted
        while True:
            waiting = [pod for pod in waiting if self._still_there(name, pod)]
            if not waiting:
                return
            if self.clock() >= deadline:
                raise NodeDrainError(
                    f"node {name}: {', '.join(_pod_key(pod) for pod in waiting)} still running {self.timeout}s after eviction"
                )
            self.sleep(self.poll_interval)

    def _still_there(self, name, pod):
        metadata = pod["metadata"]
        current = self.api.read_pod(metadata["namespace"], metadata["name"])
        # A pod of the same name elsewhere (a StatefulSet's replacement) is not the evicted one.
        return (
            current is not None
            and (current.get("metadata") or {}).get("uid") == metadata.get("uid")
            and ((current.get("spec") or {}).get("nodeName")) == name
        )


def ensure_drained(drainer, names, max_concurrency=10, check_mode=False):
    """Drain every node of ``names`` at once. Returns (changed, result) with a diff; failures are in
    result["failed"] (the caller fails the task) and the other nodes are still drained."""
    unique = list(dict.fromkeys(names))
    results = []
    if unique:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(max_concurrency, len(unique))) as pool:
            results = list(pool.map(lambda name: drainer.drain_one(name, check_mode), unique))
    changed = any(r["cordoned"] or r["evicted"] for r in results)
    before = {r["name"]: {"unschedulable": r["was_unschedulable"], "pods": sorted(r["evicted"] + [i["pod"] for i in r["ignored"]])}
              for r in results if r["found"]}
    # A node that failed keeps what it had as far as this run knows.
    after = {r["name"]: {"unschedulable": True, "pods": before[r["name"]]["pods"] if r["error"] else sorted(i["pod"] for i in r["ignored"])}
             for r in results if r["found"]}
    return changed, {
        "nodes": results,
        "failed": [r["name"] for r in results if r["error"]],
        "diff": {"before": before, "after": after},
    }
