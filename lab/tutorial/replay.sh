#!/usr/bin/env bash
# The tutorial (EKS 101 #12, "Karpenter + HPA"), typed by hand on the lab, step by step, in its order.
#
# It uses none of our roles: the tutorial's own commands (aws, kubectl, helm), names and values, so
# the lab is shown to be an account and a cluster that a person following the tutorial can use, and
# the real Karpenter controller launches nodes with the policy the person wrote.
#
#   eval "$(make -s lab-env)"
#   lab/tutorial/replay.sh all              # or one step: lab/tutorial/replay.sh 3.2
#   lab/tutorial/replay.sh cleanup
#
# Files the tutorial writes (node-trust-policy.json, ...) and the exports of its step 3.1 (env.sh)
# go to $TUTORIAL_DIR (default .lab/tutorial), so steps can run one at a time.
#
# Where the commands differ from the tutorial's text, the step says why. Three kinds of reasons:
# * the tutorial's typos: a stray "c" in node-trust-policy.json, AWS_ACCOUNT_ID and
#   KARPENTER_IAM_ROLE_ARN used but never set;
# * Karpenter v1 instead of v0.29: NodePool and EC2NodeClass instead of Provisioner and
#   AWSNodeTemplate, the chart's `settings.clusterName`, the instance profile named in the node
#   class, termination scoped by the `karpenter.sh/nodepool` tag;
# * no internet and no real machines: the chart comes from the lab's cache instead of
#   public.ecr.aws, eksctl's calls are made with the aws CLI, the controller's log is a file, and the
#   load is kwok's simulated CPU use instead of ab against an NLB.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
LAB_STATE="${LAB_STATE_DIR:-$REPO/.lab}"
TUTORIAL_DIR="${TUTORIAL_DIR:-$LAB_STATE/tutorial}"
APP_NS=nlb-app-karpenter
mkdir -p "$TUTORIAL_DIR"
cd "$TUTORIAL_DIR"

say() { printf '\n== %s\n' "$*"; }
load_env() { [[ -f env.sh ]] || { echo "replay.sh: run step 3.1 first (no $TUTORIAL_DIR/env.sh)" >&2; exit 2; }; source ./env.sh; }
# The lab's copy of the chart (public.ecr.aws is out of reach): the one the lab inventory names.
lab_chart() {
  python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["karpenter_chart_ref"])' \
    "$REPO/inventories/lab/group_vars/all/lab.yml"
}

# What the tutorial assumes (an eksctl cluster with a managed node group) and the lab does not
# build: aws-auth mapping the node group's role, which EKS writes when it creates a managed node
# group. Made only when missing.
step_prerequisites() {
  say "prerequisites: kube-system/aws-auth as EKS writes it for the node group"
  kubectl get configmap aws-auth -n kube-system >/dev/null 2>&1 && return 0
  local ng_role
  ng_role=$(aws eks describe-nodegroup --cluster-name "$(aws eks list-clusters --query 'clusters[0]' --output text)" \
    --nodegroup-name "$(aws eks list-nodegroups --cluster-name "$(aws eks list-clusters --query 'clusters[0]' --output text)" --query 'nodegroups[0]' --output text)" \
    --query 'nodegroup.nodeRole' --output text)
  touch aws-auth-made-by-prerequisites
  kubectl create configmap aws-auth -n kube-system --from-literal=mapRoles="- groups:
  - system:bootstrappers
  - system:nodes
  rolearn: ${ng_role}
  username: system:node:{{EC2PrivateDNSName}}
"
}

step_2.2() {
  say "2.2 the test app on the on-demand node group"
  kubectl apply -f "$HERE/demo-nginx-nlb-on-demand.yaml"
}

