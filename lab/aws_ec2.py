"""EC2 for the real Karpenter AWS controller: the tutorial's instance types, their spot prices, and instant EC2 Fleets.

Karpenter's AWS provider (v1.14.1) discovers what it may launch with DescribeInstanceTypes,
DescribeInstanceTypeOfferings and DescribeSpotPriceHistory, and launches every node with one
CreateFleet of type `instant`. moto 5.2.5 answers the first two with every type AWS has, prices
every spot offering at 0.00001 USD, and launches fleet instances without their launch template's
security groups, instance profile, override zone or Spot request. This module changes exactly
that, with the semantics of the EC2 API reference:

* The lab region (lab.instance_types.REGION) offers the lab catalogue, lab/instance_types.py, and
  nothing else; it is the one source the kwok Karpenter also reads. DescribeInstanceTypes returns
  moto's real EC2 data for the catalogue's types only (InvalidInstanceType for a type the region
  does not offer, as EC2 answers); DescribeInstanceTypeOfferings lists each catalogue type in each
  catalogue zone, for the location types region, availability-zone and availability-zone-id, with
  moto's `location` and `instance-type` filters. Other regions keep moto's data.
* DescribeSpotPriceHistory in the lab region: one price per (type, zone) and product description
  (Linux/UNIX and Linux/UNIX (Amazon VPC)), the catalogue's spot price, set when the server started
  (PRICES_SINCE). As in EC2, a StartTime returns the price in effect then; filters
  availability-zone, instance-type, product-description, spot-price; InstanceTypes,
  ProductDescriptions, AvailabilityZone; MaxResults / NextToken paging.
* CreateFleet of type `instant` (other types still go to moto): every (launch template config,
  override) pair is a candidate launch specification, the override's fields replacing the
  template version's. A candidate whose type the zone does not offer, or whose override zone is
  not its subnet's, is reported in Errors (Unsupported / InvalidParameterValue) and skipped. The
  TotalTargetCapacity is launched in DefaultTargetCapacityType (OnDemandTargetCapacity and
  SpotTargetCapacity first), choosing per the allocation strategy: spot lowest-price,
  price-capacity-optimized and capacity-optimized take the cheapest spot offering (the lab has no
  capacity pools to weigh), capacity-optimized-prioritized and on-demand `prioritized` the lowest
  Priority, on-demand lowest-price the cheapest on-demand price; `diversified` goes round the
  candidates. Each instance is launched by moto's RunInstances with the template's user data,
  security groups or network interfaces (the override subnet on device 0), block devices, metadata
  options and instance profile, into the override subnet and zone, tagged with the request's and
  the template's `instance` and `volume` tags, aws:ec2launchtemplate:id/version and
  aws:ec2:fleet-id, as EC2 tags fleet instances. A Spot instance gets a one-time, fulfilled Spot
  instance request carrying the `spot-instances-request` tags; DescribeInstances shows its
  SpotInstanceRequestId and InstanceLifecycle spot, which is how Karpenter tells spot from
  on-demand. The response lists the instances per launch template and overrides, as sent.
  DryRun answers DryRunOperation after the same validation. The lab has unlimited capacity: no
  InsufficientInstanceCapacity.
* DescribeCapacityReservations: the lab cannot create capacity reservations (moto has no
  CreateCapacityReservation), so the answer is the empty set EC2 gives an account without any,
  with DryRun, the reservation-id filter and InvalidCapacityReservationId.NotFound for an asked id.

install() registers these; lab/aws_server.py calls it from install_extensions().
"""
import datetime
import itertools
import threading

from moto.core.responses import ActionResult
from moto.ec2.exceptions import (
    DryRunClientError,
    EC2ClientError,
    InvalidInstanceTypeError,
    InvalidParameterValueError,
)
from moto.ec2.models.instance_types import InstanceTypeBackend, InstanceTypeOfferingBackend
from moto.ec2.models.spot_requests import SpotInstanceRequest
from moto.ec2.responses import EC2Response
from moto.ec2.utils import convert_tag_spec, random_fleet_id, random_spot_request_id

