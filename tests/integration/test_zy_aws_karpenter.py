"""The AWS half on real components: the Karpenter AWS provider's controller, run as the karpenter role's
Helm release says, with the controller role's IRSA credentials, launches instances in the lab's AWS
server that join as aws:/// nodes. Runs on a lab of its own (LAB_KARPENTER=aws); the kwok lab is
started again afterwards for the tests that follow."""
import json

import pytest

from lab import labctl

from .conftest import lab_log_lines, run_labctl, run_playbook, wait_until

AWS_MODE = {"LAB_KARPENTER": "aws"}
APP_NS = "nlb-app-karpenter"
LOG_START = {}


@pytest.fixture(scope="module")
def aws_lab(lab):
    run_labctl("down")
    # The AWS server's log is appended to across labs: this lab's lines start here.
    LOG_START["aws"] = len(lab_log_lines("aws"))
    run_labctl("up", env=AWS_MODE)
    yield labctl
    run_labctl("down")
    run_labctl("up", env={"LAB_KARPENTER": "kwok"})


def kube(*args):
    return json.loads(labctl.kubectl(*args, "-o", "json").stdout)


def karpenter_instances(aws):
    pages = aws("ec2").get_paginator("describe_instances").paginate(Filters=[{"Name": "tag-key", "Values": ["karpenter.sh/nodepool"]}])
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def karpenter_nodes():
    return [n for n in kube("get", "nodes")["items"] if "karpenter.sh/nodepool" in n["metadata"]["labels"]]


def test_the_controller_runs_with_the_releases_settings_and_irsa_credentials(aws_lab, aws):
    run_playbook("site.yml")
    env = json.loads((labctl.STATE / "karpenter-pod" / "env.json").read_text())
    deployment = kube("get", "deployment", "-n", "karpenter", "karpenter")
    rendered = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    # What the role rendered reaches the controller unchanged: cluster name, queue, batch windows.
    for name in ("CLUSTER_NAME", "INTERRUPTION_QUEUE", "BATCH_MAX_DURATION"):
        assert env[name] == rendered[name]
    sa = kube("get", "serviceaccount", "-n", "karpenter", "karpenter")
    assert env["AWS_ROLE_ARN"] == sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert env["AWS_ROLE_ARN"].endswith(":role/KarpenterControllerRole-eksworkshop")
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    node_class = kube("get", "ec2nodeclass", "default")
    ready = next(c for c in node_class["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", node_class["status"]["conditions"]
    subnets = {s["SubnetId"] for s in aws("ec2").describe_subnets(Filters=[{"Name": "tag:karpenter.sh/discovery", "Values": ["eksworkshop"]}])["Subnets"]}
    assert {s["id"] for s in node_class["status"]["subnets"]} == subnets
    assert node_class["status"]["instanceProfile"]


def test_six_replicas_launch_spot_instances_that_join_as_aws_nodes(aws_lab, aws):
    labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=6")

    def all_running():
        pods = kube("get", "pods", "-n", APP_NS)["items"]
        return len(pods) == 6 and all(p["status"].get("phase") == "Running" for p in pods) and pods

    wait_until("6 app pods Running", all_running, 240, interval=2)
    instances = [i for i in karpenter_instances(aws) if i["State"]["Name"] == "running"]
    nodes = karpenter_nodes()
    assert instances and len(nodes) == len(instances)
    by_provider = {n["spec"]["providerID"]: n for n in nodes}
    for instance in instances:
        node = by_provider[f"aws:///{instance['Placement']['AvailabilityZone']}/{instance['InstanceId']}"]
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["kubernetes.io/cluster/eksworkshop"] == "owned" and tags["karpenter.sh/nodepool"] == "default"
        # The tutorial's NodePool asks for spot: the launch and the node say spot.
        assert instance.get("InstanceLifecycle") == "spot"
        assert node["metadata"]["labels"]["karpenter.sh/capacity-type"] == "spot"
        assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == instance["InstanceType"]


def test_back_to_one_replica_consolidation_terminates_the_instances(aws_lab, aws):
    labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=1")
    wait_until("Karpenter's nodes gone", lambda: not karpenter_nodes(), 300, interval=3)
    states = {i["State"]["Name"] for i in karpenter_instances(aws)}
    assert states <= {"shutting-down", "terminated"}, states


def test_the_aws_server_logged_no_denial_for_the_controller_role(aws_lab):
    denials = [line for line in lab_log_lines("aws")[LOG_START["aws"]:] if "DENIED" in line]
    assert denials == []


def test_a_token_of_another_service_account_cannot_assume_the_controller_role(aws_lab, aws):
    labctl.kubectl("create", "serviceaccount", "-n", "default", "intruder")
    try:
        token = labctl.kubectl("create", "token", "-n", "default", "intruder", "--audience", "sts.amazonaws.com").stdout.strip()
        role = aws("iam").get_role(RoleName="KarpenterControllerRole-eksworkshop")["Role"]["Arn"]
        with pytest.raises(Exception, match="Not authorized to perform sts:AssumeRoleWithWebIdentity"):
            aws("sts").assume_role_with_web_identity(RoleArn=role, RoleSessionName="lab-test", WebIdentityToken=token)
        # The controller's own service account gets credentials: the refusal is the trust policy's.
        own = labctl.kubectl("create", "token", "-n", "karpenter", "karpenter", "--audience", "sts.amazonaws.com").stdout.strip()
        assert aws("sts").assume_role_with_web_identity(RoleArn=role, RoleSessionName="lab-test", WebIdentityToken=own)["Credentials"]["AccessKeyId"]
    finally:
        labctl.kubectl("delete", "serviceaccount", "-n", "default", "intruder", check=False)


def test_one_statement_removed_from_the_policy_stops_every_launch_with_the_denial_logged(aws_lab, aws):
    iam = aws("iam")
    role, name = "KarpenterControllerRole-eksworkshop", "KarpenterControllerPolicy-eksworkshop"
    original = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    broken = {**original, "Statement": [s for s in original["Statement"] if s.get("Sid") != "AllowScopedEC2InstanceAccessActions"]}
    assert len(broken["Statement"]) == len(original["Statement"]) - 1
    seen = len(lab_log_lines("aws"))
    iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(broken))
    try:
        before = {i["InstanceId"] for i in karpenter_instances(aws)}
        labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=6")

        def denied_launch():
            new = lab_log_lines("aws")[seen:]
            return [line for line in new if "DENIED ec2:CreateFleet" in line or "DENIED ec2:RunInstances" in line]

        lines = wait_until("a denied launch in the AWS server's log", denied_launch, 120, interval=2)
        assert "KarpenterControllerRole-eksworkshop" in lines[0] and (":subnet/" in lines[0] or ":security-group/" in lines[0] or ":image/" in lines[0])
        assert {i["InstanceId"] for i in karpenter_instances(aws)} == before
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(original))
        labctl.kubectl("scale", "-n", APP_NS, "deployment/nginx-deployment", "--replicas=1")
