# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation filter of AWS region names."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: aws_region_errors
short_description: Check an AWS region name, and its partition
version_added: 0.3.0
author: Karpenter HPA EKS contributors
description:
  - Checks that the value is a region name, C(<area>-<direction>-<number>) as in botocore's partitions
    (C(ap-southeast-1), C(cn-north-1), C(us-gov-west-1)); a misspelt region such as C(ap-southeast-one) is refused.
  - With C(partition), also that the region belongs to it (C(cn-) regions to aws-cn, C(us-gov-) to aws-us-gov,
    the others to aws).
  - >-
    Returns a list of messages, each starting with the variable (and the key or item inside it), such as
    C(eks_cluster_region: "ap-southeast-one" is not an AWS region (...)); an empty list when the value is valid. It never raises on a value of the wrong type.
  - The rule lives in C(module_utils/input_rules.py), shared by every role, so no role copies a pattern.
options:
  _input:
    description: The region name.
    type: raw
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    required: true
  partition:
    description: The partition the region must be in.
    type: str
    choices: [aws, aws-cn, aws-us-gov]
"""

EXAMPLES = r"""
- name: Refuse a region that is not one, or not in the partition
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ event_bus_billing_region | eks_autoscaling.core.aws_region_errors('event_bus_billing_region', eks_cluster_partition) }}"
"""

RETURN = r"""
_value:
  description: The error messages; empty when the value is valid.
  type: list
  elements: str
"""

from ansible_collections.eks_autoscaling.core.plugins.module_utils import input_rules


class FilterModule(object):
    def filters(self):
        return {"aws_region_errors": input_rules.aws_region_errors}
