"""lab/aws_authz.py: the request context of a launch, and an assumed role's calls authorized by the real
evaluator in front of the AWS server (its admin keys keep full rights)."""
import json

import boto3
import pytest
from moto import mock_aws

from lab import aws_authz

REGION = "ap-southeast-1"
ACCOUNT = "123456789012"


def test_a_fleet_launch_is_authorized_for_every_resource_with_the_launch_templates_tags_too():
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="n", Description="n", VpcId=vpc)["GroupId"]
        template = ec2.create_launch_template(
            LaunchTemplateName="karpenter.k8s.aws/1",
            LaunchTemplateData={"ImageId": "ami-12345678", "SecurityGroupIds": [group],
                                "TagSpecifications": [{"ResourceType": "network-interface", "Tags": [{"Key": "karpenter.sh/nodepool", "Value": "default"}]}]},
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "kubernetes.io/cluster/eksworkshop", "Value": "owned"}]}],
        )["LaunchTemplate"]["LaunchTemplateId"]
        params = {
            "Action": "CreateFleet", "Type": "instant", "TargetCapacitySpecification.DefaultTargetCapacityType": "spot",
            "LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateId": template,
            "LaunchTemplateConfigs.1.Overrides.1.SubnetId": subnet,
            "TagSpecification.1.ResourceType": "instance",
            "TagSpecification.1.Tag.1.Key": "karpenter.sh/nodepool", "TagSpecification.1.Tag.1.Value": "default",
        }
        requests = aws_authz.ec2_requests(aws_authz.State(ACCOUNT, REGION), "ec2:CreateFleet", params)
    by_target = {(action, resource): context for action, resource, context in requests}
    run = "ec2:RunInstances"
    assert by_target[(run, f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*")]["aws:RequestTag/karpenter.sh/nodepool"] == "default"
    # The network interface's tags come from the launch template's tag specifications.
    assert by_target[(run, f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/*")]["aws:TagKeys"] == ["karpenter.sh/nodepool"]
    assert (run, f"arn:aws:ec2:{REGION}:{ACCOUNT}:spot-instances-request/*") in by_target
    assert by_target[(run, f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{subnet}")]["aws:RequestedRegion"] == REGION
    assert (run, f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{group}") in by_target
    assert by_target[(run, f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/{template}")]["aws:ResourceTag/kubernetes.io/cluster/eksworkshop"] == "owned"
    assert (run, f"arn:aws:ec2:{REGION}::image/ami-12345678") in by_target  # not the account's own image: no account
    create_tags = by_target[("ec2:CreateTags", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*")]
    assert create_tags["ec2:CreateAction"] == "CreateFleet"


@pytest.fixture
def server(authorized_aws_endpoint):
    return authorized_aws_endpoint


def client(service, url, **credentials):
    credentials = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=url, region_name=REGION, **credentials)


def test_an_assumed_role_gets_what_its_policy_allows_and_unauthorized_operation_for_the_rest(server, capsys):
    iam = client("iam", server)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName="reader", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="reader", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:DescribeSubnets", "Resource": "*", "Condition": {"StringEquals": {"aws:RequestedRegion": REGION}}}]}))
    creds = client("sts", server).assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/reader", RoleSessionName="lab-test")["Credentials"]
    ec2 = client("ec2", server, aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    assert "Subnets" in ec2.describe_subnets()
    with pytest.raises(ec2.exceptions.ClientError) as denied:
        ec2.terminate_instances(InstanceIds=["i-0123456789abcdef0"])
    assert denied.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert "ec2:TerminateInstances" in denied.value.response["Error"]["Message"]
    log = capsys.readouterr().out
    assert "DENIED ec2:TerminateInstances on arn:aws:ec2:ap-southeast-1:123456789012:instance/i-0123456789abcdef0 for role arn:aws:iam::123456789012:role/reader" in log
    # The playbooks' user keeps full rights.
    client("ec2", server).describe_instances()


def test_a_deleted_roles_session_is_denied_not_answered_with_a_server_error(server, capsys):
    iam = client("iam", server)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName="gone", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="gone", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:DescribeSubnets", "Resource": "*"}]}))
    creds = client("sts", server).assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/gone", RoleSessionName="lab-test")["Credentials"]
    ec2 = client("ec2", server, aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    assert "Subnets" in ec2.describe_subnets()
    iam.delete_role_policy(RoleName="gone", PolicyName="p")
    iam.delete_role(RoleName="gone")
    # The session's keys still sign, as in AWS until they expire, but nothing allows them anything any more.
    with pytest.raises(ec2.exceptions.ClientError) as denied:
        ec2.describe_subnets()
    assert denied.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert "DENIED ec2:DescribeSubnets" in capsys.readouterr().out


@pytest.mark.parametrize("condition_key", ["ec2:ResourceTag/karpenter.sh/nodepool", "aws:ResourceTag/karpenter.sh/nodepool"])
def test_termination_scoped_by_an_instance_tag_answers_to_the_ec2_and_the_global_key(server, condition_key):
    """The tutorial's policy scopes TerminateInstances with ec2:ResourceTag/..., Karpenter v1's with aws:ResourceTag/...:
    EC2 honours both, so both let the controller end its own instances and no other."""
    iam = client("iam", server)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    role = f"terminator-{condition_key.split(':')[0]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "*", "Condition": {"StringLike": {condition_key: "*"}}}]}))
    admin = client("ec2", server)
    image = admin.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tagged, untagged = (admin.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=tags)["Instances"][0]["InstanceId"]
                        for tags in ([{"ResourceType": "instance", "Tags": [{"Key": "karpenter.sh/nodepool", "Value": "default"}]}], []))
    creds = client("sts", server).assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="lab-test")["Credentials"]
    ec2 = client("ec2", server, aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    with pytest.raises(ec2.exceptions.ClientError) as denied:
        ec2.terminate_instances(InstanceIds=[untagged])
    assert denied.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert ec2.terminate_instances(InstanceIds=[tagged])["TerminatingInstances"][0]["InstanceId"] == tagged
