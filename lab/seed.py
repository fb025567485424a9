"""Seed the lab's AWS server like the tutorial's account, idempotently.

The tutorial starts from an existing EKS cluster `eksworkshop` in ap-southeast-1 made by eksctl:
a VPC with 3 private subnets in 3 AZs, an IAM OIDC provider for the cluster's issuer, and an
on-demand managed nodegroup `ng-ondemand` of t4g.xlarge nodes. This builds the same account in
moto, plus one EC2 instance per nodegroup node so the lab's Kubernetes nodes can carry real
`aws:///<az>/<instance-id>` provider IDs, as on EKS.
"""
import json

import boto3

CLUSTER_NAME = "eksworkshop"
REGION = "ap-southeast-1"
KUBERNETES_VERSION = "1.36"
NODEGROUP = "ng-ondemand"
NODE_INSTANCE_TYPE = "t4g.xlarge"
NODE_COUNT = 3
VPC_CIDR = "192.168.0.0/16"
# eksctl's default private subnet layout
SUBNETS = [("ap-southeast-1a", "192.168.96.0/19"), ("ap-southeast-1b", "192.168.128.0/19"), ("ap-southeast-1c", "192.168.160.0/19")]
TRUST_EKS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
TRUST_EC2 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def clients(endpoint_url, region=REGION):
    common = {
        "endpoint_url": endpoint_url,
        "region_name": region,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    return {name: boto3.client(name, **common) for name in ("ec2", "eks", "iam", "sts")}


def _role(iam, name, trust, policies):
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    for policy in policies:
        iam.attach_role_policy(RoleName=name, PolicyArn=f"arn:aws:iam::aws:policy/{policy}")
    return arn


def seed(endpoint_url):
    """Create the tutorial account if it is not there yet; return its facts either way."""
    aws = clients(endpoint_url)
    ec2, eks, iam = aws["ec2"], aws["eks"], aws["iam"]
    account = aws["sts"].get_caller_identity()["Account"]

    if CLUSTER_NAME in eks.list_clusters()["clusters"]:
        return describe(aws, account)

    vpc_id = ec2.create_vpc(
        CidrBlock=VPC_CIDR,
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": f"eksctl-{CLUSTER_NAME}-cluster/VPC"}]}],
    )["Vpc"]["VpcId"]
    subnet_ids = []
    for zone, cidr in SUBNETS:
        subnet_ids.append(
            ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=cidr,
                AvailabilityZone=zone,
                TagSpecifications=[
                    {
                        "ResourceType": "subnet",
                        "Tags": [
                            {"Key": "Name", "Value": f"eksctl-{CLUSTER_NAME}-cluster/SubnetPrivate{zone[-1].upper()}"},
                            {"Key": "kubernetes.io/role/internal-elb", "Value": "1"},
                        ],
                    }
                ],
            )["Subnet"]["SubnetId"]
        )

    cluster_role = _role(iam, f"eksctl-{CLUSTER_NAME}-cluster-ServiceRole", TRUST_EKS, ["AmazonEKSClusterPolicy"])
    node_role = _role(
        iam,
        f"eksctl-{CLUSTER_NAME}-nodegroup-{NODEGROUP}-NodeInstanceRole",
        TRUST_EC2,
        ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore"],
    )

    cluster = eks.create_cluster(
        name=CLUSTER_NAME,
        version=KUBERNETES_VERSION,
        roleArn=cluster_role,
        resourcesVpcConfig={"subnetIds": subnet_ids, "endpointPublicAccess": True, "endpointPrivateAccess": True},
        accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"},
        tags={"alpha.eksctl.io/cluster-name": CLUSTER_NAME},
    )["cluster"]
    issuer = cluster["identity"]["oidc"]["issuer"]
    iam.create_open_id_connect_provider(
        Url=issuer,
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
        Tags=[{"Key": "alpha.eksctl.io/cluster-name", "Value": CLUSTER_NAME}],
    )

    eks.create_nodegroup(
        clusterName=CLUSTER_NAME,
        nodegroupName=NODEGROUP,
        scalingConfig={"minSize": NODE_COUNT, "maxSize": NODE_COUNT, "desiredSize": NODE_COUNT},
        subnets=subnet_ids,
        instanceTypes=[NODE_INSTANCE_TYPE],
        amiType="AL2023_ARM_64_STANDARD",
        nodeRole=node_role,
        capacityType="ON_DEMAND",
        labels={"alpha.eksctl.io/cluster-name": CLUSTER_NAME, "alpha.eksctl.io/nodegroup-name": NODEGROUP},
        tags={"alpha.eksctl.io/nodegroup-name": NODEGROUP},
    )

    image_id = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
    for index in range(NODE_COUNT):
        ec2.run_instances(
            ImageId=image_id,
            InstanceType=NODE_INSTANCE_TYPE,
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet_ids[index % len(subnet_ids)],
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "eks:cluster-name", "Value": CLUSTER_NAME},
                        {"Key": "eks:nodegroup-name", "Value": NODEGROUP},
                        {"Key": f"kubernetes.io/cluster/{CLUSTER_NAME}", "Value": "owned"},
                    ],
                }
            ],
        )
    return describe(aws, account)


def describe(aws, account):
    ec2, eks = aws["ec2"], aws["eks"]
    cluster = eks.describe_cluster(name=CLUSTER_NAME)["cluster"]
    nodegroup = eks.describe_nodegroup(clusterName=CLUSTER_NAME, nodegroupName=NODEGROUP)["nodegroup"]
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": "tag:eks:nodegroup-name", "Values": [NODEGROUP]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"]
    instances = sorted(
        (
            {
                "instance_id": i["InstanceId"],
                "zone": i["Placement"]["AvailabilityZone"],
                "private_ip": i["PrivateIpAddress"],
                "private_dns": i["PrivateDnsName"],
            }
            for r in reservations
            for i in r["Instances"]
        ),
        key=lambda i: i["zone"],
    )
    return {
        "account_id": account,
        "region": REGION,
        "cluster_name": CLUSTER_NAME,
        "cluster_arn": cluster["arn"],
        "oidc_issuer": cluster["identity"]["oidc"]["issuer"],
        "cluster_security_group_id": cluster["resourcesVpcConfig"]["clusterSecurityGroupId"],
        "vpc_id": cluster["resourcesVpcConfig"]["vpcId"],
        "subnet_ids": nodegroup["subnets"],
        "nodegroup": NODEGROUP,
        "nodegroup_role_arn": nodegroup["nodeRole"],
        "instances": instances,
    }
