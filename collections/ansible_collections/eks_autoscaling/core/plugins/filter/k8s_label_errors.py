# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation filter of Kubernetes labels and annotations."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: k8s_label_errors
short_description: Check Kubernetes labels, annotations, or one label key or value
version_added: 0.3.0
author: Karpenter HPA EKS contributors
description:
  - C(part=labels) checks a dict of labels, C(part=annotations) a dict of annotations, C(part=key) one key,
    C(part=value) one label value, as the apiserver does.
  - Keys are qualified names, C([prefix/]name), the prefix a DNS subdomain and the name at most 63 letters,
    digits, C(-), C(_) and C(.), starting and ending with a letter or digit. Label values are such a name or
    empty; annotation values any string, all annotations together at most 256 KiB.
  - >-
    Returns a list of messages, each starting with the variable (and the key or item inside it), such as
    C(demo_app_labels["tier"]: "web\\n" is not a label value (...)); an empty list when the value is valid. It never raises on a value of the wrong type.
  - The rule lives in C(module_utils/input_rules.py), shared by every role, so no role copies a pattern.
options:
  _input:
    description: A dict of labels or annotations, or one key or label value.
    type: raw
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    required: true
  part:
    description: What the input is.
    type: str
    default: labels
    choices: [labels, annotations, key, value]
"""

EXAMPLES = r"""
- name: Refuse labels the apiserver would refuse
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: >-
      {{ (demo_app_labels | eks_autoscaling.core.k8s_label_errors('demo_app_labels'))
         + (demo_app_pod_annotations | eks_autoscaling.core.k8s_label_errors('demo_app_pod_annotations', 'annotations')) }}
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
        return {"k8s_label_errors": input_rules.k8s_label_errors}
