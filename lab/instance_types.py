"""Instance types offered by the lab's AWS server.

A small catalogue with the real EC2 names the tutorial uses (m6g.xlarge, r6g.xlarge, c6g.2xlarge, the
t4g.xlarge of the managed nodegroup), in the tutorial's region zones, with spot and on-demand
prices shaped like ap-southeast-1's. So NodePool requirements written for EKS (instance types,
arch, capacity type, zones) select the same names in the lab. The lab's AWS server offers exactly
this catalogue to the real Karpenter AWS controller (lab/aws_ec2.py: DescribeInstanceTypes,
DescribeInstanceTypeOfferings, DescribeSpotPriceHistory; lab/aws_pricing.py: GetProducts). Prices are approximate on-demand
list prices; spot is priced at a fixed discount, which is all Karpenter's cheapest-first logic needs.
"""
REGION = "ap-southeast-1"
ZONES = [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
SPOT_DISCOUNT = 0.35  # spot price = 35 % of on-demand, a typical Graviton spot ratio

# name: (architecture, vCPU, memory GiB, max pods, on-demand USD/h, extra resources)
CATALOGUE = {
    "t4g.xlarge": ("arm64", 4, 16, 58, 0.1696, {}),
    "m6g.large": ("arm64", 2, 8, 29, 0.096, {}),
    "m6g.xlarge": ("arm64", 4, 16, 58, 0.192, {}),
    "m6g.2xlarge": ("arm64", 8, 32, 58, 0.384, {}),
    # A bare-metal type, as every region has: the Price List's "Compute Instance (bare metal)"
    # answer must not be empty for the real Karpenter AWS controller to take the lab's prices
    # (lab/aws_pricing.py). Priced like m6g.16xlarge; no NodePool of the tutorial selects it.
    "m6g.metal": ("arm64", 64, 256, 737, 3.072, {}),
    "r6g.xlarge": ("arm64", 4, 32, 58, 0.2424, {}),
    "c6g.xlarge": ("arm64", 4, 8, 58, 0.1632, {}),
    "c6g.2xlarge": ("arm64", 8, 16, 58, 0.3264, {}),
    "m7g.xlarge": ("arm64", 4, 16, 58, 0.2048, {}),
    "c7g.2xlarge": ("arm64", 8, 16, 58, 0.348, {}),
    "r7g.xlarge": ("arm64", 4, 32, 58, 0.2584, {}),
    "m6i.xlarge": ("amd64", 4, 16, 58, 0.24, {}),
    "c6i.2xlarge": ("amd64", 8, 16, 58, 0.392, {}),
    "r6i.xlarge": ("amd64", 4, 32, 58, 0.304, {}),
    "g5g.xlarge": ("arm64", 4, 8, 58, 0.5264, {"nvidia.com/gpu": "1"}),
    "g4dn.xlarge": ("amd64", 4, 16, 29, 0.736, {"nvidia.com/gpu": "1"}),
}

