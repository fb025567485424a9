"""IAM ListInstanceProfiles with its PathPrefix, which moto ignores.

Per the IAM API reference, ListInstanceProfiles returns only the instance profiles whose path starts
with PathPrefix (default `/`, all of them). Karpenter v1's instance profile garbage collection lists
`/karpenter/<region>/<cluster>/` and deletes what it finds there that no EC2NodeClass or NodeClaim
uses: with the prefix ignored it would take every instance profile of the account for its own, such
as the one the tutorial makes by hand and names in the EC2NodeClass.
"""
from moto.iam import responses as iam_responses


def list_instance_profiles(self):
    prefix = self._get_param("PathPrefix") or "/"
    profiles = [profile for profile in self.backend.get_instance_profiles() if profile.path.startswith(prefix)]
    return iam_responses.ActionResult({"InstanceProfiles": profiles})


def install():
    iam_responses.IamResponse.list_instance_profiles = list_instance_profiles