step_2.3() {
  say "2.3 the on-demand app works, then goes"
  # The lab has no AWS Load Balancer Controller: the service's EXTERNAL-IP stays <pending>, so the
  # check is that its 3 pods run on ON_DEMAND nodes.
  kubectl get service service-nginx -n nlb-app-ondemand -o wide
  kubectl rollout status deployment/nginx-deployment -n nlb-app-ondemand --timeout=120s
  kubectl delete -f "$HERE/demo-nginx-nlb-on-demand.yaml" --wait=true
}

step_3.1() {
  say "3.1 environment variables"
  # eksctl get clusters is EKS ListClusters. The tutorial's later steps use AWS_ACCOUNT_ID, which it
  # never sets (its own output shows the empty account in the OIDC provider's ARN): set here.
  cat > env.sh <<EOF
export AWS_PARTITION="aws"
export KARPENTER_VERSION="1.14.1"
export CLUSTER_NAME="$(aws eks list-clusters --query 'clusters[0]' --output text)"
export ACCOUNT_ID="$(aws sts get-caller-identity --output text --query Account)"
export AWS_ACCOUNT_ID="\${ACCOUNT_ID}"
export AWS_REGION=ap-southeast-1
EOF
  source ./env.sh
  echo "export OIDC_ENDPOINT=\"$(aws eks describe-cluster --name "${CLUSTER_NAME}" --query "cluster.identity.oidc.issuer" --output text)\"" >> env.sh
  cat env.sh
}

step_3.2() {
  load_env
  say "3.2 the node role and its instance profile"
  # The tutorial's file has a stray "c" after the statement, which IAM refuses as malformed JSON.
  echo '{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {
                "Service": "ec2.amazonaws.com"
            },
            "Action": "sts:AssumeRole"
        }
    ]
}' > node-trust-policy.json

  aws iam create-role --role-name "KarpenterNodeRole-${CLUSTER_NAME}" \
      --assume-role-policy-document file://node-trust-policy.json

  aws iam attach-role-policy --role-name "KarpenterNodeRole-${CLUSTER_NAME}" \
      --policy-arn "arn:${AWS_PARTITION}:iam::aws:policy/AmazonEKSWorkerNodePolicy"
  aws iam attach-role-policy --role-name "KarpenterNodeRole-${CLUSTER_NAME}" \
      --policy-arn "arn:${AWS_PARTITION}:iam::aws:policy/AmazonEKS_CNI_Policy"
  aws iam attach-role-policy --role-name "KarpenterNodeRole-${CLUSTER_NAME}" \
      --policy-arn "arn:${AWS_PARTITION}:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
  aws iam attach-role-policy --role-name "KarpenterNodeRole-${CLUSTER_NAME}" \
      --policy-arn "arn:${AWS_PARTITION}:iam::aws:policy/AmazonSSMManagedInstanceCore"

  aws iam create-instance-profile \
      --instance-profile-name "KarpenterNodeInstanceProfile-${CLUSTER_NAME}"
  aws iam add-role-to-instance-profile \
      --instance-profile-name "KarpenterNodeInstanceProfile-${CLUSTER_NAME}" \
      --role-name "KarpenterNodeRole-${CLUSTER_NAME}"
}

