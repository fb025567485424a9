#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: eks_pod_identity_association
version_added: 0.1.0
short_description: Manage an Amazon EKS pod identity association
description:
  - Create, update or delete the EKS Pod Identity association of one Kubernetes service account.
  - An association gives the pods running as O(namespace)/O(service_account) the credentials of
    an IAM role through the EKS Pod Identity Agent (for example the Karpenter controller role).
  - The association is identified by O(cluster_name), O(namespace) and O(service_account); EKS
    allows one per service account. Its IAM role can be changed in place.
  - Fails with a clear message when the cluster does not exist (also with O(state=absent)).
author:
  - Karpenter HPA EKS contributors (!UNKNOWN)
options:
  cluster_name:
    description:
      - Name of the EKS cluster.
    type: str
    required: true
  namespace:
    description:
      - Kubernetes namespace of the service account.
    type: str
    required: true
  service_account:
    description:
      - Name of the Kubernetes service account.
    type: str
    required: true
  role_arn:
    description:
      - ARN of the IAM role the pods get, in partition C(aws), C(aws-cn) or C(aws-us-gov).
      - The role's trust policy must allow C(pods.eks.amazonaws.com) to assume it and tag the session.
      - Required when O(state=present).
    type: str
  state:
    description:
      - Whether the association should exist.
    type: str
    choices: [present, absent]
    default: present
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

- name: Give the Karpenter controller its IAM role
  eks_autoscaling.core.eks_pod_identity_association:
    cluster_name: eksworkshop
    namespace: karpenter
    service_account: karpenter
    role_arn: "arn:aws:iam::123456789012:role/KarpenterControllerRole-eksworkshop"
    tags:
      app.kubernetes.io/name: karpenter
  register: karpenter_identity

- name: Show the association id
  ansible.builtin.debug:
    msg: "{{ karpenter_identity.association.association_id }}"

- name: Remove the association
  eks_autoscaling.core.eks_pod_identity_association:
    cluster_name: eksworkshop
    namespace: karpenter
    service_account: karpenter
    state: absent
"""

RETURN = r"""
association:
  description:
    - The association as EKS describes it, keys in snake_case except the tag keys.
    - In check mode, the association as it would be; fields only EKS can fill in (id, ARN, dates)
      are missing when it would be created.
    - Empty when O(state=absent).
  returned: always
  type: dict
  contains:
    cluster_name:
      description: Name of the cluster.
      type: str
      sample: eksworkshop
    namespace:
      description: Namespace of the service account.
      type: str
      sample: karpenter
    service_account:
      description: Name of the service account.
      type: str
      sample: karpenter
    role_arn:
      description: ARN of the IAM role the pods get.
      type: str
      sample: arn:aws:iam::123456789012:role/KarpenterControllerRole-eksworkshop
    association_arn:
      description: ARN of the association.
      type: str
      sample: arn:aws:eks:ap-southeast-1:123456789012:podidentityassociation/eksworkshop/a-abcdefghijklmnop1
    association_id:
      description: ID of the association.
      type: str
      sample: a-abcdefghijklmnop1
    created_at:
      description: When the association was created.
      type: str
      sample: "2026-11-25T12:00:00+00:00"
    modified_at:
      description: When the association was last modified.
      type: str
      sample: "2026-11-25T12:00:00+00:00"
    tags:
      description: Tags of the association, keys unchanged.
      type: dict
      sample: {"app.kubernetes.io/name": "karpenter"}
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import EksAccessError
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import ensure_pod_identity_association
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import (
    ensure_pod_identity_association_absent,
)
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import get_pod_identity_association
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import module_result
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_access import validate_pod_identity_params


def main():
    argument_spec = dict(
        cluster_name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        service_account=dict(type="str", required=True),
        role_arn=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["role_arn"])],
        supports_check_mode=True,
    )
    params = module.params
    cluster_name, namespace, service_account = params["cluster_name"], params["namespace"], params["service_account"]

    try:
        # Refuse bad input before the first API call, not half-way through a change.
        validate_pod_identity_params(namespace, service_account, params["role_arn"], params["state"])
        client = module.client("eks", retry_decorator=AWSRetry.jittered_backoff())
        before = get_pod_identity_association(client, cluster_name, namespace, service_account)
        if params["state"] == "present":
            changed, after = ensure_pod_identity_association(
                client,
                cluster_name,
                namespace,
                service_account,
                params["role_arn"],
                tags=params["tags"],
                purge_tags=params["purge_tags"],
                check_mode=module.check_mode,
                current=before,
            )
        else:
            changed, after = ensure_pod_identity_association_absent(
                client, cluster_name, namespace, service_account, check_mode=module.check_mode, current=before
            )
    except EksAccessError as e:
        module.fail_json_aws_error(e)

    module.exit_json(**module_result("association", changed, before, after, module._diff))


if __name__ == "__main__":
    main()
