"""playbooks/karpenter.yml on the lab: check mode, convergence, idempotence, validation. The tutorial check
(1 -> 6 replicas adds spot nodes, back to 1 consolidates) runs through the roles in test_site_replay.py."""
import json
import subprocess
import time

import pytest

from .conftest import changed, lab_log_lines, run_playbook, wait_until


def playbook(*args, extra=None, check=True):
    return run_playbook("karpenter.yml", *args, extra=extra, check=check, timeout=600)


def releases(lab_env):
    bins = lab_env["PATH"].split(":")[0]
    out = subprocess.run([f"{bins}/helm", "list", "-A", "-o", "json"], env=lab_env, capture_output=True, text=True, check=True).stdout
    return [r["name"] for r in json.loads(out)]


def helm_json(lab_env, *args):
    bins = lab_env["PATH"].split(":")[0]
    out = subprocess.run([f"{bins}/helm", *args, "-o", "json"], env=lab_env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def karpenter_release(lab_env):
    """The karpenter release as `helm list` shows it, plus its history (oldest revision first)."""
    (release,) = helm_json(lab_env, "list", "-n", "karpenter", "--filter", "^karpenter$")
    history = helm_json(lab_env, "history", "karpenter", "-n", "karpenter")
    return {"chart": release["chart"], "revision": int(release["revision"]), "status": release["status"],
            "history": [entry["chart"] for entry in history]}


@pytest.fixture(scope="module")
def converged(lab):
    yield
    # Cleanup in the order teardown uses: NodePools (Karpenter drains their nodes) before the controller.
    playbook(extra={"nodepools_state": "absent", "karpenter_state": "absent", "aws_auth_state": "absent",
                    "interruption_queue_state": "absent", "tagging_state": "absent", "iam_state": "absent"}, check=False)


def aws_snapshot(aws):
    """What the playbook may change on the AWS side: roles, their policies, discovery tags, access entries."""
    iam, ec2, eks = aws("iam"), aws("ec2"), aws("eks")
    roles = sorted(r["RoleName"] for r in iam.list_roles()["Roles"])
    tagged = sorted(t["ResourceId"] for t in ec2.describe_tags(Filters=[{"Name": "key", "Values": ["karpenter.sh/discovery"]}])["Tags"])
    entries = eks.list_access_entries(clusterName="eksworkshop")["accessEntries"]
    queues = aws("sqs").list_queues().get("QueueUrls", [])
    rules = sorted(r["Name"] for r in aws("events").list_rules()["Rules"])
    return roles, tagged, entries, queues, rules


def test_check_mode_on_a_fresh_lab_changes_nothing(lab, lab_env, kube_json, aws, converged):
    assert "karpenter" not in releases(lab_env)
    before = aws_snapshot(aws)
    result = playbook("--check", "--diff")
    assert changed(result) > 0
    assert "karpenter" not in releases(lab_env)
    assert kube_json("nodepools")["items"] == []
    assert aws_snapshot(aws) == before


def test_apply_then_idempotent_check_and_apply(lab_env, kube_json, aws, converged):
    assert changed(playbook()) > 0
    iam, ec2, eks = aws("iam"), aws("ec2"), aws("eks")
    node_role = iam.get_role(RoleName="KarpenterNodeRole-eksworkshop")["Role"]
    assert node_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="KarpenterNodeRole-eksworkshop")["AttachedPolicies"]}
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly", "AmazonSSMManagedInstanceCore"}
    trust = iam.get_role(RoleName="KarpenterControllerRole-eksworkshop")["Role"]["AssumeRolePolicyDocument"]["Statement"][0]
    issuer = eks.describe_cluster(name="eksworkshop")["cluster"]["identity"]["oidc"]["issuer"].removeprefix("https://")
    assert trust["Principal"]["Federated"].endswith(f":oidc-provider/{issuer}")
    assert trust["Condition"]["StringEquals"][f"{issuer}:sub"] == "system:serviceaccount:karpenter:karpenter"
    policy = iam.get_role_policy(RoleName="KarpenterControllerRole-eksworkshop", PolicyName="KarpenterControllerPolicy-eksworkshop")["PolicyDocument"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["AllowPassingInstanceRole"]["Resource"] == node_role["Arn"]
    assert statements["AllowInterruptionQueueActions"]["Resource"] == "arn:aws:sqs:ap-southeast-1:123456789012:eksworkshop"
    for statement in policy["Statement"]:
        mutating = [a for a in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
                    if a.split(":")[1].startswith(("Run", "Create", "Terminate", "Delete"))]
        if mutating and statement["Resource"] == "*":
            raise AssertionError(f"{statement['Sid']} allows {mutating} on every resource")
    cluster = eks.describe_cluster(name="eksworkshop")["cluster"]
    nodegroup = eks.describe_nodegroup(clusterName="eksworkshop", nodegroupName="ng-ondemand")["nodegroup"]
    _, tagged, entries, _, _ = aws_snapshot(aws)
    assert tagged == sorted(nodegroup["subnets"] + [cluster["resourcesVpcConfig"]["clusterSecurityGroupId"]])
    assert entries == [node_role["Arn"]]
    assert eks.describe_access_entry(clusterName="eksworkshop", principalArn=node_role["Arn"])["accessEntry"]["type"] == "EC2_LINUX"
    assert "karpenter" in releases(lab_env)
    pool = kube_json("nodepool", "default")
    assert {c["type"]: c["status"] for c in pool["status"]["conditions"]}["Ready"] == "True"
    assert changed(playbook("--check")) == 0
    assert changed(playbook()) == 0


def test_changing_karpenter_version_upgrades_the_release(lab, lab_env, converged):
    """The lab installs Karpenter from a chart directory, which has one version only; here the role installs
    from a chart repository holding an older Karpenter release and the lab's, so karpenter_version chooses."""
    import yaml

    from lab import chart_repo

    bins = lab.bin_dir(build=False)
    repo = chart_repo.karpenter_chart_repo(bins)
    lab_chart = yaml.safe_load((lab.karpenter_dir(bins) / "chart" / "Chart.yaml").read_text())["version"]
    old, new = f"karpenter-{repo.old_version}", f"karpenter-{repo.new_version}"

    def karpenter(url, version, *args):
        # Only the karpenter stage: `changed` then counts the release and nothing else.
        extra = {"karpenter_chart_ref": repo.chart, "karpenter_chart_repo_url": url, "karpenter_version": version}
        return playbook("--tags", "karpenter", *args, extra=extra)

    try:
        with chart_repo.serve(repo.path) as url:
            karpenter(url, repo.old_version)
            installed = karpenter_release(lab_env)
            assert (installed["chart"], installed["status"]) == (old, "deployed")

            assert changed(karpenter(url, repo.new_version, "--check")) == 1
            assert karpenter_release(lab_env) == installed

            assert changed(karpenter(url, repo.new_version)) == 1
            upgraded = karpenter_release(lab_env)
            assert (upgraded["chart"], upgraded["status"]) == (new, "deployed")
            assert upgraded["revision"] > installed["revision"]
            assert upgraded["history"][-2:] == [old, new]

            assert changed(karpenter(url, repo.new_version)) == 0
            assert karpenter_release(lab_env)["revision"] == upgraded["revision"]
    finally:
        # Back to the lab's own chart, so the tests after this one see the usual lab.
        restored = playbook("--tags", "karpenter", check=False)
    assert restored.returncode == 0, restored.stdout[-4000:]
    assert karpenter_release(lab_env)["chart"] == f"karpenter-{lab_chart}"


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"nodepools_list": [{"name": "default", "node_class": "default", "requirements": [{"key": "kubernetes.io/arch", "operator": "Inn", "values": ["arm64"]}],
                              "disruption": {"consolidate_after": "1m"}}]},
         'nodepools_list[0] (default): spec.template.spec.requirements[0].operator: Unsupported value: "Inn"'),
        ({"nodepools_list": [{"name": "default", "node_class": "default", "disruption": {"consolidation_policy": "WhenEmpty"}}]},
         "nodepools_list[0] (default): spec.disruption.consolidateAfter: Required value"),
        ({"karpenter_controller_role_arn": "arn:aws:iam::12345:role/x"}, "karpenter_controller_role_arn: \"arn:aws:iam::12345:role/x\" is not an IAM role ARN"),
    ],
)
def test_bad_values_fail_before_any_change(kube_json, lab_env, converged, extra, message):
    before = kube_json("nodepool", "default")["metadata"]["resourceVersion"] if kube_json("nodepools")["items"] else None
    revision_before = releases(lab_env)
    result = playbook(extra=extra, check=False)
    assert result.returncode != 0
    assert message in result.stdout
    after = kube_json("nodepool", "default")["metadata"]["resourceVersion"] if kube_json("nodepools")["items"] else None
    assert after == before and releases(lab_env) == revision_before


