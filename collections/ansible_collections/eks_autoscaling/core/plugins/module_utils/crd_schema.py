# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate a custom resource against its CRD the way kube-apiserver does on create, without a cluster.

The steps follow the apiextensions-apiserver's handling of a create with field validation Strict (what
`kubectl apply` and server-side apply send):

1. unknown fields (not declared in the structural schema, outside x-kubernetes-preserve-unknown-fields)
   are errors ("field not declared in schema"); nulls in non-nullable fields are dropped;
2. defaults of the schema are applied (a defaulted object gets its own nested defaults);
3. metadata is checked (a name that is a DNS subdomain, label and annotation keys and values);
4. the OpenAPI v3 value validations: type (x-kubernetes-int-or-string, nullable), enum, format (strings
   only, as kube-openapi), pattern (unanchored, strings only), min/maxLength (characters), minimum/maximum
   (exclusive too), multipleOf, min/maxItems, uniqueItems, x-kubernetes-list-type set/map duplicates,
   min/maxProperties, required, additionalProperties, allOf/anyOf/oneOf/not;
5. the CEL rules (x-kubernetes-validations) of every value present, unless step 4 found an error that
   blocks them (a wrong type, a required field missing, an enum, too long, too many: then one error says so,
   as the apiserver does). Transition rules (mentioning oldSelf) are skipped, as on a create.
   messageExpression, fieldPath and reason are honoured.

Errors are strings "<field path>: <what>", the path in the apiserver's notation (spec.limits[cpu],
spec.template.spec.requirements[0].key).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import re

from ansible_collections.eks_autoscaling.core.plugins.module_utils import kube_cel

