"""The AWS Price List Query API (GetProducts, DescribeServices) for the lab's EC2 on-demand prices.

Karpenter's AWS provider refreshes on-demand prices with GetProducts (service code AmazonEC2,
TERM_MATCH filters regionCode, tenancy, productFamily, operatingSystem, preInstalledSw,
capacitystatus, marketoption), twice: shared-tenancy "Compute Instance" products and dedicated
"Compute Instance (bare metal)" ones; it keeps its built-in us-east-1 price table unless both
answers are non-empty. moto 5.2.5 has no Price List service at all (a request for it gets an HTML
500), so this module serves one, from the same catalogue as the rest of the lab
(lab/instance_types.py): one Linux, no pre-installed software, OnDemand, capacitystatus Used
product per catalogue type in the lab region, at the catalogue's on-demand price, bare-metal types
(moto's EC2 data says BareMetal) as dedicated "Compute Instance (bare metal)", the others as shared
"Compute Instance". Each PriceList item is the JSON document the Price List API returns (product
with sku, productFamily and attributes; terms.OnDemand with priceDimensions and pricePerUnit USD).

Semantics of the API reference: the JSON 1.1 protocol (X-Amz-Target AWSPriceListService.*);
filters TERM_MATCH (exact, case-insensitive field name), EQUALS, CONTAINS, ANY_OF and NONE_OF
(comma-separated values); ServiceCode required (InvalidParameterException otherwise, and for a
service other than AmazonEC2 or an unknown filter type); MaxResults 1-100 (default 100) with
NextToken (InvalidNextTokenException for a token it did not give); FormatVersion aws_v1.
DescribeServices lists AmazonEC2 and its attribute names. Requests for the service are recognised
by their X-Amz-Target before moto's dispatcher sees them; everything else still goes to moto.

install() hooks it into moto's server; lab/aws_server.py calls it from install_extensions().
"""
import hashlib
import json

from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

from lab import instance_types as catalogue

TARGET_PREFIX = "AWSPriceListService."
SERVICE_CODE = "AmazonEC2"
LOCATION = {"ap-southeast-1": "Asia Pacific (Singapore)"}
PUBLICATION_DATE = "2026-11-01T00:00:00Z"
FILTER_TYPES = ("TERM_MATCH", "EQUALS", "CONTAINS", "ANY_OF", "NONE_OF")
# The hourly on-demand rate code of the Price List.
ON_DEMAND_TERM = "JRTCKXETXF"
RATE_CODE = "6YS6EN2CT7"


class PricingError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _sku(name):
    return hashlib.sha256(f"{catalogue.REGION}/{name}/on-demand".encode()).hexdigest()[:16].upper()


def _bare_metal(name):
    return bool(INSTANCE_TYPES.get(name, {}).get("BareMetal"))


def products():
    """The catalogue's EC2 on-demand products in the lab region, as Price List documents."""
    result = []
    for name in sorted(catalogue.CATALOGUE):
        arch, cpu, mem_gib, _pods, price, _extra = catalogue.CATALOGUE[name]
        metal = _bare_metal(name)
        sku = _sku(name)
        attributes = {
            "servicecode": SERVICE_CODE,
            "servicename": "Amazon Elastic Compute Cloud",
            "regionCode": catalogue.REGION,
            "location": LOCATION.get(catalogue.REGION, catalogue.REGION),
            "locationType": "AWS Region",
            "instanceType": name,
            "instanceFamily": "General purpose",
            "vcpu": str(cpu),
            "memory": f"{mem_gib} GiB",
            "processorArchitecture": "64-bit",
            "physicalProcessor": "AWS Graviton" if arch == "arm64" else "Intel Xeon",
            "tenancy": "Dedicated" if metal else "Shared",
            "operatingSystem": "Linux",
            "licenseModel": "No License required",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "marketoption": "OnDemand",
            "operation": "RunInstances",
            "usagetype": f"APS1-{'DedicatedUsage' if metal else 'BoxUsage'}:{name}",
        }
        result.append({
            "product": {
                "productFamily": "Compute Instance (bare metal)" if metal else "Compute Instance",
                "attributes": attributes,
                "sku": sku,
            },
            "serviceCode": SERVICE_CODE,
            "terms": {"OnDemand": {f"{sku}.{ON_DEMAND_TERM}": {
                "priceDimensions": {f"{sku}.{ON_DEMAND_TERM}.{RATE_CODE}": {
                    "unit": "Hrs",
                    "endRange": "Inf",
                    "description": f"${price:.4f} per On Demand Linux {name} Instance Hour",
                    "appliesTo": [],
                    "rateCode": f"{sku}.{ON_DEMAND_TERM}.{RATE_CODE}",
                    "beginRange": "0",
                    "pricePerUnit": {"USD": f"{price:.10f}"},
                }},
                "sku": sku,
                "effectiveDate": PUBLICATION_DATE,
                "offerTermCode": ON_DEMAND_TERM,
                "termAttributes": {},
            }}},
            "version": "20261101000000",
            "publicationDate": PUBLICATION_DATE,
        })
    return result


