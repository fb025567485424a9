"""The collection's validation filters, one per kind of input: each refuses what the receiving service
refuses (the AWS API references' constraints, Kubernetes' apimachinery validation), accepts its edge
values, names the variable and the item, and never raises on a wrong type."""
import importlib
import sys

import pytest

from ansible_collections.eks_autoscaling.core.plugins.module_utils import crd_schema

FILTERS = ("aws_name_errors", "aws_arn_errors", "aws_region_errors", "aws_tag_errors", "k8s_name_errors",
           "k8s_label_errors", "k8s_quantity_errors", "duration_errors", "number_errors")


# Imported when the file is collected, like the other filter tests: a test that runs Ansible in-process
# installs its collection finder, which refuses a namespace package found on several sys.path entries.
MODULES = {name: importlib.import_module(f"ansible_collections.eks_autoscaling.core.plugins.filter.{name}") for name in FILTERS}


def plugin(name):
    return MODULES[name].FilterModule().filters()[name]


@pytest.mark.parametrize("name", FILTERS)
def test_each_plugin_is_one_filter_of_its_name(name):
    assert list(MODULES[name].FilterModule().filters()) == [name]


GOOD = [
    ("aws_name_errors", "R" * 64, ("iam_role",)),
    ("aws_name_errors", "a+=,.@_-Z9", ("iam_role",)),
    ("aws_name_errors", "p" * 128, ("iam_policy",)),
    ("aws_name_errors", "p" * 128, ("iam_instance_profile",)),
    ("aws_name_errors", "q" * 80, ("sqs_queue",)),
    ("aws_name_errors", "Karpenter-eks.1_x", ("eventbridge_rule",)),
    ("aws_name_errors", "t" * 256, ("sns_topic",)),
    ("aws_name_errors", "Monatsbudget für Über-Team", ("budget",)),
    ("aws_name_errors", "0" + "c" * 99, ("eks_cluster",)),
    ("aws_name_errors", "Kosten über 100 €", ("cloudwatch_alarm",)),
    ("aws_name_errors", "subnet-0123456789abcdef0", ("subnet_id",)),
    ("aws_name_errors", "sg-0123abcd", ("security_group_id",)),
    ("aws_name_errors", [], ("sqs_queue",)),
    ("aws_arn_errors", "arn:aws:iam::123456789012:role/KarpenterNodeRole-eks", ()),
    ("aws_arn_errors", "arn:aws-cn:iam::123456789012:role/path/to/Name", ("iam_role", "aws-cn")),
    ("aws_region_errors", "ap-southeast-1", ("aws",)),
    ("aws_region_errors", "cn-northwest-1", ("aws-cn",)),
    ("aws_region_errors", "us-gov-west-1", ("aws-us-gov",)),
    ("aws_region_errors", "il-central-1", ()),
    ("aws_tag_errors", "k" * 128, ("key",)),
    ("aws_tag_errors", "", ("value",)),
    ("aws_tag_errors", {"Équipe": "Données et IA", "karpenter.sh/discovery": "eks", "a b:c/d=e+f-g@h_i": "v" * 256}, ()),
    ("k8s_name_errors", "a" * 63, ("dns_label",)),
    ("k8s_name_errors", ".".join(["a" * 63] * 3) + "." + "b" * 61, ("dns_subdomain",)),
    ("k8s_name_errors", "r" * 53, ("helm_release",)),
    ("k8s_name_errors", "service-nginx", ("dns_1035_label",)),
    ("k8s_name_errors", ["system:bootstrappers", "system:nodes"], ("rbac_subject",)),
    ("k8s_label_errors", {"example.com/" + "n" * 63: "v" * 63, "empty": "", "app.kubernetes.io/name": "nginx"}, ()),
    ("k8s_label_errors", {"note": "any text\nwith newlines, ünïcode"}, ("annotations",)),
    ("k8s_label_errors", "service.k8s.aws/nlb", ("key",)),
    ("k8s_quantity_errors", "0", ()),
    ("k8s_quantity_errors", 0, ()),
    ("k8s_quantity_errors", "500m", (0, True)),
    ("k8s_quantity_errors", "1.5Gi", ()),
    ("k8s_quantity_errors", "1e3", ()),
    ("k8s_quantity_errors", ".5", ()),
    ("k8s_quantity_errors", "-1", (None,)),
    ("k8s_quantity_errors", {"cpu": "0", "memory": "0Gi"}, ()),
    ("duration_errors", "720h", ()),
    ("duration_errors", "1h30m15s", ()),
    ("duration_errors", "Never", ("smh", True)),
    ("duration_errors", "250ms", ("ms,s",)),
    ("number_errors", 0, (0,)),
    ("number_errors", "65535", (1, 65535)),
    ("number_errors", "+7", ()),
    ("number_errors", 2.0, (1,)),
    ("number_errors", "0.5", (0, None, False)),
    ("number_errors", 99.99, (0.01, None, False)),
]


