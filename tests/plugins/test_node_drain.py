"""module_utils/node_drain.py: which pods a drain evicts, PodDisruptionBudget retries, timeouts, check mode,
several nodes at once, and NodeApi's answers to the API server's status codes.

The drainer runs against InMemoryNodes, a stand-in for NodeApi over a dict of nodes and pods with a
scripted PodDisruptionBudget; a fake clock makes timeouts instant. Real nodes are drained through NodeApi
on the lab by tests/functional/test_event_remediation.py and molecule/remediation.
"""
import threading

import pytest

from ansible_collections.eks_autoscaling.core.plugins.module_utils import node_drain
from ansible_collections.eks_autoscaling.core.plugins.module_utils.node_drain import (
    EvictionBlocked,
    NodeApi,
    NodeDrainError,
    NodeDrainer,
    classify_pods,
    ensure_drained,
    validate,
)


def pod(name, node="n1", namespace="app", owner="ReplicaSet", phase="Running", empty_dir=False, mirror=False, uid=None):
    metadata = {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}"}
    if owner:
        metadata["ownerReferences"] = [{"kind": owner, "name": "owner"}]
    if mirror:
        metadata["annotations"] = {node_drain.MIRROR_ANNOTATION: "hash"}
    spec = {"nodeName": node, "volumes": [{"name": "scratch", "emptyDir": {}}] if empty_dir else []}
    return {"metadata": metadata, "spec": spec, "status": {"phase": phase}}


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        with self.lock:
            self.now += seconds


class InMemoryNodes:
    """NodeApi's interface over dicts. `budget_refusals[pod]` evictions are refused (429) before one is
    allowed; an evicted pod disappears after `linger[pod]` reads."""

    def __init__(self, nodes, pods, budget_refusals=None, linger=None):
        self.nodes = {name: {"metadata": {"name": name}, "spec": {"unschedulable": unschedulable}} for name, unschedulable in nodes.items()}
        self.pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in pods}
        self.budget_refusals = dict(budget_refusals or {})
        self.linger = dict(linger or {})
        self.calls = []
        self.lock = threading.Lock()

    def read_node(self, name):
        return self.nodes.get(name)

    def cordon(self, name):
        with self.lock:
            self.calls.append(("cordon", name))
            self.nodes[name]["spec"]["unschedulable"] = True

    def pods_on(self, name):
        return [p for p in self.pods.values() if p["spec"]["nodeName"] == name]

    def evict(self, namespace, name, grace_period=None):
        key = f"{namespace}/{name}"
        with self.lock:
            self.calls.append(("evict", key, grace_period))
            if key not in self.pods:
                return False
            if self.budget_refusals.get(key, 0) > 0:
                self.budget_refusals[key] -= 1
                raise EvictionBlocked(key)
            self.pods[key]["evicted"] = True
            return True

    def read_pod(self, namespace, name):
        key = f"{namespace}/{name}"
        with self.lock:
            found = self.pods.get(key)
            if found and found.get("evicted"):
                if self.linger.get(key, 0) > 0:
                    self.linger[key] -= 1
                else:
                    del self.pods[key]
                    return None
            return found


def drainer(api, clock=None, **options):
    clock = clock or FakeClock()
    return NodeDrainer(api, clock=clock, sleep=clock.sleep, **options)


# -- which pods ---------------------------------------------------------------------------------------------
def test_pods_are_judged_as_kubectl_drain_judges_them():
    pods = [pod("web"), pod("ds", owner="DaemonSet"), pod("static", owner="Node", mirror=True), pod("done", phase="Succeeded"),
            pod("bare", owner=None), pod("cache", empty_dir=True)]
    to_evict, ignored, refusals = classify_pods(pods)
    assert [p["metadata"]["name"] for p in to_evict] == ["web"]
    assert ignored == [{"pod": "app/ds", "why": "DaemonSet pod"}, {"pod": "app/static", "why": "mirror pod"},
                       {"pod": "app/done", "why": "finished"}]
    assert refusals == ["app/bare has no controller to recreate it (set force)", "app/cache has emptyDir data (set delete_emptydir_data)"]

    to_evict, _, refusals = classify_pods(pods, force=True, delete_emptydir_data=True)
    assert [p["metadata"]["name"] for p in to_evict] == ["web", "bare", "cache"] and refusals == []
    assert classify_pods([pod("ds", owner="DaemonSet")], ignore_daemonsets=False)[2] == ["app/ds belongs to a DaemonSet (set ignore_daemonsets)"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("n1", 90, 1, 10, None), "names must be a list"),
        ((["n1", ""], 90, 1, 10, None), "names must be a list"),
        ((["n1"], 0, 1, 10, None), "timeout must be 1 to 3600"),
        ((["n1"], 90, 0, 10, None), "poll_interval must be more than 0"),
        ((["n1"], 90, 1, 0, None), "max_concurrency must be 1 to 100"),
        ((["n1"], 90, 1, 10, -1), "grace_period must be 0 or more"),
    ],
)
def test_bad_options_are_refused_naming_the_option(args, message):
    with pytest.raises(NodeDrainError, match=message):
        validate(*args)


