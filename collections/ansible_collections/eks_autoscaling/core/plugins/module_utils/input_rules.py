# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the services our roles write to accept as input: one rule per kind of value, for every role.

The roles check their variables with these rules before the first change, so a value a service would
refuse fails at once with a message naming the variable, instead of in the middle of a run, after other
stages changed things, with the service's message. Each rule is the one the receiving service applies
(the AWS API references' length constraints and patterns, Kubernetes' apimachinery validation), so a value
that passes is accepted there. The validation filters (plugins/filter/*_errors.py) are thin wrappers:
no role copies a pattern.

Every ``*_errors`` function returns a list of messages, each starting with the variable (and the item or
key inside it), empty when the value is valid; none raises on a value of the wrong type.

Patterns are matched with ``fullmatch`` and ASCII classes: ``$`` would accept a trailing newline, and
``\\w`` or ``\\d`` without re.ASCII would accept Unicode letters and digits the services refuse.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
from decimal import Decimal, InvalidOperation


def _show(value):
    """The value as the user wrote it, quoted, so a space or a newline shows."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _error(variable, value, expected):
    return "%s: %s is not %s" % (variable, _show(value), expected)


def _is_text(value):
    return isinstance(value, str)


# -- AWS names --------------------------------------------------------------------------------------
# kind: (pattern, minimum length, maximum length, what the user is told). From the API references:
# IAM CreateRole/RoleName, PutRolePolicy/PolicyName, CreateInstanceProfile/InstanceProfileName;
# SQS CreateQueue/QueueName (standard queues; a .fifo name needs the FifoQueue attribute, which no role sets);
# EventBridge PutRule/Name; SNS CreateTopic/Name; Budgets Budget/BudgetName; EKS CreateCluster/name;
# CloudWatch PutMetricAlarm/AlarmName; EC2 subnet and security group ids.
_IAM_NAME = r"[A-Za-z0-9_+=,.@-]+"
AWS_NAMES = {
    "iam_role": (_IAM_NAME, 1, 64, "an IAM role name (1-64 letters, digits and _+=,.@-)"),
    "iam_policy": (_IAM_NAME, 1, 128, "an IAM policy name (1-128 letters, digits and _+=,.@-)"),
    "iam_instance_profile": (_IAM_NAME, 1, 128, "an IAM instance profile name (1-128 letters, digits and _+=,.@-)"),
    "sqs_queue": (r"[A-Za-z0-9_-]+", 1, 80, "an SQS queue name (1-80 letters, digits, - and _)"),
    "eventbridge_rule": (r"[A-Za-z0-9._-]+", 1, 64, "an EventBridge rule name (1-64 letters, digits and ._-)"),
    "sns_topic": (r"[A-Za-z0-9_-]+", 1, 256, "an SNS topic name (1-256 letters, digits, - and _)"),
    # Budgets also refuses the "/action/" substring (checked below) and a <script> element.
    "budget": (r"[^:\\\x00-\x1f\x7f]+", 1, 100, "an AWS Budgets name (1-100 characters, no : or \\ or control characters, no /action/)"),
    "eks_cluster": (r"[0-9A-Za-z][A-Za-z0-9_-]*", 1, 100, "an EKS cluster name (1-100 letters, digits, - and _, starting with a letter or digit)"),
    # AlarmName: 1-255 UTF-8 characters, no ASCII control characters.
    "cloudwatch_alarm": (r"[^\x00-\x1f\x7f]+", 1, 255, "a CloudWatch alarm name (1-255 characters, no control characters)"),
    "subnet_id": (r"subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})", 1, 24, "a subnet id (subnet- and 8 or 17 lowercase hexadecimal characters)"),
    "security_group_id": (r"sg-(?:[0-9a-f]{8}|[0-9a-f]{17})", 1, 20, "a security group id (sg- and 8 or 17 lowercase hexadecimal characters)"),
    # The account id of every ARN and of STS GetCallerIdentity.
    "account_id": (r"[0-9]{12}", 12, 12, "an AWS account id (12 digits)"),
}
_AWS_NAME_RES = {kind: re.compile(rule[0], re.ASCII) for kind, rule in AWS_NAMES.items()}
_SCRIPT = re.compile(r"<script>.*</script>", re.IGNORECASE | re.DOTALL)


def _each(value, variable, check):
    """A list is checked item by item, each message naming variable[index]."""
    errors = []
    for index, item in enumerate(value):
        errors.extend(check(item, "%s[%d]" % (variable, index)))
    return errors


def aws_name_errors(value, variable, kind):
    """Errors of an AWS resource name of `kind` (a key of AWS_NAMES), or of each name of a list."""
    if kind not in AWS_NAMES:
        raise ValueError("unknown AWS name kind %r (known: %s)" % (kind, ", ".join(sorted(AWS_NAMES))))
    if isinstance(value, list):
        return _each(value, variable, lambda item, where: aws_name_errors(item, where, kind))
    pattern, shortest, longest, expected = AWS_NAMES[kind]
    if not _is_text(value):
        return [_error(variable, value, expected)]
    if not shortest <= len(value) <= longest or not _AWS_NAME_RES[kind].fullmatch(value):
        return [_error(variable, value, expected)]
    if kind == "budget" and ("/action/" in value or _SCRIPT.search(value)):
        return [_error(variable, value, expected)]
    return []


# -- ARNs -------------------------------------------------------------------------------------------
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
# arn:<partition>:iam::<account>:role[/path/]<name>: the path is / or /.../ of printable ASCII (at most
# 512), the name an IAM role name.
_IAM_ROLE_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):iam::[0-9]{12}:role(/(?:[!-~]*/)?)?([A-Za-z0-9_+=,.@-]{1,64})", re.ASCII)