from lab import instance_types as catalogue

REGION = catalogue.REGION
PRODUCT_DESCRIPTIONS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")
# Spot prices in the lab never change: they are in effect from the moment the server starts.
PRICES_SINCE = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
SPOT_STRATEGIES = ("lowest-price", "lowestPrice", "diversified", "capacity-optimized", "capacityOptimized",
                   "capacity-optimized-prioritized", "price-capacity-optimized")
ON_DEMAND_STRATEGIES = ("lowest-price", "lowestPrice", "prioritized")

_lock = threading.Lock()


# -- the catalogue ----------------------------------------------------------------------------------
def on_demand_price(name):
    return catalogue.CATALOGUE[name][4]


def spot_price(name):
    return round(on_demand_price(name) * catalogue.SPOT_DISCOUNT, 5)


def _zone_ids(backend):
    return {zone.name: zone.zone_id for zone in backend.describe_availability_zones()}


def _catalogue_offerings(backend, location_type):
    if location_type == "region":
        locations = [REGION]
    elif location_type == "availability-zone":
        locations = list(catalogue.ZONES)
    elif location_type == "availability-zone-id":
        ids = _zone_ids(backend)
        locations = [ids[zone] for zone in catalogue.ZONES]
    else:
        raise InvalidParameterValueError(location_type)
    return [
        {"InstanceType": name, "LocationType": location_type, "Location": location}
        for name in sorted(catalogue.CATALOGUE)
        for location in locations
    ]


_original_describe_instance_types = InstanceTypeBackend.describe_instance_types
_original_describe_offerings = InstanceTypeOfferingBackend.describe_instance_type_offerings


def describe_instance_types(self, instance_types=None, filters=None):
    matches = _original_describe_instance_types(self, instance_types, filters)
    if getattr(self, "region_name", None) != REGION:
        return matches
    missing = set(instance_types or ()) - set(catalogue.CATALOGUE)
    if missing:
        raise InvalidInstanceTypeError(missing, error_type="InvalidInstanceType")
    return [t for t in matches if t.get("InstanceType") in catalogue.CATALOGUE]


def describe_instance_type_offerings(self, location_type=None, filters=None):
    if getattr(self, "region_name", None) != REGION:
        return _original_describe_offerings(self, location_type, filters)
    location_type = location_type or "region"
    return [o for o in _catalogue_offerings(self, location_type) if self.matches_filters(o, filters or {}, location_type)]


def offered(backend, instance_type, zone):
    if backend.region_name == REGION:
        return instance_type in catalogue.CATALOGUE and zone in catalogue.ZONES
    return bool(_original_describe_offerings(
        backend, "availability-zone", {"instance-type": [instance_type], "location": [zone]}
    ))


# -- DescribeSpotPriceHistory -------------------------------------------------------------------------
def _parse_time(value):
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        parsed = value
    else:
        parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _spot_history(zones, instance_types, descriptions, start, end, filters):
    if end is not None and end < PRICES_SINCE:
        return []
    rows = []
    for name, zone, description in itertools.product(sorted(catalogue.CATALOGUE), zones, PRODUCT_DESCRIPTIONS):
        price = f"{spot_price(name):.6f}"
        row = {"InstanceType": name, "AvailabilityZone": zone, "ProductDescription": description,
               "SpotPrice": price, "Timestamp": PRICES_SINCE}
        checks = {
            "instance-type": name in instance_types if instance_types else True,
            "product-description": description in descriptions if descriptions else True,
        }
        if not all(checks.values()):
            continue
        wanted = {
            "availability-zone": zone,
            "instance-type": name,
            "product-description": description,
            "spot-price": price,
        }
        if any(key in wanted and not any(_filter_match(wanted[key], v) for v in values) for key, values in filters.items()):
            continue
        if "timestamp" in filters and not any(_parse_time(v) == PRICES_SINCE for v in filters["timestamp"]):
            continue
        rows.append(row)
    return rows


