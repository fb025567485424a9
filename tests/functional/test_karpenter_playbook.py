"""playbooks/karpenter.yml on the lab: check mode, convergence, idempotence, validation. The tutorial check
(1 -> 6 replicas adds spot nodes, back to 1 consolidates) runs through the roles in test_site_replay.py."""
import json
import subprocess
import time

import pytest

from .conftest import changed, karpenter_counter, lab_log_lines, run_playbook, wait_until


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
    # The tagging role's subnets and security groups (Karpenter tags the launch templates it makes too).
    tagged = sorted(t["ResourceId"] for t in ec2.describe_tags(Filters=[
        {"Name": "key", "Values": ["karpenter.sh/discovery"]}, {"Name": "resource-type", "Values": ["subnet", "security-group"]}])["Tags"])
    entries = eks.list_access_entries(clusterName="eksworkshop")["accessEntries"]
    queues = aws("sqs").list_queues().get("QueueUrls", [])
    rules = sorted(r["Name"] for r in aws("events").list_rules()["Rules"])
    return roles, tagged, entries, queues, rules


def test_check_mode_on_a_fresh_lab_changes_nothing(lab, lab_env, kube_json, aws, karpenter_objects, converged):
    assert "karpenter" not in releases(lab_env)
    before = aws_snapshot(aws), crd_names(kube_json)
    result = playbook("--check", "--diff")
    assert changed(result) > 0
    assert "karpenter" not in releases(lab_env) and "karpenter-crd" not in releases(lab_env)
    assert karpenter_objects("nodepools") == [] and karpenter_objects("ec2nodeclasses") == []
    assert (aws_snapshot(aws), crd_names(kube_json)) == before


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


def consolidation_policies(kube_json):
    (version,) = kube_json("crd", "nodepools.karpenter.sh")["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["disruption"]["properties"]
    return version["name"], version["served"], schema["consolidationPolicy"]["enum"]


def crd_names(kube_json):
    return sorted(c["metadata"]["name"] for c in kube_json("crd")["items"]
                  if c["spec"]["group"] in ("karpenter.sh", "karpenter.k8s.aws", "autoscaling.x-k8s.io"))


def balanced_pool_accepted(kubectl):
    """What the apiserver says of a NodePool with consolidationPolicy Balanced, which v1.14's CRD added."""
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "upgrade-probe"},
            "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                                           "requirements": []}},
                     "disruption": {"consolidationPolicy": "Balanced", "consolidateAfter": "1m"}}}
    return kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pool), check=False).returncode == 0


def test_changing_karpenter_version_upgrades_both_releases_and_the_crds(lab, lab_env, kube_json, kubectl, converged):
    """The lab installs Karpenter from chart archives, one version each; here the role installs from a chart
    repository holding the release before the lab's and the lab's, so karpenter_version chooses, for the
    controller's chart and the CRD chart alike."""
    from lab import chart_repo

    bins = lab.bin_dir(build=False)
    repo = chart_repo.karpenter_chart_repo(bins)
    pool_uid = kube_json("nodepool", "default")["metadata"]["uid"]

    def karpenter(url, version, *args):
        # Only the karpenter stage: `changed` then counts the two releases and nothing else.
        extra = {"karpenter_chart_ref": repo.chart, "karpenter_crd_chart_ref": repo.crd_chart,
                 "karpenter_chart_repo_url": url, "karpenter_version": version}
        return playbook("--tags", "karpenter", *args, extra=extra)

    def charts():
        return {name: helm_json(lab_env, "list", "-n", "karpenter", "--filter", f"^{name}$")[0]["chart"] for name in ("karpenter", "karpenter-crd")}

    try:
        with chart_repo.serve(repo.path) as url:
            karpenter(url, repo.old_version)
            assert charts() == {"karpenter": f"karpenter-{repo.old_version}", "karpenter-crd": f"karpenter-crd-{repo.old_version}"}
            assert consolidation_policies(kube_json) == ("v1", True, ["WhenEmpty", "WhenEmptyOrUnderutilized"])
            assert not balanced_pool_accepted(kubectl)
            installed = karpenter_release(lab_env)

            assert changed(karpenter(url, repo.new_version, "--check")) == 2
            assert karpenter_release(lab_env) == installed
            assert "Balanced" not in consolidation_policies(kube_json)[2]

            assert changed(karpenter(url, repo.new_version)) == 2
            assert charts() == {"karpenter": f"karpenter-{repo.new_version}", "karpenter-crd": f"karpenter-crd-{repo.new_version}"}
            upgraded = karpenter_release(lab_env)
            assert upgraded["revision"] > installed["revision"] and upgraded["history"][-2:] == [f"karpenter-{repo.old_version}", f"karpenter-{repo.new_version}"]
            # The CRDs moved with the release: still served as v1, with what v1.14 added.
            assert consolidation_policies(kube_json) == ("v1", True, ["WhenEmpty", "WhenEmptyOrUnderutilized", "Balanced"])
            assert balanced_pool_accepted(kubectl)
            assert "capacitybuffers.autoscaling.x-k8s.io" in crd_names(kube_json)

            assert changed(karpenter(url, repo.new_version)) == 0
            assert karpenter_release(lab_env)["revision"] == upgraded["revision"]
    finally:
        # Back to the lab's own charts, so the tests after this one see the usual lab.
        restored = playbook("--tags", "karpenter", check=False)
    assert restored.returncode == 0, restored.stdout[-4000:]
    assert charts() == {"karpenter": f"karpenter-{repo.new_version}", "karpenter-crd": f"karpenter-crd-{repo.new_version}"}
    # No CRD was deleted on the way down or up: the NodePool is the one from before.
    assert kube_json("nodepool", "default")["metadata"]["uid"] == pool_uid