def aws_arn_errors(value, variable, kind="iam_role", partition=None):
    """Errors of an ARN of `kind` (only iam_role so far), in `partition` when given."""
    if kind != "iam_role":
        raise ValueError("unknown ARN kind %r (known: iam_role)" % (kind,))
    expected = "an IAM role ARN (arn:<partition>:iam::<12-digit account>:role/<name>)"
    match = _IAM_ROLE_ARN.fullmatch(value) if _is_text(value) else None
    if match is None or len(match.group(2) or "/") > 512:
        return [_error(variable, value, expected)]
    if partition and match.group(1) != partition:
        return [_error(variable, value, "an ARN of partition %s" % partition)]
    return []


# -- Regions ----------------------------------------------------------------------------------------
# botocore's partitions (endpoints.json regionRegex): every region is <area>-<direction>-<number>.
_REGION_PARTITIONS = (
    (re.compile(r"cn-[a-z]+-[0-9]+", re.ASCII), "aws-cn"),
    (re.compile(r"us-gov-[a-z]+-[0-9]+", re.ASCII), "aws-us-gov"),
    (re.compile(r"(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-[0-9]+", re.ASCII), "aws"),
)


def region_partition(value):
    """The partition of a region name, or None when it is not one."""
    if not _is_text(value):
        return None
    for pattern, partition in _REGION_PARTITIONS:
        if pattern.fullmatch(value):
            return partition
    return None


def aws_region_errors(value, variable, partition=None):
    """Errors of a region name, in `partition` when given."""
    found = region_partition(value)
    if found is None:
        return [_error(variable, value, "an AWS region (such as ap-southeast-1, cn-north-1 or us-gov-west-1)")]
    if partition and found != partition:
        return [_error(variable, value, "a region of partition %s (it is in %s)" % (partition, found))]
    return []


# -- Tags -------------------------------------------------------------------------------------------
# The tagging rule common to AWS services (EC2 CreateTags, IAM TagRole, SQS TagQueue, ...): keys of 1-128
# and values of 0-256 Unicode letters, digits, spaces and _.:/=+-@, and no key starting with aws:.
_TAG_CHARS = r"[\w\s.:/=+@-]*"
_TAG_RE = re.compile(_TAG_CHARS)


def _tag_text_errors(value, where, longest, shortest, what):
    expected = "%s (%d-%d letters, digits, spaces and _.:/=+-@)" % (what, shortest, longest)
    if not _is_text(value) or not shortest <= len(value) <= longest or not _TAG_RE.fullmatch(value):
        return [_error(where, value, expected)]
    # \w also matches "_" and Unicode letters, which tags allow; \s would also match control characters.
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return [_error(where, value, expected)]
    if what == "a tag key" and value.lower().startswith("aws:"):
        return [_error(where, value, "a tag key of yours (the aws: prefix is reserved for AWS)")]
    return []


def aws_tag_errors(value, variable, part="tags"):
    """Errors of AWS tags: a dict of them (part=tags), or one key or value (part=key|value)."""
    if part == "key":
        return _tag_text_errors(value, variable, 128, 1, "a tag key")
    if part == "value":
        return _tag_text_errors(value, variable, 256, 0, "a tag value")
    if part != "tags":
        raise ValueError("unknown tag part %r (known: tags, key, value)" % (part,))
    if not isinstance(value, dict):
        return [_error(variable, value, "a dict of tags")]
    errors = []
    for key, tag_value in value.items():
        errors.extend(_tag_text_errors(key, "%s key" % variable, 128, 1, "a tag key"))
        errors.extend(_tag_text_errors(tag_value, "%s[%s]" % (variable, _show(key)), 256, 0, "a tag value"))
    return errors


