#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: helm_values_check
version_added: 0.1.0
short_description: Check a Helm release's values against its chart and the cluster, changing nothing
description:
  - Renders the chart with C(helm template) and the release's values, as C(helm upgrade --install) would render
    it on this cluster (the cluster's version and API versions, C(--is-upgrade) when the release exists). Helm
    checks the values against the chart's C(values.schema.json) when it has one.
  - Sends every object it renders to the apiserver with C(dryRun=All) (server-side apply, strict field
    validation). The apiserver validates, defaults and admits it, and stores nothing.
  - An object in the release namespace the install would create (O(create_namespace)) is dry-run in
    C(default). An object of a kind the cluster does not serve yet, whose CRD the install brings (the chart's
    C(crds/), or O(crd_chart_ref)), is checked against that CRD's schema and CEL rules offline; any other
    kind the cluster does not serve fails the check, as it would fail the install.
  - Fails naming O(values_variable) and the field Helm or the apiserver names. Never changes anything, so it
    runs the same in check mode.
author:
  - Karpenter HPA EKS contributors (!UNKNOWN)
options:
  binary_path:
    description:
      - Path of the helm binary.
    type: path
    default: helm
  name:
    description:
      - Release name.
    type: str
    required: true
    aliases: [release_name]
  release_namespace:
    description:
      - Namespace of the release.
    type: str
    required: true
    aliases: [namespace]
  create_namespace:
    description:
      - Whether the install creates O(release_namespace) when it does not exist.
    type: bool
    default: false
  chart_ref:
    description:
      - The chart, as M(kubernetes.core.helm) takes it (an OCI reference, a path, or a name in O(chart_repo_url)).
    type: str
    required: true
  chart_repo_url:
    description:
      - Chart repository URL, when O(chart_ref) is a chart name in it.
    type: str
  chart_version:
    description:
      - Chart version.
    type: str
  release_values:
    description:
      - The release's values, exactly as the install gets them.
    type: dict
    default: {}
    aliases: [values]
  values_variable:
    description:
      - The variable the values come from, named in every error.
    type: str
    required: true
  crd_chart_ref:
    description:
      - A chart of CRDs installed (from O(chart_repo_url), with O(chart_version)) before this release. Objects of its
        kinds are checked against its CRDs while they are not installed yet.
    type: str
  crd_release_name:
    description:
      - Release name the CRD chart is rendered under.
    type: str
    default: crds
notes:
  - Supports check mode; nothing is ever changed.
  - Needs get on namespaces, list on secrets of the release namespace (Helm's release records), discovery, and the
    rights to create or patch the release's objects (a dry run is authorized like the request itself).
  - The release is taken to exist when Helm's default storage (Secrets) holds it.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
"""

EXAMPLES = r"""
- name: Check the values before anything changes
  eks_autoscaling.core.helm_values_check:
    binary_path: "{{ karpenter_helm_binary }}"
    name: karpenter
    release_namespace: karpenter
    create_namespace: true
    chart_ref: oci://public.ecr.aws/karpenter/karpenter
    chart_version: "1.14.1"
    crd_chart_ref: oci://public.ecr.aws/karpenter/karpenter-crd
    release_values: "{{ karpenter_release_values }}"
    values_variable: karpenter_extra_values
"""

RETURN = r"""
is_upgrade:
  description: Whether the release exists, so the chart was rendered as an upgrade.
  returned: always
  type: bool
  sample: false
kube_version:
  description: The cluster's version the chart was rendered for.
  returned: always
  type: str
  sample: v1.33.1
objects:
  description: Each object the chart renders and how it was checked.
  returned: always
  type: list
  elements: dict
  contains:
    object:
      description: Kind, namespace (the one it was dry-run in) and name.
      type: str
      sample: Deployment karpenter/karpenter
    checked:
      description: C(server-side dry run), or C(CRD schema (its CRD is not installed yet)).
      type: str
      sample: server-side dry run
errors:
  description: Why the values cannot be installed, each naming O(values_variable); the task fails when there is any.
  returned: always
  type: list
  elements: str
  sample: []
"""

import copy

from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

from ansible_collections.eks_autoscaling.core.plugins.module_utils.helm_values import HelmValuesError
from ansible_collections.eks_autoscaling.core.plugins.module_utils.helm_values import KubeApi
from ansible_collections.eks_autoscaling.core.plugins.module_utils.helm_values import check_release

try:
    from kubernetes.client.exceptions import ApiException
except ImportError:
    pass  # AnsibleK8SModule reports the missing library


def main():
    argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
    argument_spec.update(
        binary_path=dict(type="path", default="helm"),
        name=dict(type="str", required=True, aliases=["release_name"]),
        release_namespace=dict(type="str", required=True, aliases=["namespace"]),
        create_namespace=dict(type="bool", default=False),
        chart_ref=dict(type="str", required=True),
        chart_repo_url=dict(type="str"),
        chart_version=dict(type="str"),
        release_values=dict(type="dict", default={}, aliases=["values"]),
        values_variable=dict(type="str", required=True),
        crd_chart_ref=dict(type="str"),
        crd_release_name=dict(type="str", default="crds"),
    )
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    spec = {
        "helm": params["binary_path"], "release_name": params["name"], "namespace": params["release_namespace"],
        "create_namespace": params["create_namespace"], "chart_ref": params["chart_ref"],
        "chart_repo_url": params["chart_repo_url"], "chart_version": params["chart_version"],
        "values": params["release_values"], "values_variable": params["values_variable"],
        "crd_chart_ref": params["crd_chart_ref"], "crd_release_name": params["crd_release_name"],
    }

    def run(argv, stdin):
        # AnsibleK8SModule wraps the AnsibleModule, whose run_command it does not pass through.
        return module._module.run_command(argv, data=stdin, binary_data=True)

    try:
        # get_api_client gives kubernetes.core's wrapper of a dynamic client; its raw requests are what the check needs.
        kube = KubeApi(get_api_client(module=module).client, ApiException)
        result = check_release(kube, run, spec)
    except (HelmValuesError, CoreException) as e:
        module.fail_json(msg=str(e))
    except ApiException as e:
        module.fail_json(msg="the apiserver answered %s while the values were checked: %s" % (e.status, e.reason))
    if result["errors"]:
        module.fail_json(msg="; ".join(result["errors"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
