"""Every request of an assumed role authorized like IAM, by a real policy evaluator.

The lab's AWS server answers the user running the playbooks (static keys) with full rights, as an
account administrator. A request signed with the temporary credentials of an assumed role (the
Karpenter controller's, from AssumeRoleWithWebIdentity) is first authorized the way AWS does: the
request context the Service Authorization Reference gives the action is built from the request and
the current state (resource ARNs with the account, aws:RequestTag/* and aws:TagKeys from the tag
specifications, aws:ResourceTag/* from the resource's tags, ec2:CreateAction for tag-on-create,
iam:PassedToService for the role an instance profile passes, aws:RequestedRegion), and evaluated by
lab/iam_eval.py (iam-simulate) over the role's inline and attached policies and permission boundary.

An instant CreateFleet launches through RunInstances as the caller, so it is authorized for both, for
every resource it creates or uses. A denied call gets AWS's answer (UnauthorizedOperation for EC2,
AccessDenied elsewhere) and one log line naming the action, the resource and the role.
"""
import io
import json
import re
import threading
from urllib.parse import parse_qs, unquote

from moto.core import DEFAULT_ACCOUNT_ID

from lab.iam_eval import IamEvalError

CREDENTIAL_RE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
EKS_CLUSTER_PATH = re.compile(r"^/clusters/([^/]+)$")
_lock = threading.Lock()


def log(message):
    print(f"lab aws: {message}", flush=True)


# -- parsing -----------------------------------------------------------------------------------------
def query_params(body):
    return {key: values[0] for key, values in parse_qs(body.decode(errors="replace"), keep_blank_values=True).items()}


def indexed(params, prefix):
    """Query-protocol list members `<prefix>.N.<rest>` as a list of {rest: value}, in N order."""
    found = {}
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)(?:\.(.*))?$")
    for key, value in params.items():
        match = pattern.match(key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2) or ""] = value
    return [found[index] for index in sorted(found)]


def tag_specifications(params, prefix="TagSpecification"):
    """{resource type: {key: value}} of the request's tag specifications."""
    result = {}
    for spec in indexed(params, prefix):
        tags = result.setdefault(spec.get("ResourceType", ""), {})
        keys = {k.split(".")[1]: v for k, v in spec.items() if re.match(r"Tag\.\d+\.Key$", k)}
        values = {k.split(".")[1]: v for k, v in spec.items() if re.match(r"Tag\.\d+\.Value$", k)}
        for index, key in keys.items():
            tags[key] = values.get(index, "")
    return result


def request_tag_context(tags):
    context = {f"aws:RequestTag/{key}": value for key, value in tags.items()}
    if tags:
        context["aws:TagKeys"] = sorted(tags)
    return context


def resource_tag_context(tags):
    return {f"aws:ResourceTag/{key}": value for key, value in tags.items()}


def ec2_resource_tag_context(tags):
    """EC2's resources answer to its own ec2:ResourceTag/<key> as well as the global key (the Service
    Authorization Reference lists both); policies written for Karpenter before v1 use the EC2 one."""
    return {**resource_tag_context(tags), **{f"ec2:ResourceTag/{key}": value for key, value in tags.items()}}


# -- state lookups -------------------------------------------------------------------------------------
class State:
    def __init__(self, account, region):
        from moto.ec2.models import ec2_backends
        from moto.iam.models import iam_backends

        self.account, self.region = account, region
        self.ec2 = ec2_backends[account][region]
        self.iam = iam_backends[account]["aws"]

    def ec2_tags(self, resource_id):
        return dict(self.ec2.tags.get(resource_id, {}))

    def launch_template(self, template_id=None, name=None):
        if template_id and template_id in self.ec2.launch_templates:
            return self.ec2.launch_templates[template_id]
        for template in self.ec2.launch_templates.values():
            if template.name == name:
                return template
        return None

    def image_arn(self, image_id):
        image = self.ec2.amis.get(image_id)
        # AWS-owned images (the EKS AMIs) carry no account in their ARN; the account's own do.
        owner = "" if image is None or not str(getattr(image, "owner_id", "")).isdigit() or image.owner_id != self.account else self.account
        return f"arn:aws:ec2:{self.region}:{owner}:image/{image_id}"

    def instance_profile(self, name):
        return self.iam.instance_profiles.get(name)

    def instance_profile_tags(self, name):
        profile = self.instance_profile(name)
        tags = getattr(profile, "tags", None) or {}
        if isinstance(tags, list):
            return {t["Key"]: t["Value"] for t in tags}
        return {k: (v["Value"] if isinstance(v, dict) else v) for k, v in tags.items()}


