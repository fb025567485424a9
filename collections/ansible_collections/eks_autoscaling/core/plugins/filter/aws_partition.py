# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The partition of an AWS region."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: aws_partition
short_description: The AWS partition a region belongs to
version_added: 0.4.0
author: Karpenter HPA EKS contributors
description:
  - >-
    Returns the partition of a region name as ARNs spell it, C(aws-cn) for C(cn-) regions, C(aws-us-gov) for
    C(us-gov-) regions, C(aws) for the others.
  - The cluster's partition is derived from its region once (role C(eks_cluster)), so no role asks the user for
    it and none can disagree with another.
  - The rule is the one C(aws_region_errors) checks with (C(module_utils/input_rules.py)); a value that is not a
    region fails the template with a message naming it (validate it with C(aws_region_errors) first).
options:
  _input:
    description: The region name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Name the node role's ARN in the cluster's partition
  ansible.builtin.set_fact:
    node_role_arn: "arn:{{ eks_cluster_region | eks_autoscaling.core.aws_partition }}:iam::123456789012:role/KarpenterNodeRole-eksworkshop"
"""

RETURN = r"""
_value:
  description: C(aws), C(aws-cn) or C(aws-us-gov).
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.eks_autoscaling.core.plugins.module_utils import input_rules


def aws_partition(region):
    partition = input_rules.region_partition(region)
    if partition is None:
        raise AnsibleFilterError("aws_partition: %r is not an AWS region name" % (region,))
    return partition


class FilterModule(object):
    def filters(self):
        return {"aws_partition": aws_partition}
