"""roles/iam's controller policy, rendered by Ansible and evaluated by a real IAM policy evaluator.

The template is rendered with the role's defaults through Ansible's own templating (the
ansible.builtin.template lookup the role's task uses, with the real filters), then every request
Karpenter v1.14.1 makes for a launch and for the node lifecycle is evaluated against it with
iam-simulate (lab/iam), with the resource ARNs AWS authorizes (account ids included) and the tags
Karpenter sends:

* GetTags (pkg/utils/utils.go): kubernetes.io/cluster/<cluster>=owned, karpenter.sh/nodepool=<pool>,
  eks:eks-cluster-name=<cluster>, karpenter.k8s.aws/ec2nodeclass=<class>, plus the class's spec.tags;
  CreateFleet tags the fleet, instances and volumes with them (pkg/providers/instance/types.go), the
  launch template tags itself, its network interfaces and spot requests (pkg/providers/launchtemplate);
  the EC2NodeClass validation dry-runs RunInstances/CreateFleet with a nodepool tag of "";
* the tagging controller (pkg/controllers/nodeclaim/tagging) adds Name, karpenter.sh/nodeclaim and
  eks:eks-cluster-name to a running instance, leaving out those it already has;
* InstanceProfileTags (pkg/apis/v1/ec2nodeclass.go): the cluster tag, eks:eks-cluster-name,
  karpenter.k8s.aws/ec2nodeclass and topology.kubernetes.io/region, on a profile under
  /karpenter/<region>/<cluster>/<nodeclass uid>/.

Then requests that must stay denied, and a negative control: the old template's empty account
segment on subnets must make CreateFleet fail, or these tests could not catch that bug.
"""
import json

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
from ansible.utils.collection_loader import AnsibleCollectionConfig

from lab.iam_eval import IamEvaluator
from tests.paths import REPO

ROLE = REPO / "roles" / "iam"
# The iam role's dependency: the cluster's names, partition and ARNs, whose defaults the role sees under its own.
CLUSTER_ROLE = ROLE.parent / "eks_cluster"
ACCOUNT = "111122223333"
PRINCIPAL = f"arn:aws:iam::{ACCOUNT}:role/KarpenterControllerRole-eksworkshop"
# The inline policies of a role may total 10,240 characters, whitespace not counted (IAM quotas).
INLINE_POLICY_LIMIT = 10240


def trusted(value):
    """The role's defaults as Ansible holds them: strings of a role's files may be templates."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value


def partition_of(region):
    """eks_cluster_partition, by the function behind the role's aws_partition filter: a test module that imported
    ansible_collections as a plain package before this one leaves the templar unable to find filters by name."""
    from ansible_collections.eks_autoscaling.core.plugins.module_utils import input_rules  # after init_plugin_loader

    return input_rules.region_partition(str(region))


def role_defaults(loader):
    """The defaults the iam role runs with: its dependency's, then its own over them."""
    return {**loader.load_from_file(str(CLUSTER_ROLE / "defaults" / "main.yml")), **loader.load_from_file(str(ROLE / "defaults" / "main.yml"))}


def render(**overrides):
    """The policy document the role attaches, rendered from the role's defaults (and overrides)."""
    if AnsibleCollectionConfig.collection_finder is None:  # once per process, as ansible-playbook does
        init_plugin_loader()
    loader = DataLoader()
    variables = trusted(role_defaults(loader))
    # The inventory host (the cluster) and what eks_cluster's account.yml reads before the template is used.
    variables.update(inventory_hostname="eksworkshop", eks_cluster_identity={"account": ACCOUNT, "arn": PRINCIPAL}, **overrides)
    variables["eks_cluster_partition"] = partition_of(variables["eks_cluster_region"])
    templar = Templar(loader=loader, variables=variables)
    template = ROLE / "templates" / "controller-policy.json.j2"
    return json.loads(templar.template(trust_as_template(f"{{{{ lookup('ansible.builtin.template', {str(template)!r}) }}}}")))


DEFAULTS = role_defaults(DataLoader())
# eks_cluster_name is the inventory host's name unless set; render() names the host eksworkshop.
CLUSTER = "eksworkshop"
REGION = DEFAULTS["eks_cluster_region"]
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/KarpenterNodeRole-{CLUSTER}"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{CLUSTER}"
CLUSTER_ARN = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"


