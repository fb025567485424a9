# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The remediation role's side of the instance id rule of module_utils/ec2_instance_id.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: ec2_instance_id
short_description: Is a value an EC2 instance id
version_added: 0.2.0
author: Karpenter HPA EKS contributors
description:
  - True when the value is a string of C(i-) followed by exactly 8 or exactly 17 lowercase hexadecimal
    characters, the two lengths of EC2 instance ids; false for anything else (other types, upper case,
    other lengths, a trailing newline, Unicode digits).
  - The same rule as the C(eks_autoscaling.core.sqs_events) event source applies before it emits an event,
    so an event the source emits always passes this test.
options:
  _input:
    description: The value to check.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse an event naming anything but EC2 instances
  ansible.builtin.assert:
    that:
      - remediation_event.instance_id is eks_autoscaling.core.ec2_instance_id
      - remediation_event.instance_ids | reject('eks_autoscaling.core.ec2_instance_id') | list | length == 0
"""

RETURN = r"""
_value:
  description: Whether the value is an EC2 instance id.
  type: bool
"""

from ansible_collections.eks_autoscaling.core.plugins.module_utils.ec2_instance_id import is_ec2_instance_id


class TestModule(object):
    def tests(self):
        return {"ec2_instance_id": is_ec2_instance_id}