@pytest.mark.parametrize("name,value,args", GOOD, ids=lambda v: repr(v)[:40])
def test_edge_values_the_service_accepts_pass(name, value, args):
    assert plugin(name)(value, "var", *args) == []


BAD = [
    ("aws_name_errors", "R" * 65, ("iam_role",), "var: "),
    ("aws_name_errors", "Karpenter Node", ("iam_role",), "var: "),
    ("aws_name_errors", "KarpenterNodeRole\n", ("iam_role",), 'var: "KarpenterNodeRole\\n"'),
    ("aws_name_errors", "Rôle", ("iam_role",), "var: "),
    ("aws_name_errors", "my profile", ("iam_instance_profile",), "var: "),
    ("aws_name_errors", "p" * 129, ("iam_policy",), "var: "),
    ("aws_name_errors", "queue.fifo", ("sqs_queue",), "var: "),
    ("aws_name_errors", "q" * 81, ("sqs_queue",), "var: "),
    ("aws_name_errors", "", ("sqs_queue",), "var: "),
    ("aws_name_errors", "r" * 65, ("eventbridge_rule",), "var: "),
    ("aws_name_errors", "rule/x", ("eventbridge_rule",), "var: "),
    ("aws_name_errors", "topic.name", ("sns_topic",), "var: "),
    ("aws_name_errors", "a:b", ("budget",), "var: "),
    ("aws_name_errors", "x/action/y", ("budget",), "var: "),
    ("aws_name_errors", "b" * 101, ("budget",), "var: "),
    ("aws_name_errors", "-eks", ("eks_cluster",), "var: "),
    ("aws_name_errors", "eks.prod", ("eks_cluster",), "var: "),
    ("aws_name_errors", "alarm\tname", ("cloudwatch_alarm",), "var: "),
    ("aws_name_errors", "subnet-0123abc", ("subnet_id",), "var: "),
    ("aws_name_errors", "subnet-0123abcd\n", ("subnet_id",), "var: "),
    ("aws_name_errors", ["ok", "not ok"], ("sqs_queue",), 'var[1]: "not ok"'),
    ("aws_name_errors", 42, ("sqs_queue",), "var: 42"),
    ("aws_arn_errors", "arn:aws:iam::12345678901:role/x", (), "var: "),
    ("aws_arn_errors", "arn:aws:iam::123456789012:user/x", (), "var: "),
    ("aws_arn_errors", "arn:aws:iam::123456789012:role/x y", (), "var: "),
    ("aws_arn_errors", "arn:aws:iam::123456789012:role/x\n", (), "var: "),
    ("aws_arn_errors", "arn:aws:iam::123456789012:role/x", ("iam_role", "aws-cn"), "partition aws-cn"),
    ("aws_arn_errors", None, (), "var: null"),
    ("aws_region_errors", "ap-southeast-one", (), 'var: "ap-southeast-one"'),
    ("aws_region_errors", "ap-southeast-1 ", (), "var: "),
    ("aws_region_errors", "AP-SOUTHEAST-1", (), "var: "),
    ("aws_region_errors", "apsoutheast1", (), "var: "),
    ("aws_region_errors", "cn-north-1", ("aws",), "partition aws"),
    ("aws_region_errors", "eu-west-1", ("aws-cn",), "partition aws-cn"),
    ("aws_tag_errors", "", ("key",), 'var: ""'),
    ("aws_tag_errors", "k" * 129, ("key",), "var: "),
    ("aws_tag_errors", "aws:cloudformation:stack", ("key",), "aws: prefix"),
    ("aws_tag_errors", "AWS:x", ("key",), "aws: prefix"),
    ("aws_tag_errors", "v" * 257, ("value",), "var: "),
    ("aws_tag_errors", "a\nb", ("value",), "var: "),
    ("aws_tag_errors", "a#b", ("value",), "var: "),
    ("aws_tag_errors", {"team": "a;b"}, (), 'var["team"]: "a;b"'),
    ("aws_tag_errors", {"": "x"}, (), 'var key: ""'),
    ("aws_tag_errors", ["x"], (), "a dict of tags"),
    ("k8s_name_errors", "Shop", ("dns_label",), 'var: "Shop"'),
    ("k8s_name_errors", "shop.front", ("dns_label",), "var: "),
    ("k8s_name_errors", "a" * 64, ("dns_label",), "var: "),
    ("k8s_name_errors", "shop\n", ("dns_label",), "var: "),
    ("k8s_name_errors", "-shop", ("dns_subdomain",), "var: "),
    ("k8s_name_errors", "a..b", ("dns_subdomain",), "var: "),
    ("k8s_name_errors", "1svc", ("dns_1035_label",), "var: "),
    ("k8s_name_errors", "r" * 54, ("helm_release",), "var: "),
    ("k8s_name_errors", "ｓhop", ("dns_label",), "var: "),
    ("k8s_name_errors", [" system:nodes"], ("rbac_subject",), "var[0]: "),
    ("k8s_name_errors", ["system:nodes\n"], ("rbac_subject",), "var[0]: "),
    ("k8s_name_errors", [""], ("rbac_subject",), "var[0]: "),
    ("k8s_label_errors", {"tier": "web\n"}, (), 'var["tier"]: "web\\n"'),
    ("k8s_label_errors", {"tier": "v" * 64}, (), 'var["tier"]'),
    ("k8s_label_errors", {"tier": "-web"}, (), 'var["tier"]'),
    ("k8s_label_errors", {"Bad Key": "x"}, (), 'var key: "Bad Key"'),
    ("k8s_label_errors", {"Example.com/x": "x"}, (), "var key"),
    ("k8s_label_errors", {"example.com/": "x"}, (), "var key"),
    ("k8s_label_errors", {"n" * 64: "x"}, (), "var key"),
    ("k8s_label_errors", {"tier": 3}, (), 'var["tier"]: 3'),
    ("k8s_label_errors", {"a b": "x"}, ("annotations",), "annotation key"),
    ("k8s_label_errors", {"a": 1}, ("annotations",), 'var["a"]: 1'),
    ("k8s_label_errors", {"a": "x" * (256 * 1024)}, ("annotations",), "bytes of annotations"),
    ("k8s_label_errors", "service.k8s.aws/ nlb", ("key",), "var: "),
    ("k8s_label_errors", "a b", ("value",), "var: "),
    ("k8s_quantity_errors", "2 cores", (), 'var: "2 cores"'),
    ("k8s_quantity_errors", "2CPU", (), "var: "),
    ("k8s_quantity_errors", "1.5 GB", (), "var: "),
    ("k8s_quantity_errors", "4g", (), "var: "),
    ("k8s_quantity_errors", "4G\n", (), "var: "),
    ("k8s_quantity_errors", "", (), "var: "),
    ("k8s_quantity_errors", 2.5, (), "var: 2.5"),
    ("k8s_quantity_errors", True, (), "var: true"),
    ("k8s_quantity_errors", "-1", (), "at least 0"),
    ("k8s_quantity_errors", "0", (0, True), "above 0"),
    ("k8s_quantity_errors", "0m", (0, True), "above 0"),
    ("k8s_quantity_errors", {"cpu": "1", "memory": "lots"}, (), 'var.memory: "lots"'),
    ("duration_errors", "30d", (), 'var: "30d"'),
    ("duration_errors", "1.5h", (), "var: "),
    ("duration_errors", "-1h", (), "var: "),
    ("duration_errors", "", (), "var: "),
    ("duration_errors", "Never", (), "var: "),
    ("duration_errors", "500ms", (), "var: "),
    ("duration_errors", "1h ", (), "var: "),
    ("duration_errors", 60, (), "var: 60"),
    ("duration_errors", "10s", ("smh", False, 60), "at least 60s"),
    ("number_errors", -1, (0,), "var: -1"),
    ("number_errors", "-1", (1,), 'var: "-1"'),
    ("number_errors", 65536, (1, 65535), "at most 65535"),
    ("number_errors", True, (), "var: true"),
    ("number_errors", "3 ", (), "var: "),
    ("number_errors", "٣", (), "var: "),
    ("number_errors", 2.5, (), "var: 2.5"),
    ("number_errors", "1e3", (), "var: "),
    ("number_errors", float("nan"), (0, None, False), "var: "),
    ("number_errors", "0", (0.01, None, False), "at least 0.01"),
    ("number_errors", None, (), "var: null"),
]