def test_crds_installed_by_hand_are_adopted_without_deleting_a_nodepool(lab_env, kube_json, kubectl, converged):
    """CRDs applied with kubectl (or left by the old crds/ layout) belong to no release; the role adopts them."""
    pool_uid = kube_json("nodepool", "default")["metadata"]["uid"]
    names = crd_names(kube_json)
    bins = lab_env["PATH"].split(":")[0]
    # Uninstalling the CRD release keeps the CRDs (helm.sh/resource-policy: keep); stripping Helm's
    # ownership then leaves them exactly as a `kubectl apply` of the CRD files would.
    subprocess.run([f"{bins}/helm", "uninstall", "karpenter-crd", "-n", "karpenter"], env=lab_env, check=True, capture_output=True)
    for name in names:
        kubectl("annotate", "crd", name, "meta.helm.sh/release-name-", "meta.helm.sh/release-namespace-")
        kubectl("label", "crd", name, "app.kubernetes.io/managed-by-")
    assert "karpenter-crd" not in releases(lab_env) and crd_names(kube_json) == names

    assert changed(playbook("--tags", "karpenter", "--check")) > 0
    assert "karpenter-crd" not in releases(lab_env)
    assert changed(playbook("--tags", "karpenter")) > 0
    assert "karpenter-crd" in releases(lab_env)
    for name in names:
        annotations = kube_json("crd", name)["metadata"]["annotations"]
        assert (annotations["meta.helm.sh/release-name"], annotations["helm.sh/resource-policy"]) == ("karpenter-crd", "keep")
    assert kube_json("nodepool", "default")["metadata"]["uid"] == pool_uid
    assert changed(playbook("--tags", "karpenter", "--check")) == 0
    assert changed(playbook("--tags", "karpenter")) == 0


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"nodepools_list": [{"name": "default", "node_class": "default", "requirements": [{"key": "kubernetes.io/arch", "operator": "Inn", "values": ["arm64"]}],
                              "disruption": {"consolidate_after": "1m"}}]},
         'nodepools_list[0] (default): spec.template.spec.requirements[0].operator: Unsupported value: "Inn"'),
        ({"nodepools_list": [{"name": "default", "node_class": "default", "disruption": {"consolidation_policy": "WhenEmpty"}}]},
         "nodepools_list[0] (default): spec.disruption.consolidateAfter: Required value"),
        ({"eks_cluster_controller_role_arn": "arn:aws:iam::12345:role/x"}, "eks_cluster_controller_role_arn: \"arn:aws:iam::12345:role/x\" is not an IAM role ARN"),
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
    result = playbook(extra={"aws_auth_mode": "sideways", "eks_cluster_node_role_name": "SomethingNew"}, check=False)
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
    extra = {"eks_cluster_controller_identity": "pod_identity"}
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
        associations = aws("eks").list_pod_identity_associations(clusterName="eksworkshop", namespace="karpenter")["associations"]
        # Back to IRSA, as the lab runs: the controller needs credentials for the tests after this one.
        restored = playbook("--tags", "iam,karpenter", check=False)
    assert associations == []
    assert restored.returncode == 0, restored.stdout[-4000:]
    wait_until("the controller restarted with IRSA", lambda: "AWS_ROLE_ARN" in controller_env(lab), 60)


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
    # (PutEvents), reach the queue through the rule of their type, and the real controller reads them:
    # its parser counts each by kind, and it deletes both (the instance is no node of Karpenter's).
    wait_until("the Karpenter controller serving metrics", lambda: _metrics_served(), 120, interval=1)
    received = {kind: karpenter_counter("karpenter_interruption_received_messages_total", message_type=kind)
                for kind in ("spot_interrupted", "capacity_reservation_interrupted")}
    deleted = karpenter_counter("karpenter_interruption_deleted_messages_total")
    node = kube_json("nodes", "-l", "eks.amazonaws.com/nodegroup=ng-ondemand")["items"][0]
    instance_id = node["spec"]["providerID"].rsplit("/", 1)[-1]
    from lab import events

    events.inject(lab.AWS_ENDPOINT, "spot-interruption", instance_id=instance_id)
    events.inject(lab.AWS_ENDPOINT, "capacity-reservation-interruption", instance_id=instance_id)

    def handled():
        try:
            return all(karpenter_counter("karpenter_interruption_received_messages_total", message_type=kind) == count + 1
                       for kind, count in received.items()) and karpenter_counter("karpenter_interruption_deleted_messages_total") == deleted + 2
        except OSError:
            # A restarted controller starts its counters again: the wait then times out, naming this.
            return False

    wait_until("Karpenter to receive and delete both warnings", handled, 60, interval=1)
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    # A nodegroup instance is not Karpenter's to replace: its node is left alone.
    assert not kube_json("node", node["metadata"]["name"])["spec"].get("unschedulable")


def _metrics_served():
    try:
        return karpenter_counter("karpenter_interruption_deleted_messages_total") >= 0
    except OSError:
        return False
