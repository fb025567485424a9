"""lab/aws_ec2.py: the tutorial's instance types, spot prices and instant fleets, through boto3 and real HTTP.

The server is conftest's in-process lab server, shared by the session: every test makes its own
launch template and reads back only the instances its own fleet launched.
"""
import datetime
import uuid

import pytest
from botocore.exceptions import ClientError

from lab import aws_ec2
from lab import instance_types as catalogue

TYPES = sorted(catalogue.CATALOGUE)


@pytest.fixture
def ec2(boto_client):
    return boto_client("ec2")


@pytest.fixture(scope="module")
def network(aws_endpoint):
    from tests.conftest import make_client

    ec2, iam = make_client(aws_endpoint, "ec2"), make_client(aws_endpoint, "iam")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        zone: ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for i, zone in enumerate(catalogue.ZONES)
    }
    group = ec2.create_security_group(GroupName="unit-fleet-nodes", Description="nodes", VpcId=vpc)["GroupId"]
    profile = iam.create_instance_profile(InstanceProfileName=f"unit-fleet-{uuid.uuid4().hex[:6]}")["InstanceProfile"]
    image = ec2.describe_images(Owners=["602401143452"], Filters=[{"Name": "name", "Values": ["amazon-eks-node-al2023-arm64-standard-1.36-*"]}])["Images"][0]["ImageId"]
    return {"subnets": subnets, "group": group, "profile": profile["InstanceProfileName"], "image": image}


@pytest.fixture
def template(ec2, network):
    name = f"unit-fleet-{uuid.uuid4().hex[:8]}"
    return ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={
            "ImageId": network["image"],
            "SecurityGroupIds": [network["group"]],
            "IamInstanceProfile": {"Name": network["profile"]},
            "UserData": "IyEvYmluL2Jhc2gK",
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 20, "VolumeType": "gp3"}}],
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "from-template", "Value": "yes"}]}],
        },
    )["LaunchTemplate"]


def overrides(network, types, zones=None):
    return [
        {"InstanceType": t, "SubnetId": network["subnets"][z], "AvailabilityZone": z, "ImageId": network["image"]}
        for t in types
        for z in (zones or catalogue.ZONES)
    ]


def fleet(ec2, template, items, capacity_type="spot", count=1, tags=None, **extra):
    request = {
        "Type": "instant",
        "LaunchTemplateConfigs": [{"LaunchTemplateSpecification": {"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Latest"}, "Overrides": items}],
        "TargetCapacitySpecification": {"TotalTargetCapacity": count, "DefaultTargetCapacityType": capacity_type},
        "TagSpecifications": [{"ResourceType": r, "Tags": [{"Key": k, "Value": v} for k, v in (tags or {"owner": "unit"}).items()]}
                              for r in ("instance", "volume", "fleet")],
        **extra,
    }
    if capacity_type == "spot":
        request.setdefault("SpotOptions", {"AllocationStrategy": "price-capacity-optimized"})
    else:
        request.setdefault("OnDemandOptions", {"AllocationStrategy": "lowest-price"})
    return ec2.create_fleet(**request)


def instances(ec2, answer):
    ids = [i for item in answer["Instances"] for i in item["InstanceIds"]]
    return [i for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]] if ids else []


# -- instance types and offerings ---------------------------------------------------------------------
def test_region_offers_exactly_the_catalogue_with_moto_ec2_data(ec2):
    found = {t["InstanceType"]: t for t in ec2.describe_instance_types()["InstanceTypes"]}
    assert sorted(found) == TYPES
    for name, (arch, cpu, mem_gib, *_rest) in catalogue.CATALOGUE.items():
        assert found[name]["VCpuInfo"]["DefaultVCpus"] == cpu
        assert found[name]["MemoryInfo"]["SizeInMiB"] == mem_gib * 1024
        assert found[name]["ProcessorInfo"]["SupportedArchitectures"] == [arch.replace("amd64", "x86_64")]


def test_describe_instance_types_filters_and_refuses_types_the_region_lacks(ec2):
    arm = ec2.describe_instance_types(Filters=[{"Name": "processor-info.supported-architecture", "Values": ["x86_64"]}])
    assert {t["InstanceType"] for t in arm["InstanceTypes"]} == {n for n, v in catalogue.CATALOGUE.items() if v[0] == "amd64"}
    with pytest.raises(ClientError) as caught:
        ec2.describe_instance_types(InstanceTypes=["m6g.xlarge", "p5.48xlarge"])
    assert caught.value.response["Error"]["Code"] == "InvalidInstanceType"