def ec2(kind, ident, account=ACCOUNT, region=REGION):
    return f"arn:aws:ec2:{region}:{account}:{kind}/{ident}"


def node_tags(nodepool="default", nodeclass="default", extra=None):
    """utils.GetTags: the class's spec.tags, then the static tags over them."""
    return {**(extra or {}), f"kubernetes.io/cluster/{CLUSTER}": "owned", "karpenter.sh/nodepool": nodepool,
            "eks:eks-cluster-name": CLUSTER, "karpenter.k8s.aws/ec2nodeclass": nodeclass}


PROFILE_TAGS = {f"kubernetes.io/cluster/{CLUSTER}": "owned", "eks:eks-cluster-name": CLUSTER,
                "karpenter.k8s.aws/ec2nodeclass": "default", "topology.kubernetes.io/region": REGION}
PROFILE = f"arn:aws:iam::{ACCOUNT}:instance-profile/karpenter/{REGION}/{CLUSTER}/4f2c9a9e-0d1b-4a43-9f3e-0c8a1b2c3d4e/{CLUSTER}_1234567890123456789"


def requested(tags):
    return {**{f"aws:RequestTag/{k}": v for k, v in tags.items()}, "aws:TagKeys": sorted(tags)}


def existing(tags):
    return {f"aws:ResourceTag/{k}": v for k, v in tags.items()}


def ctx(region=REGION, **keys):
    return {"aws:RequestedRegion": region, **keys}


@pytest.fixture(scope="module")
def evaluator():
    with IamEvaluator() as shared:
        yield shared


@pytest.fixture(scope="module")
def policy():
    return render()


def decide(evaluator, policy, action, resource, context):
    decision = evaluator.evaluate(principal=PRINCIPAL, action=action, resource=resource, context=context,
                                  identity_policies=[{"name": "KarpenterControllerPolicy", "policy": policy}])
    # Every key given is one AWS sends for this action and resource: none may be dropped unseen.
    assert decision.ignored_context_keys == [], f"{action} on {resource}: keys AWS would not send: {decision.ignored_context_keys}"
    return decision


IDS = {"instance": "i-0a1b2c3d4e5f60718", "volume": "vol-0a1b2c3d4e5f60718", "network-interface": "eni-0a1b2c3d4e5f60718",
       "fleet": "fleet-0a1b2c3d-4e5f-6071-8a9b-0c1d2e3f4a5b", "spot-instances-request": "sir-0a1b2c3d",
       "launch-template": "lt-0a1b2c3d4e5f60718", "subnet": "subnet-0a1b2c3d4e5f60718", "security-group": "sg-0a1b2c3d4e5f60718",
       "image": "ami-0a1b2c3d4e5f60718", "snapshot": "snap-0a1b2c3d4e5f60718", "capacity-reservation": "cr-0a1b2c3d4e5f60718"}
# Resource types of each action in the Service Authorization Reference that a Karpenter launch involves.
# An instant EC2 Fleet launches through RunInstances authorized as the caller, so CreateFleet needs
# both sets (the reason Karpenter's policy grants RunInstances next to CreateFleet).
LAUNCH_TYPES = {
    "ec2:CreateFleet": ["fleet", "instance", "volume", "launch-template", "subnet", "image", "capacity-reservation"],
    "ec2:RunInstances": ["instance", "volume", "network-interface", "spot-instances-request", "launch-template",
                         "subnet", "security-group", "image", "snapshot", "capacity-reservation"],
}
CREATED = {"fleet", "instance", "volume", "network-interface", "spot-instances-request"}


def launch_requests(action, capacity_type="spot", tags=None):
    """The authorizations of one launch by ``action``: (action, resource ARN, context) for each resource."""
    tags = tags or node_tags()
    actions = ["ec2:CreateFleet", "ec2:RunInstances"] if action == "ec2:CreateFleet" else ["ec2:RunInstances"]
    out = []
    for act in actions:
        for kind in LAUNCH_TYPES[act]:
            if kind == "fleet" and action != "ec2:CreateFleet":
                continue
            if kind == "spot-instances-request" and capacity_type != "spot":
                continue
            if kind == "capacity-reservation" and capacity_type != "reserved":
                continue
            public = kind in ("image", "snapshot")  # a public AMI and its snapshot: ARNs without an account
            arn = ec2(kind, IDS[kind], account="" if public else ACCOUNT)
            context = ctx(**requested(tags)) if kind in CREATED else ctx(**existing(tags)) if kind == "launch-template" else ctx()
            out.append((act, arn, context))
    return out


