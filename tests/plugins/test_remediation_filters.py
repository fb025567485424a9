"""Decisions of the remediation playbooks: caps remember exactly what to restore; spot widening counts and reverts."""
import json

import pytest

from ansible_collections.eks_autoscaling.core.plugins.filter import remediation as r


def merge(obj, patch):
    """RFC 7386 JSON merge patch, what kubernetes.core.k8s state=patched merge_type=merge sends."""
    if not isinstance(patch, dict):
        return patch
    result = dict(obj) if isinstance(obj, dict) else {}
    for key, value in patch.items():
        merged = None if value is None else merge(result.get(key), value)
        # The API server omits empty maps (annotations: {}), as it stores objects.
        if merged is None or merged == {}:
            result.pop(key, None)
        else:
            result[key] = merged
    return result


POOL = {
    "metadata": {"name": "default", "annotations": {"kept": "yes"}},
    "spec": {
        "limits": {"cpu": "1000", "memory": "1000Gi"},
        "template": {"spec": {"requirements": [
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m6g.xlarge", "r6g.xlarge", "c6g.2xlarge"]},
        ]}},
    },
    "status": {"resources": {"cpu": "12", "memory": "48Gi", "pods": "330", "nodes": "3"}},
}


def test_node_for_instance_matches_the_provider_id_suffix_only():
    nodes = [{"metadata": {"name": "a"}, "spec": {"providerID": "aws:///ap-southeast-1a/i-0abc"}},
             {"metadata": {"name": "b"}, "spec": {"providerID": "aws:///ap-southeast-1b/i-0abcd"}},
             {"metadata": {"name": "c"}, "spec": {}}]
    assert r.node_for_instance(nodes, "i-0abcd")["metadata"]["name"] == "b"
    assert r.node_for_instance(nodes, "i-0ab") == {}
    assert r.node_for_instance(nodes, None) == {}


def test_cap_at_current_then_restore_exactly_and_both_are_idempotent():
    patch = r.nodepool_cost_cap(POOL, "current", None, "alarm:eksworkshop-estimated-charges:ALARM")
    capped = merge(POOL, patch)
    assert capped["spec"]["limits"] == {"cpu": "12", "memory": "48Gi"}
    assert capped["metadata"]["annotations"]["kept"] == "yes"
    assert capped["metadata"]["annotations"][r.CAPPED_BY] == "alarm:eksworkshop-estimated-charges:ALARM"
    # A second alarm must not remember the capped limits as "before".
    assert r.nodepool_cost_cap(capped, "current") == {}
    restored = merge(capped, r.nodepool_cost_restore(capped))
    assert restored == POOL
    assert r.nodepool_cost_restore(restored) == {}


def test_cap_at_a_ceiling_and_restore_a_pool_that_had_no_limits():
    unlimited = merge(POOL, {"spec": {"limits": None}})
    capped = merge(unlimited, r.nodepool_cost_cap(unlimited, "ceiling", {"cpu": 100, "memory": "400Gi"}))
    assert capped["spec"]["limits"] == {"cpu": "100", "memory": "400Gi"}
    restored = merge(capped, r.nodepool_cost_restore(capped))
    assert "limits" not in restored["spec"]
    assert restored == unlimited


def test_cap_refuses_an_unknown_mode_or_an_empty_ceiling():
    with pytest.raises(ValueError, match="mode must be 'current' or 'ceiling'"):
        r.nodepool_cost_cap(POOL, "half")
    with pytest.raises(ValueError, match="needs a ceiling"):
        r.nodepool_cost_cap(POOL, "ceiling", {})


def test_hpa_cap_lowers_max_to_current_replicas_and_restores():
    hpa = {"metadata": {"name": "nginx"}, "spec": {"minReplicas": 3, "maxReplicas": 12}, "status": {"currentReplicas": 5}}
    capped = merge(hpa, r.hpa_cost_cap(hpa, "budget:eksworkshop-monthly"))
    assert capped["spec"]["maxReplicas"] == 5
    assert r.hpa_cost_cap(capped) == {}
    assert merge(capped, r.hpa_cost_restore(capped)) == hpa
    idle = {**hpa, "status": {"currentReplicas": 0}}
    assert merge(idle, r.hpa_cost_cap(idle))["spec"]["maxReplicas"] == 3


