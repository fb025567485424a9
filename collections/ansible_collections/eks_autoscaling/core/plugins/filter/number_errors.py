# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation filter of integers and amounts with their ranges."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: number_errors
short_description: Check an integer (or a decimal number) and its range
version_added: 0.3.0
author: Karpenter HPA EKS contributors
description:
  - Checks that the value is an integer, or with C(integer=false) a decimal number, from C(minimum) to
    C(maximum) (each optional). Strings of digits count, since C(-e name=3) passes a string; booleans, floats
    with a fraction (for integers), strings with spaces, Unicode digits, NaN and infinities do not.
  - >-
    Returns a list of messages, each starting with the variable (and the key or item inside it), such as
    C(karpenter_replicas: -1 is not an integer at least 1); an empty list when the value is valid. It never raises on a value of the wrong type.
  - The rule lives in C(module_utils/input_rules.py), shared by every role, so no role copies a pattern.
options:
  _input:
    description: The number.
    type: raw
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    required: true
  minimum:
    description: The lowest value allowed.
    type: raw
  maximum:
    description: The highest value allowed.
    type: raw
  integer:
    description: Refuse fractions.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Refuse a replica count the Deployment cannot have
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ karpenter_replicas | eks_autoscaling.core.number_errors('karpenter_replicas', 1, 1000) }}"
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
        return {"number_errors": input_rules.number_errors}