def creation_tagging(action, capacity_type="spot", tags=None):
    """CreateTags that AWS authorizes for the resources a launch tags on create."""
    tags = tags or node_tags()
    created = ["instance", "volume", "network-interface"] + (["fleet"] if action == "CreateFleet" else [])
    if capacity_type == "spot":
        created.append("spot-instances-request")
    return [(ec2(kind, "x-0a1b2c3d"), ctx(**requested(tags), **{"ec2:CreateAction": action})) for kind in created]


ALLOWED = []


def allowed(name, action, resource, context):
    ALLOWED.append(pytest.param(action, resource, context, id=name))


def kind_of(arn):
    return arn.split(":")[-1].split("/")[0]


for capacity in ("spot", "on-demand", "reserved"):
    for action, resource, context in launch_requests("ec2:CreateFleet", capacity):
        allowed(f"CreateFleet {capacity}: {action} {kind_of(resource)}", action, resource, context)
    for resource, context in creation_tagging("CreateFleet", capacity):
        allowed(f"CreateTags on CreateFleet {capacity} {resource.split(':')[-1].split('/')[0]}", "ec2:CreateTags", resource, context)
# An EC2NodeClass with tags of its own: they ride along, unconstrained.
for action, resource, context in launch_requests("ec2:CreateFleet", "spot", node_tags(extra={"team": "platform"})):
    allowed(f"CreateFleet with class tags: {action} {kind_of(resource)}", action, resource, context)
# The EC2NodeClass validation: dry-run RunInstances with the class's tags and an empty nodepool tag.
validation_tags = node_tags(nodepool="")
for action, resource, context in launch_requests("ec2:RunInstances", "on-demand", validation_tags):
    allowed(f"RunInstances validation: {kind_of(resource)}", action, resource, context)
for resource, context in creation_tagging("RunInstances", "on-demand", validation_tags):
    allowed(f"CreateTags on RunInstances {resource.split(':')[-1].split('/')[0]}", "ec2:CreateTags", resource, context)
allowed("CreateLaunchTemplate", "ec2:CreateLaunchTemplate", ec2("launch-template", "lt-0a1b2c3d4e5f60718"), ctx(**requested(node_tags())))
allowed("CreateTags on CreateLaunchTemplate", "ec2:CreateTags", ec2("launch-template", "lt-0a1b2c3d4e5f60718"),
        ctx(**requested(node_tags()), **{"ec2:CreateAction": "CreateLaunchTemplate"}))
allowed("tagging controller: Name, nodeclaim, cluster name", "ec2:CreateTags", ec2("instance", "i-0a1b2c3d4e5f60718"),
        ctx(**existing(node_tags()), **requested({"Name": "ip-10-0-1-23.ap-southeast-1.compute.internal",
                                                  "karpenter.sh/nodeclaim": "default-7x2kq", "eks:eks-cluster-name": CLUSTER})))
allowed("tagging controller: Name and nodeclaim only", "ec2:CreateTags", ec2("instance", "i-0a1b2c3d4e5f60718"),
        ctx(**existing(node_tags()), **requested({"Name": "ip-10-0-1-23.ap-southeast-1.compute.internal",
                                                  "karpenter.sh/nodeclaim": "default-7x2kq"})))
allowed("TerminateInstances", "ec2:TerminateInstances", ec2("instance", "i-0a1b2c3d4e5f60718"), ctx(**existing(node_tags())))
allowed("DeleteLaunchTemplate", "ec2:DeleteLaunchTemplate", ec2("launch-template", "lt-0a1b2c3d4e5f60718"), ctx(**existing(node_tags())))
allowed("PassRole of the node role to EC2", "iam:PassRole", NODE_ROLE, ctx(**{"iam:PassedToService": "ec2.amazonaws.com"}))
allowed("CreateInstanceProfile", "iam:CreateInstanceProfile", PROFILE, ctx(**requested(PROFILE_TAGS)))
allowed("TagInstanceProfile", "iam:TagInstanceProfile", PROFILE, ctx(**existing(PROFILE_TAGS), **requested(PROFILE_TAGS)))
for action in ("iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"):
    allowed(action, action, PROFILE, ctx(**existing(PROFILE_TAGS)))
