# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that check manifests against the CRDs of a rendered Helm chart, as kube-apiserver would."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: crd
short_description: Check manifests against the CRDs of a rendered chart, as kube-apiserver would on create
version_added: 0.2.0
author: Karpenter HPA EKS contributors
description:
  - C(crd_errors) validates each manifest against the OpenAPI v3 schema and the CEL rules
    (C(x-kubernetes-validations)) of its CRD, taken from the rendered CRD chart given as the first argument
    (the C(stdout) of C(kubernetes.core.helm_template), or a list of parsed documents). It mirrors the
    apiserver on a create with strict field validation - unknown fields, defaults, metadata, types, formats,
    patterns, enums, bounds, required fields, then the CEL rules (transition rules with C(oldSelf) skipped) -
    so a value the apiserver would refuse is refused here, before anything changes.
  - >-
    Each error names the variable, the item and the field, for example
    C(nodepools_list[0] (default): spec.disruption.consolidateAfter: Invalid value: "500ms": ... should match ...).
  - Manifests whose kind has no CRD in the chart are not checked by C(crd_errors); C(crd_unchecked) returns one
    message for each of them, saying so.
  - Needs the Python package C(common-expression-language) on the controller for the CEL rules.
options:
  _input:
    description: The manifests (a list of dicts), in the order of the variable that produced them.
    type: list
    elements: dict
    required: true
  crds:
    description: The rendered chart, a YAML string of one or more documents, or a list of parsed documents.
    type: raw
    required: true
  variable:
    description: Name of the variable the manifests come from, used in the messages.
    type: str
    default: manifests
"""

EXAMPLES = r"""
- name: Render the CRD chart that will be installed
  kubernetes.core.helm_template:
    chart_ref: oci://public.ecr.aws/karpenter/karpenter-crd
    chart_version: 1.14.1
  register: crd_chart
  check_mode: false
  changed_when: false

- name: Refuse NodePools the apiserver would refuse
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: >-
      {{ nodepools_list | map('eks_autoscaling.core.nodepool_manifest', nodepools_node_classes) | list
         | eks_autoscaling.core.crd_errors(crd_chart.stdout, 'nodepools_list') }}

- name: Say which manifests no CRD of the chart covers
  ansible.builtin.debug:
    msg: "{{ node_class_manifests | eks_autoscaling.core.crd_unchecked(crd_chart.stdout, 'nodepools_node_classes') }}"
"""

RETURN = r"""
_value:
  description: A list of messages, empty when every manifest is valid (C(crd_errors)) or covered (C(crd_unchecked)).
  type: list
  elements: str
"""

import hashlib

import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.eks_autoscaling.core.plugins.module_utils import crd_schema, kube_cel

try:
    _LOADER = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _LOADER = yaml.SafeLoader

_PARSED = {}


def _schemas(crds):
    if isinstance(crds, str):
        digest = hashlib.sha256(crds.encode("utf-8")).hexdigest()
        if digest not in _PARSED:
            try:
                documents = list(yaml.load_all(crds, Loader=_LOADER))
            except yaml.YAMLError as exc:
                raise AnsibleFilterError("the rendered CRD chart is not YAML: %s" % exc)
            _PARSED[digest] = crd_schema.crd_schemas(documents)
        schemas = _PARSED[digest]
    else:
        schemas = crd_schema.crd_schemas(kube_cel.plain(crds))
    if not schemas:
        raise AnsibleFilterError("the rendered CRD chart has no CustomResourceDefinition with a schema")
    return schemas


def _label(variable, index, manifest):
    name = (manifest.get("metadata") or {}).get("name") if isinstance(manifest, dict) else None
    return "%s[%d] (%s)" % (variable, index, name) if name else "%s[%d]" % (variable, index)


def crd_errors(manifests, crds, variable="manifests"):
    """Every error the apiserver would report creating the manifests, prefixed with variable[index] (name)."""
    if not kube_cel.HAS_CEL:
        raise AnsibleFilterError("crd_errors needs the Python package common-expression-language on the controller: %s"
                                 % kube_cel.CEL_IMPORT_ERROR)
    schemas = _schemas(crds)
    errors = []
    for index, manifest in enumerate(manifests or []):
        try:
            schema = crd_schema.schema_for(schemas, manifest)
        except crd_schema.CRDError:
            continue
        errors.extend("%s: %s" % (_label(variable, index, manifest), error) for error in crd_schema.validate(manifest, schema))
    return errors


def crd_unchecked(manifests, crds, variable="manifests"):
    """One message for each manifest whose apiVersion and kind no CRD of the chart defines."""
    schemas = _schemas(crds)
    messages = []
    for index, manifest in enumerate(manifests or []):
        try:
            crd_schema.schema_for(schemas, manifest)
        except crd_schema.CRDError as exc:
            messages.append("%s: not validated against a CRD: %s" % (_label(variable, index, manifest), exc))
    return messages


class FilterModule(object):
    def filters(self):
        return {"crd_errors": crd_errors, "crd_unchecked": crd_unchecked}
