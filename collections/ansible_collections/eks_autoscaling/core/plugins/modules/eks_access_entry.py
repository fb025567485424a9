#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: eks_access_entry
version_added: 0.1.0
short_description: Manage an Amazon EKS access entry
description:
  - Create, update or delete the access entry of one IAM principal on an Amazon EKS cluster.
  - An access entry lets an IAM role or user authenticate to the cluster's Kubernetes API without
    the C(aws-auth) ConfigMap. Node roles (for example the role of the nodes Karpenter launches)
    use O(type=EC2_LINUX) or O(type=EC2_WINDOWS).
  - The cluster's authentication mode must be C(API) or C(API_AND_CONFIG_MAP); the module fails
    with a clear message otherwise, and when the cluster does not exist (also with O(state=absent)).
  - Access policy associations (C(AssociateAccessPolicy)) are not managed by this module.
author:
  - Karpenter HPA EKS contributors (!UNKNOWN)
options:
  cluster_name:
    description:
      - Name of the EKS cluster.
    type: str
    required: true
  principal_arn:
    description:
      - ARN of the IAM role or IAM user the entry is for, in partition C(aws), C(aws-cn) or C(aws-us-gov).
      - STS session ARNs (C(assumed-role/...)) are refused, as EKS refuses them.
      - Must be an IAM role for every O(type) but V(STANDARD).
      - Identifies the entry; it cannot be changed.
    type: str
    required: true
  state:
    description:
      - Whether the access entry should exist.
    type: str
    choices: [present, absent]
    default: present
  type:
    description:
      - Type of the access entry.
      - EKS cannot change the type of an existing entry. When the existing entry has another type,
        the module fails naming the field, unless O(force=true).
    type: str
    choices: [STANDARD, EC2_LINUX, EC2_WINDOWS, FARGATE_LINUX]
    default: STANDARD
  kubernetes_groups:
    description:
      - Kubernetes groups the principal is a member of, as named in RoleBindings or ClusterRoleBindings.
      - Compared as a set; order and repeats are not changes.
      - An empty list removes every group. When not set, the groups are left as they are.
      - Only for O(type=STANDARD).
    type: list
    elements: str
  username:
    description:
      - Kubernetes username of the principal. When not set, EKS picks one on creation and an
        existing username is left as it is.
      - Only for O(type=STANDARD); EKS assigns the node username of the other types.
    type: str
  force:
    description:
      - When the existing entry has a different O(type), delete it and create it again with the
        requested one instead of failing.
      - Recreating the entry drops the access policies associated with it; re-associate them afterwards.
      - Tags and, for O(type=STANDARD), Kubernetes groups not given are carried over to the new entry.
    type: bool
    default: false
notes:
  - Supports check mode and diff mode. In check mode no mutating API is called.
  - Tag keys and values are kept exactly as EKS returns them (not converted to snake_case).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Authentication details come from the environment or the amazon.aws options; see the AWS guide.

- name: Let the Karpenter node role join the cluster
  eks_autoscaling.core.eks_access_entry:
    cluster_name: eksworkshop
    principal_arn: "arn:aws:iam::123456789012:role/KarpenterNodeRole-eksworkshop"
    type: EC2_LINUX
    tags:
      karpenter.sh/discovery: eksworkshop

- name: Give an operator role a Kubernetes group
  eks_autoscaling.core.eks_access_entry:
    cluster_name: eksworkshop
    principal_arn: "arn:aws:iam::123456789012:role/platform-operators"
    kubernetes_groups:
      - platform:operators
    username: platform-operator
  register: operators

- name: Turn an old STANDARD node entry into an EC2_LINUX one (drops its access policies)
  eks_autoscaling.core.eks_access_entry:
    cluster_name: eksworkshop
    principal_arn: "arn:aws:iam::123456789012:role/legacy-node-role"
    type: EC2_LINUX
    force: true

- name: Remove an access entry
  eks_autoscaling.core.eks_access_entry:
    cluster_name: eksworkshop
    principal_arn: "arn:aws:iam::123456789012:role/platform-operators"
    state: absent
"""

RETURN = r"""
access_entry:
  description:
    - The access entry as EKS describes it, keys in snake_case except the tag keys.
    - In check mode, the entry as it would be; fields only EKS can fill in (ARN, dates) are missing
      when the entry would be created.
    - Empty when O(state=absent).
  returned: always
  type: dict
  contains:
    cluster_name:
      description: Name of the cluster.
      type: str
      sample: eksworkshop
    principal_arn:
      description: ARN of the IAM principal.
      type: str
      sample: arn:aws:iam::123456789012:role/KarpenterNodeRole-eksworkshop
    access_entry_arn:
      description: ARN of the access entry.
      type: str
      sample: arn:aws:eks:ap-southeast-1:123456789012:access-entry/eksworkshop/role/123456789012/KarpenterNodeRole-eksworkshop/a1b2c3d4
    type:
      description: Type of the access entry.
      type: str
      sample: EC2_LINUX
    kubernetes_groups:
      description: Kubernetes groups of the principal.
      type: list
      elements: str
      sample: ["platform:operators"]
    username:
      description: Kubernetes username of the principal.
      type: str
      sample: "system:node:{{EC2PrivateDNSName}}"
    created_at:
      description: When the entry was created.
      type: str
      sample: "2026-11-25T12:00:00+00:00"
    modified_at:
      description: When the entry was last modified.
      type: str
      sample: "2026-11-25T12:00:00+00:00"
    tags:
      description: Tags of the entry, keys unchanged.
      type: dict
      sample: {"karpenter.sh/discovery": "eksworkshop"}
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import ACCESS_ENTRY_TYPES
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import EksAccessError
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import ensure_access_entry
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import ensure_access_entry_absent
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import get_access_entry
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import module_result
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import validate_access_entry_params
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import validate_principal_arn


def main():
    argument_spec = dict(
        cluster_name=dict(type="str", required=True),
        principal_arn=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        type=dict(type="str", default="STANDARD", choices=list(ACCESS_ENTRY_TYPES)),
        kubernetes_groups=dict(type="list", elements="str"),
        username=dict(type="str"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        force=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    cluster_name, principal_arn = params["cluster_name"], params["principal_arn"]

    try:
        # Refuse bad input before the first API call, not half-way through a change.
        if params["state"] == "present":
            validate_access_entry_params(principal_arn, params["type"], params["kubernetes_groups"], params["username"])
        else:
            validate_principal_arn(principal_arn)
        client = module.client("eks", retry_decorator=AWSRetry.jittered_backoff())
        before = get_access_entry(client, cluster_name, principal_arn)
        if params["state"] == "present":
            changed, after = ensure_access_entry(
                client,
                cluster_name,
                principal_arn,
                entry_type=params["type"],
                kubernetes_groups=params["kubernetes_groups"],
                username=params["username"],
                tags=params["tags"],
                purge_tags=params["purge_tags"],
                force=params["force"],
                check_mode=module.check_mode,
                current=before,
            )
        else:
            changed, after = ensure_access_entry_absent(
                client, cluster_name, principal_arn, check_mode=module.check_mode, current=before
            )
    except EksAccessError as e:
        module.fail_json_aws_error(e)

    module.exit_json(**module_result("access_entry", changed, before, after, module._diff))


if __name__ == "__main__":
    main()