def test_spot_interruptions_widen_at_the_threshold_once_and_count_an_event_once():
    pool, now = POOL, 1_000_000
    for index in range(2):
        decision = r.spot_interruptions_patch(pool, [{"type": "m6g.xlarge", "id": f"msg-{index}"}], now + index, 3, 1800, ["m7g.xlarge", "m6g.2xlarge"], "widen")
        assert decision["widen"] is False
        pool = merge(pool, decision["patch"])
    again = r.spot_interruptions_patch(pool, [{"type": "m6g.xlarge", "id": "msg-1"}], now + 5, 3, 1800, ["m7g.xlarge"], "widen")
    assert again == {"patch": {}, "widen": False, "count": 2}
    decision = r.spot_interruptions_patch(pool, [{"type": "m6g.xlarge", "id": "msg-2"}], now + 10, 3, 1800, ["m7g.xlarge", "m6g.2xlarge"], "widen")
    assert decision["widen"] is True and decision["count"] == 3
    widened = merge(pool, decision["patch"])
    types = widened["spec"]["template"]["spec"]["requirements"][1]["values"]
    assert types == ["m6g.xlarge", "r6g.xlarge", "c6g.2xlarge", "m7g.xlarge", "m6g.2xlarge"]
    # Already widened: a fourth interruption records but does not widen again.
    assert r.spot_interruptions_patch(widened, [{"type": "m6g.xlarge", "id": "msg-3"}], now + 20, 3, 1800, ["x"], "widen")["widen"] is False


def test_a_batch_of_interruptions_widens_in_one_patch_and_counts_each_instance_once():
    """A batched event names several nodes of one pool: all are recorded at once, repeats of an id count once."""
    now = 1_000_000
    batch = [{"type": "m6g.xlarge", "id": f"i-0{index}"} for index in range(3)] + [{"type": "r6g.xlarge", "id": "i-09"}]
    decision = r.spot_interruptions_patch(POOL, batch + batch[:1], now, 3, 1800, ["m7g.xlarge"], "widen")
    assert decision["widen"] is True and decision["count"] == 3
    widened = merge(POOL, decision["patch"])
    recorded = json.loads(widened["metadata"]["annotations"][r.INTERRUPTIONS])
    assert sorted(record["id"] for record in recorded) == ["i-00", "i-01", "i-02", "i-09"]
    assert "m7g.xlarge" in widened["spec"]["template"]["spec"]["requirements"][1]["values"]
    # The same batch delivered again changes nothing.
    assert r.spot_interruptions_patch(widened, batch, now + 5, 3, 1800, ["m7g.xlarge"], "widen") == {"patch": {}, "widen": False, "count": 3}
    # Below the threshold in one batch: recorded, not widened.
    below = r.spot_interruptions_patch(POOL, batch[:2], now, 3, 1800, ["m7g.xlarge"], "widen")
    assert below["widen"] is False and below["count"] == 2 and "spec" not in below["patch"]


def test_nodepool_interruptions_groups_nodes_by_their_pool():
    def node(name, pool, instance_type):
        labels = {"node.kubernetes.io/instance-type": instance_type, **({"karpenter.sh/nodepool": pool} if pool else {})}
        return {"metadata": {"name": name, "labels": labels}, "spec": {"providerID": f"aws:///ap-southeast-1a/i-0{name}"}}

    nodes = [node("a", "default", "m6g.xlarge"), node("b", None, "t4g.xlarge"), node("c", "spot", "c6g.2xlarge"),
             node("d", "default", "r6g.xlarge")]
    assert r.nodepool_interruptions(nodes) == [
        {"nodepool": "default", "interruptions": [{"type": "m6g.xlarge", "id": "i-0a"}, {"type": "r6g.xlarge", "id": "i-0d"}]},
        {"nodepool": "spot", "interruptions": [{"type": "c6g.2xlarge", "id": "i-0c"}]},
    ]
    assert r.nodepool_interruptions([]) == []


def test_nodepool_interruptions_counts_instances_whose_node_is_gone_by_their_ec2_tags():
    """Karpenter may drain and delete the node before the rulebook reads it: the instance still names its pool."""
    node = {"metadata": {"name": "a", "labels": {"node.kubernetes.io/instance-type": "m6g.xlarge", "karpenter.sh/nodepool": "default"}},
            "spec": {"providerID": "aws:///ap-southeast-1a/i-0a"}}
    instances = [
        {"instance_id": "i-0b", "instance_type": "c6g.2xlarge", "tags": {"karpenter.sh/nodepool": "default"}},
        {"instance_id": "i-0c", "instance_type": "t4g.xlarge", "tags": {"eks:nodegroup-name": "ng-ondemand"}},
        {"instance_id": "i-0a", "instance_type": "m6g.xlarge", "tags": {"karpenter.sh/nodepool": "default"}},
        {"instance_id": "i-0d", "instance_type": "r6g.xlarge", "tags": {"karpenter.sh/nodepool": "spot"}},
    ]
    assert r.nodepool_interruptions([node], instances) == [
        {"nodepool": "default", "interruptions": [{"type": "m6g.xlarge", "id": "i-0a"}, {"type": "c6g.2xlarge", "id": "i-0b"}]},
        {"nodepool": "spot", "interruptions": [{"type": "r6g.xlarge", "id": "i-0d"}]},
    ]
    assert r.nodepool_interruptions([], instances[1:2]) == []


