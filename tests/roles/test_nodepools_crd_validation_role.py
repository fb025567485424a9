"""The nodepools role's validation alone (tasks_from validate.yml), no cluster: helm renders the CRD chart.

A bad value fails the play naming the variable, the item and the field; a value the CRD allows (that our
hand-written checks used to refuse) passes; both in check mode too, where helm_template renders nothing
unless told to run.
"""
import json
import os
import subprocess
import sys

import pytest

from lab import labctl
from tests.paths import REPO

HELM = labctl.bin_dir(build=False) / "helm"
pytestmark = pytest.mark.skipif(not HELM.exists(), reason="the lab's helm is not built (lab/build.sh)")

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Validate
      ansible.builtin.include_role:
        name: nodepools
        tasks_from: validate.yml
"""


def run(tmp_path, *args, **variables):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    variables = dict({"ansible_python_interpreter": sys.executable, "nodepools_crd_chart_ref": str(labctl.karpenter_crd_chart()), "nodepools_crd_chart_version": "",
                      "nodepools_helm_binary": str(HELM)}, **variables)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"))
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local", *args,
                           "-e", json.dumps(variables), str(play)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def pool(**changes):
    value = {"name": "spot", "node_class": "default",
             "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}],
             "expire_after": "720h", "disruption": {"consolidation_policy": "WhenEmpty", "consolidate_after": "1m"}}
    value.update(changes)
    return value


@pytest.mark.parametrize("args", [[], ["--check"]], ids=["run", "check"])
@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"nodepools_list": [pool(expire_after="1.5h")]}, 'nodepools_list[0] (spot): spec.template.spec.expireAfter: Invalid value: "1.5h"'),
        ({"nodepools_list": [pool(termination_grace_period="2d")]}, "nodepools_list[0] (spot): spec.template.spec.terminationGracePeriod"),
        ({"nodepools_list": [pool(labels={"kubernetes.io/hostname": "x"})]},
         'nodepools_list[0] (spot): spec.template.metadata.labels: Invalid value: "object": label "kubernetes.io/hostname" is restricted'),
        ({"nodepools_list": [pool(node_class="gpu")]}, "nodepools_list[0].node_class: 'gpu' is not one of the node classes (default)"),
        ({"nodepools_node_classes": [{"name": "default", "role": "r", "instance_profile": "p", "ami_alias": "al2023@v20251120",
                                      "subnet_selector_terms": [{"id": "subnet-1"}], "security_group_selector_terms": [{"id": "sg-1"}]}]},
         "nodepools_node_classes[0] (default): spec: Invalid value: \"object\": must specify exactly one of ['role', 'instanceProfile']"),
    ],
)
def test_a_value_the_apiserver_refuses_fails_naming_the_variable(tmp_path, args, variables, named):
    result = run(tmp_path, *args, **variables)
    assert result.returncode != 0, result.stdout
    # The YAML callback folds long messages and doubles single quotes: compare words.
    assert " ".join(named.split()) in " ".join(result.stdout.replace("''", "'").split()), result.stdout[-3000:]


def test_balanced_consolidation_passes(tmp_path):
    result = run(tmp_path, "--check", nodepools_list=[pool(disruption={"consolidation_policy": "Balanced", "consolidate_after": "30s"})])
    assert result.returncode == 0, result.stdout[-3000:]


def test_an_unreachable_chart_fails_the_validation(tmp_path):
    result = run(tmp_path, nodepools_crd_chart_ref=str(tmp_path / "no-such-chart"))
    assert result.returncode != 0
    assert "Render the CRDs of the Karpenter CRD chart that will be installed" in result.stdout