EKSCTL_AWS_AUTH = """- groups:
  - system:bootstrappers
  - system:nodes
  rolearn: arn:aws:iam::123456789012:role/eksctl-eksworkshop-nodegroup-ng-ondemand-NodeInstanceRole
  username: system:node:{{EC2PrivateDNSName}}
"""


def _aws_auth(kubectl, map_roles):
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth", "namespace": "kube-system"},
                 "data": {"mapRoles": map_roles, "mapUsers": "[]\n"}}
    kubectl("apply", "-f", "-", stdin=json.dumps(configmap))


def test_aws_auth_configmap_mode_merges_keeps_and_refuses(kubectl, kube_json, converged):
    import yaml

    _aws_auth(kubectl, EKSCTL_AWS_AUTH)
    try:
        assert changed(playbook("--tags", "aws_auth", extra={"aws_auth_mode": "configmap"})) == 1
        data = kube_json("configmap", "aws-auth", "-n", "kube-system")["data"]
        entries = yaml.safe_load(data["mapRoles"])
        assert [e["rolearn"].rsplit("/", 1)[1] for e in entries] == ["eksctl-eksworkshop-nodegroup-ng-ondemand-NodeInstanceRole", "KarpenterNodeRole-eksworkshop"]
        assert entries[1]["username"] == "system:node:{{EC2PrivateDNSName}}"
        assert data["mapUsers"] == "[]\n"
        assert changed(playbook("--tags", "aws_auth", extra={"aws_auth_mode": "configmap"})) == 0
        broken = "- groups: [system:nodes\n  rolearn: oops"
        _aws_auth(kubectl, broken)
        result = playbook("--tags", "aws_auth", extra={"aws_auth_mode": "configmap"}, check=False)
        assert result.returncode != 0 and "kube-system/aws-auth data.mapRoles is not valid YAML" in result.stdout
        assert kube_json("configmap", "aws-auth", "-n", "kube-system")["data"]["mapRoles"] == broken
    finally:
        kubectl("delete", "configmap", "aws-auth", "-n", "kube-system", check=False)