# Errors after which the apiserver does not evaluate CEL rules (strategy.go hasBlockingErr).
BLOCKING = ("NotSupported", "Required", "TooLong", "TooMany", "TypeInvalid")
OBJECT_META_FIELDS = (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields",
)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
DURATION = re.compile(r"^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h|d|w))+$")
# String formats kube-openapi checks (apiextensions' supported formats); others are not checked.
FORMATS = {
    "date-time": lambda v: DATE_TIME.match(v) is not None,
    "date": lambda v: re.match(r"^\d{4}-\d{2}-\d{2}$", v) is not None,
    "byte": lambda v: re.match(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$", v) is not None,
    "int-or-string": lambda v: True,
    "duration": lambda v: DURATION.match(v) is not None or v == "0",
    "uuid": lambda v: re.match(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$", v) is not None,
    "hostname": lambda v: len(v) <= 253 and DNS_SUBDOMAIN.match(v) is not None,
}


class CRDError(Exception):
    """Rendered CRDs that cannot be used (no CRD for a kind, no schema)."""


def _quote(value):
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


def _join(path, key):
    if isinstance(key, int):
        return "%s[%d]" % (path, key)
    if not path:
        return key
    return "%s.%s" % (path, key)


def _key(path, key):
    return "%s[%s]" % (path, key)


class _Errors(object):
    def __init__(self):
        self.items = []

    def add(self, kind, path, message):
        self.items.append((kind, path or "<root>", message))

    def blocking(self):
        return any(kind in BLOCKING for kind, _path, _message in self.items)

    def strings(self):
        return ["%s: %s" % (path, message) for _kind, path, message in self.items]


# -- CRDs ------------------------------------------------------------------------------------------------

def crd_schemas(documents):
    """{(group, version, kind): openAPIV3Schema} of every served version of every CRD in documents.

    documents: parsed manifests (a list of dicts, None entries ignored), e.g. a Helm chart's rendering.
    """
    schemas = {}
    for document in documents or []:
        if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
            continue
        spec = document.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        for version in spec.get("versions") or []:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if version.get("served", True) and schema:
                schemas[(group, version["name"], kind)] = schema
    return schemas


def schema_for(schemas, manifest):
    """The schema of manifest's apiVersion and kind, or CRDError naming what is missing."""
    api_version = str(manifest.get("apiVersion") or "")
    group, _sep, version = api_version.rpartition("/")
    key = (group, version, manifest.get("kind"))
    if key not in schemas:
        known = ", ".join(sorted("%s/%s %s" % k for k in schemas)) or "none"
        raise CRDError("no CRD for %s %s in the rendered chart (it has: %s)" % (api_version, manifest.get("kind"), known))
    return schemas[key]


# -- 1. unknown fields and nulls, 2. defaults ---------------------------------------------------------------

def _preserves(schema):
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def _nullable_null(value, schema):
    return value is None and not schema.get("nullable")


def _prune(value, schema, path, errors, root=False):
    """Unknown fields become errors (strict field validation); non-nullable nulls without default are dropped."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key in list(value):
            child = value[key]
            if root and key == "metadata" and isinstance(child, dict):
                for meta_key in child:
                    if meta_key not in OBJECT_META_FIELDS:
                        errors.add("FieldValueUnknown", _join("metadata", meta_key), "field not declared in schema")
                continue
            if key in properties:
                sub = properties[key]
            elif isinstance(additional, dict):
                sub = additional
            elif additional is True or _preserves(schema):
                continue
            else:
                errors.add("FieldValueUnknown", _join(path, key), "field not declared in schema")
                continue
            if _nullable_null(child, sub) and "default" not in sub:
                del value[key]
                continue
            _prune(child, sub, _join(path, key) if key in properties else _key(path, key), errors)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _prune(item, schema["items"], _join(path, index), errors)


def apply_defaults(value, schema):
    """The apiserver's structural defaulting (defaulting/algorithm.go), in place."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            if "default" in sub and (key not in value or _nullable_null(value[key], sub)):
                value[key] = copy.deepcopy(sub["default"])
        additional = schema.get("additionalProperties")
        for key in value:
            if key in properties:
                apply_defaults(value[key], properties[key])
            elif isinstance(additional, dict):
                if _nullable_null(value[key], additional) and "default" in additional:
                    value[key] = copy.deepcopy(additional["default"])
                apply_defaults(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        for index, item in enumerate(value):
            if _nullable_null(item, items) and "default" in items:
                value[index] = copy.deepcopy(items["default"])
            apply_defaults(value[index], items)


# -- 3. metadata -------------------------------------------------------------------------------------------

def _qualified_name_errors(key):
    prefix, _sep, name = key.rpartition("/")
    problems = []
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        problems.append("prefix part must be a DNS subdomain")
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        problems.append("name part must consist of alphanumeric characters, '-', '_' or '.', start and end with "
                        "an alphanumeric character, and be at most 63 characters")
    return problems


def _metadata_errors(metadata, errors):
    if not isinstance(metadata, dict):
        errors.add("TypeInvalid", "metadata", "must be an object")
        return
    name = metadata.get("name")
    if not name and not metadata.get("generateName"):
        errors.add("Required", "metadata.name", "name or generateName is required")
    elif name is not None and (not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name)):
        errors.add("Invalid", "metadata.name", "Invalid value: %s: a lowercase RFC 1123 subdomain must consist of lower "
                   "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character" % _quote(name))
    for field in ("labels", "annotations"):
        entries = metadata.get(field)
        if entries is None:
            continue
        if not isinstance(entries, dict):
            errors.add("TypeInvalid", _join("metadata", field), "must be an object")
            continue
        for key, value in entries.items():
            for problem in _qualified_name_errors(str(key)):
                errors.add("Invalid", _join("metadata", field), "Invalid value: %s: %s" % (_quote(key), problem))
            if not isinstance(value, str):
                errors.add("TypeInvalid", _key(_join("metadata", field), key), "must be a string")
            elif field == "labels" and (len(value) > 63 or not LABEL_VALUE.match(value)):
                errors.add("Invalid", _join("metadata", field), "Invalid value: %s: a valid label value must be 63 "
                           "characters or less, alphanumeric with '-', '_' or '.' inside" % _quote(value))


# -- 4. OpenAPI v3 value validation ------------------------------------------------------------------------

def _type_ok(value, schema):
    if schema.get("x-kubernetes-int-or-string"):
        return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)
    expected = schema.get("type")
    if not expected:
        return True
    if expected == "string":
        return isinstance(value, str)
    if expected == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    return True


def _canonical(value):
    return json.dumps(value, sort_keys=True)


def _value_errors(value, schema, path, errors):
    """kube-openapi's validation of one value (and what it contains) against a structural schema."""
    if value is None:
        if not schema.get("nullable") and (schema.get("type") or schema.get("x-kubernetes-int-or-string")):
            errors.add("TypeInvalid", path, "Invalid value: \"null\": %s in body must be of type %s" % (path, schema.get("type") or "integer or string"))
        return
    if not _type_ok(value, schema):
        errors.add("TypeInvalid", path, "Invalid value: %s: %s in body must be of type %s: %s"
                   % (_quote(value), path, schema.get("type") or "integer or string", _json_type(value)))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.add("NotSupported", path, "Unsupported value: %s: supported values: %s"
                   % (_quote(value), ", ".join(_quote(v) for v in schema["enum"])))
    if isinstance(value, str):
        _string_errors(value, schema, path, errors)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _number_errors(value, schema, path, errors)
    elif isinstance(value, list):
        _array_errors(value, schema, path, errors)
    elif isinstance(value, dict):
        _object_errors(value, schema, path, errors)
    for sub in schema.get("allOf") or []:
        _value_errors(value, sub, path, errors)
    for keyword in ("anyOf", "oneOf"):
        if schema.get(keyword):
            passing = 0
            for sub in schema[keyword]:
                trial = _Errors()
                _value_errors(value, sub, path, trial)
                passing += not trial.items
            if (keyword == "anyOf" and passing == 0) or (keyword == "oneOf" and passing != 1):
                errors.add("Invalid", path, "Invalid value: %s: must validate %s of the schemas in %s"
                           % (_quote(value), "at least one" if keyword == "anyOf" else "exactly one", keyword))
    if isinstance(schema.get("not"), dict):
        trial = _Errors()
        _value_errors(value, schema["not"], path, trial)
        if not trial.items:
            errors.add("Invalid", path, "Invalid value: %s: must not validate the schema (not)" % _quote(value))


def _json_type(value):
    return {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", list: "array"}.get(type(value), type(value).__name__)


_GO_PATTERNS = {}


def _go_pattern(pattern):
    """The pattern compiled with Go's meaning of "$", the end of the text: Python's also matches before a
    trailing newline, which would let "web\\n" through ^[a-z]+$ where the apiserver refuses it."""
    if pattern not in _GO_PATTERNS:
        out, in_class, escaped = [], False, False
        for char in pattern:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "[":
                in_class = True
            elif char == "]":
                in_class = False
            elif char == "$" and not in_class:
                char = r"\Z"
            out.append(char)
        _GO_PATTERNS[pattern] = re.compile("".join(out))
    return _GO_PATTERNS[pattern]


def _string_errors(value, schema, path, errors):
    length = len(value)
    if "maxLength" in schema and length > schema["maxLength"]:
        errors.add("TooLong", path, "Too long: may not be more than %d bytes" % schema["maxLength"])
    if "minLength" in schema and length < schema["minLength"]:
        errors.add("Invalid", path, "Invalid value: %s: %s in body should be at least %d chars long" % (_quote(value), path, schema["minLength"]))
    if "pattern" in schema and not _go_pattern(schema["pattern"]).search(value):
        errors.add("Invalid", path, "Invalid value: %s: %s in body should match '%s'" % (_quote(value), path, schema["pattern"]))
    check = FORMATS.get(schema.get("format"))
    if check is not None and not check(value):
        errors.add("Invalid", path, "Invalid value: %s: %s in body must be of type %s" % (_quote(value), path, schema["format"]))


def _number_errors(value, schema, path, errors):
    if "maximum" in schema:
        if value > schema["maximum"] or (schema.get("exclusiveMaximum") and value == schema["maximum"]):
            errors.add("Invalid", path, "Invalid value: %s: %s in body should be less than or equal to %s" % (_quote(value), path, schema["maximum"]))
    if "minimum" in schema:
        if value < schema["minimum"] or (schema.get("exclusiveMinimum") and value == schema["minimum"]):
            errors.add("Invalid", path, "Invalid value: %s: %s in body should be greater than or equal to %s" % (_quote(value), path, schema["minimum"]))
    if schema.get("multipleOf") and (value / schema["multipleOf"]) % 1:
        errors.add("Invalid", path, "Invalid value: %s: %s in body should be a multiple of %s" % (_quote(value), path, schema["multipleOf"]))


def _array_errors(value, schema, path, errors):
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.add("TooMany", path, "Too many: %d: must have at most %d items" % (len(value), schema["maxItems"]))
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.add("Invalid", path, "Invalid value: %d: %s in body should have at least %d items" % (len(value), path, schema["minItems"]))
    list_type = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or list_type == "set":
        seen = set()
        for index, item in enumerate(value):
            key = _canonical(item)
            if key in seen:
                errors.add("Duplicate", _join(path, index), "Duplicate value: %s" % _quote(item))
            seen.add(key)
    elif list_type == "map":
        seen = set()
        for index, item in enumerate(value):
            if isinstance(item, dict):
                key = _canonical([item.get(k) for k in schema.get("x-kubernetes-list-map-keys") or []])
                if key in seen:
                    errors.add("Duplicate", _join(path, index), "Duplicate value: %s" % key)
                seen.add(key)
    if isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _value_errors(item, schema["items"], _join(path, index), errors)


def _object_errors(value, schema, path, errors):
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.add("TooMany", path, "Too many: %d: must have at most %d items" % (len(value), schema["maxProperties"]))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.add("Invalid", path, "Invalid value: %d: %s in body should have at least %d properties" % (len(value), path, schema["minProperties"]))
    for required in schema.get("required") or []:
        if required not in value:
            errors.add("Required", _join(path, required), "Required value")
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, child in value.items():
        if not path and key == "metadata":
            continue
        if key in properties:
            _value_errors(child, properties[key], _join(path, key), errors)
        elif isinstance(additional, dict):
            _value_errors(child, additional, _key(path, key), errors)


# -- 5. CEL rules ------------------------------------------------------------------------------------------

REASONS = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
}


def _cel_self(value, schema, root):
    if root and isinstance(value, dict):
        # At the root, CEL sees metadata.name and generateName only.
        value = dict(value)
        metadata = value.get("metadata") or {}
        value["metadata"] = dict((k, metadata[k]) for k in ("name", "generateName") if k in metadata)
    return value


def _rule_errors(value, schema, path, errors, root=False):
    for rule in schema.get("x-kubernetes-validations") or []:
        expression = rule.get("rule", "")
        if kube_cel.references(expression, "oldSelf") and not rule.get("optionalOldSelf"):
            continue  # a transition rule: the apiserver evaluates it on updates only
        here = path
        if rule.get("fieldPath"):
            here = (path or "") + (rule["fieldPath"] if rule["fieldPath"].startswith("[") or not path else rule["fieldPath"])
            here = here.lstrip(".")
        variables = {"self": _cel_self(value, schema, root)}
        if kube_cel.references(expression, "oldSelf"):
            variables["oldSelf"] = None  # optionalOldSelf on a create: there is no old object
        try:
            result = kube_cel.evaluate(expression, **variables)
        except kube_cel.CelError as exc:
            errors.add("Invalid", here, "Invalid value: %s: rule %r: %s" % (_quote(value), expression, exc))
            continue
        if result is True:
            continue
        if result is not False:
            errors.add("Invalid", here, "Invalid value: %s: rule %r did not evaluate to a bool" % (_quote(value), expression))
            continue
        message = rule.get("message") or "failed rule: %s" % expression
        if rule.get("messageExpression"):
            try:
                evaluated = kube_cel.evaluate(rule["messageExpression"], **variables)
                if isinstance(evaluated, str) and evaluated.strip() and "\n" not in evaluated:
                    message = evaluated
            except kube_cel.CelError:
                pass
        reason = rule.get("reason") or "FieldValueInvalid"
        if reason == "FieldValueInvalid":
            errors.add("Invalid", here, "Invalid value: %s: %s" % (_quote(value), message))
        else:
            errors.add(reason, here, "%s: %s" % (REASONS.get(reason, reason), message))
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, child in value.items():
            if root and key == "metadata":
                continue
            if key in properties:
                _rule_errors(child, properties[key], _join(path, key), errors)
            elif isinstance(additional, dict):
                _rule_errors(child, additional, _key(path, key), errors)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _rule_errors(item, schema["items"], _join(path, index), errors)


# -- all steps ---------------------------------------------------------------------------------------------

def validate(manifest, schema):
    """Every error the apiserver would return when creating manifest, as "<path>: <message>" strings."""
    errors = _Errors()
    if not isinstance(manifest, dict):
        return ["<root>: must be an object"]
    value = kube_cel.plain(manifest)
    _prune(value, schema, "", errors, root=True)
    apply_defaults(value, schema)
    _metadata_errors(value.get("metadata") or {}, errors)
    _value_errors(value, schema, "", errors)
    if errors.blocking():
        errors.add("Invalid", "<root>", "some validation rules were not checked because the object was invalid; "
                   "correct the existing errors to complete validation")
    else:
        _rule_errors(value, schema, "", errors, root=True)
    return errors.strings()


def defaulted(manifest, schema):
    """manifest with the schema's defaults applied, as the apiserver stores it (for diffs and tests)."""
    value = kube_cel.plain(manifest)
    apply_defaults(value, schema)
    return value