# -- draining -----------------------------------------------------------------------------------------------
def test_a_node_is_cordoned_its_pods_evicted_and_waited_for_and_a_rerun_changes_nothing():
    api = InMemoryNodes({"n1": False}, [pod("web-1"), pod("web-2"), pod("ds", owner="DaemonSet")], linger={"app/web-1": 3})
    changed, result = ensure_drained(drainer(api, grace_period=25), ["n1"])
    assert changed is True and result["failed"] == []
    (node,) = result["nodes"]
    assert (node["cordoned"], node["was_unschedulable"], node["error"]) == (True, False, None)
    assert node["evicted"] == ["app/web-1", "app/web-2"]
    assert api.nodes["n1"]["spec"]["unschedulable"] is True
    assert sorted(api.pods) == ["app/ds"]
    assert ("evict", "app/web-1", 25) in api.calls
    assert result["diff"] == {"before": {"n1": {"unschedulable": False, "pods": ["app/ds", "app/web-1", "app/web-2"]}},
                              "after": {"n1": {"unschedulable": True, "pods": ["app/ds"]}}}

    calls = len(api.calls)
    changed, result = ensure_drained(drainer(api), ["n1"])
    assert changed is False and result["nodes"][0]["evicted"] == [] and len(api.calls) == calls


def test_check_mode_reports_what_it_would_do_and_touches_nothing():
    api = InMemoryNodes({"n1": False}, [pod("web-1")])
    changed, result = ensure_drained(drainer(api), ["n1"], check_mode=True)
    assert changed is True
    assert (result["nodes"][0]["cordoned"], result["nodes"][0]["evicted"]) == (True, ["app/web-1"])
    assert api.calls == [] and api.nodes["n1"]["spec"]["unschedulable"] is False and "app/web-1" in api.pods


def test_an_eviction_a_budget_refuses_is_tried_again_until_it_is_allowed():
    clock = FakeClock()
    api = InMemoryNodes({"n1": False}, [pod("web-1")], budget_refusals={"app/web-1": 4})
    changed, result = ensure_drained(drainer(api, clock, timeout=90, poll_interval=2), ["n1"])
    assert changed is True and result["failed"] == []
    assert [c for c in api.calls if c[0] == "evict"] == [("evict", "app/web-1", None)] * 5
    assert clock.now == 8  # four refusals, one poll interval after each


def test_a_budget_that_never_allows_fails_the_node_after_the_timeout_and_it_stays_cordoned():
    api = InMemoryNodes({"n1": False, "n2": False}, [pod("guarded"), pod("free", node="n2")], budget_refusals={"app/guarded": 10**6})
    changed, result = ensure_drained(drainer(api, timeout=30, poll_interval=1), ["n1", "n2"])
    assert changed is True and result["failed"] == ["n1"]
    errors = {n["name"]: n["error"] for n in result["nodes"]}
    assert errors["n2"] is None
    assert "PodDisruptionBudget still refuses evicting app/guarded after 30s" in errors["n1"]
    assert api.nodes["n1"]["spec"]["unschedulable"] is True and "app/guarded" in api.pods
    assert result["diff"]["after"]["n1"]["pods"] == ["app/guarded"]


def test_an_evicted_pod_that_does_not_go_fails_after_the_timeout():
    api = InMemoryNodes({"n1": True}, [pod("slow")], linger={"app/slow": 10**6})
    _, result = ensure_drained(drainer(api, timeout=20, poll_interval=1), ["n1"])
    assert result["failed"] == ["n1"] and "app/slow still running 20s after eviction" in result["nodes"][0]["error"]
    assert result["nodes"][0]["cordoned"] is False  # it already was


def test_a_replacement_with_the_same_name_is_not_waited_for():
    api = InMemoryNodes({"n1": False}, [pod("db-0", owner="StatefulSet")], linger={"app/db-0": 10**6})
    # The StatefulSet recreates db-0 on another node before the old one is seen gone.
    original = api.evict

    def evict_and_replace(namespace, name, grace_period=None):
        answer = original(namespace, name, grace_period)
        api.pods["app/db-0"] = pod("db-0", node="n9", owner="StatefulSet", uid="uid-new")
        return answer

    api.evict = evict_and_replace
    _, result = ensure_drained(drainer(api, timeout=20), ["n1"])
    assert result["failed"] == [] and result["nodes"][0]["evicted"] == ["app/db-0"]


