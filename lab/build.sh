#!/usr/bin/env bash
# Builds (or reuses) the lab's pinned binaries from the Go module proxy.
#
#   lab/build.sh            build what is missing, print the bin directory
#   lab/build.sh --print    print the bin directory only (exit 1 if not built)
#
# Binaries go to a cache OUTSIDE the repo, keyed by a hash of versions.env and the wrapper
# sources, so only the first run on a machine pays the build, and bumping a version rebuilds.
# Nothing is downloaded from release pages: everything comes through `go` and its proxy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# LAB_VERSIONS_FILE lets a test or a trial bump point at another pin set.
versions_file=${LAB_VERSIONS_FILE:-$here/versions.env}
# shellcheck source=lab/versions.env
source "$versions_file"

export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
cache_root=${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/karpenter-hpa-lab}

die() { echo "lab build: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed: install Go >= 1.26 (the lab builds its binaries from Go modules)"
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[[ "$go_minor" =~ ^[0-9]+$ && "$go_minor" -ge 26 ]] || die "Go $(go env GOVERSION) is too old: install Go >= 1.26"

key=$(cat "$versions_file" "$here/build.sh" $(find "$here/gobuild" -type f -name '*.go' | sort) | sha256sum | cut -c1-16)
bin_dir="$cache_root/bin-$key"

if [[ "${1:-}" == "--print" ]]; then
  [[ -f "$bin_dir/.complete" ]] || exit 1
  echo "$bin_dir"; exit 0
fi
if [[ -f "$bin_dir/.complete" ]]; then
  echo "$bin_dir"; exit 0
fi

mkdir -p "$cache_root"
# One build at a time per cache: a second caller waits, then reuses what the first one built.
exec 9>"$cache_root/build.lock"
flock 9
if [[ -f "$bin_dir/.complete" ]]; then
  echo "$bin_dir"; exit 0
fi
mkdir -p "$bin_dir"
log="$cache_root/build-$key.log"
: >"$log"
started=$(date +%s)
note() { echo "lab build: $*" >&2; }

k8s_lib_version() { # v1.36.3 -> v0.36.3: the published tag of every staging module
  echo "v0.${1#v1.}"
}

# -- group "tools": kube (multi-call), etcd, kwok, kwokctl, metrics-server, helm ---------------
build_tools() {
  local work="$cache_root/src-$key/tools"
  rm -rf "$work"; mkdir -p "$work"
  cp -r "$here/gobuild/tools/." "$work/"
  local libv; libv=$(k8s_lib_version "$KUBERNETES_VERSION")
  local kdir
  kdir=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
    || die "cannot download k8s.io/kubernetes@$KUBERNETES_VERSION from the Go module proxy (see $log)"
  {
    echo "module lab.local/tools"
    echo
    echo "go 1.26"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $KUBERNETES_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo "	sigs.k8s.io/kwok $KWOK_VERSION"
    echo "	sigs.k8s.io/metrics-server $METRICS_SERVER_VERSION"
    echo "	helm.sh/helm/v3 $HELM_VERSION"
    echo ")"
    echo
    echo "tool ("
    echo "	sigs.k8s.io/kwok/cmd/kwok"
    echo "	sigs.k8s.io/kwok/cmd/kwokctl"
    echo "	sigs.k8s.io/metrics-server/cmd/metrics-server"
    echo "	helm.sh/helm/v3/cmd/helm"
    echo ")"
    echo
    # k8s.io/kubernetes points its staging modules at ./staging; use their published tags.
    echo "replace ("
    sed -nE 's#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+$#\t\1 => \1 '"$libv"'#p' "$kdir/go.mod"
    echo ")"
  } >"$work/go.mod"
  note "resolving modules for Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, metrics-server $METRICS_SERVER_VERSION, Helm $HELM_VERSION"
  (cd "$work" && go mod tidy -e) >>"$log" 2>&1 || die "go mod tidy failed for the tools group (see $log)"

  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local major=1 minor; minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  local kv=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kv+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    kv+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  note "building kube (apiserver, controller-manager, scheduler, kubectl) - the long part of a cold build"
  (cd "$work" && go build -trimpath -ldflags "-s -w$kv" -o "$bin_dir/kube" ./cmd/kube) >>"$log" 2>&1 \
    || die "building kube failed (see $log)"
  for name in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    ln -sf kube "$bin_dir/$name"
  done
  note "building etcd, kwok, kwokctl, metrics-server, helm"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd" ./cmd/etcd) >>"$log" 2>&1 \
    || die "building etcd failed (see $log)"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl) >>"$log" 2>&1 \
    || die "building kwok/kwokctl failed (see $log)"
  # kwokctl reads `metrics-server --version` to pick its flags: stamp the real version.
  (cd "$work" && go build -trimpath -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
      -o "$bin_dir/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server) >>"$log" 2>&1 \
    || die "building metrics-server failed (see $log)"
  (cd "$work" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$bin_dir/helm" helm.sh/helm/v3/cmd/helm) >>"$log" 2>&1 \
    || die "building helm failed (see $log)"
  # kwokctl would fetch metrics-server's release manifests from GitHub; the same kustomize
  # sources ship in the module, so keep them next to the binary and point kwokctl at them.
  local msdir; msdir=$(cd "$work" && go list -m -f '{{.Dir}}' sigs.k8s.io/metrics-server)
  rm -rf "$bin_dir/metrics-server-manifests"
  cp -r "$msdir/manifests" "$bin_dir/metrics-server-manifests"
  chmod -R u+w "$bin_dir/metrics-server-manifests"
  # The metrics_server role installs metrics-server's own chart; the lab takes it from the same module.
  rm -rf "$bin_dir/metrics-server-chart"
  cp -r "$msdir/charts/metrics-server" "$bin_dir/metrics-server-chart"
  chmod -R u+w "$bin_dir/metrics-server-chart"
  # kwok's default Stages and Metric: the lab hands them to kwokctl with its own additions.
  local kwokdir; kwokdir=$(cd "$work" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  rm -rf "$bin_dir/kwok-kustomize"
  cp -r "$kwokdir/kustomize" "$bin_dir/kwok-kustomize"
  chmod -R u+w "$bin_dir/kwok-kustomize"
}

# -- group "karpenter-aws": the AWS provider's controller, the one EKS runs -----------------------
# Its release pins Karpenter core as a pseudo-version the Go proxy does not serve; that pseudo-version
# is the commit of core's own release tag (same timestamp), so the tag is required in its place.
build_karpenter_aws() {
  local work="$cache_root/src-$key/karpenter-aws"
  rm -rf "$work"; mkdir -p "$work"
  cat >"$work/go.mod" <<EOF
module lab.local/karpenteraws

go 1.26

require github.com/aws/karpenter-provider-aws $KARPENTER_AWS_VERSION

tool github.com/aws/karpenter-provider-aws/cmd/controller

replace sigs.k8s.io/karpenter => sigs.k8s.io/karpenter $KARPENTER_AWS_CORE_VERSION
EOF
  note "resolving modules for the Karpenter AWS provider $KARPENTER_AWS_VERSION (core $KARPENTER_AWS_CORE_VERSION)"
  (cd "$work" && go mod tidy) >>"$log" 2>&1 || die "go mod tidy failed for the Karpenter AWS provider (see $log)"
  note "building karpenter-aws (the AWS provider's controller)"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/karpenter-aws" github.com/aws/karpenter-provider-aws/cmd/controller) >>"$log" 2>&1 \
    || die "building karpenter-aws failed (see $log)"
  # The charts the karpenter role installs come from the same module: the controller chart and the
  # CRD chart (the layout Karpenter documents for upgrades: CRDs as templates, so Helm upgrades them).
  local adir; adir=$(cd "$work" && go list -m -f '{{.Dir}}' github.com/aws/karpenter-provider-aws)
  rm -rf "$bin_dir/karpenter-aws-charts"; mkdir -p "$bin_dir/karpenter-aws-charts"
  cp -r "$adir/charts/karpenter" "$adir/charts/karpenter-crd" "$bin_dir/karpenter-aws-charts/"
  chmod -R u+w "$bin_dir/karpenter-aws-charts"
}

build_tools
build_karpenter_aws
rm -rf "$cache_root/src-$key"
elapsed=$(( $(date +%s) - started ))
echo "$elapsed" >"$bin_dir/.build-seconds"
touch "$bin_dir/.complete"
note "built in ${elapsed}s into $bin_dir"
echo "$bin_dir"