step_3.3() {
  load_env
  say "3.3 the controller role and its policy"
  cat << EOF > controller-trust-policy.json
{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {
                "Federated": "arn:${AWS_PARTITION}:iam::${AWS_ACCOUNT_ID}:oidc-provider/${OIDC_ENDPOINT#*//}"
            },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    "${OIDC_ENDPOINT#*//}:aud": "sts.amazonaws.com",
                    "${OIDC_ENDPOINT#*//}:sub": "system:serviceaccount:karpenter:karpenter"
                }
            }
        }
    ]
}
EOF

  aws iam create-role --role-name "KarpenterControllerRole-${CLUSTER_NAME}" \
      --assume-role-policy-document file://controller-trust-policy.json

  # The tutorial's policy for v0.29, with what Karpenter v1 changed (its upgrade guide):
  # * instances are tagged karpenter.sh/nodepool, no longer karpenter.sh/provisioner-name, so the
  #   termination condition names the new tag (with the old one, no node can be removed);
  # * two calls v1 makes that v0.29 did not: ec2:DescribeInstanceStatus (instance health, its
  #   instancestatus controller) and iam:ListInstanceProfiles (garbage collection of the instance
  #   profiles it makes). Without them it logs AccessDenied every few seconds.
  cat << EOF > controller-policy.json
{
    "Statement": [
        {
            "Action": [
                "ssm:GetParameter",
                "ec2:DescribeImages",
                "ec2:RunInstances",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeLaunchTemplates",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeAvailabilityZones",
                "ec2:DeleteLaunchTemplate",
                "ec2:CreateTags",
                "ec2:CreateLaunchTemplate",
                "ec2:CreateFleet",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeInstanceStatus",
                "iam:ListInstanceProfiles",
                "pricing:GetProducts"
            ],
            "Effect": "Allow",
            "Resource": "*",
            "Sid": "Karpenter"
        },
        {
            "Action": "ec2:TerminateInstances",
            "Condition": {
                "StringLike": {
                    "ec2:ResourceTag/karpenter.sh/nodepool": "*"
                }
            },
            "Effect": "Allow",
            "Resource": "*",
            "Sid": "ConditionalEC2Termination"
        },
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "arn:${AWS_PARTITION}:iam::${AWS_ACCOUNT_ID}:role/KarpenterNodeRole-${CLUSTER_NAME}",
            "Sid": "PassNodeIAMRole"
        },
        {
            "Effect": "Allow",
            "Action": "eks:DescribeCluster",
            "Resource": "arn:${AWS_PARTITION}:eks:${AWS_REGION}:${AWS_ACCOUNT_ID}:cluster/${CLUSTER_NAME}",
            "Sid": "EKSClusterEndpointLookup"
        }
    ],
    "Version": "2012-10-17"
}
EOF

  aws iam put-role-policy --role-name "KarpenterControllerRole-${CLUSTER_NAME}" \
      --policy-name "KarpenterControllerPolicy-${CLUSTER_NAME}" \
      --policy-document file://controller-policy.json
}

step_3.4() {
  load_env
  say "3.4 the service account's role"
  # `eksctl create iamserviceaccount --role-only` makes a role that the karpenter/karpenter service
  # account may assume through the cluster's OIDC provider: step 3.3's role is exactly that (its
  # trust policy names the provider, the audience and the service account). The tutorial's eksctl
  # command would make a second one, attached to a managed policy KarpenterControllerPolicy-... that
  # no step creates (3.3 made it inline), and step 3.8 then uses KARPENTER_IAM_ROLE_ARN, never set.
  # So the role of 3.3 is the service account's role:
  echo "export KARPENTER_IAM_ROLE_ARN=\"arn:${AWS_PARTITION}:iam::${AWS_ACCOUNT_ID}:role/KarpenterControllerRole-${CLUSTER_NAME}\"" >> env.sh
  load_env
  aws iam list-open-id-connect-providers --query "OpenIDConnectProviderList[?ends_with(Arn, '${OIDC_ENDPOINT#*//}')].Arn" --output text | grep -q oidc-provider
  aws iam get-role --role-name "KarpenterControllerRole-${CLUSTER_NAME}" --query 'Role.Arn' --output text
}