def test_pods_that_cannot_be_drained_fail_the_node_before_any_eviction():
    api = InMemoryNodes({"n1": False}, [pod("web"), pod("bare", owner=None)])
    changed, result = ensure_drained(drainer(api), ["n1"])
    assert result["failed"] == ["n1"] and "app/bare has no controller to recreate it (set force)" in result["nodes"][0]["error"]
    assert changed is True and api.calls == [("cordon", "n1")]


def test_a_missing_node_is_already_drained_and_repeats_are_drained_once():
    api = InMemoryNodes({"n1": False}, [pod("web")])
    changed, result = ensure_drained(drainer(api), ["gone", "n1", "n1"])
    assert [n["name"] for n in result["nodes"]] == ["gone", "n1"]
    assert result["nodes"][0] == {"name": "gone", "found": False, "was_unschedulable": None, "cordoned": False, "evicted": [],
                                  "ignored": [], "error": None}
    assert changed is True and result["failed"] == [] and set(result["diff"]["before"]) == {"n1"}
    assert ensure_drained(drainer(api), []) == (False, {"nodes": [], "failed": [], "diff": {"before": {}, "after": {}}})


def test_nodes_are_drained_at_the_same_time():
    """Each node's eviction waits until every node has started: only concurrent drains get through."""
    names = [f"n{index}" for index in range(6)]
    api = InMemoryNodes({name: False for name in names}, [pod(f"web-{name}", node=name) for name in names])
    barrier = threading.Barrier(len(names), timeout=5)
    original = api.evict

    def evict_together(namespace, name, grace_period=None):
        barrier.wait()
        return original(namespace, name, grace_period)

    api.evict = evict_together
    changed, result = ensure_drained(drainer(api), names, max_concurrency=len(names))
    assert changed is True and result["failed"] == [] and api.pods == {}


# -- NodeApi: the API server's answers ---------------------------------------------------------------------
class ApiError(Exception):
    def __init__(self, status, reason="", body=None):
        super().__init__(status)
        self.status, self.reason, self.body = status, reason, body


class ScriptedCoreV1:
    """CoreV1Api's methods NodeApi calls, answering from a script; objects are already plain."""

    class api_client:  # noqa: N801 - CoreV1Api's attribute name
        @staticmethod
        def sanitize_for_serialization(obj):
            return obj

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def _answer(self, method, **kwargs):
        self.calls.append((method, kwargs))
        answer = self.answers[method]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def __getattr__(self, method):
        return lambda **kwargs: self._answer(method, **kwargs)


def test_node_api_reads_404_as_gone_429_as_blocked_and_names_other_failures():
    gone = NodeApi(ScriptedCoreV1({"read_node": ApiError(404), "read_namespaced_pod": ApiError(404),
                                   "create_namespaced_pod_eviction": ApiError(404)}), ApiError)
    assert gone.read_node("n1") is None and gone.read_pod("app", "web") is None
    assert gone.evict("app", "web") is False

    blocked = NodeApi(ScriptedCoreV1({"create_namespaced_pod_eviction": ApiError(429, "Too Many Requests")}), ApiError)
    with pytest.raises(EvictionBlocked):
        blocked.evict("app", "web")

    broken = NodeApi(ScriptedCoreV1({"read_node": ApiError(403, "Forbidden"), "patch_node": ApiError(500, "boom"),
                                     "list_pod_for_all_namespaces": ApiError(403, "Forbidden"),
                                     "create_namespaced_pod_eviction": ApiError(403, "Forbidden", "no create on pods/eviction")}),
                     ApiError)
    for call, message in ((lambda: broken.read_node("n1"), "reading node n1: 403 Forbidden"),
                          (lambda: broken.cordon("n1"), "cordoning node n1: 500 boom"),
                          (lambda: broken.pods_on("n1"), "listing the pods of node n1: 403 Forbidden"),
                          (lambda: broken.evict("app", "web"), "evicting app/web: 403 Forbidden no create on pods/eviction")):
        with pytest.raises(NodeDrainError, match=message):
            call()


def test_node_api_sends_the_eviction_and_the_cordon_the_api_server_expects():
    core = ScriptedCoreV1({"create_namespaced_pod_eviction": {}, "patch_node": {}, "list_pod_for_all_namespaces": {"items": [pod("web")]}})
    api = NodeApi(core, ApiError)
    assert api.evict("app", "web", grace_period=25) is True
    api.cordon("n1")
    assert [p["metadata"]["name"] for p in api.pods_on("n1")] == ["web"]
    assert core.calls == [
        ("create_namespaced_pod_eviction", {"name": "web", "namespace": "app", "body": {
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web", "namespace": "app"},
            "deleteOptions": {"gracePeriodSeconds": 25}}}),
        ("patch_node", {"name": "n1", "body": {"spec": {"unschedulable": True}}}),
        ("list_pod_for_all_namespaces", {"field_selector": "spec.nodeName=n1"}),
    ]
