"""lab/aws_iam.py: ListInstanceProfiles honours PathPrefix, through boto3 and real HTTP on conftest's in-process server."""


def test_list_instance_profiles_returns_only_those_under_the_path_prefix(boto_client):
    iam = boto_client("iam")
    karpenter_path = "/karpenter/ap-southeast-1/pathprefix-test/"
    iam.create_instance_profile(InstanceProfileName="pathprefix-by-hand")
    iam.create_instance_profile(InstanceProfileName="pathprefix-karpenters", Path=karpenter_path)

    def names(**kwargs):
        return {p["InstanceProfileName"] for p in iam.list_instance_profiles(**kwargs)["InstanceProfiles"]} & {
            "pathprefix-by-hand", "pathprefix-karpenters"}

    # Karpenter's garbage collection lists its own path: a profile made by hand at / is not there to delete.
    assert names(PathPrefix=karpenter_path) == {"pathprefix-karpenters"}
    assert names(PathPrefix="/karpenter/") == {"pathprefix-karpenters"}
    assert names() == names(PathPrefix="/") == {"pathprefix-by-hand", "pathprefix-karpenters"}
