"""The tutorial typed by hand on the lab, in its own order: lab/tutorial/replay.sh, one step at a time.

None of our roles runs here. The steps are the tutorial's aws, kubectl and helm commands with its names
and values (Karpenter v1 where v0.29 no longer applies; replay.sh says why at each difference), so this
shows the lab is an account and a cluster a person following the tutorial can use: the policy they
write is the one the real controller is authorized by, the tags they put on subnets are how it finds
them, the instance profile they make is the one its launches pass. The tests run in file order and
share the replay; the last one undoes it and checks the lab is as it was.
"""
import json
import os
import subprocess

import pytest

from .conftest import REPO, lab_log_lines, wait_until

REPLAY = REPO / "lab" / "tutorial" / "replay.sh"
APP_NS = "nlb-app-karpenter"
CLUSTER = "eksworkshop"
CONTROLLER_ROLE = f"arn:aws:iam::123456789012:role/KarpenterControllerRole-{CLUSTER}"
TUTORIAL_TYPES = {"m6g.xlarge", "r6g.xlarge", "c6g.2xlarge"}
LOG_START = {}
BEFORE = {}


def lab_snapshot(aws, kube_json, lab_env):
    """What the replay creates, wherever it lives: equal before the replay and after its clean-up."""
    iam = aws("iam")
    bins = lab_env["PATH"].split(":")[0]
    releases = json.loads(subprocess.run([f"{bins}/helm", "list", "-A", "-o", "json"], env=lab_env,
                                         capture_output=True, text=True, check=True).stdout)
    return {
        "roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
        "instance_profiles": sorted(p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]),
        "discovery_tags": sorted(t["ResourceId"] for t in aws("ec2").describe_tags(
            Filters=[{"Name": "key", "Values": ["karpenter.sh/discovery"]}])["Tags"]),
        "running_karpenter_instances": sorted(
            i["InstanceId"] for r in aws("ec2").describe_instances(Filters=[
                {"Name": "tag-key", "Values": ["karpenter.sh/nodepool"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"] for i in r["Instances"]),
        "launch_templates": sorted(t["LaunchTemplateName"] for t in aws("ec2").describe_launch_templates()["LaunchTemplates"]),
        "namespaces": sorted(n["metadata"]["name"] for n in kube_json("namespaces")["items"]),
        "crds": sorted(c["metadata"]["name"] for c in kube_json("crd")["items"]),
        "kube_system_configmaps": sorted(c["metadata"]["name"] for c in kube_json("configmaps", "-n", "kube-system")["items"]),
        "helm_releases": sorted(r["name"] for r in releases),
    }


@pytest.fixture(scope="module")
def replay(lab, tmp_path_factory):
    env = {**os.environ, "KUBECONFIG": str(lab.KUBECONFIG), **lab.AWS_ENV,
           "PATH": f"{lab.bin_dir(build=False)}:{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
           "TUTORIAL_DIR": str(tmp_path_factory.mktemp("tutorial"))}

    def step(*names, timeout=600):
        outputs = []
        for name in names:
            result = subprocess.run(["bash", str(REPLAY), name], env=env, capture_output=True, text=True, timeout=timeout)
            assert result.returncode == 0, f"tutorial step {name} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            outputs.append(result.stdout)
        return "\n".join(outputs)

    LOG_START["aws"] = len(lab_log_lines("aws"))
    yield step
    # Whatever happened, leave nothing of the replay for the next test file.
    subprocess.run(["bash", str(REPLAY), "cleanup"], env=env, capture_output=True, text=True, timeout=900)


def controller_denials():
    return [line for line in lab_log_lines("aws")[LOG_START["aws"]:] if "DENIED" in line and CONTROLLER_ROLE in line]


def test_chapter_3_by_hand_makes_the_roles_tags_and_aws_auth_entry(replay, aws, kube_json, lab_env):
    import yaml

    BEFORE.update(lab_snapshot(aws, kube_json, lab_env))
    assert f"KarpenterNodeRole-{CLUSTER}" not in BEFORE["roles"], "the lab already has the tutorial's roles: a test before this one left them"
    replay("prerequisites", "2.2", "2.3", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7")
    iam = aws("iam")
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=f"KarpenterNodeRole-{CLUSTER}")["AttachedPolicies"]}
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore"}
    profile = iam.get_instance_profile(InstanceProfileName=f"KarpenterNodeInstanceProfile-{CLUSTER}")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [f"KarpenterNodeRole-{CLUSTER}"]
    assert iam.list_role_policies(RoleName=f"KarpenterControllerRole-{CLUSTER}")["PolicyNames"] == [f"KarpenterControllerPolicy-{CLUSTER}"]
    cluster = aws("eks").describe_cluster(name=CLUSTER)["cluster"]
    nodegroup = aws("eks").describe_nodegroup(clusterName=CLUSTER, nodegroupName="ng-ondemand")["nodegroup"]
    # Subnets and security groups: instances and volumes an earlier test's node class tagged may still be listed.
    tagged = {t["ResourceId"] for t in aws("ec2").describe_tags(Filters=[
        {"Name": "key", "Values": ["karpenter.sh/discovery"]}, {"Name": "resource-type", "Values": ["subnet", "security-group"]}])["Tags"]}
    assert tagged == {*nodegroup["subnets"], cluster["resourcesVpcConfig"]["clusterSecurityGroupId"]}
    # The on-demand app of chapter 2 ran and is gone again, as the tutorial leaves it.
    assert not kube_json("namespaces", "--field-selector", "metadata.name=nlb-app-ondemand")["items"]
    map_roles = yaml.safe_load(kube_json("configmap", "aws-auth", "-n", "kube-system")["data"]["mapRoles"])
    assert [e["rolearn"].rsplit("/", 1)[1] for e in map_roles] == [
        f"eksctl-{CLUSTER}-nodegroup-ng-ondemand-NodeInstanceRole", f"KarpenterNodeRole-{CLUSTER}"]
    assert map_roles[1]["username"] == "system:node:{{EC2PrivateDNSName}}"


def test_chapter_3_karpenter_runs_with_the_hand_written_policy_and_its_node_class_is_ready(replay, kube_json):
    replay("3.8", "3.9")
    node_class = kube_json("ec2nodeclass", "default")
    ready = [c for c in node_class["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", node_class["status"]
    # Found through the tags of step 3.5; the instance profile is the one of step 3.2.
    assert len(node_class["status"]["subnets"]) == 3 and len(node_class["status"]["securityGroups"]) == 1
    assert node_class["status"]["instanceProfile"] == f"KarpenterNodeInstanceProfile-{CLUSTER}"
    assert any(f"credentials: role {CONTROLLER_ROLE} by IRSA" in line for line in lab_log_lines("karpenter"))


def spot_nodes(kube_json):
    return kube_json("nodes", "-l", "karpenter.sh/capacity-type=spot")["items"]


def running_app_pods(kube_json):
    pods = kube_json("pods", "-n", APP_NS, "-l", "app.kubernetes.io/name=nginx")["items"]
    return [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def test_chapter_4_six_replicas_launch_spot_instances_that_join_and_one_replica_lets_them_go(replay, kube_json, aws):
    out = replay("4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7")
    assert len(running_app_pods(kube_json)) == 6
    nodes = spot_nodes(kube_json)
    assert nodes and {n["metadata"]["labels"]["node.kubernetes.io/instance-type"] for n in nodes} <= TUTORIAL_TYPES
    assert all(n["metadata"]["labels"]["intent"] == "apps" and n["metadata"]["labels"]["kubernetes.io/arch"] == "arm64" for n in nodes)
    instance_ids = [n["spec"]["providerID"].rsplit("/", 1)[1] for n in nodes]
    assert all(n["spec"]["providerID"].startswith("aws:///ap-southeast-1") for n in nodes)
    instances = [i for r in aws("ec2").describe_instances(InstanceIds=instance_ids)["Reservations"] for i in r["Instances"]]
    assert {i["InstanceLifecycle"] for i in instances} == {"spot"}
    assert all(i["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/KarpenterNodeInstanceProfile-{CLUSTER}") for i in instances)
    assert "launched nodeclaim" in out

    replay("4.8")
    wait_until("the spot nodes consolidated away", lambda: not spot_nodes(kube_json), 300, interval=5)
    states = {i["State"]["Name"] for r in aws("ec2").describe_instances(InstanceIds=instance_ids)["Reservations"] for i in r["Instances"]}
    assert states <= {"shutting-down", "terminated"}


def test_chapters_5_and_6_the_hpa_scales_the_loaded_app_to_twelve_and_karpenter_adds_spot_nodes(replay, kube_json):
    out = replay("5.1", "5.2", "5.3", "5.4")
    assert '"type":"Available"' in out and '"status":"True"' in out
    hpa = kube_json("hpa", "nginx-deployment", "-n", APP_NS)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    replay("6.1", "6.2", "6.3")
    wait_until("12 app pods running", lambda: len(running_app_pods(kube_json)) == 12, 420, interval=5)
    out = replay("6.4", "6.5")
    assert spot_nodes(kube_json) and "12/12" in out


def test_chapter_7_and_the_cleanup_leave_the_lab_as_before_with_no_call_denied(replay, aws, kube_json, lab_env):
    replay("7", "cleanup", timeout=900)
    assert lab_snapshot(aws, kube_json, lab_env) == BEFORE
    assert controller_denials() == []
