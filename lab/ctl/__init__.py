"""The lab's control, one module per job; lab/labctl.py is its command line (python -m lab.labctl ...).

config (paths, ports, LabError) <- tools (binaries, kubectl), processes <- cluster (kwok), services (AWS
server, Karpenter, EC2 kubelet), inventory <- the jobs: up, down, status, env, inject. Nothing here imports
lab.labctl, and lab/events.py and lab/chart_repo.py import only config and tools.
"""