def test_interruptions_outside_the_window_or_of_other_types_do_not_count():
    pool, now = POOL, 1_000_000
    for offset, instance_type in ((0, "m6g.xlarge"), (10, "r6g.xlarge"), (4000, "m6g.xlarge")):
        decision = r.spot_interruptions_patch(pool, [{"type": instance_type, "id": str(offset)}], now + offset, 2, 1800, ["m7g.xlarge"], "widen")
        pool = merge(pool, decision["patch"])
    assert decision["widen"] is False and decision["count"] == 1
    assert len(json.loads(pool["metadata"]["annotations"][r.INTERRUPTIONS])) == 1


def test_revert_after_a_quiet_period_only():
    pool, now = POOL, 1_000_000
    for index in range(3):
        pool = merge(pool, r.spot_interruptions_patch(pool, [{"type": "m6g.xlarge", "id": str(index)}], now + index, 3, 1800, ["m7g.xlarge"], "widen")["patch"])
    assert r.spot_revert_patch(pool, now + 100, 3600) == {}
    reverted = merge(pool, r.spot_revert_patch(pool, now + 3700, 3600))
    assert reverted == POOL
    assert r.spot_revert_patch(reverted, now + 9999, 3600) == {}


def test_fallback_weight_raise_and_restore():
    fallback = {"metadata": {"name": "on-demand-fallback"}, "spec": {"weight": 10}}
    raised = merge(fallback, r.fallback_weight_patch(fallback, 100))
    assert raised["spec"]["weight"] == 100 and r.fallback_weight_patch(raised, 100) == {}
    assert merge(raised, r.fallback_weight_restore(raised)) == fallback


def test_nodes_for_instances_keeps_the_order_and_skips_instances_without_a_node():
    nodes = [{"metadata": {"name": n}, "spec": {"providerID": f"aws:///ap-southeast-1a/{i}"}} for n, i in (("a", "i-01"), ("b", "i-02"))]
    assert [n["metadata"]["name"] for n in r.nodes_for_instances(nodes, ["i-02", "i-99", "i-01"])] == ["b", "a"]
    assert r.nodes_for_instances(nodes, []) == []


def test_remediation_events_name_one_event_per_object_after_the_message():
    import hashlib

    node = {"metadata": {"name": "ip-10-0-0-1", "uid": "u-1"}}
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "default"}}
    events = r.remediation_events([node, pool], "SpotInterruptionDrained", "drained", "eks-autoscaling-remediation",
                                  "2026-11-27T12:00:00Z", "msg-1")
    suffix = hashlib.sha1(b"msg-1").hexdigest()[:12]
    assert [e["metadata"] for e in events] == [
        {"name": f"ip-10-0-0-1.{suffix}", "namespace": "default"},
        {"name": f"default.{suffix}", "namespace": "default"},
    ]
    assert events[0]["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "ip-10-0-0-1", "uid": "u-1"}
    assert events[1]["involvedObject"] == {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "name": "default"}
    assert {e["type"] for e in events} == {"Warning"}
    assert events[0]["firstTimestamp"] == events[0]["lastTimestamp"] == "2026-11-27T12:00:00Z"
    assert r.remediation_events([pool], "CostCapRestored", "m", "c", "t", "k")[0]["type"] == "Normal"
    assert r.remediation_events([], "x", "m", "c", "t", "k") == []


def test_cordon_patches_mark_each_node_unschedulable():
    nodes = [{"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"taints": []}}, {"metadata": {"name": "b"}}]
    assert r.cordon_patches(nodes) == [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"unschedulable": True}} for name in ("a", "b")
    ]
    assert r.cordon_patches([]) == []


# -- One writer per field: a role's apply keeps what a remediation holds, and the restore gives the inventory's --

def manifest(limits=None, requirements=None, weight=None):
    spec = {"template": {"spec": {"requirements": requirements or [{"key": "karpenter.sh/capacity-type", "operator": "In",
                                                                      "values": ["spot"]}]}}}
    if limits is not None:
        spec["limits"] = limits
    if weight is not None:
        spec["weight"] = weight
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "default"}, "spec": spec}