# -- Kubernetes names -------------------------------------------------------------------------------
# k8s.io/apimachinery/pkg/util/validation: RFC 1123 labels and subdomains, RFC 1035 labels; Helm's
# release names (a subdomain of at most 53 characters, so that its objects' names fit).
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS_LABEL_RE = re.compile(_DNS_LABEL, re.ASCII)
DNS_SUBDOMAIN_RE = re.compile(r"%s(?:\.%s)*" % (_DNS_LABEL, _DNS_LABEL), re.ASCII)
_DNS_1035_LABEL_RE = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?", re.ASCII)
K8S_NAMES = {
    "dns_label": (DNS_LABEL_RE, 63, "a DNS label (at most 63 lower case letters, digits and -, starting and ending with a letter or digit)"),
    "dns_1035_label": (_DNS_1035_LABEL_RE, 63, "a DNS-1035 label (at most 63 lower case letters, digits and -, starting with a letter)"),
    "dns_subdomain": (DNS_SUBDOMAIN_RE, 253, "a DNS subdomain (at most 253 lower case letters, digits, - and ., each part starting and ending with a letter or digit)"),
    "helm_release": (DNS_SUBDOMAIN_RE, 53, "a Helm release name (at most 53 lower case letters, digits, - and .)"),
    # RBAC user and group names (aws-auth mapRoles, access entries) are free text to Kubernetes: only
    # surrounding spaces and control characters make one that never matches.
    "rbac_subject": (re.compile(r"[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?"), 253,
                     "a user or group name (1-253 characters, no surrounding spaces, no control characters)"),
}


def is_k8s_name(value, kind):
    pattern, longest = K8S_NAMES[kind][:2]
    return _is_text(value) and len(value) <= longest and pattern.fullmatch(value) is not None


def k8s_name_errors(value, variable, kind="dns_subdomain"):
    """Errors of a Kubernetes object name of `kind` (a key of K8S_NAMES), or of each name of a list."""
    if kind not in K8S_NAMES:
        raise ValueError("unknown Kubernetes name kind %r (known: %s)" % (kind, ", ".join(sorted(K8S_NAMES))))
    if isinstance(value, list):
        return _each(value, variable, lambda item, where: k8s_name_errors(item, where, kind))
    return [] if is_k8s_name(value, kind) else [_error(variable, value, K8S_NAMES[kind][2])]


# -- Labels and annotations -------------------------------------------------------------------------
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_LABEL_NAME_RE = re.compile(_LABEL_NAME, re.ASCII)
_LABEL_VALUE_RE = re.compile(r"(?:%s)?" % _LABEL_NAME, re.ASCII)
# Kubernetes' limit on all annotations of one object together (keys and values).
ANNOTATIONS_MAX_BYTES = 256 * 1024


def is_qualified_name(value):
    """A label or annotation key: [prefix/]name, the prefix a DNS subdomain, the name at most 63."""
    if not _is_text(value):
        return False
    prefix, slash, name = value.rpartition("/")
    if slash and not is_k8s_name(prefix, "dns_subdomain"):
        return False
    return len(name) <= 63 and _LABEL_NAME_RE.fullmatch(name) is not None


def is_label_value(value):
    return _is_text(value) and len(value) <= 63 and _LABEL_VALUE_RE.fullmatch(value) is not None


_KEY_EXPECTED = "a label key ([prefix/]name: an optional DNS subdomain prefix, a name of at most 63 letters, digits, -, _ and ., starting and ending with a letter or digit)"
_VALUE_EXPECTED = "a label value (at most 63 letters, digits, -, _ and ., starting and ending with a letter or digit, or empty)"


def k8s_label_errors(value, variable, part="labels"):
    """Errors of Kubernetes labels (part=labels), annotations (part=annotations), or one label key or value."""
    if part == "key":
        return [] if is_qualified_name(value) else [_error(variable, value, _KEY_EXPECTED)]
    if part == "value":
        return [] if is_label_value(value) else [_error(variable, value, _VALUE_EXPECTED)]
    if part not in ("labels", "annotations"):
        raise ValueError("unknown label part %r (known: labels, annotations, key, value)" % (part,))
    if not isinstance(value, dict):
        return [_error(variable, value, "a dict of %s" % part)]
    errors = []
    for key, item in value.items():
        if not is_qualified_name(key):
            errors.append(_error("%s key" % variable, key, _KEY_EXPECTED.replace("a label key", "a %s key" % part[:-1])))
        if part == "labels" and not is_label_value(item):
            errors.append(_error("%s[%s]" % (variable, _show(key)), item, _VALUE_EXPECTED))
        if part == "annotations" and not _is_text(item):
            errors.append(_error("%s[%s]" % (variable, _show(key)), item, "a string (annotation values are strings)"))
    if part == "annotations" and not errors:
        size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
        if size > ANNOTATIONS_MAX_BYTES:
            errors.append("%s: %d bytes of annotations, more than Kubernetes' %d" % (variable, size, ANNOTATIONS_MAX_BYTES))
    return errors