# -- the request context per action --------------------------------------------------------------------
def ec2_arn(state, kind, ident="*", account=None):
    return f"arn:aws:ec2:{state.region}:{state.account if account is None else account}:{kind}/{ident}"


def launch_requests(state, action, params, template, overrides, tags_by_type, capacity_type):
    """What an instance launch (CreateFleet or RunInstances, from a launch template) is authorized for."""
    region = {"aws:RequestedRegion": state.region}
    requests = []
    data = template.latest_version().data if template is not None else {}
    lt_tags = state.ec2_tags(template.id) if template is not None else {}
    # A launch takes the tag specifications of its launch template too (Karpenter tags network
    # interfaces and spot requests there); the request's own win for the same key.
    merged = {}
    for spec in data.get("TagSpecifications") or data.get("TagSpecification") or []:
        tags = spec.get("Tags") or spec.get("Tag") or []
        merged.setdefault(spec.get("ResourceType", ""), {}).update({t["Key"]: t.get("Value", "") for t in tags})
    for kind, tags in tags_by_type.items():
        merged.setdefault(kind, {}).update(tags)
    tags_by_type = merged
    created = ["instance", "volume", "network-interface"] + (["spot-instances-request"] if capacity_type == "spot" else [])
    for kind in created:
        tags = tags_by_type.get(kind, {})
        requests.append((action, ec2_arn(state, kind), {**region, **request_tag_context(tags)}))
        if tags:
            requests.append(("ec2:CreateTags", ec2_arn(state, kind), {**region, **request_tag_context(tags), "ec2:CreateAction": action.split(":")[1]}))
    if template is not None:
        requests.append((action, ec2_arn(state, "launch-template", template.id), {**region, **ec2_resource_tag_context(lt_tags)}))
    for subnet in sorted({o.get("SubnetId") for o in overrides if o.get("SubnetId")}):
        requests.append((action, ec2_arn(state, "subnet", subnet), {**region, **ec2_resource_tag_context(state.ec2_tags(subnet))}))
    for group in data.get("SecurityGroupId") or data.get("SecurityGroupIds") or []:
        requests.append((action, ec2_arn(state, "security-group", group), {**region, **ec2_resource_tag_context(state.ec2_tags(group))}))
    if data.get("ImageId"):
        requests.append((action, state.image_arn(data["ImageId"]), region))
    profile = (data.get("IamInstanceProfile") or {})
    profile_name = profile.get("Name") or (profile.get("Arn") or "").rsplit("/", 1)[-1]
    if profile_name and state.instance_profile(profile_name) is not None:
        for role in state.instance_profile(profile_name).roles:
            requests.append(("iam:PassRole", role.arn, {"iam:PassedToService": "ec2.amazonaws.com"}))
    return requests