def test_offerings_are_every_catalogue_type_in_every_zone_per_location_type(ec2):
    zones = ec2.describe_instance_type_offerings(LocationType="availability-zone")["InstanceTypeOfferings"]
    assert {(o["InstanceType"], o["Location"]) for o in zones} == {(t, z) for t in TYPES for z in catalogue.ZONES}
    ids = {z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    by_id = ec2.describe_instance_type_offerings(LocationType="availability-zone-id", Filters=[{"Name": "instance-type", "Values": ["m6g.xlarge"]}])
    assert sorted(o["Location"] for o in by_id["InstanceTypeOfferings"]) == sorted(ids[z] for z in catalogue.ZONES)
    region = ec2.describe_instance_type_offerings()["InstanceTypeOfferings"]
    assert {o["Location"] for o in region} == {catalogue.REGION} and len(region) == len(TYPES)


def test_other_regions_keep_moto_data(aws_endpoint):
    import boto3

    other = boto3.client("ec2", endpoint_url=aws_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    assert len(other.describe_instance_type_offerings()["InstanceTypeOfferings"]) > len(TYPES)
    assert len(other.describe_instance_types()["InstanceTypes"]) > len(TYPES)


# -- spot prices ----------------------------------------------------------------------------------------
def test_spot_price_history_is_the_catalogue_price_per_type_and_zone(ec2):
    now = datetime.datetime.now(datetime.timezone.utc)
    history = ec2.describe_spot_price_history(ProductDescriptions=["Linux/UNIX"], StartTime=now, MaxResults=1000)["SpotPriceHistory"]
    assert {(h["InstanceType"], h["AvailabilityZone"]) for h in history} == {(t, z) for t in TYPES for z in catalogue.ZONES}
    for row in history:
        assert float(row["SpotPrice"]) == pytest.approx(catalogue.CATALOGUE[row["InstanceType"]][4] * catalogue.SPOT_DISCOUNT, abs=1e-5)
        assert float(row["SpotPrice"]) < catalogue.CATALOGUE[row["InstanceType"]][4]


def test_spot_price_history_filters_and_pages(ec2):
    page = ec2.describe_spot_price_history(InstanceTypes=["m6g.xlarge"], AvailabilityZone="ap-southeast-1b", MaxResults=1)
    assert len(page["SpotPriceHistory"]) == 1 and page["NextToken"]
    rest = ec2.describe_spot_price_history(InstanceTypes=["m6g.xlarge"], AvailabilityZone="ap-southeast-1b", NextToken=page["NextToken"])
    rows = page["SpotPriceHistory"] + rest["SpotPriceHistory"]
    assert {r["ProductDescription"] for r in rows} == set(aws_ec2.PRODUCT_DESCRIPTIONS)
    assert {r["AvailabilityZone"] for r in rows} == {"ap-southeast-1b"}
    by_filter = ec2.describe_spot_price_history(Filters=[{"Name": "instance-type", "Values": ["c6g.*"]}])["SpotPriceHistory"]
    assert {r["InstanceType"] for r in by_filter} == {t for t in TYPES if t.startswith("c6g.")}
    before = aws_ec2.PRICES_SINCE - datetime.timedelta(days=1)
    assert ec2.describe_spot_price_history(StartTime=before - datetime.timedelta(days=1), EndTime=before)["SpotPriceHistory"] == []


# -- CreateFleet (instant) --------------------------------------------------------------------------------
def test_spot_fleet_launches_the_cheapest_offering_with_template_and_request_settings(ec2, template, network):
    answer = fleet(ec2, template, overrides(network, ["m6g.xlarge", "c6g.xlarge", "r6g.xlarge"], ["ap-southeast-1b"]))
    assert answer["Errors"] == []
    [item] = answer["Instances"]
    assert item["Lifecycle"] == "spot" and item["InstanceType"] == "c6g.xlarge"
    assert item["LaunchTemplateAndOverrides"]["Overrides"]["AvailabilityZone"] == "ap-southeast-1b"
    [instance] = instances(ec2, answer)
    assert instance["InstanceLifecycle"] == "spot" and instance["SpotInstanceRequestId"].startswith("sir-")
    assert instance["Placement"]["AvailabilityZone"] == "ap-southeast-1b"
    assert instance["SubnetId"] == network["subnets"]["ap-southeast-1b"]
    assert instance["ImageId"] == network["image"] and instance["Architecture"] == "arm64"
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [network["group"]]
    assert instance["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{network['profile']}")
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["owner"] == "unit" and tags["from-template"] == "yes"
    assert tags["aws:ec2:fleet-id"] == answer["FleetId"] and tags["aws:ec2launchtemplate:id"] == template["LaunchTemplateId"]
    request = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[instance["SpotInstanceRequestId"]])["SpotInstanceRequests"][0]
    assert request["InstanceId"] == instance["InstanceId"] and request["Type"] == "one-time" and request["State"] == "active"
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}])["Volumes"]
    assert volumes and {t["Key"]: t["Value"] for t in volumes[0]["Tags"]}["owner"] == "unit"