def test_unknown_aws_auth_mode_fails_before_any_change(aws, converged):
    before = aws_snapshot(aws)
    result = playbook(extra={"aws_auth_mode": "sideways", "iam_node_role_name": "SomethingNew"}, check=False)
    assert result.returncode != 0
    assert "value of aws_auth_mode must be one of: auto, configmap, access_entry, got: sideways" in result.stdout
    assert aws_snapshot(aws) == before


def controller_env(lab):
    """The environment lab/karpenter_pod.py started the controller with ({} while it is being written)."""
    try:
        return json.loads((lab.STATE / "karpenter-pod" / "env.json").read_text())
    except (OSError, ValueError):
        return {}


def test_pod_identity_mode_uses_an_association_and_no_irsa_annotation(lab, aws, kube_json, converged):
    extra = {"iam_controller_identity": "pod_identity", "karpenter_identity_mode": "pod_identity"}
    seen = {name: len(lab_log_lines(name)) for name in ("aws", "karpenter")}
    try:
        playbook("--tags", "iam,karpenter", extra=extra)
        trust = aws("iam").get_role(RoleName="KarpenterControllerRole-eksworkshop")["Role"]["AssumeRolePolicyDocument"]["Statement"][0]
        assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
        (association,) = aws("eks").list_pod_identity_associations(clusterName="eksworkshop", namespace="karpenter")["associations"]
        assert association["serviceAccount"] == "karpenter"
        described = aws("eks").describe_pod_identity_association(clusterName="eksworkshop", associationId=association["associationId"])
        assert described["association"]["roleArn"].endswith(":role/KarpenterControllerRole-eksworkshop")
        annotations = kube_json("serviceaccount", "karpenter", "-n", "karpenter")["metadata"].get("annotations") or {}
        assert "eks.amazonaws.com/role-arn" not in annotations
        # The annotation's removal restarts the controller, as a rollout would, with what EKS's webhook
        # injects for an association: the Pod Identity Agent's URI, no IRSA.
        env = wait_until("the controller restarted with container credentials",
                         lambda: "AWS_CONTAINER_CREDENTIALS_FULL_URI" in controller_env(lab) and controller_env(lab), 60)
        assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == f"http://127.0.0.1:{lab.PORTS['pod_identity_agent']}/v1/credentials"
        assert "AWS_ROLE_ARN" not in env and "AWS_WEB_IDENTITY_TOKEN_FILE" not in env
        # Its SDK got credentials from the agent, issued by EKS Auth as a session of the controller role...
        wait_until("the agent serving the controller's credentials", lambda: [
            line for line in lab_log_lines("karpenter")[seen["karpenter"]:] if '"GET /v1/credentials HTTP/1.1" 200' in line], 120)
        issued = [line for line in lab_log_lines("aws")[seen["aws"]:] if "AssumeRoleForPodIdentity for karpenter/karpenter" in line]
        assert issued and ":assumed-role/KarpenterControllerRole-eksworkshop/" in issued[-1]
        # ...and the calls it makes with them right after its start (instance types, subnets, security groups,
        # prices) are allowed by the role's policy: nothing denied, no failed refresh, the node class still Ready.
        time.sleep(15)
        assert [line for line in lab_log_lines("aws")[seen["aws"]:] if "DENIED" in line] == []
        assert not [line for line in lab_log_lines("karpenter")[seen["karpenter"]:] if "failed to refresh cached credentials" in line]
        ready = {c["type"]: c["status"] for c in kube_json("ec2nodeclass", "default")["status"]["conditions"]}["Ready"]
        assert ready == "True"
        assert changed(playbook("--tags", "iam,karpenter", extra=extra)) == 0
    finally:
        playbook("--tags", "iam", extra={**extra, "iam_state": "absent"}, check=False)
    assert aws("eks").list_pod_identity_associations(clusterName="eksworkshop", namespace="karpenter")["associations"] == []