def ec2_requests(state, action, params):
    region = {"aws:RequestedRegion": state.region}
    name = action.split(":")[1]
    if name.startswith("Describe"):
        return [(action, "*", region)]
    if name == "CreateFleet":
        configs = indexed(params, "LaunchTemplateConfigs")
        tags = tag_specifications(params)
        requests = [(action, ec2_arn(state, "fleet"), {**region, **request_tag_context(tags.get("fleet", {}))})]
        if tags.get("fleet"):
            requests.append(("ec2:CreateTags", ec2_arn(state, "fleet"), {**region, **request_tag_context(tags["fleet"]), "ec2:CreateAction": "CreateFleet"}))
        capacity = params.get("TargetCapacitySpecification.DefaultTargetCapacityType", "on-demand")
        for config in configs:
            template = state.launch_template(config.get("LaunchTemplateSpecification.LaunchTemplateId"),
                                             config.get("LaunchTemplateSpecification.LaunchTemplateName"))
            overrides = [{"SubnetId": v} for k, v in config.items() if re.match(r"Overrides\.\d+\.SubnetId$", k)]
            for request in launch_requests(state, "ec2:CreateFleet", params, template, overrides, tags, capacity):
                requests.append(request)
            # The instant fleet's instances are launched with RunInstances on the caller's behalf.
            requests += [r for r in launch_requests(state, "ec2:RunInstances", params, template, overrides, tags, capacity)
                         if r[0] == "ec2:RunInstances"]
        return _unique(requests)
    if name == "RunInstances":
        template = state.launch_template(params.get("LaunchTemplate.LaunchTemplateId"), params.get("LaunchTemplate.LaunchTemplateName"))
        overrides = [{"SubnetId": params["SubnetId"]}] if params.get("SubnetId") else []
        capacity = "spot" if params.get("InstanceMarketOptions.MarketType") == "spot" else "on-demand"
        return _unique(launch_requests(state, action, params, template, overrides, tag_specifications(params), capacity))
    if name == "CreateLaunchTemplate":
        tags = tag_specifications(params).get("launch-template", {})
        requests = [(action, ec2_arn(state, "launch-template"), {**region, **request_tag_context(tags)})]
        if tags:
            requests.append(("ec2:CreateTags", ec2_arn(state, "launch-template"), {**region, **request_tag_context(tags), "ec2:CreateAction": "CreateLaunchTemplate"}))
        return requests
    if name == "DeleteLaunchTemplate":
        template = state.launch_template(params.get("LaunchTemplateId"), params.get("LaunchTemplateName"))
        ident = template.id if template else (params.get("LaunchTemplateId") or "*")
        return [(action, ec2_arn(state, "launch-template", ident), {**region, **ec2_resource_tag_context(state.ec2_tags(ident))})]
    if name == "TerminateInstances":
        return [(action, ec2_arn(state, "instance", i), {**region, **ec2_resource_tag_context(state.ec2_tags(i))})
                for i in [v for k, v in params.items() if re.match(r"InstanceId\.\d+$", k)]]
    if name == "CreateTags":
        tags = {}
        keys = {k.split(".")[1]: v for k, v in params.items() if re.match(r"Tag\.\d+\.Key$", k)}
        for index, key in keys.items():
            tags[key] = params.get(f"Tag.{index}.Value", "")
        requests = []
        for resource in [v for k, v in params.items() if re.match(r"ResourceId\.\d+$", k)]:
            kind = {"i": "instance", "lt": "launch-template", "vol": "volume", "eni": "network-interface", "fleet": "fleet",
                    "sir": "spot-instances-request", "subnet": "subnet", "sg": "security-group"}.get(resource.split("-")[0], resource.split("-")[0])
            requests.append((action, ec2_arn(state, kind, resource),
                             {**region, **request_tag_context(tags), **ec2_resource_tag_context(state.ec2_tags(resource))}))
        return requests
    return [(action, "*", region)]


