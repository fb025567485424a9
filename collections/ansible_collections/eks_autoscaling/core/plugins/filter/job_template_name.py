# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of this project's objects in automation controller."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: job_template_name
short_description: The automation controller job template made for a playbook of this project
version_added: 0.1.0
author: Karpenter HPA EKS contributors (!UNKNOWN)
description:
  - >-
    The prefix, a space, then the playbook's path under C(playbooks/) without C(.yml): C(playbooks/remediation/drain_node.yml)
    with prefix C(eks-autoscaling) gives C(eks-autoscaling remediation/drain_node).
  - >-
    The one naming rule of the controller role (which makes the job templates) and of rulebooks/controller_rulebook.py
    (which writes the rulebook that launches them).
options:
  _input:
    description: Path of a playbook in this project, C(playbooks/<...>.yml).
    type: str
    required: true
  prefix:
    description: Prefix of every object's name (the controller role's C(controller_name_prefix)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Launch a remediation's job template
  awx.awx.job_launch:
    name: "{{ 'playbooks/remediation/drain_node.yml' | eks_autoscaling.core.job_template_name('eks-autoscaling') }}"
"""

RETURN = r"""
_value:
  description: The job template's name.
  type: str
"""

from ansible.errors import AnsibleFilterError

PLAYBOOKS = "playbooks/"
SUFFIX = ".yml"


def job_template_name(playbook, prefix):
    if not isinstance(playbook, str) or not playbook.startswith(PLAYBOOKS) or not playbook.endswith(SUFFIX) or playbook == PLAYBOOKS + SUFFIX:
        raise AnsibleFilterError(f"job_template_name: not a playbook of this project (playbooks/<...>.yml): {playbook!r}")
    return f"{prefix} {playbook[len(PLAYBOOKS):-len(SUFFIX)]}"


class FilterModule:
    def filters(self):
        return {"job_template_name": job_template_name}