def _field(document, field):
    if field.lower() == "productfamily":
        return document["product"]["productFamily"]
    if field.lower() == "servicecode":
        return document["serviceCode"]
    if field.lower() == "sku":
        return document["product"]["sku"]
    for key, value in document["product"]["attributes"].items():
        if key.lower() == field.lower():
            return value
    return None


def _matches(document, flt):
    kind, field, value = flt.get("Type"), flt.get("Field") or "", flt.get("Value") or ""
    if kind not in FILTER_TYPES:
        raise PricingError("InvalidParameterException", f"Filter type {kind} is not one of {', '.join(FILTER_TYPES)}")
    actual = _field(document, field)
    if actual is None:
        return kind == "NONE_OF"
    values = [v.strip().lower() for v in value.split(",")]
    if kind in ("TERM_MATCH", "EQUALS"):
        return actual.lower() == value.lower()
    if kind == "CONTAINS":
        return value.lower() in actual.lower()
    if kind == "ANY_OF":
        return actual.lower() in values
    return actual.lower() not in values


def get_products(body):
    service_code = body.get("ServiceCode")
    if not service_code:
        raise PricingError("InvalidParameterException", "ServiceCode is required")
    if service_code != SERVICE_CODE:
        raise PricingError("NotFoundException", f"Service {service_code} is not found in the lab's price list")
    max_results = int(body.get("MaxResults") or 100)
    if not 1 <= max_results <= 100:
        raise PricingError("InvalidParameterException", "MaxResults must be between 1 and 100")
    filters = body.get("Filters") or []
    matching = [d for d in products() if all(_matches(d, f) for f in filters)]
    token = body.get("NextToken")
    start = 0
    if token:
        if not token.isdigit() or int(token) > len(matching):
            raise PricingError("InvalidNextTokenException", "The next token is not valid")
        start = int(token)
    page = matching[start:start + max_results]
    result = {"FormatVersion": body.get("FormatVersion") or "aws_v1", "PriceList": [json.dumps(d) for d in page]}
    if start + max_results < len(matching):
        result["NextToken"] = str(start + max_results)
    return result


def describe_services(body):
    code = body.get("ServiceCode")
    if code and code != SERVICE_CODE:
        return {"Services": [], "FormatVersion": "aws_v1"}
    names = sorted({"productFamily", *products()[0]["product"]["attributes"]}) if catalogue.CATALOGUE else []
    return {"Services": [{"ServiceCode": SERVICE_CODE, "AttributeNames": names}], "FormatVersion": "aws_v1"}


OPERATIONS = {"GetProducts": get_products, "DescribeServices": describe_services}


def handle(environ, start_response):
    operation = environ.get("HTTP_X_AMZ_TARGET", "")[len(TARGET_PREFIX):]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise PricingError("UnknownOperationException", f"The lab's price list does not implement {operation}")
        try:
            body = json.loads(raw or b"{}")
        except ValueError as error:
            raise PricingError("SerializationException", str(error)) from error
        status, payload = "200 OK", handler(body)
    except PricingError as error:
        status, payload = "400 Bad Request", {"__type": error.code, "message": error.message}
    data = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data))),
                            ("x-amzn-RequestId", hashlib.sha256(raw).hexdigest()[:32])])
    return [data]


_original_call = DomainDispatcherApplication.__call__


def _call(self, environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith(TARGET_PREFIX):
        return handle(environ, start_response)
    return _original_call(self, environ, start_response)


def install():
    """Serve the Price List API from moto's server; running it again changes nothing."""
    DomainDispatcherApplication.__call__ = _call