def iam_requests(state, action, params):
    name = action.split(":")[1]
    profile = params.get("InstanceProfileName")
    profile_arn = f"arn:aws:iam::{state.account}:instance-profile/{profile}" if profile else "*"
    if name == "CreateInstanceProfile":
        tags = {t["Key"]: t.get("Value", "") for t in indexed_pairs(params, "Tags.member")}
        path = params.get("Path", "/")
        arn = f"arn:aws:iam::{state.account}:instance-profile{path}{profile}"
        return [(action, arn, request_tag_context(tags))]
    current = resource_tag_context(state.instance_profile_tags(profile)) if profile else {}
    if profile and state.instance_profile(profile) is not None:
        path = state.instance_profile(profile).path or "/"
        profile_arn = f"arn:aws:iam::{state.account}:instance-profile{path}{profile}"
    if name == "TagInstanceProfile":
        tags = {t["Key"]: t.get("Value", "") for t in indexed_pairs(params, "Tags.member")}
        return [(action, profile_arn, {**current, **request_tag_context(tags)})]
    if name in ("AddRoleToInstanceProfile",):
        role_arn = f"arn:aws:iam::{state.account}:role/{params.get('RoleName')}"
        return [(action, profile_arn, current), ("iam:PassRole", role_arn, {"iam:PassedToService": "ec2.amazonaws.com"})]
    if name in ("RemoveRoleFromInstanceProfile", "DeleteInstanceProfile", "GetInstanceProfile"):
        return [(action, profile_arn, current)]
    if name == "GetRole":
        return [(action, f"arn:aws:iam::{state.account}:role/{params.get('RoleName')}", {})]
    return [(action, "*", {})]


def indexed_pairs(params, prefix):
    return [{"Key": m.get("Key", ""), "Value": m.get("Value", "")} for m in indexed(params, prefix)]


def json_requests(state, service, action, payload):
    name = action.split(":")[1]
    region = {"aws:RequestedRegion": state.region}
    if service == "sqs":
        queue = payload.get("QueueName") or (payload.get("QueueUrl") or "").rstrip("/").rsplit("/", 1)[-1]
        return [(action, f"arn:aws:sqs:{state.region}:{state.account}:{queue}", region)]
    if service == "ssm" and name == "GetParameter":
        parameter = payload.get("Name", "").lstrip("/")
        # AWS's public parameters (/aws/service/...) belong to no account.
        account = "" if parameter.startswith("aws/") else state.account
        return [(action, f"arn:aws:ssm:{state.region}:{account}:parameter/{parameter}", region)]
    return [(action, "*", region)]


def _unique(requests):
    seen, result = set(), []
    for request in requests:
        key = json.dumps(request, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            result.append(request)
    return result


SERVICE_PREFIX = {"ec2": "ec2", "iam": "iam", "sts": "sts", "sqs": "sqs", "ssm": "ssm", "pricing": "pricing", "eks": "eks",
                  "api.pricing": "pricing"}


def requests_for(environ, body, region, service, account):
    """(the action, the authorization requests) of one HTTP request."""
    state = State(account, region if service != "iam" else "us-east-1") if service in ("ec2", "iam") else None
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        action = f"{SERVICE_PREFIX.get(service, service)}:{target.split('.')[-1]}"
        payload = json.loads(body or b"{}")
        return action, json_requests(_Region(account, region), service, action, payload)
    if service == "eks":
        match = EKS_CLUSTER_PATH.match(unquote(environ.get("PATH_INFO", "")))
        if match and environ["REQUEST_METHOD"] == "GET":
            action = "eks:DescribeCluster"
            return action, [(action, f"arn:aws:eks:{region}:{account}:cluster/{match.group(1)}", {"aws:RequestedRegion": region})]
        return f"eks:{environ['REQUEST_METHOD']} {environ.get('PATH_INFO')}", None
    params = query_params(body) if body else {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    action = f"{SERVICE_PREFIX.get(service, service)}:{params.get('Action', '')}"
    if service == "ec2":
        return action, ec2_requests(state, action, params)
    if service == "iam":
        return action, iam_requests(state, action, params)
    return action, [(action, "*", {"aws:RequestedRegion": region})]


class _Region:
    def __init__(self, account, region):
        self.account, self.region = account, region


# -- the middleware ------------------------------------------------------------------------------------
def assumed_role(access_key, account=DEFAULT_ACCOUNT_ID):
    from moto.sts.models import sts_backends

    for role in sts_backends[account]["global"].assumed_roles:
        if role.access_key_id == access_key:
            return role
    return None


def role_policies(account, role_arn):
    from moto.iam.models import iam_backends

    from moto.iam.exceptions import NotFoundException

    iam = iam_backends[account]["aws"]
    try:
        role = iam.get_role(role_arn.rsplit("/", 1)[-1])
    except NotFoundException:
        # A deleted role's sessions keep their keys until they expire, but no policy allows them anything.
        return [], None
    documents = [json.loads(unquote(doc)) if isinstance(doc, str) else doc for doc in role.policies.values()]
    for policy in role.managed_policies.values():
        documents.append(json.loads(unquote(policy.document)) if isinstance(policy.document, str) else policy.document)
    boundary = None
    if role.permissions_boundary_arn:
        managed = iam.managed_policies.get(role.permissions_boundary_arn)
        if managed is not None:
            boundary = [json.loads(unquote(managed.document)) if isinstance(managed.document, str) else managed.document]
    return documents, boundary


def denial(service, action, resource, session_arn):
    message = (f"You are not authorized to perform this operation. User: {session_arn} is not authorized to perform: "
               f"{action} on resource: {resource} because no identity-based policy allows the {action} action")
    if service == "ec2":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>UnauthorizedOperation</Code>"
                f"<Message>{message}</Message></Error></Errors><RequestID>lab-authz</RequestID></Response>")
        return "403 Forbidden", [("Content-Type", "text/xml")], body
    if service in ("iam", "sts"):
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error>"
                f"<RequestId>lab-authz</RequestId></ErrorResponse>")
        return "403 Forbidden", [("Content-Type", "text/xml")], body
    return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", "AccessDeniedException"),
                               ("x-amzn-query-error", "AccessDenied;Sender")], json.dumps({"__type": "AccessDeniedException", "message": message})