# -- Quantities -------------------------------------------------------------------------------------
# k8s.io/apimachinery/pkg/api/resource: <sign><number><suffix>, the suffix binary SI (Ki..Ei), decimal
# SI (n, u, m, "", k, M, G, T, P, E) or an exponent (e/E and a signed integer).
_QUANTITY_RE = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?", re.ASCII)
_SUFFIX_FACTORS = {
    None: Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal("1e3"),
    "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def parse_quantity(value):
    """The Decimal a Kubernetes quantity stands for, or None when it is not one.

    Integers are quantities too (a YAML 2 is the quantity "2"); booleans and floats are not: a float has
    no exact decimal form and the apiserver reads only strings and integers."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if not _is_text(value):
        return None
    match = _QUANTITY_RE.fullmatch(value)
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        if suffix and suffix[0] in "eE":
            return Decimal(number) * (Decimal(10) ** int(suffix[1:]))
        return Decimal(number) * _SUFFIX_FACTORS[suffix]
    except (InvalidOperation, OverflowError):
        return None


def k8s_quantity_errors(value, variable, minimum=0, exclusive=False):
    """Errors of a Kubernetes quantity (or a dict of them, such as requests), at least `minimum`
    (above it with exclusive=true); minimum=None allows any sign."""
    if isinstance(value, dict):
        errors = []
        for key, item in value.items():
            errors.extend(k8s_quantity_errors(item, "%s.%s" % (variable, key), minimum, exclusive))
        return errors
    parsed = parse_quantity(value)
    if parsed is None:
        return [_error(variable, value, 'a Kubernetes quantity (such as "2", "500m", "4G" or "512Mi")')]
    if minimum is not None:
        bound = parse_quantity(minimum) if isinstance(minimum, str) else Decimal(minimum)
        if parsed < bound or (exclusive and parsed == bound):
            return [_error(variable, value, "a quantity %s %s" % ("above" if exclusive else "of at least", minimum))]
    return []


# -- Durations --------------------------------------------------------------------------------------
# Go's time.ParseDuration without a sign or fractions, in the units a field allows (Karpenter's CRDs allow
# s, m and h); "Never" where the field allows it.
_DURATION_UNITS = {"ns": Decimal("1e-9"), "us": Decimal("1e-6"), "ms": Decimal("1e-3"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}
_DURATION_PART = re.compile(r"([0-9]+)(ns|us|ms|s|m|h)", re.ASCII)


def duration_seconds(value, units="smh"):
    """Seconds of a duration such as 1h30m using only `units` (letters of s, m, h; ms/us/ns as written), or None."""
    allowed = set(units.split(",")) if "," in units else set(units)
    if not _is_text(value) or not value:
        return None
    total, position = Decimal(0), 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position or match.group(2) not in allowed:
            return None
        total += Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    return total if position == len(value) else None


def duration_errors(value, variable, units="smh", allow_never=False, minimum=0):
    """Errors of a duration such as 720h or 1m30s, in `units`, at least `minimum` seconds; "Never" when allowed."""
    if allow_never and value == "Never":
        return []
    seconds = duration_seconds(value, units)
    units_text = ", ".join(sorted(set(units.split(",")) if "," in units else set(units)))
    expected = "a duration such as 720h or 1m30s (units %s%s)" % (units_text, ', or "Never"' if allow_never else "")
    if seconds is None:
        return [_error(variable, value, expected)]
    if seconds < Decimal(minimum):
        return [_error(variable, value, "a duration of at least %ss" % minimum)]
    return []


# -- Numbers ----------------------------------------------------------------------------------------
_INTEGER_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)


def parse_number(value, integer=True):
    """The number a value stands for (an int, or a decimal string as -e gives), or None.

    Booleans are refused (True is 1 to Python, not to the user), and so are strings with spaces, signs
    alone, Unicode digits, NaN and infinities."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and not integer:
        return Decimal(repr(value)) if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, float) and value.is_integer():
        return Decimal(int(value))
    if _is_text(value) and (_INTEGER_RE if integer else _NUMBER_RE).fullmatch(value):
        return Decimal(value)
    return None


def number_errors(value, variable, minimum=None, maximum=None, integer=True):
    """Errors of an integer (or, integer=false, a decimal number) from `minimum` to `maximum` (each optional)."""
    parsed = parse_number(value, integer)
    span = []
    if minimum is not None:
        span.append("at least %s" % minimum)
    if maximum is not None:
        span.append("at most %s" % maximum)
    expected = "%s%s" % ("an integer" if integer else "a number", (" " + " and ".join(span)) if span else "")
    if parsed is None:
        return [_error(variable, value, expected)]
    if (minimum is not None and parsed < Decimal(str(minimum))) or (maximum is not None and parsed > Decimal(str(maximum))):
        return [_error(variable, value, expected)]
    return []
