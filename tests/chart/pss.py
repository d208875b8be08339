"""The "restricted" Pod Security Standard, as the PodSecurity admission controller checks it.

A namespace labelled pod-security.kubernetes.io/enforce=restricted rejects any pod that breaks
one of these rules. They follow https://kubernetes.io/docs/concepts/security/pod-security-standards/
(policy version v1.29 onwards); the e2e tier checks the same thing against a real API server.
"""

from __future__ import annotations

from typing import Any

_ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    # OCI image volumes: admitted by the restricted level since 1.33 (kubernetes/kubernetes#130394,
    # the docs lag behind: kubernetes/website#55370). Before 1.33 the chart refuses to render one.
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """Every rule of the restricted profile this pod spec breaks; empty means admitted."""
    problems: list[str] = []
    pod_sc = pod_spec.get("securityContext") or {}
    containers = [
        *pod_spec.get("initContainers", []),
        *pod_spec.get("containers", []),
        *pod_spec.get("ephemeralContainers", []),
    ]

    # Baseline: host namespaces, privileged, host paths and ports, and the like.
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"{field} must be unset or false")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("pod windowsOptions.hostProcess must not be true")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl.get('name')} is not in the safe set")
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _ALLOWED_VOLUME_TYPES:
            problems.append(f"volume {volume.get('name')} has a disallowed type {sorted(kinds)}")

    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        problems.append(f"pod seccompProfile.type {pod_seccomp} is not RuntimeDefault or Localhost")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser must not be 0")
    problems += _selinux_problems("pod", pod_sc)

    for container in containers:
        name = container.get("name", "?")
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name}: privileged must be unset or false")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{name}: windowsOptions.hostProcess must not be true")
        if sc.get("procMount") not in (None, "Default"):
            problems.append(f"{name}: procMount must be Default")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort must be unset or 0")
        problems += _selinux_problems(name, sc)

        # Restricted on top of baseline.
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            problems.append(f"{name}: runAsNonRoot must be true (on the pod or the container)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is None and pod_seccomp is None:
            problems.append(
                f"{name}: seccompProfile.type must be set (on the pod or the container)"
            )
        elif seccomp not in (None, "RuntimeDefault", "Localhost"):
            problems.append(
                f"{name}: seccompProfile.type {seccomp} is not RuntimeDefault or Localhost"
            )
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities.drop must include ALL")
        added = set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}
        if added:
            problems.append(
                f"{name}: capabilities.add may only hold NET_BIND_SERVICE, not {sorted(added)}"
            )
    return problems


def _selinux_problems(where: str, security_context: dict[str, Any]) -> list[str]:
    options = security_context.get("seLinuxOptions") or {}
    problems = []
    if options.get("type", "") not in _SELINUX_TYPES:
        problems.append(f"{where}: seLinuxOptions.type {options['type']} is not allowed")
    if options.get("user") or options.get("role"):
        problems.append(f"{where}: seLinuxOptions.user and .role must be unset")
    return problems
