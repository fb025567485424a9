#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: eks_cluster_info
version_added: 0.1.0
short_description: Gather facts about an Amazon EKS cluster and its managed nodegroups
description:
  - Describe one Amazon EKS cluster and, by default, every managed nodegroup it has.
  - Besides the cluster as EKS describes it, returns the facts that Karpenter and IRSA set-ups
    keep deriving from it, at the top level of the result (the OIDC issuer and provider, the
    cluster security group, the VPC, the authentication mode, the partition and account of the
    cluster, and the union of the nodegroups' subnets).
  - Fails, naming the cluster and the region, when the cluster does not exist. An empty result
    would let a wrong name or region go unnoticed until a later task used the missing facts.
  - Only reads; it never changes anything, in check mode or not.
author:
  - Karpenter HPA EKS contributors (!UNKNOWN)
options:
  name:
    description:
      - Name of the EKS cluster.
    type: str
    required: true
    aliases: [cluster_name]
  nodegroups:
    description:
      - Also list the cluster's managed nodegroups (across all pages of C(ListNodegroups)) and
        describe each of them.
      - Set to V(false) to make a single API call when only cluster facts are needed; RV(nodegroups)
        and RV(nodegroup_subnet_ids) are then not returned.
      - Self-managed node groups and nodes launched by Karpenter are not managed nodegroups and
        are never listed.
    type: bool
    default: true
notes:
  - Supports check mode; the module makes only read calls
    (C(DescribeCluster), C(ListNodegroups), C(DescribeNodegroup)).
  - Tag keys, and the keys of nodegroup Kubernetes labels, are kept exactly as EKS returns them
    (not converted to snake_case).
  - A nodegroup deleted while the module runs is left out of RV(nodegroups) instead of failing the task.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Authentication details come from the environment or the amazon.aws options; see the AWS guide.

- name: Read the cluster and its nodegroups
  eks_autoscaling.core.eks_cluster_info:
    name: eksworkshop
  register: eks

- name: Name the cluster's IAM OIDC provider, for IRSA trust policies
  ansible.builtin.set_fact:
    oidc_provider_arn: "arn:{{ eks.partition }}:iam::{{ eks.account_id }}:oidc-provider/{{ eks.oidc_provider }}"
    oidc_subject_key: "{{ eks.oidc_provider }}:sub"

- name: Tag the nodegroups' subnets for Karpenter discovery
  amazon.aws.ec2_tag:
    resource: "{{ item }}"
    tags:
      karpenter.sh/discovery: eksworkshop
  loop: "{{ eks.nodegroup_subnet_ids }}"

- name: Only the authentication mode, one API call
  eks_autoscaling.core.eks_cluster_info:
    name: eksworkshop
    nodegroups: false
  register: eks_auth

- name: Use access entries when the cluster allows them
  ansible.builtin.debug:
    msg: "{{ 'aws-auth ConfigMap' if eks_auth.authentication_mode == 'CONFIG_MAP' else 'access entries' }}"
"""

RETURN = r"""
cluster:
  description:
    - The cluster as C(DescribeCluster) returns it, keys in snake_case except the tag keys.
  returned: success
  type: dict
  contains:
    name:
      description: Name of the cluster.
      type: str
      sample: eksworkshop
    arn:
      description: ARN of the cluster.
      type: str
      sample: arn:aws:eks:ap-southeast-1:123456789012:cluster/eksworkshop
    version:
      description: Kubernetes version of the control plane.
      type: str
      sample: "1.33"
    status:
      description: Status of the cluster.
      type: str
      sample: ACTIVE
    endpoint:
      description: URL of the Kubernetes API server.
      type: str
      sample: https://0123456789ABCDEF0123456789ABCDEF.gr7.ap-southeast-1.eks.amazonaws.com
    role_arn:
      description: IAM role the control plane uses.
      type: str
      sample: arn:aws:iam::123456789012:role/eksworkshop-cluster-role
    resources_vpc_config:
      description: Network configuration of the cluster.
      type: dict
      sample:
        subnet_ids: ["subnet-0a1b2c3d4e5f60718", "subnet-0b1c2d3e4f5a60718"]
        security_group_ids: []
        cluster_security_group_id: sg-0123456789abcdef0
        vpc_id: vpc-0123456789abcdef0
        endpoint_public_access: true
        endpoint_private_access: true
    identity:
      description: Identity provider of the cluster.
      type: dict
      sample: {"oidc": {"issuer": "https://oidc.eks.ap-southeast-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"}}
    access_config:
      description: How the cluster authenticates IAM principals; missing on clusters that predate access entries.
      type: dict
      sample: {"authentication_mode": "API_AND_CONFIG_MAP", "bootstrap_cluster_creator_admin_permissions": true}
    certificate_authority:
      description: Certificate authority data of the cluster, base64-encoded.
      type: dict
      sample: {"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t..."}
    created_at:
      description: When the cluster was created.
      type: str
      sample: "2026-11-25T12:00:00+00:00"
    tags:
      description: Tags of the cluster, keys unchanged.
      type: dict
      sample: {"karpenter.sh/discovery": "eksworkshop"}
oidc_issuer:
  description:
    - URL of the cluster's OpenID Connect issuer.
    - V(null) while EKS has not assigned one yet.
  returned: success
  type: str
  sample: https://oidc.eks.ap-southeast-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF
oidc_provider:
  description:
    - RV(oidc_issuer) without C(https://), the form IAM uses in OIDC provider ARNs and in the
      condition keys of IRSA trust policies.
    - V(null) when RV(oidc_issuer) is.
  returned: success
  type: str
  sample: oidc.eks.ap-southeast-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF
cluster_security_group_id:
  description: ID of the security group EKS created for the cluster (C(resourcesVpcConfig.clusterSecurityGroupId)).
  returned: success
  type: str
  sample: sg-0123456789abcdef0
vpc_id:
  description: ID of the cluster's VPC.
  returned: success
  type: str
  sample: vpc-0123456789abcdef0
authentication_mode:
  description:
    - The cluster's C(accessConfig.authenticationMode).
    - V(CONFIG_MAP) when EKS returns no access configuration, as for clusters created before access entries.
  returned: success
  type: str
  sample: API_AND_CONFIG_MAP
partition:
  description: AWS partition of the cluster, from its ARN.
  returned: success
  type: str
  sample: aws
account_id:
  description: AWS account of the cluster, from its ARN.
  returned: success
  type: str
  sample: "123456789012"
nodegroups:
  description:
    - Every managed nodegroup of the cluster as C(DescribeNodegroup) returns it, ordered by name,
      keys in snake_case except the tag keys and the Kubernetes label keys.
    - An empty list when the cluster has no managed nodegroup.
  returned: when O(nodegroups=true)
  type: list
  elements: dict
  contains:
    nodegroup_name:
      description: Name of the nodegroup.
      type: str
      sample: default
    nodegroup_arn:
      description: ARN of the nodegroup.
      type: str
      sample: arn:aws:eks:ap-southeast-1:123456789012:nodegroup/eksworkshop/default/a1b2c3d4-0000-1111-2222-333344445555
    status:
      description: Status of the nodegroup.
      type: str
      sample: ACTIVE
    subnets:
      description: Subnets the nodegroup launches nodes in.
      type: list
      elements: str
      sample: ["subnet-0a1b2c3d4e5f60718", "subnet-0b1c2d3e4f5a60718"]
    node_role:
      description: IAM role of the nodegroup's nodes.
      type: str
      sample: arn:aws:iam::123456789012:role/eksworkshop-node-role
    capacity_type:
      description: Whether the nodes are On-Demand or Spot instances.
      type: str
      sample: ON_DEMAND
    instance_types:
      description: Instance types of the nodes.
      type: list
      elements: str
      sample: ["m5.large"]
    scaling_config:
      description: Minimum, maximum and desired number of nodes.
      type: dict
      sample: {"min_size": 2, "max_size": 4, "desired_size": 2}
    labels:
      description: Kubernetes labels of the nodes, keys unchanged.
      type: dict
      sample: {"eks.amazonaws.com/nodegroup-role": "system"}
    taints:
      description: Kubernetes taints of the nodes.
      type: list
      elements: dict
      sample: [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}]
    tags:
      description: Tags of the nodegroup, keys unchanged.
      type: dict
      sample: {"karpenter.sh/discovery": "eksworkshop"}
nodegroup_subnet_ids:
  description: Sorted union, without repeats, of the subnets of every nodegroup in RV(nodegroups).
  returned: when O(nodegroups=true)
  type: list
  elements: str
  sample: ["subnet-0a1b2c3d4e5f60718", "subnet-0b1c2d3e4f5a60718", "subnet-0c1d2e3f4a5b60718"]
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_cluster import EksClusterError
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_cluster import get_cluster_info
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_cluster import validate_cluster_name


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["cluster_name"]),
        nodegroups=dict(type="bool", default=True),
    )
    # Read-only, so check mode runs exactly as a normal run does.
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    try:
        validate_cluster_name(params["name"])
        client = module.client("eks", retry_decorator=AWSRetry.jittered_backoff())
        facts = get_cluster_info(client, params["name"], nodegroups=params["nodegroups"])
    except EksClusterError as e:
        module.fail_json_aws_error(e)

    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