@pytest.mark.parametrize("name,value,args,message", BAD, ids=lambda v: repr(v)[:40])
def test_values_the_service_refuses_fail_naming_the_variable(name, value, args, message):
    errors = plugin(name)(value, "var", *args)
    assert errors, f"{name}{args} accepted {value!r}"
    assert all(error.startswith("var") for error in errors), errors
    assert any(message in error for error in errors), errors


@pytest.mark.parametrize("name,kind", [("aws_name_errors", "s3_bucket"), ("k8s_name_errors", "pod"), ("aws_arn_errors", "sqs_queue")])
def test_an_unknown_kind_is_a_programming_error(name, kind):
    with pytest.raises(ValueError, match="unknown"):
        plugin(name)("x", "var", kind)


@pytest.mark.parametrize("pattern,value,valid", [
    (r"^[a-z]+$", "web", True),
    (r"^[a-z]+$", "web\n", False),
    (r"^[$a-z]+$", "$web", True),
    (r"^a\$$", "a$", True),
    (r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", "nginx\n", False),
])
def test_crd_patterns_end_where_go_ends_them(pattern, value, valid):
    """The apiserver matches CRD patterns with Go's regexp, whose $ is the end of the text."""
    assert (crd_schema._go_pattern(pattern).search(value) is not None) is valid