step_3.5() {
  load_env
  say "3.5 discovery tags on the node group's subnets and the cluster security group"
  for NODEGROUP in $(aws eks list-nodegroups --cluster-name ${CLUSTER_NAME} \
      --query 'nodegroups' --output text); do aws ec2 create-tags \
          --tags "Key=karpenter.sh/discovery,Value=${CLUSTER_NAME}" \
          --resources $(aws eks describe-nodegroup --cluster-name ${CLUSTER_NAME} \
          --nodegroup-name $NODEGROUP --query 'nodegroup.subnets' --output text )
  done

  NODEGROUP=$(aws eks list-nodegroups --cluster-name ${CLUSTER_NAME} \
      --query 'nodegroups[0]' --output text)

  SECURITY_GROUPS=$(aws eks describe-cluster \
      --name ${CLUSTER_NAME} --query "cluster.resourcesVpcConfig.clusterSecurityGroupId" --output text)

  aws ec2 create-tags \
      --tags "Key=karpenter.sh/discovery,Value=${CLUSTER_NAME}" \
      --resources ${SECURITY_GROUPS}
}

step_3.6() {
  load_env
  say "3.6 the node role in aws-auth (kubectl edit)"
  # kubectl edit opens $KUBE_EDITOR on the configmap; this editor inserts the tutorial's entry
  # beside the node group's, as the person does by hand.
  cat > aws-auth-entry.yaml << EOF
- groups:
  - system:bootstrappers
  - system:nodes
  rolearn: arn:${AWS_PARTITION}:iam::${AWS_ACCOUNT_ID}:role/KarpenterNodeRole-${CLUSTER_NAME}
  username: system:node:{{EC2PrivateDNSName}}
EOF
  cat > insert-entry.py << 'EOF'
import sys
import yaml
path = sys.argv[1]
configmap = yaml.safe_load(open(path))
entries = yaml.safe_load(configmap["data"]["mapRoles"]) or []
entries += yaml.safe_load(open("aws-auth-entry.yaml"))
configmap["data"]["mapRoles"] = yaml.safe_dump(entries, default_flow_style=False, sort_keys=False)
yaml.safe_dump(configmap, open(path, "w"), default_flow_style=False, sort_keys=False)
EOF
  kubectl get configmap aws-auth -n kube-system -o jsonpath='{.data.mapRoles}' > aws-auth-before-3.6.yaml
  KUBE_EDITOR="python3 $TUTORIAL_DIR/insert-entry.py" kubectl edit configmap aws-auth -n kube-system
}

step_3.7() {
  say "3.7 helm"
  helm version --short
}

step_3.8() {
  load_env
  say "3.8 the Karpenter controller"
  # v1's chart: settings.aws.* became settings.*; the instance profile moved to the EC2NodeClass
  # (step 3.9); no interruptionQueue, since the tutorial never creates that queue.
  # Noted for the clean-up: the CRDs this install adds (helm skips those a cluster already has).
  kubectl get crd -o name | sort > crds-before-3.8.txt
  helm upgrade --install karpenter "$(lab_chart)" --version "${KARPENTER_VERSION}" --namespace karpenter --create-namespace \
    --set serviceAccount.annotations."eks\.amazonaws\.com/role-arn"=${KARPENTER_IAM_ROLE_ARN} \
    --set settings.clusterName=${CLUSTER_NAME} \
    --set controller.resources.requests.cpu=1 \
    --set controller.resources.requests.memory=1Gi \
    --set controller.resources.limits.cpu=1 \
    --set controller.resources.limits.memory=1Gi \
    --wait
  kubectl get crd -o name | sort | comm -13 crds-before-3.8.txt - > crds-made-by-3.8.txt
  kubectl get all -n karpenter
}

