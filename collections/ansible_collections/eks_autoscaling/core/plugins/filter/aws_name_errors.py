# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation filter of AWS resource names (IAM, SQS, EventBridge, SNS, Budgets, EKS, CloudWatch, EC2 ids)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: aws_name_errors
short_description: Check an AWS resource name against the rule of the service that receives it
version_added: 0.3.0
author: Karpenter HPA EKS contributors
description:
  - Checks a name against the length constraint and pattern the receiving API applies, for C(kind) one of
    C(iam_role) (1-64 of letters, digits and C(_+=,.@-)), C(iam_policy) and C(iam_instance_profile) (the same
    characters, 1-128), C(sqs_queue) (1-80 of letters, digits, C(-) and C(_)), C(eventbridge_rule) (1-64 of letters,
    digits and C(._-)), C(sns_topic) (1-256 of letters, digits, C(-) and C(_)), C(budget) (1-100 characters without
    C(:), C(\\), control characters or C(/action/)), C(eks_cluster) (1-100 of letters, digits, C(-) and C(_),
    starting with a letter or digit), C(cloudwatch_alarm) (1-255 characters without control characters),
    C(subnet_id) and C(security_group_id) (C(subnet-) or C(sg-) and 8 or 17 lowercase hexadecimal characters).
  - ASCII only where the service is, and no surrounding whitespace or trailing newline.
  - A list is checked item by item, the messages naming C(variable[index]).
  - >-
    Returns a list of messages, each starting with the variable (and the key or item inside it), such as
    C(eks_cluster_node_role_name: "Karpenter Node" is not an IAM role name (...)); an empty list when the value is valid. It never raises on a value of the wrong type.
  - The rule lives in C(module_utils/input_rules.py), shared by every role, so no role copies a pattern.
options:
  _input:
    description: The name, or a list of names.
    type: raw
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    required: true
  kind:
    description: Which service's name it is.
    type: str
    required: true
    choices: [iam_role, iam_policy, iam_instance_profile, sqs_queue, eventbridge_rule, sns_topic, budget, eks_cluster,
              cloudwatch_alarm, subnet_id, security_group_id, account_id]
"""

EXAMPLES = r"""
- name: Refuse a role name IAM would refuse, before any change
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: >-
      {{ (eks_cluster_node_role_name | eks_autoscaling.core.aws_name_errors('eks_cluster_node_role_name', 'iam_role'))
         + (('Karpenter-' ~ eks_cluster_name ~ '-SpotInterruption')
            | eks_autoscaling.core.aws_name_errors('eks_cluster_name (in the rule name)', 'eventbridge_rule')) }}
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
        return {"aws_name_errors": input_rules.aws_name_errors}
