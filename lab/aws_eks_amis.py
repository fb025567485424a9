"""The EKS-optimized Amazon Linux 2023 AMIs and their public SSM parameters, as AWS publishes them.

Karpenter resolves `amiSelectorTerms: [{alias: al2023@<version>}]` by reading, for the cluster's
Kubernetes version, the public SSM parameters
`/aws/service/eks/optimized-ami/<k8s>/amazon-linux-2023/<arch>/<variant>/recommended/image_id`
(for `@latest`) or `.../amazon-eks-node-al2023-<arch>-<variant>-<k8s>-<release>/image_id` (for a
pinned release), then DescribeImages of those ids, keeping available images by architecture and
creation date. moto 5.2.5 publishes no EKS AMIs and no `/aws/service/eks` parameters (only ECS
and Amazon Linux ones), so this module adds them the way moto adds its ECS-optimized AMIs: as
images owned by Amazon (owner 602401143452, alias amazon) loaded with each EC2 region backend,
and as read-only `/aws/service/eks/optimized-ami/...` parameters loaded on first use.

Published, for every Kubernetes version in KUBERNETES_VERSIONS and release in RELEASES:
x86_64 standard, nvidia and neuron, arm64 standard and nvidia, as EKS does. Each image is named
like EKS's (amazon-eks-node-al2023-arm64-standard-1.36-v20251120), state available, hvm, ebs root
/dev/xvda, ena, created on its release date; its id is derived from region and name, so all the
lab's processes agree. Per (version, arch, variant) the parameters are `recommended/image_id`,
`recommended/image_name`, `recommended/release_version` (the newest release) and `<name>/image_id`
per release. lab/seed.py's KUBERNETES_VERSION (the EKS cluster's, and the lab apiserver's minor)
must be in KUBERNETES_VERSIONS; a unit test checks it.

install() registers both; lab/aws_server.py calls it from install_extensions().
"""
import datetime
import hashlib

from moto.ec2.models.amis import Ami, AmiBackend
from moto.ssm.models import Parameter, ParameterDict

EKS_AMI_OWNER = "602401143452"
KUBERNETES_VERSIONS = ("1.34", "1.35", "1.36")
# EKS AMI releases, oldest first: the nodepools role pins v20251120; the newest is "recommended".
RELEASES = ("v20251120", "v20261118")
VARIANTS = {"x86_64": ("standard", "nvidia", "neuron"), "arm64": ("standard", "nvidia")}
PARAMETER_PREFIX = "/aws/service/eks/optimized-ami/"


def image_name(arch, variant, kubernetes_version, release):
    return f"amazon-eks-node-al2023-{arch}-{variant}-{kubernetes_version}-{release}"


def image_id(region, name):
    return "ami-" + hashlib.sha256(f"{region}/{name}".encode()).hexdigest()[:17]


def release_date(release):
    return datetime.datetime.strptime(release[1:], "%Y%m%d").replace(tzinfo=datetime.timezone.utc)


def published(region):
    """Every published image, as dicts: id, name, arch, variant, kubernetes_version, release."""
    for kubernetes_version in KUBERNETES_VERSIONS:
        for arch, variants in VARIANTS.items():
            for variant in variants:
                for release in RELEASES:
                    name = image_name(arch, variant, kubernetes_version, release)
                    yield {
                        "id": image_id(region, name), "name": name, "arch": arch, "variant": variant,
                        "kubernetes_version": kubernetes_version, "release": release,
                    }


def parameters(region):
    """The public SSM parameters (name -> value) that point at the published images."""
    result = {}
    for image in published(region):
        base = (f"{PARAMETER_PREFIX}{image['kubernetes_version']}/amazon-linux-2023/"
                f"{image['arch']}/{image['variant']}/")
        result[f"{base}{image['name']}/image_id"] = image["id"]
        if image["release"] == RELEASES[-1]:
            result[f"{base}recommended/image_id"] = image["id"]
            result[f"{base}recommended/image_name"] = image["name"]
            result[f"{base}recommended/release_version"] = f"{image['kubernetes_version']}.0-{image['release'][1:]}"
    return result


# -- EC2 images -------------------------------------------------------------------------------------
_original_load_amis = AmiBackend._load_amis


def _load_amis(self):
    _original_load_amis(self)
    for image in published(self.region_name):
        self.amis[image["id"]] = Ami(
            self,
            ami_id=image["id"],
            name=image["name"],
            description=(f"EKS-optimized Kubernetes node based on Amazon Linux 2023, "
                         f"(k8s: {image['kubernetes_version']}, variant: {image['variant']})"),
            owner_id=EKS_AMI_OWNER,
            owner_alias="amazon",
            public=True,
            virtualization_type="hvm",
            architecture=image["arch"],
            state="available",
            creation_date=release_date(image["release"]),
            image_location=f"amazon/{image['name']}",
            hypervisor="xen",
            root_device_type="ebs",
            root_device_name="/dev/xvda",
            boot_mode="uefi" if image["arch"] == "arm64" else "uefi-preferred",
            region_name=self.region_name,
        )


# -- SSM parameters -----------------------------------------------------------------------------------
_original_check_loading_status = ParameterDict._check_loading_status


def _check_loading_status(self, key):
    _original_check_loading_status(self, key)
    if str(key or "").startswith(PARAMETER_PREFIX) and not getattr(self, "lab_eks_amis_loaded", False):
        self.lab_eks_amis_loaded = True
        for name, value in parameters(self.region_name).items():
            if name in self:
                continue
            # defaultdict's own __getitem__: ParameterDict's would call this method again.
            super(ParameterDict, self).__getitem__(name).append(
                Parameter(
                    account_id=self.account_id, name=name, value=value, parameter_type="String",
                    description=None, allowed_pattern=None, keyid=None,
                    last_modified_date=release_date(RELEASES[-1]), version=1,
                    data_type="aws:ec2:image" if name.endswith("/image_id") else "text",
                )
            )


def install():
    """Publish the images and parameters; running it again changes nothing."""
    AmiBackend._load_amis = _load_amis
    ParameterDict._check_loading_status = _check_loading_status
