# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge an IAM role into the mapRoles of EKS's kube-system/aws-auth ConfigMap, safely."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: aws_auth_map_roles
short_description: Add or remove one role in aws-auth mapRoles without touching the others
version_added: 0.1.0
author: Karpenter HPA EKS contributors (!UNKNOWN)
description:
  - Takes the current C(mapRoles) text of C(kube-system/aws-auth) (empty when the ConfigMap or the key
    is missing) and returns the text to write, with the role present once (or absent).
  - Entries of other roles are kept as they are, in their order. When nothing needs to change the
    input text is returned unchanged, so the ConfigMap is not rewritten.
  - Text that is not a YAML list of mappings is refused with an error; the ConfigMap is then left alone.
  - The node username keeps the literal C({{EC2PrivateDNSName}}) placeholder, which EKS fills in.
options:
  _input:
    description: Current mapRoles text.
    type: str
    required: true
  role_arn:
    description: IAM role ARN to map.
    type: str
    required: true
  state:
    description: C(present) to map the role, C(absent) to remove it.
    type: str
    default: present
  groups:
    description: Kubernetes groups of the role.
    type: list
    elements: str
    default: [system:bootstrappers, system:nodes]
  username:
    description: Username; defaults to the EKS node username C(system:node:{{EC2PrivateDNSName}}).
    type: str
"""

EXAMPLES = r"""
- name: Map the Karpenter node role
  kubernetes.core.k8s:
    definition:
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: aws-auth, namespace: kube-system}
      data:
        mapRoles: "{{ current_map_roles | eks_autoscaling.core.aws_auth_map_roles(node_role_arn) }}"
"""

RETURN = r"""
_value:
  description: The mapRoles text to write.
  type: str
"""

import yaml

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only outside Ansible
    AnsibleFilterError = ValueError

NODE_USERNAME = "system:node:" + "{{EC2PrivateDNSName}}"
NODE_GROUPS = ["system:bootstrappers", "system:nodes"]


def parse_map_roles(text):
    """The entries of a mapRoles text, or an error naming what is wrong with it."""
    if text is None or not str(text).strip():
        return []
    try:
        entries = yaml.safe_load(str(text))
    except yaml.YAMLError as error:
        raise AnsibleFilterError("kube-system/aws-auth data.mapRoles is not valid YAML (%s); refusing to rewrite it" % error)
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AnsibleFilterError("kube-system/aws-auth data.mapRoles is not a list of mappings; refusing to rewrite it")
    missing = [i for i, e in enumerate(entries) if not e.get("rolearn")]
    if missing:
        raise AnsibleFilterError("kube-system/aws-auth data.mapRoles entries %s have no rolearn; refusing to rewrite it" % missing)
    return entries


def aws_auth_map_roles(text, role_arn, state="present", groups=None, username=None):
    entries = parse_map_roles(text)
    # Plain str: Ansible hands in tagged string subclasses, which yaml.safe_dump cannot represent.
    role_arn = str(role_arn)
    wanted = {"groups": [str(g) for g in (groups or NODE_GROUPS)], "rolearn": role_arn, "username": str(username or NODE_USERNAME)}
    others = [e for e in entries if e.get("rolearn") != role_arn]
    ours = [e for e in entries if e.get("rolearn") == role_arn]
    if state == "absent":
        if not ours:
            return text or ""
        result = others
    else:
        if ours == [wanted] or (len(ours) == 1 and _same(ours[0], wanted)):
            return text
        # Replace in place (first occurrence) so the order of the other entries is kept; drop duplicates.
        result = []
        placed = False
        for entry in entries:
            if entry.get("rolearn") == role_arn:
                if not placed:
                    result.append(wanted)
                    placed = True
                continue
            result.append(entry)
        if not placed:
            result.append(wanted)
    return yaml.safe_dump(result, default_flow_style=False, sort_keys=False) if result else ""


def _same(entry, wanted):
    return (
        sorted(entry.get("groups") or []) == sorted(wanted["groups"])
        and entry.get("username") == wanted["username"]
        and set(entry) <= {"groups", "rolearn", "username"}
    )


class FilterModule(object):
    def filters(self):
        return {"aws_auth_map_roles": aws_auth_map_roles}