allowed("GetInstanceProfile", "iam:GetInstanceProfile", PROFILE, ctx())
allowed("ListInstanceProfiles", "iam:ListInstanceProfiles", "*", ctx())
for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl"):
    allowed(action, action, QUEUE, ctx())
allowed("DescribeCluster", "eks:DescribeCluster", CLUSTER_ARN, ctx())
# The Pricing API has endpoints in us-east-1 and a few other regions only: no region condition there.
allowed("GetProducts", "pricing:GetProducts", "*", ctx(region="us-east-1"))
allowed("zonal shift status of the cluster", "arc-zonal-shift:GetManagedResource", "*",
        ctx(**{"arc-zonal-shift:ResourceIdentifier": CLUSTER_ARN}))
for action in ("DescribeCapacityReservations", "DescribeImages", "DescribeInstances", "DescribeInstanceStatus",
               "DescribeInstanceTypeOfferings", "DescribeInstanceTypes", "DescribeLaunchTemplates", "DescribePlacementGroups",
               "DescribeSecurityGroups", "DescribeSpotPriceHistory", "DescribeSubnets"):
    allowed(action, f"ec2:{action}", "*", ctx())


@pytest.mark.parametrize("action, resource, context", ALLOWED)
def test_karpenter_request_is_allowed(evaluator, policy, action, resource, context):
    decision = decide(evaluator, policy, action, resource, context)
    assert decision.allowed, decision.explain()