def _filter_match(actual, pattern):
    if pattern.endswith("*"):
        return actual.startswith(pattern[:-1])
    if actual.replace(".", "").isdigit() and pattern.replace(".", "").isdigit():
        return float(actual) == float(pattern)
    return actual == pattern


_original_describe_spot_price_history = EC2Response.describe_spot_price_history


def describe_spot_price_history(self):
    if self.region != REGION:
        return _original_describe_spot_price_history(self)
    self.error_on_dryrun()
    filters = self._filters_from_querystring()
    zone = self._get_param("AvailabilityZone")
    zones = [zone] if zone else list(catalogue.ZONES)
    rows = _spot_history(
        zones,
        self._get_param("InstanceTypes", []),
        self._get_param("ProductDescriptions", []),
        _parse_time(self._get_param("StartTime")),
        _parse_time(self._get_param("EndTime")),
        filters,
    )
    max_results = int(self._get_param("MaxResults") or 1000)
    start = int(self._get_param("NextToken") or 0)
    page = rows[start:start + max_results]
    token = str(start + max_results) if start + max_results < len(rows) else None
    result = {"SpotPriceHistory": page}
    if token:
        result["NextToken"] = token
    return ActionResult(result)


# -- CreateFleet (instant) ------------------------------------------------------------------------------
class FleetSpotRequest(SpotInstanceRequest):
    """The one-time Spot request EC2 Fleet opens for a Spot instance it launched (fulfilled at once)."""

    def __init__(self, *args, instance, **kwargs):
        self._fleet_instance = instance
        super().__init__(*args, **kwargs)

    def launch_instance(self):
        return self._fleet_instance


def _template(backend, spec):
    if spec.get("LaunchTemplateId"):
        template = backend.get_launch_template(spec["LaunchTemplateId"])
    elif spec.get("LaunchTemplateName"):
        template = backend.get_launch_template_by_name(spec["LaunchTemplateName"])
    else:
        raise InvalidParameterValueError("LaunchTemplateSpecification needs LaunchTemplateId or LaunchTemplateName")
    version = template.get_version(spec.get("Version") or "$Default")
    return template, version


def _candidates(backend, configs):
    candidates, errors = [], []
    for config in configs:
        spec = config.get("LaunchTemplateSpecification") or {}
        template, version = _template(backend, spec)
        answer_spec = {"LaunchTemplateId": template.id, "LaunchTemplateName": template.name,
                       "Version": str(version.number)}
        for override in config.get("Overrides") or [{}]:
            data = dict(version.data)
            data.update({k: v for k, v in override.items() if k not in ("Priority", "WeightedCapacity", "MaxPrice")})
            instance_type = data.get("InstanceType")
            subnet_id = data.get("SubnetId") or next(
                (n.get("SubnetId") for n in data.get("NetworkInterfaces") or [] if n.get("SubnetId")), None
            )
            subnet = backend.get_subnet(subnet_id) if subnet_id else None
            zone = override.get("AvailabilityZone") or (subnet.availability_zone if subnet else None)
            candidate = {
                "template": template, "version": version, "data": data, "override": override,
                "answer": {"LaunchTemplateSpecification": answer_spec, "Overrides": override},
                "instance_type": instance_type, "subnet": subnet, "zone": zone,
                "priority": float(override.get("Priority", 0) or 0),
                "weight": float(override.get("WeightedCapacity", 1) or 1),
            }
            if not instance_type or not data.get("ImageId"):
                errors.append(_error(candidate, "InvalidParameterValue", "The launch specification needs an instance type and an image id."))
            elif subnet and zone and subnet.availability_zone != zone:
                errors.append(_error(candidate, "InvalidParameterValue",
                                     f"The subnet {subnet.id} is in {subnet.availability_zone}, not {zone}."))
            elif zone and not offered(backend, instance_type, zone):
                errors.append(_error(candidate, "Unsupported",
                                     f"The requested configuration is currently not supported. {instance_type} is not offered in {zone}."))
            else:
                candidates.append(candidate)
    return candidates, errors


