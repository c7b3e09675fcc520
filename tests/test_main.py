"""__main__.py: the wiring's exports for both shipped stacks, as a user reads them."""

from __future__ import annotations

from tests.program import FAKE_EIP, ProgramRunner


def test_dev_exports(run_program: ProgramRunner) -> None:
    run = run_program("dev", workers="1")
    assert run.output("target") == "local"
    assert run.output("apiServer") == "https://127.0.0.1:6443"
    assert run.output("nodeNames") == ["kubeadm-dev-master", "kubeadm-dev-worker-0"]
    assert run.output("nodePrivateIps") == {
        "kubeadm-dev-master": "172.30.0.10", "kubeadm-dev-worker-0": "172.30.0.11"}
    assert run.output("apps") == {"apps/nginx": {
        "namespace": "apps", "service": "nginx", "url": "http://127.0.0.1:30080",
        "workload": "Deployment/nginx"}}
    assert run.is_secret(run.outputs["kubeconfig"])
    assert "server: https://127.0.0.1:6443" in run.output("kubeconfig")
    assert not {"masterPublicIp", "sshCommands", "sshKnownHosts", "sshPrivateKey"} & set(
        run.outputs
    )


def test_aws_exports(run_program: ProgramRunner) -> None:
    run = run_program("aws")
    assert run.output("apiServer") == f"https://{FAKE_EIP}:6443"
    assert run.output("masterPublicIp") == FAKE_EIP
    assert run.output("nodePrivateIps") == {
        "kubeadm-aws-master": "10.0.1.10", "kubeadm-aws-worker-0": "10.0.1.11",
        "kubeadm-aws-worker-1": "10.0.1.12"}
    assert run.output("apps")["apps/nginx"]["url"] == f"http://{FAKE_EIP}:30080"
    assert set(run.output("sshCommands")) == set(run.output("nodeNames"))
    known_hosts = run.output("sshKnownHosts").splitlines()
    assert [line.split()[1] for line in known_hosts] == ["ssh-ed25519"] * 3
    assert not run.is_secret(run.outputs["sshKnownHosts"])  # public keys: readable by design
    assert run.is_secret(run.outputs["sshPrivateKey"])
    assert run.is_secret(run.outputs["kubeconfig"])