# Karpenter v1.14's getting-started cloudformation.yaml, its *Rule resources: rule suffix -> event pattern.
REFERENCE_RULES = {
    "ScheduledChange": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "SpotInterruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "Rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "InstanceStateChange": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
    "CapacityReservationInterruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Capacity Reservation Instance Interruption Warning"]},
}


def test_interruption_queue_is_encrypted_tls_only_and_fed_by_the_five_reference_rules(lab, aws, kube_json, converged):
    sqs, events_client = aws("sqs"), aws("events")
    url = sqs.get_queue_url(QueueName="eksworkshop")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["MessageRetentionPeriod"] == "300"
    assert attributes["SqsManagedSseEnabled"] == "true"
    policy = json.loads(attributes["Policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert sorted(statements["AllowEventBridgeAndSQS"]["Principal"]["Service"]) == ["events.amazonaws.com", "sqs.amazonaws.com"]
    assert statements["DenyHTTP"]["Effect"] == "Deny" and statements["DenyHTTP"]["Condition"] == {"Bool": {"aws:SecureTransport": False}}
    rules = {r["Name"]: json.loads(r["EventPattern"]) for r in events_client.list_rules(NamePrefix="Karpenter-eksworkshop-")["Rules"]}
    assert rules == {f"Karpenter-eksworkshop-{suffix}": pattern for suffix, pattern in REFERENCE_RULES.items()}
    for name in rules:
        (target,) = events_client.list_targets_by_rule(Rule=name)["Targets"]
        assert target["Arn"] == attributes["QueueArn"]
    # An EC2 spot warning and a capacity reservation interruption warning, delivered the way AWS does
    # (PutEvents), reach the queue Karpenter reads, each through the rule of its type.
    node = kube_json("nodes", "-l", "eks.amazonaws.com/nodegroup=ng-ondemand")["items"][0]
    instance_id = node["spec"]["providerID"].rsplit("/", 1)[-1]
    from lab import events

    events.inject(lab.AWS_ENDPOINT, "spot-interruption", instance_id=instance_id)
    events.inject(lab.AWS_ENDPOINT, "capacity-reservation-interruption", instance_id=instance_id)
    bodies = []
    wanted = {"EC2 Spot Instance Interruption Warning", "EC2 Capacity Reservation Instance Interruption Warning"}

    def received():
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return wanted <= {b["detail-type"] for b in bodies}

    wait_until("both warnings in the interruption queue", received, 15, interval=0)
    (reservation,) = [b for b in bodies if b["detail-type"] == "EC2 Capacity Reservation Instance Interruption Warning"]
    assert reservation["source"] == "aws.ec2" and reservation["resources"] == [f"arn:aws:ec2:ap-southeast-1:123456789012:instance/{instance_id}"]
    zone = aws("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["Placement"]["AvailabilityZone"]
    zone_id = aws("ec2").describe_availability_zones(ZoneNames=[zone])["AvailabilityZones"][0]["ZoneId"]
    assert {k: v for k, v in reservation["detail"].items() if k != "instance-termination-time"} == {
        "instance-id": instance_id, "instance-action": "terminate", "azId": zone_id}
