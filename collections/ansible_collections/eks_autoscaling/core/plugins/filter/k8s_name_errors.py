# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation filter of Kubernetes object names."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: k8s_name_errors
short_description: Check a Kubernetes object name (DNS label, DNS subdomain, Helm release name)
version_added: 0.3.0
author: Karpenter HPA EKS contributors
description:
  - Checks a name as the apiserver does (k8s.io/apimachinery validation), for C(kind) one of C(dns_label)
    (RFC 1123 label, at most 63, for namespaces), C(dns_1035_label) (starting with a letter, for Services),
    C(dns_subdomain) (at most 253, for most objects), C(helm_release) (a subdomain of at most 53, the limit of Helm)
    or C(rbac_subject) (an RBAC user or group name, free text without surrounding spaces or control characters).
  - A list is checked item by item, the messages naming C(variable[index]).
  - >-
    Returns a list of messages, each starting with the variable (and the key or item inside it), such as
    C(demo_app_namespace: "Shop" is not a DNS label (...)); an empty list when the value is valid. It never raises on a value of the wrong type.
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
    description: Which naming rule applies.
    type: str
    default: dns_subdomain
    choices: [dns_label, dns_1035_label, dns_subdomain, helm_release, rbac_subject]
"""

EXAMPLES = r"""
- name: Refuse a namespace the apiserver would refuse
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ demo_app_namespace | eks_autoscaling.core.k8s_name_errors('demo_app_namespace', 'dns_label') }}"
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
        return {"k8s_name_errors": input_rules.k8s_name_errors}