def test_on_demand_fleet_lowest_price_and_prioritized(ec2, template, network):
    answer = fleet(ec2, template, overrides(network, ["r6g.xlarge", "m6g.xlarge"], ["ap-southeast-1c"]), capacity_type="on-demand")
    [item] = answer["Instances"]
    assert item["Lifecycle"] == "on-demand" and item["InstanceType"] == "m6g.xlarge"
    [instance] = instances(ec2, answer)
    assert "InstanceLifecycle" not in instance and "SpotInstanceRequestId" not in instance
    items = overrides(network, ["m6g.xlarge", "r6g.xlarge"], ["ap-southeast-1a"])
    items[0]["Priority"], items[1]["Priority"] = 2.0, 1.0
    answer = fleet(ec2, template, items, capacity_type="on-demand", OnDemandOptions={"AllocationStrategy": "prioritized"})
    assert answer["Instances"][0]["InstanceType"] == "r6g.xlarge"


def test_fleet_reports_offerings_the_zone_lacks_and_capacity_counts(ec2, template, network):
    items = [{"InstanceType": "p5.48xlarge", "SubnetId": network["subnets"]["ap-southeast-1a"], "AvailabilityZone": "ap-southeast-1a"}]
    items += overrides(network, ["m6g.xlarge"], ["ap-southeast-1a"])
    answer = fleet(ec2, template, items, count=2)
    assert [e["ErrorCode"] for e in answer["Errors"]] == ["Unsupported"]
    assert answer["Errors"][0]["LaunchTemplateAndOverrides"]["Overrides"]["InstanceType"] == "p5.48xlarge"
    assert len(answer["Instances"][0]["InstanceIds"]) == 2
    none = fleet(ec2, template, items[:1])
    assert none["Instances"] == [] and none["Errors"][0]["ErrorCode"] == "Unsupported"


def test_fleet_dry_run_and_missing_template(ec2, template, network):
    with pytest.raises(ClientError) as caught:
        fleet(ec2, template, overrides(network, ["m6g.xlarge"]), DryRun=True)
    assert caught.value.response["Error"]["Code"] == "DryRunOperation"
    with pytest.raises(ClientError) as caught:
        fleet(ec2, {"LaunchTemplateId": "lt-0123456789abcdef0"}, overrides(network, ["m6g.xlarge"]))
    assert "NotFound" in caught.value.response["Error"]["Code"]


def test_terminating_a_fleet_instance(ec2, template, network):
    answer = fleet(ec2, template, overrides(network, ["m6g.xlarge"], ["ap-southeast-1a"]))
    [instance_id] = answer["Instances"][0]["InstanceIds"]
    ec2.terminate_instances(InstanceIds=[instance_id])
    [instance] = instances(ec2, answer)
    assert instance["State"]["Name"] == "terminated"


def test_capacity_reservations_none_in_the_lab(ec2):
    assert ec2.describe_capacity_reservations()["CapacityReservations"] == []
    with pytest.raises(ClientError) as caught:
        ec2.describe_capacity_reservations(CapacityReservationIds=["cr-0123456789abcdef0"])
    assert caught.value.response["Error"]["Code"] == "InvalidCapacityReservationId.NotFound"
    with pytest.raises(ClientError) as caught:
        ec2.describe_capacity_reservations(DryRun=True)
    assert caught.value.response["Error"]["Code"] == "DryRunOperation"