def _error(candidate, code, message, lifecycle=None):
    error = {"LaunchTemplateAndOverrides": candidate["answer"], "ErrorCode": code, "ErrorMessage": message}
    if lifecycle:
        error["Lifecycle"] = lifecycle
    return error


def _price(backend, candidate, lifecycle):
    if backend.region_name == REGION and candidate["instance_type"] in catalogue.CATALOGUE:
        name = candidate["instance_type"]
        return (spot_price(name) if lifecycle == "spot" else on_demand_price(name)) / candidate["weight"]
    return float("inf")


def _order(backend, candidates, lifecycle, strategy):
    if strategy in ("capacity-optimized-prioritized", "prioritized"):
        return sorted(candidates, key=lambda c: (c["priority"], _price(backend, c, lifecycle)))
    if strategy == "diversified":
        return list(candidates)
    return sorted(candidates, key=lambda c: _price(backend, c, lifecycle))


def _allocate(backend, candidates, lifecycle, strategy, capacity):
    """Launch specifications, with repeats, whose weights add up to at least `capacity`."""
    chosen, total = [], 0.0
    ordered = _order(backend, candidates, lifecycle, strategy)
    if not ordered or capacity <= 0:
        return chosen
    cycle = itertools.cycle(ordered) if strategy == "diversified" else itertools.repeat(ordered[0])
    while total < capacity:
        candidate = next(cycle)
        chosen.append(candidate)
        total += candidate["weight"]
    return chosen


def _launch(backend, region, candidate, lifecycle, fleet_id, request_tags):
    data = candidate["data"]
    template, version = candidate["template"], candidate["version"]
    tags = convert_tag_spec(data.get("TagSpecifications") or [])
    for resource in ("instance", "volume"):
        tags[resource] = {**tags.get(resource, {}), **request_tags.get(resource, {})}
    tags["instance"].update({
        "aws:ec2launchtemplate:id": template.id,
        "aws:ec2launchtemplate:version": str(version.number),
        "aws:ec2:fleet-id": fleet_id,
    })
    nics = [dict(n) for n in data.get("NetworkInterfaces") or []]
    subnet_id = candidate["subnet"].id if candidate["subnet"] else None
    security_group_ids = list(data.get("SecurityGroupIds") or [])
    if nics:
        for nic in nics:
            if int(nic.get("DeviceIndex", 0) or 0) == 0 and subnet_id:
                nic["SubnetId"] = subnet_id
            security_group_ids.extend(g for g in nic.get("Groups") or [] if g not in security_group_ids)
        subnet_id = None
    kwargs = {
        "instance_type": candidate["instance_type"],
        "is_instance_type_default": False,
        "placement": None if candidate["subnet"] else candidate["zone"],
        "region_name": region,
        "subnet_id": subnet_id,
        "key_name": data.get("KeyName"),
        "security_group_ids": security_group_ids,
        "nics": nics,
        "tags": tags,
        "ebs_optimized": bool(data.get("EbsOptimized")),
        "instance_market_options": "spot" if lifecycle == "spot" else {},
        "launch_template": {"LaunchTemplateId": template.id, "Version": str(version.number)},
        "monitoring_state": "enabled" if (data.get("Monitoring") or {}).get("Enabled") else "disabled",
        "metadata_options": data.get("MetadataOptions") or {},
    }
    if data.get("BlockDeviceMappings"):
        kwargs["block_device_mappings"] = data["BlockDeviceMappings"]
    reservation = backend.run_instances(data["ImageId"], 1, data.get("UserData"), [], **kwargs)
    instance = reservation.instances[0]
    profile = data.get("IamInstanceProfile") or {}
    if profile.get("Name") or profile.get("Arn"):
        backend.associate_iam_instance_profile(
            instance.id, iam_instance_profile_name=profile.get("Name"), iam_instance_profile_arn=profile.get("Arn")
        )
    if lifecycle == "spot":
        request = FleetSpotRequest(
            backend, random_spot_request_id(), None, data["ImageId"], "one-time", None, None, None, None,
            data.get("KeyName"), [g.id for g in instance.security_groups], data.get("UserData"),
            candidate["instance_type"], instance.placement.zone, None, None, False, instance.subnet_id,
            {"spot-instances-request": request_tags.get("spot-instances-request", {})}, None, None,
            instance=instance,
        )
        backend.spot_instance_requests[request.id] = request
        instance.spot_instance_request_id = request.id
    return instance


