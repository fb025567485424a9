# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation filter of ARNs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: aws_arn_errors
short_description: Check an ARN, and its partition
version_added: 0.3.0
author: Karpenter HPA EKS contributors
description:
  - Checks an IAM role ARN, C(arn:<partition>:iam::<12-digit account>:role[/path/]<name>), the name an IAM role
    name and the path printable ASCII between slashes; with C(partition), also that the ARN is in that partition.
  - >-
    Returns a list of messages, each starting with the variable (and the key or item inside it), such as
    C(eks_cluster_node_role_arn: "arn:aws:iam::12:role/x" is not an IAM role ARN (...)); an empty list when the value is valid. It never raises on a value of the wrong type.
  - The rule lives in C(module_utils/input_rules.py), shared by every role, so no role copies a pattern.
options:
  _input:
    description: The ARN.
    type: raw
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    required: true
  kind:
    description: What the ARN names.
    type: str
    default: iam_role
    choices: [iam_role]
  partition:
    description: The partition the ARN must be in; any of aws, aws-cn, aws-us-gov when omitted.
    type: str
"""

EXAMPLES = r"""
- name: Refuse a node role ARN that is not one
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ eks_cluster_node_role_arn | eks_autoscaling.core.aws_arn_errors('eks_cluster_node_role_arn', 'iam_role') }}"
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
        return {"aws_arn_errors": input_rules.aws_arn_errors}
