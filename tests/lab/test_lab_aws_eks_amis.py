"""lab/aws_eks_amis.py and lab/aws_pricing.py, through boto3 and real HTTP on conftest's in-process server."""
import json
import re

import pytest
from botocore.exceptions import ClientError

from lab import aws_eks_amis, seed
from lab import instance_types as catalogue
from tests.paths import REPO

K8S = seed.KUBERNETES_VERSION
PREFIX = f"/aws/service/eks/optimized-ami/{K8S}/amazon-linux-2023"


@pytest.fixture
def ssm(boto_client):
    return boto_client("ssm")


@pytest.fixture
def ec2(boto_client):
    return boto_client("ec2")


def test_seeded_cluster_and_lab_apiserver_versions_have_published_amis():
    versions = (REPO / "lab" / "versions.env").read_text()
    apiserver = re.search(r"^KUBERNETES_VERSION=v(\d+\.\d+)\.\d+$", versions, re.M).group(1)
    assert K8S == apiserver
    assert K8S in aws_eks_amis.KUBERNETES_VERSIONS


@pytest.mark.parametrize("arch,kube_arch", [("arm64", "arm64"), ("x86_64", "x86_64")])
def test_recommended_parameter_points_at_the_newest_available_image(ssm, ec2, arch, kube_arch):
    image_id = ssm.get_parameter(Name=f"{PREFIX}/{arch}/standard/recommended/image_id")["Parameter"]["Value"]
    [image] = ec2.describe_images(Filters=[{"Name": "image-id", "Values": [image_id]}])["Images"]
    assert image["Name"] == f"amazon-eks-node-al2023-{arch}-standard-{K8S}-{aws_eks_amis.RELEASES[-1]}"
    assert image["Architecture"] == kube_arch and image["State"] == "available"
    assert image["OwnerId"] == aws_eks_amis.EKS_AMI_OWNER and image["ImageOwnerAlias"] == "amazon"
    assert image["RootDeviceName"] == "/dev/xvda" and image["VirtualizationType"] == "hvm"
    older = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": [f"amazon-eks-node-al2023-{arch}-standard-{K8S}-*"]}])["Images"]
    assert max(older, key=lambda i: i["CreationDate"])["ImageId"] == image_id
    name = ssm.get_parameter(Name=f"{PREFIX}/{arch}/standard/recommended/image_name")["Parameter"]["Value"]
    assert name == image["Name"]


def test_pinned_release_parameters_and_variants(ssm, ec2):
    release = aws_eks_amis.RELEASES[0]
    name = f"amazon-eks-node-al2023-arm64-standard-{K8S}-{release}"
    image_id = ssm.get_parameter(Name=f"{PREFIX}/arm64/standard/{name}/image_id")["Parameter"]["Value"]
    [image] = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert image["Name"] == name and image["CreationDate"].startswith(f"{release[1:5]}-{release[5:7]}-{release[7:9]}")
    ssm.get_parameter(Name=f"{PREFIX}/x86_64/neuron/recommended/image_id")
    with pytest.raises(ClientError) as caught:
        ssm.get_parameter(Name=f"{PREFIX}/arm64/neuron/recommended/image_id")
    assert caught.value.response["Error"]["Code"] == "ParameterNotFound"
    with pytest.raises(ClientError):
        ssm.get_parameter(Name="/aws/service/eks/optimized-ami/1.20/amazon-linux-2023/arm64/standard/recommended/image_id")


# -- Price List ------------------------------------------------------------------------------------
def karpenter_filters(tenancy, family):
    terms = {"regionCode": catalogue.REGION, "serviceCode": "AmazonEC2", "preInstalledSw": "NA", "operatingSystem": "Linux",
             "capacitystatus": "Used", "marketoption": "OnDemand", "tenancy": tenancy, "productFamily": family}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()]


def all_products(pricing, filters):
    found, token = [], None
    while True:
        page = pricing.get_products(ServiceCode="AmazonEC2", Filters=filters, MaxResults=5, **({"NextToken": token} if token else {}))
        found += [json.loads(p) for p in page["PriceList"]]
        token = page.get("NextToken")
        if not token:
            return found


def test_get_products_answers_karpenter_queries_with_catalogue_prices(aws_endpoint):
    import boto3

    pricing = boto3.client("pricing", endpoint_url=aws_endpoint, region_name="ap-south-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    shared = all_products(pricing, karpenter_filters("Shared", "Compute Instance"))
    metal = all_products(pricing, karpenter_filters("Dedicated", "Compute Instance (bare metal)"))
    assert [p["product"]["attributes"]["instanceType"] for p in metal] == ["m6g.metal"]
    assert sorted(p["product"]["attributes"]["instanceType"] for p in shared + metal) == sorted(catalogue.CATALOGUE)
    for product in shared + metal:
        name = product["product"]["attributes"]["instanceType"]
        [term] = product["terms"]["OnDemand"].values()
        [dimension] = term["priceDimensions"].values()
        assert float(dimension["pricePerUnit"]["USD"]) == pytest.approx(catalogue.CATALOGUE[name][4])
    assert all_products(pricing, karpenter_filters("Shared", "Compute Instance")[1:] + [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"}]) == []
    any_of = all_products(pricing, [{"Type": "ANY_OF", "Field": "instanceType", "Value": "m6g.xlarge, c6g.xlarge"}])
    assert sorted(p["product"]["attributes"]["instanceType"] for p in any_of) == ["c6g.xlarge", "m6g.xlarge"]
    with pytest.raises(ClientError) as caught:
        pricing.get_products(ServiceCode="AmazonEC2", NextToken="not-a-token")
    assert caught.value.response["Error"]["Code"] == "InvalidNextTokenException"
    with pytest.raises(ClientError) as caught:
        pricing.get_products(ServiceCode="AmazonEC2", MaxResults=101)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    assert pricing.describe_services(ServiceCode="AmazonEC2")["Services"][0]["ServiceCode"] == "AmazonEC2"