step_3.9() {
  load_env
  say "3.9 the node pool and its node class (v1 of the tutorial's Provisioner and AWSNodeTemplate)"
  # Same requirements, labels and limits; consolidation.enabled became the disruption policy (v1
  # asks how long after a node becomes a candidate: 0s, as v0.29 did); the
  # AWSNodeTemplate's selectors became selector terms; v1 wants an AMI selector (the tutorial's
  # EKS-optimized AMI, by alias) and the instance profile the v0.29 chart took as
  # settings.aws.defaultInstanceProfile.
  cat << EOF > karpenter-nodepool.yaml
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: default
spec:
  template:
    metadata:
      labels:
        intent: apps
    spec:
      requirements:
        - key: karpenter.sh/capacity-type
          operator: In
          values: ["spot"]
        - key: karpenter.k8s.aws/instance-size
          operator: NotIn
          values: [nano, micro, small, medium, large]
        - key: kubernetes.io/arch
          operator: In
          values: ["arm64"]
        - key: node.kubernetes.io/instance-type
          operator: In
          values: ["m6g.xlarge", "r6g.xlarge", "c6g.2xlarge"]
      nodeClassRef:
        group: karpenter.k8s.aws
        kind: EC2NodeClass
        name: default
  limits:
    cpu: 1000
    memory: 1000Gi
  disruption:
    consolidationPolicy: WhenEmptyOrUnderutilized
    consolidateAfter: 0s
---
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata:
  name: default
spec:
  amiSelectorTerms:
    - alias: al2023@latest
  instanceProfile: KarpenterNodeInstanceProfile-${CLUSTER_NAME}
  subnetSelectorTerms:
    - tags:
        karpenter.sh/discovery: ${CLUSTER_NAME}
  securityGroupSelectorTerms:
    - tags:
        karpenter.sh/discovery: ${CLUSTER_NAME}
EOF

  kubectl apply -f karpenter-nodepool.yaml
  kubectl wait ec2nodeclass/default --for=condition=Ready --timeout=120s
}

step_4.1() {
  say "4.1 what the nodes have left"
  kubectl describe node | grep -A 8 'Allocated resources'
}

step_4.2() {
  say "4.2 the test app"
  kubectl apply -f "$HERE/demo-nginx-nlb-karpenter.yaml"
}

step_4.3() {
  say "4.3 the app runs"
  kubectl rollout status deployment/nginx-deployment -n "$APP_NS" --timeout=120s
  kubectl get pods -n "$APP_NS"
  kubectl get service -n "$APP_NS"
}

step_4.4() {
  say "4.4 the node it runs on"
  kubectl describe node "$(kubectl get pods -n "$APP_NS" -o jsonpath='{.items[0].spec.nodeName}')" | grep -A 8 'Allocated resources'
}

step_4.5() {
  say "4.5 scale to 6"
  kubectl scale deployment nginx-deployment -n "$APP_NS" --replicas 6
}

step_4.6() {
  say "4.6 Karpenter's spot nodes"
  # The tutorial waits 1-2 minutes; here: until all 6 are available.
  kubectl rollout status deployment/nginx-deployment -n "$APP_NS" --timeout=300s
  kubectl get pod -n "$APP_NS"
  kubectl get node -l karpenter.sh/capacity-type=spot
}

step_4.7() {
  say "4.7 Karpenter's log"
  # The controller runs as a process of the lab, not in the pod kwok simulates: its log is a file.
  grep -E '"message":"(created nodeclaim|launched nodeclaim|registered nodeclaim|initialized nodeclaim)"' "$LAB_STATE/logs/karpenter.log" | tail -n 12
}

step_4.8() {
  say "4.8 scale back to 1"
  kubectl scale deployment nginx-deployment -n "$APP_NS" --replicas 1
}

step_5.1() {
  say "5.1 metrics-server"
  # The lab started metrics-server from that release's components.yaml at lab-up (kwokctl
  # --enable metrics-server, with the manifests of the pinned module); applying it again would
  # point the metrics API at pods kwok only simulates.
  kubectl get apiservice v1beta1.metrics.k8s.io
}

step_5.2() {
  say "5.2 the metrics API is available"
  kubectl get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status}'; echo
}

step_5.3() {
  say "5.3 metrics"
  kubectl top node
  kubectl top pod -A
  kubectl top pod -n "$APP_NS"
}

step_5.4() {
  say "5.4 the HPA"
  kubectl autoscale deployment nginx-deployment -n "$APP_NS" --cpu-percent=10 --min=3 --max=12
  kubectl get hpa -n "$APP_NS"
}

