# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What an EC2 instance id is: the one rule, for the sqs_events event source and the remediation role.

EC2 names an instance ``i-`` followed by 8 (before 2016) or 17 (since) characters (EC2 User Guide,
"Resource IDs"), lowercase hexadecimal in practice. The event source drops a message naming anything
else before it can be batched with others, and the remediation role (through the ``ec2_instance_id``
test) refuses to act on one, so both sides must agree exactly: neither copies this pattern.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

EC2_INSTANCE_ID_PATTERN = r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})"
# fullmatch, not match with "$": "$" also matches before a trailing newline, which a shell or a log line
# would then carry along. The class is ASCII only: no case folding, no Unicode digits.
_EC2_INSTANCE_ID_RE = re.compile(EC2_INSTANCE_ID_PATTERN)


def is_ec2_instance_id(value):
    """True for a string that is an EC2 instance id, False for anything else (never raises)."""
    return isinstance(value, str) and _EC2_INSTANCE_ID_RE.fullmatch(value) is not None
