"""site.yml's summary counts nodes by who launched them and their capacity type."""
from ansible_collections.eks_autoscaling.core.plugins.filter.summary import nodes_by_capacity_type


def test_nodes_by_capacity_type_counts_karpenter_and_nodegroup_nodes():
    nodes = [{"metadata": {"labels": {"eks.amazonaws.com/capacityType": "ON_DEMAND"}}}] * 3 + [
        {"metadata": {"labels": {"karpenter.sh/capacity-type": "spot"}}}] * 2 + [{"metadata": {}}]
    assert nodes_by_capacity_type(nodes) == {"karpenter spot": 2, "nodegroup on-demand": 3, "other": 1}


def test_hpa_targets_reads_like_kubectl_get_hpa():
    from ansible_collections.eks_autoscaling.core.plugins.filter.summary import hpa_targets

    hpa = {
        "metadata": {"name": "nginx-deployment", "namespace": "nlb-app-karpenter"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "nginx-deployment"}, "minReplicas": 3, "maxReplicas": 12,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 10}}}]},
        "status": {"currentReplicas": 6, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 39}}}]},
    }
    fresh = {**hpa, "status": {}}
    assert hpa_targets([hpa, fresh]) == [
        "nlb-app-karpenter/nginx-deployment Deployment/nginx-deployment cpu 39%/10% replicas 6 (min 3, max 12)",
        "nlb-app-karpenter/nginx-deployment Deployment/nginx-deployment cpu <unknown>/10% replicas 0 (min 3, max 12)",
    ]


def test_service_endpoint_is_the_load_balancer_address_or_says_why_not():
    from ansible_collections.eks_autoscaling.core.plugins.filter.summary import service_endpoint

    nlb = "k8s-nlbappka-servicen-1b114eb166-77c1568fcaa70b7e.elb.ap-southeast-1.amazonaws.com"
    service = {"spec": {"ports": [{"port": 80}]}, "status": {"loadBalancer": {"ingress": [{"hostname": nlb}]}}}
    assert service_endpoint([service]) == f"http://{nlb}"
    assert service_endpoint([{"spec": {"ports": [{"port": 8080}]}, "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}]) == "http://10.0.0.1:8080"
    assert service_endpoint([{"spec": {}, "status": {"loadBalancer": {}}}]) == "pending (no load balancer address yet)"
    assert service_endpoint([]) == "not deployed"
