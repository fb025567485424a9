"""site.yml's summary counts nodes by who launched them and their capacity type."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))
from ansible_collections.eks_autoscaling.core.plugins.filter.summary import nodes_by_capacity_type  # noqa: E402


def test_nodes_by_capacity_type_counts_karpenter_and_nodegroup_nodes():
    nodes = [{"metadata": {"labels": {"eks.amazonaws.com/capacityType": "ON_DEMAND"}}}] * 3 + [
        {"metadata": {"labels": {"karpenter.sh/capacity-type": "spot"}}}] * 2 + [{"metadata": {}}]
    assert nodes_by_capacity_type(nodes) == {"karpenter spot": 2, "nodegroup on-demand": 3, "other": 1}