def _int(value, default=0):
    return int(value) if value not in (None, "") else default


_original_create_fleet = EC2Response.create_fleet


def create_fleet(self):
    if (self._get_param("Type") or "maintain") != "instant":
        return _original_create_fleet(self)
    target = self._get_param("TargetCapacitySpecification") or {}
    total = _int(target.get("TotalTargetCapacity"))
    default_type = target.get("DefaultTargetCapacityType") or "on-demand"
    if total < 1:
        raise InvalidParameterValueError("TotalTargetCapacity must be at least 1")
    if default_type not in ("on-demand", "spot"):
        raise EC2ClientError("InvalidParameterValue", f"DefaultTargetCapacityType {default_type} is not supported in the lab")
    spot_strategy = (self._get_param("SpotOptions") or {}).get("AllocationStrategy") or "lowest-price"
    on_demand_strategy = (self._get_param("OnDemandOptions") or {}).get("AllocationStrategy") or "lowest-price"
    if spot_strategy not in SPOT_STRATEGIES:
        raise InvalidParameterValueError(f"SpotOptions.AllocationStrategy {spot_strategy}")
    if on_demand_strategy not in ON_DEMAND_STRATEGIES:
        raise InvalidParameterValueError(f"OnDemandOptions.AllocationStrategy {on_demand_strategy}")
    request_tags = convert_tag_spec(self._get_param("TagSpecifications") or [])
    backend = self.ec2_backend
    with _lock:
        candidates, errors = _candidates(backend, self._get_param("LaunchTemplateConfigs") or [])
        self.error_on_dryrun()
        spot = _int(target.get("SpotTargetCapacity"))
        on_demand = _int(target.get("OnDemandTargetCapacity"))
        rest = max(total - spot - on_demand, 0)
        if default_type == "spot":
            spot += rest
        else:
            on_demand += rest
        fleet_id = random_fleet_id()
        launched = []
        for lifecycle, capacity, strategy in (("on-demand", on_demand, on_demand_strategy), ("spot", spot, spot_strategy)):
            for candidate in _allocate(backend, candidates, lifecycle, strategy, capacity):
                launched.append((candidate, lifecycle, _launch(backend, self.region, candidate, lifecycle, fleet_id, request_tags)))
    instances = []
    for (answer_key, lifecycle), group in itertools.groupby(
        launched, key=lambda item: (id(item[0]), item[1])
    ):
        group = list(group)
        candidate = group[0][0]
        instances.append({
            "LaunchTemplateAndOverrides": candidate["answer"],
            "Lifecycle": lifecycle,
            "InstanceIds": [instance.id for _, _, instance in group],
            "InstanceType": candidate["instance_type"],
        })
    return ActionResult({"FleetId": fleet_id, "Errors": errors, "Instances": instances})


# -- DescribeCapacityReservations ---------------------------------------------------------------------------
def describe_capacity_reservations(self):
    self.error_on_dryrun()
    ids = self._get_param("CapacityReservationIds", [])
    if ids:
        raise EC2ClientError(
            "InvalidCapacityReservationId.NotFound",
            f"The capacity reservation ID '{ids[0]}' does not exist",
        )
    return ActionResult({"CapacityReservations": []})


EXTRA_ACTIONS = {
    "describe_spot_price_history": describe_spot_price_history,
    "create_fleet": create_fleet,
    "describe_capacity_reservations": describe_capacity_reservations,
}


def install():
    """Register the EC2 additions with moto; running it again changes nothing."""
    InstanceTypeBackend.describe_instance_types = describe_instance_types
    InstanceTypeOfferingBackend.describe_instance_type_offerings = describe_instance_type_offerings
    for name, function in EXTRA_ACTIONS.items():
        setattr(EC2Response, name, function)


__all__ = ["install", "DryRunClientError"]