DENIED = [
    pytest.param("ec2:CreateFleet", ec2("launch-template", "lt-0untagged"), ctx(), id="CreateFleet with an untagged launch template"),
    pytest.param("ec2:RunInstances", ec2("launch-template", "lt-0untagged"), ctx(**existing({"Name": "mine"})),
                 id="RunInstances with a launch template not of the cluster"),
    pytest.param("ec2:TerminateInstances", ec2("instance", "i-0other"),
                 ctx(**existing({"kubernetes.io/cluster/other": "owned", "karpenter.sh/nodepool": "default", "eks:eks-cluster-name": "other"})),
                 id="TerminateInstances of another cluster's instance"),
    pytest.param("ec2:TerminateInstances", ec2("instance", "i-0nodegroup"), ctx(**existing({f"kubernetes.io/cluster/{CLUSTER}": "owned"})),
                 id="TerminateInstances of a cluster instance Karpenter did not launch"),
    pytest.param("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/Admin", ctx(**{"iam:PassedToService": "ec2.amazonaws.com"}),
                 id="PassRole of another role"),
    pytest.param("iam:PassRole", NODE_ROLE, ctx(**{"iam:PassedToService": "lambda.amazonaws.com"}), id="PassRole of the node role to Lambda"),
    pytest.param("ec2:CreateFleet", ec2("fleet", "fleet-0", region="us-east-1"), ctx(region="us-east-1", **requested(node_tags())),
                 id="CreateFleet in another region"),
    pytest.param("ec2:DescribeInstances", "*", ctx(region="us-east-1"), id="DescribeInstances in another region"),
    pytest.param("ec2:CreateFleet", ec2("fleet", "fleet-0"), ctx(**requested({**node_tags(), "eks:eks-cluster-name": "other"})),
                 id="CreateFleet tagging for another cluster name"),
    pytest.param("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:other-queue", ctx(), id="ReceiveMessage on another queue"),
    pytest.param("sqs:DeleteMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:other-queue", ctx(), id="DeleteMessage on another queue"),
    pytest.param("ec2:CreateTags", ec2("instance", "i-0a1b2c3d4e5f60718"),
                 ctx(**existing(node_tags()), **requested({"Name": "n", "karpenter.sh/nodepool": "other"})),
                 id="CreateTags of a key outside the allowed set on a running instance"),
    pytest.param("ec2:CreateTags", ec2("instance", "i-0a1b2c3d4e5f60718"),
                 ctx(**existing(node_tags()), **requested({"eks:eks-cluster-name": "other"})),
                 id="CreateTags renaming the instance's cluster"),
    pytest.param("ec2:CreateTags", ec2("subnet", "subnet-0a1b2c3d4e5f60718"), ctx(**requested({"Name": "n"})), id="CreateTags on a subnet"),
    pytest.param("eks:DescribeCluster", f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/other", ctx(), id="DescribeCluster of another cluster"),
    pytest.param("iam:DeleteInstanceProfile", f"arn:aws:iam::{ACCOUNT}:instance-profile/other",
                 ctx(**existing({"kubernetes.io/cluster/other": "owned", "topology.kubernetes.io/region": REGION,
                                 "karpenter.k8s.aws/ec2nodeclass": "default"})), id="DeleteInstanceProfile of another cluster"),
    pytest.param("arc-zonal-shift:GetManagedResource", "*",
                 ctx(**{"arc-zonal-shift:ResourceIdentifier": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/other"}),
                 id="zonal shift status of another cluster"),
]


@pytest.mark.parametrize("action, resource, context", DENIED)
def test_request_outside_the_cluster_is_denied(evaluator, policy, action, resource, context):
    decision = decide(evaluator, policy, action, resource, context)
    assert not decision.allowed, decision.explain()
    assert decision.decision == "ImplicitlyDenied"


def test_ssm_public_parameter_is_allowed(evaluator, policy):
    # AWS's public parameters have ARNs without an account (arn:aws:ssm:<region>::parameter/aws/service/...),
    # which iam-simulate's resource-type check refuses as a parameter ARN: evaluated as given.
    parameter = f"arn:aws:ssm:{REGION}::parameter/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/x86_64/standard/recommended/image_id"
    decision = evaluator.evaluate(principal=PRINCIPAL, action="ssm:GetParameter", resource=parameter, context=ctx(),
                                  identity_policies=[policy], resource_account=ACCOUNT, context_keys="as_given")
    assert decision.allowed and decision.matched_sids == ["AllowSSMReadActions"], decision.explain()
    other = parameter.replace("/aws/service/", "/mine/")
    assert not evaluator.evaluate(principal=PRINCIPAL, action="ssm:GetParameter", resource=other, context=ctx(),
                                  identity_policies=[policy], resource_account=ACCOUNT, context_keys="as_given").allowed


def test_the_old_empty_account_segment_on_subnets_is_caught(evaluator, policy):
    old = json.loads(json.dumps(policy).replace(":*:subnet/", "::subnet/"))
    assert old != policy
    subnet = ec2("subnet", "subnet-0a1b2c3d4e5f60718")
    decision = decide(evaluator, old, "ec2:CreateFleet", subnet, ctx())
    assert not decision.allowed
    assert any("Account does not match" in why for miss in decision.near_misses for why in miss["why"])
    assert decide(evaluator, policy, "ec2:CreateFleet", subnet, ctx()).allowed


def test_a_launch_is_allowed_only_as_a_whole(evaluator, policy):
    """CreateFleet succeeds only if every authorization of it does: count them, none may fail."""
    requests = launch_requests("ec2:CreateFleet", "spot")
    assert len(requests) == 15
    denied = [(a, r) for a, r, c in requests if not decide(evaluator, policy, a, r, c).allowed]
    assert denied == []


def test_rendered_with_the_role_defaults(policy):
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["AllowPassingInstanceRole"]["Resource"] == NODE_ROLE
    assert statements["AllowInterruptionQueueActions"]["Resource"] == QUEUE
    assert len(statements) == len(policy["Statement"]) == 18
    assert len(json.dumps(policy, separators=(",", ":"))) < INLINE_POLICY_LIMIT


def test_china_partition(evaluator):
    cn = render(eks_cluster_region="cn-north-1")
    role = f"arn:aws-cn:iam::{ACCOUNT}:role/KarpenterNodeRole-{CLUSTER}"
    assert evaluator.evaluate(principal=f"arn:aws-cn:iam::{ACCOUNT}:role/c", action="iam:PassRole", resource=role,
                              context={"iam:PassedToService": "ec2.amazonaws.com.cn"}, identity_policies=[cn]).allowed
    subnet = f"arn:aws-cn:ec2:cn-north-1:{ACCOUNT}:subnet/subnet-0a1b2c3d4e5f60718"
    assert evaluator.evaluate(principal=f"arn:aws-cn:iam::{ACCOUNT}:role/c", action="ec2:CreateFleet", resource=subnet,
                              context={"aws:RequestedRegion": "cn-north-1"}, identity_policies=[cn]).allowed