step_6.1() {
  say "6.1 the load generator"
  # No machine runs ab here and nginx runs nowhere: kwok reports, for each pod, the CPU use its
  # kwok.x-k8s.io/usage-cpu annotation says. The load is that annotation on the pod template.
  echo "load: kwok's simulated CPU use (1 core per pod)"
}

step_6.2() {
  say "6.2 the load's target"
  kubectl get service -n "$APP_NS"
}

step_6.3() {
  say "6.3 the load"
  kubectl patch deployment nginx-deployment -n "$APP_NS" --type merge \
    -p '{"spec":{"template":{"metadata":{"annotations":{"kwok.x-k8s.io/usage-cpu":"1000m"}}}}}'
}

step_6.4() {
  say "6.4 the HPA scales the app"
  kubectl get deployment -n "$APP_NS"
  kubectl get hpa -n "$APP_NS"
}

step_6.5() {
  say "6.5 Karpenter adds spot nodes"
  kubectl get node -l karpenter.sh/capacity-type=spot
}

step_7() {
  say "7 clean-up"
  kubectl delete -f "$HERE/demo-nginx-nlb-karpenter.yaml" --wait=true
  helm uninstall karpenter --namespace karpenter --wait
}

# `eksctl delete cluster` ends the tutorial; the lab's cluster stays. This removes what the steps
# made instead, so the lab is as before. While the controller runs, deleting the node pool and the
# node class makes it terminate its instances and delete its launch templates; after step 7 it no
# longer runs, so that is done here as Karpenter's own clean-up guide does it by hand.
step_cleanup() {
  # Also after a replay that stopped before step 3.1.
  [[ -f env.sh ]] && source ./env.sh
  CLUSTER_NAME="${CLUSTER_NAME:-$(aws eks list-clusters --query 'clusters[0]' --output text)}"
  say "cleanup: what the steps made (the lab's cluster stays)"
  kubectl delete -f "$HERE/demo-nginx-nlb-on-demand.yaml" --ignore-not-found --wait=true
  kubectl delete -f "$HERE/demo-nginx-nlb-karpenter.yaml" --ignore-not-found --wait=true
  if kubectl get deployment karpenter -n karpenter >/dev/null 2>&1; then
    if kubectl get crd nodepools.karpenter.sh >/dev/null 2>&1; then
      kubectl delete nodepool default --ignore-not-found --wait=true --timeout=300s
      kubectl delete ec2nodeclass default --ignore-not-found --wait=true --timeout=120s
    fi
  else
    local instances
    instances=$(aws ec2 describe-instances --filters "Name=tag-key,Values=karpenter.sh/nodepool" \
      "Name=instance-state-name,Values=pending,running" --query 'Reservations[].Instances[].InstanceId' --output text)
    [[ -z "$instances" ]] || aws ec2 terminate-instances --instance-ids $instances >/dev/null
    for template in $(aws ec2 describe-launch-templates --filters "Name=tag:kubernetes.io/cluster/${CLUSTER_NAME},Values=owned" \
        --query 'LaunchTemplates[].LaunchTemplateName' --output text); do
      aws ec2 delete-launch-template --launch-template-name "$template" >/dev/null
    done
    # No controller is left to release its finalizers.
    if kubectl get crd nodepools.karpenter.sh >/dev/null 2>&1; then
      for kind in nodeclaims nodepools ec2nodeclasses; do
        for object in $(kubectl get "$kind" -o name); do
          kubectl patch "$object" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null
          kubectl delete "$object" --ignore-not-found --wait=false
        done
      done
    fi
    for node in $(kubectl get nodes -l karpenter.sh/nodepool -o name); do
      kubectl patch "$node" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null
      kubectl delete "$node" --ignore-not-found --wait=false
    done
  fi
  helm uninstall karpenter --namespace karpenter --wait 2>/dev/null || true
  kubectl delete namespace karpenter --ignore-not-found --wait=true
  # The CRDs step 3.8 added (helm leaves a chart's crds/ behind on uninstall), not those already there.
  if [[ -f crds-made-by-3.8.txt ]]; then
    for crd in $(cat crds-made-by-3.8.txt); do
      kubectl delete "$crd" --ignore-not-found --wait=true
    done
  fi
  # aws-auth as it was: gone if the prerequisites made it, else its mapRoles from before step 3.6.
  if [[ -f aws-auth-made-by-prerequisites ]]; then
    kubectl delete configmap aws-auth -n kube-system --ignore-not-found
  elif [[ -f aws-auth-before-3.6.yaml ]]; then
    kubectl create configmap aws-auth -n kube-system --from-file=mapRoles=aws-auth-before-3.6.yaml --dry-run=client -o yaml \
      | kubectl patch configmap aws-auth -n kube-system --type merge --patch-file /dev/stdin
  fi
  # The tags of step 3.5, on what it tagged: the node groups' subnets and the cluster security group.
  local resources nodegroup
  resources=$(aws eks describe-cluster --name "${CLUSTER_NAME}" --query "cluster.resourcesVpcConfig.clusterSecurityGroupId" --output text)
  for nodegroup in $(aws eks list-nodegroups --cluster-name "${CLUSTER_NAME}" --query 'nodegroups' --output text); do
    resources="$resources $(aws eks describe-nodegroup --cluster-name "${CLUSTER_NAME}" --nodegroup-name "$nodegroup" --query 'nodegroup.subnets' --output text)"
  done
  aws ec2 delete-tags --tags "Key=karpenter.sh/discovery,Value=${CLUSTER_NAME}" --resources $resources
  local profile="KarpenterNodeInstanceProfile-${CLUSTER_NAME}" node_role="KarpenterNodeRole-${CLUSTER_NAME}" controller_role="KarpenterControllerRole-${CLUSTER_NAME}"
  if aws iam get-instance-profile --instance-profile-name "$profile" >/dev/null 2>&1; then
    aws iam remove-role-from-instance-profile --instance-profile-name "$profile" --role-name "$node_role" 2>/dev/null || true
    aws iam delete-instance-profile --instance-profile-name "$profile"
  fi
  if aws iam get-role --role-name "$node_role" >/dev/null 2>&1; then
    for arn in $(aws iam list-attached-role-policies --role-name "$node_role" --query 'AttachedPolicies[].PolicyArn' --output text); do
      aws iam detach-role-policy --role-name "$node_role" --policy-arn "$arn"
    done
    aws iam delete-role --role-name "$node_role"
  fi
  if aws iam get-role --role-name "$controller_role" >/dev/null 2>&1; then
    aws iam delete-role-policy --role-name "$controller_role" --policy-name "KarpenterControllerPolicy-${CLUSTER_NAME}" 2>/dev/null || true
    aws iam delete-role --role-name "$controller_role"
  fi
  rm -f env.sh crds-before-3.8.txt crds-made-by-3.8.txt aws-auth-made-by-prerequisites aws-auth-before-3.6.yaml
}

STEPS=(prerequisites 2.2 2.3 3.1 3.2 3.3 3.4 3.5 3.6 3.7 3.8 3.9 4.1 4.2 4.3 4.4 4.5 4.6 4.7 4.8 5.1 5.2 5.3 5.4 6.1 6.2 6.3 6.4 6.5 7)

case "${1:-}" in
  all) for step in "${STEPS[@]}"; do "step_$step"; done ;;
  cleanup) step_cleanup ;;
  "" | -h | --help) echo "usage: $0 all | cleanup | <step>: ${STEPS[*]}"; exit 2 ;;
  *) declare -F "step_$1" >/dev/null || { echo "replay.sh: no step $1 (steps: ${STEPS[*]})" >&2; exit 2; }; "step_$1" ;;
esac
