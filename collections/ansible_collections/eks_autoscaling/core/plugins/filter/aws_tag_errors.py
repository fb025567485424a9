# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation filter of AWS tags."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: aws_tag_errors
short_description: Check AWS tags, or one tag key or value
version_added: 0.3.0
author: Karpenter HPA EKS contributors
description:
  - Checks tags against the rule common to the AWS services our roles tag (EC2, IAM, SQS), keys of 1-128 and
    values of 0-256 Unicode letters, digits, spaces and C(_.:/=+-@), no control characters, and no key starting
    with the reserved C(aws:) prefix.
  - C(part=tags) checks a dict of tags (messages name the key); C(part=key) or C(part=value) one key or value.
  - >-
    Returns a list of messages, each starting with the variable (and the key or item inside it), such as
    C(eks_cluster_discovery_tag_key: "" is not a tag key (1-128 letters, ...)); an empty list when the value is valid. It never raises on a value of the wrong type.
  - The rule lives in C(module_utils/input_rules.py), shared by every role, so no role copies a pattern.
options:
  _input:
    description: A dict of tags, or one tag key or value.
    type: raw
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    required: true
  part:
    description: What the input is.
    type: str
    default: tags
    choices: [tags, key, value]
"""

EXAMPLES = r"""
- name: Refuse a discovery tag EC2 would refuse
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: >-
      {{ (eks_cluster_discovery_tag_key | eks_autoscaling.core.aws_tag_errors('eks_cluster_discovery_tag_key', 'key'))
         + (eks_cluster_name | eks_autoscaling.core.aws_tag_errors('eks_cluster_name', 'value')) }}
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
        return {"aws_tag_errors": input_rules.aws_tag_errors}
