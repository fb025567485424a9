# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation filter of durations."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: duration_errors
short_description: Check a duration such as 720h or 1m30s
version_added: 0.3.0
author: Karpenter HPA EKS contributors
description:
  - Checks a Go duration without sign or fraction (C(720h), C(1m30s)) made only of the units in C(units)
    (Karpenter's CRDs allow C(s), C(m) and C(h)), and at least C(minimum) seconds; C(Never) where
    C(allow_never) says so.
  - >-
    Returns a list of messages, each starting with the variable (and the key or item inside it), such as
    C(nodepools_list[0].expire_after: "30d" is not a duration such as 720h or 1m30s (...)); an empty list when the value is valid. It never raises on a value of the wrong type.
  - The rule lives in C(module_utils/input_rules.py), shared by every role, so no role copies a pattern.
options:
  _input:
    description: The duration.
    type: raw
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    required: true
  units:
    description: Letters of the units allowed (C(s), C(m), C(h)), or a comma-separated list that may include C(ms), C(us), C(ns).
    type: str
    default: smh
  allow_never:
    description: Also accept C(Never).
    type: bool
    default: false
  minimum:
    description: Shortest duration allowed, in seconds.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Refuse a node lifetime Karpenter would refuse
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ '720h' | eks_autoscaling.core.duration_errors('nodepools_list[0].expire_after', 'smh', true) }}"
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
        return {"duration_errors": input_rules.duration_errors}
