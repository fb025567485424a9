# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation filter of Kubernetes quantities."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: k8s_quantity_errors
short_description: Check a Kubernetes resource quantity (or a dict of them), and its lower bound
version_added: 0.3.0
author: Karpenter HPA EKS contributors
description:
  - Checks the Kubernetes quantity grammar, a signed decimal number and a suffix (binary SI C(Ki) to C(Ei),
    decimal SI C(n u m k M G T P E) or an exponent C(e3)), as the apiserver parses it; C(2 cores), C(1.5 GB) or
    C(2CPU) are refused. Integers are quantities too; floats and booleans are not.
  - The value must be at least C(minimum) (above it with C(exclusive)); C(minimum) of null allows negatives.
  - A dict (such as C(requests)) is checked item by item; the messages name the key.
  - >-
    Returns a list of messages, each starting with the variable (and the key or item inside it), such as
    C(demo_app_cpu: "2 cores" is not a Kubernetes quantity (...)); an empty list when the value is valid. It never raises on a value of the wrong type.
  - The rule lives in C(module_utils/input_rules.py), shared by every role, so no role copies a pattern.
options:
  _input:
    description: A quantity, or a dict of them.
    type: raw
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    required: true
  minimum:
    description: The lowest value allowed, a number or a quantity; null for no bound.
    type: raw
    default: 0
  exclusive:
    description: Refuse C(minimum) itself too.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Refuse a CPU request that is not a positive quantity
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ demo_app_cpu | eks_autoscaling.core.k8s_quantity_errors('demo_app_cpu', 0, true) }}"
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
        return {"k8s_quantity_errors": input_rules.k8s_quantity_errors}
