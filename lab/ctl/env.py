"""`lab env`: shell exports for kubectl, helm and the AWS CLI against the lab (eval "$(make -s lab-env)")."""
import os

from lab.ctl.config import AWS_ENV, KUBECONFIG, LabError
from lab.ctl.tools import bin_dir


def env_exports(bins):
    exports = {"KUBECONFIG": str(KUBECONFIG), **AWS_ENV, "PATH": f"{bins}:{os.environ.get('PATH', '')}"}
    return "\n".join(f"export {key}='{value}'" for key, value in exports.items())


def cmd_env(_args):
    bins = bin_dir(build=False)
    if bins is None:
        raise LabError("the lab binaries are not built: run `make lab-up`")
    print(env_exports(bins))