def test_a_pool_with_no_remediation_in_effect_is_applied_as_the_inventory_asks():
    wanted = manifest(limits={"cpu": "1000"})
    live = {**manifest(limits={"cpu": "10"}), "metadata": {"name": "default", "annotations": {"kept": "yes"}}}
    assert r.remediation_held(wanted, live) == {"manifest": wanted, "held": []}
    assert r.remediation_held(wanted, {}) == {"manifest": wanted, "held": []}


def test_a_rerun_during_a_cost_cap_keeps_the_cap_and_the_restore_gives_what_the_inventory_asks_now():
    live = {**manifest(limits={"cpu": "1000", "memory": "1000Gi"}), "status": {"resources": {"cpu": "8", "memory": "32Gi"}}}
    live = merge(live, r.nodepool_cost_cap(live, "current", reason="alarm:eksworkshop-estimated-charges"))
    # The inventory meanwhile raised the cpu limit and dropped the memory one.
    wanted = manifest(limits={"cpu": "2000"})
    kept = r.remediation_held(wanted, live)
    applied = kept["manifest"]
    assert applied["spec"]["limits"] == {"cpu": "8", "memory": "32Gi"}
    assert applied["metadata"]["annotations"][r.CAPPED_BY] == "alarm:eksworkshop-estimated-charges"
    assert kept["held"] == [{"field": "spec.limits", "live": {"cpu": "8", "memory": "32Gi"}, "wanted": {"cpu": "2000"},
                             "by": "alarm:eksworkshop-estimated-charges"}]
    # What the server holds after the apply (annotations merge), then the restore: the inventory's limits exactly.
    after_apply = merge(live, {"metadata": applied["metadata"], "spec": {"limits": applied["spec"]["limits"]}})
    restored = merge(after_apply, r.nodepool_cost_restore(after_apply))
    assert restored["spec"]["limits"] == {"cpu": "2000"}
    assert r.LIMITS_BEFORE not in restored["metadata"].get("annotations", {})


def test_a_pool_without_limits_in_the_inventory_gets_none_back_after_the_cap():
    live = merge({**manifest(limits={"cpu": "10"}), "status": {"resources": {"cpu": "4"}}},
                 r.nodepool_cost_cap({**manifest(limits={"cpu": "10"}), "status": {"resources": {"cpu": "4"}}}, "current"))
    applied = r.remediation_held(manifest(), live)["manifest"]
    after_apply = merge(live, {"metadata": applied["metadata"]})
    assert "limits" not in merge(after_apply, r.nodepool_cost_restore(after_apply))["spec"]


def test_a_widened_pool_keeps_its_requirements_and_a_fallback_its_weight():
    requirements = [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m6g.xlarge"]}]
    widened = [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m6g.xlarge", "m7g.xlarge"]}]
    live = merge(manifest(requirements=widened, weight=90),
                 {"metadata": {"annotations": {r.REQUIREMENTS_BEFORE: json.dumps(requirements), r.WIDENED_AT: "1",
                                               r.WEIGHT_BEFORE: json.dumps(10)}}})
    kept = r.remediation_held(manifest(requirements=requirements, weight=10), live)
    assert kept["manifest"]["spec"]["template"]["spec"]["requirements"] == widened
    assert kept["manifest"]["spec"]["weight"] == 90
    assert [h["field"] for h in kept["held"]] == ["spec.template.spec.requirements", "spec.weight"]
    # The widening's bookkeeping stays its writer's: not in the manifest.
    assert r.WIDENED_AT not in kept["manifest"]["metadata"]["annotations"]


def test_an_hpa_under_a_cost_cap_keeps_its_max_replicas_and_gets_the_inventory_s_back():
    live = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "app", "namespace": "n"},
            "spec": {"minReplicas": 3, "maxReplicas": 12}, "status": {"currentReplicas": 5}}
    live = merge(live, r.hpa_cost_cap(live, reason="budget:eksworkshop-monthly"))
    wanted = {**live, "metadata": {"name": "app", "namespace": "n"}, "spec": {"minReplicas": 3, "maxReplicas": 20}}
    wanted.pop("status")
    applied = r.remediation_held(wanted, live)["manifest"]
    assert applied["spec"]["maxReplicas"] == 5
    after_apply = merge(live, {"metadata": applied["metadata"]})
    assert merge(after_apply, r.hpa_cost_restore(after_apply))["spec"]["maxReplicas"] == 20
