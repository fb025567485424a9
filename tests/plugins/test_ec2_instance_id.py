"""module_utils/ec2_instance_id.py: the one instance id rule of the event source and the remediation role."""
import pytest

from ansible_collections.eks_autoscaling.core.plugins.module_utils.ec2_instance_id import is_ec2_instance_id
from ansible_collections.eks_autoscaling.core.plugins.test import ec2_instance_id as test_plugin


@pytest.mark.parametrize("value", ["i-0123abcd", "i-ffffffff", "i-0123456789abcdef0", "i-00000000000000000"])
def test_both_lengths_of_ec2_ids_pass(value):
    assert is_ec2_instance_id(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "i-0123abc", "i-0123abcd0", "i-0123456789abcdef", "i-0123456789abcdef01",  # 7, 9, 16, 18 characters
        "i-0123456789ABCDEF0", "I-0123456789abcdef0", "i-0123456789abcdefg",  # case, letters beyond hex
        "i-0123456789abcdef0\n", " i-0123abcd", "i-0123abcd ", "i-0123abcd\x00",  # around the id
        "i-\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17", "i-\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667",  # Unicode digits
        "i-0123abcd; reboot", "$(reboot)", "{{ lookup('pipe', 'id') }}", "../../etc/passwd",
        "arn:aws:ec2:ap-southeast-1:123456789012:instance/i-0123abcd", "i-", "", "i-" + "0" * 200_000,
        None, 12345678, ["i-0123abcd"], {"id": "i-0123abcd"}, b"i-0123abcd",
    ],
)
def test_anything_else_fails_without_raising(value):
    assert is_ec2_instance_id(value) is False


def test_the_test_plugin_is_the_module_utils_function():
    assert test_plugin.TestModule().tests() == {"ec2_instance_id": is_ec2_instance_id}