class Authorizer:
    """WSGI middleware in front of moto's server."""

    def __init__(self, app, evaluator=None):
        self.app = app
        self._evaluator = evaluator

    @property
    def evaluator(self):
        if self._evaluator is None:
            from lab.iam_eval import default_evaluator

            self._evaluator = default_evaluator()
        return self._evaluator

    def __call__(self, environ, start_response):
        match = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        role = assumed_role(match.group(1)) if match else None
        if role is None or "Action=GetCallerIdentity" in environ.get("QUERY_STRING", ""):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        region, service = match.group(2), match.group(3)
        if service == "sts" and b"Action=GetCallerIdentity" in body:
            return self.app(environ, start_response)  # needs no permission in AWS
        account = role.account_id if hasattr(role, "account_id") else DEFAULT_ACCOUNT_ID
        role_arn = role.role_arn if hasattr(role, "role_arn") else role.arn
        with _lock:  # moto's state is read while other requests may change it
            action, requests = requests_for(environ, body, region, service, account)
            policies, boundary = role_policies(account, role_arn)
        if requests is None:
            log(f"DENIED {action}: no authorization rule for this request, for role {role_arn}")
            status, headers, text = denial(service, action, "*", role.arn)
            start_response(status, headers)
            return [text.encode()]
        for request_action, resource, context in requests:
            mode = "as_given" if ":ssm:" in resource and "::parameter/" in resource else "validated"
            try:
                decision = self.evaluator.evaluate(principal=role.arn, action=request_action, resource=resource, context=context,
                                                   identity_policies=policies, permission_boundaries=boundary,
                                                   resource_account=account, context_keys=mode)
            except IamEvalError as error:
                if "no.resource.types" in str(error):
                    # The Service Authorization Reference lists no such resource for the action: AWS does not check it.
                    continue
                log(f"DENIED {request_action} on {resource} for role {role_arn} (request {action}): evaluator error {error}")
                status, headers, text = denial(service, request_action, resource, role.arn)
                start_response(status, headers)
                return [text.encode()]
            if not decision.allowed:
                log(f"DENIED {request_action} on {resource} for role {role_arn} (request {action}): {decision.explain()}; context {json.dumps(context, sort_keys=True)}")
                status, headers, text = denial(service, request_action, resource, role.arn)
                start_response(status, headers)
                return [text.encode()]
        return self.app(environ, start_response)
