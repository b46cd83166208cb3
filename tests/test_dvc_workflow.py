"""What users do with DVC: change a param and rerun only what depends on it; share the
cache through a remote (a local folder, and an S3-compatible server on 127.0.0.1)."""
import json
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import yaml

from tests.e2e_helpers import dvc, run

pytestmark = pytest.mark.slow


def stale_stages(repo) -> set[str]:
    out = dvc(["status", "--json"], repo).stdout
    return set(json.loads(out or "{}"))


def test_exp_run_reruns_only_downstream_stages(reproduced_repo):
    repo = reproduced_repo
    run(["git", "add", "-A"], repo)
    assert run(["git", "commit", "-q", "-m", "baseline"], repo).returncode == 0
    defend = yaml.safe_load((repo / "params.yaml").read_text())["defend"]
    ks, both_ks = defend["text_ks"], defend["image_ks"]
    try:
        # Before running: only the stages that read the param are stale ...
        (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace(
            "beta: 0.6", "beta: 0.7", 1))
        assert stale_stages(repo) == {f"defend_text@{k}" for k in ks}
        run(["git", "checkout", "--", "params.yaml"], repo)
        # ... and the experiment reruns exactly those and what depends on their outputs.
        out = dvc(["exp", "run", "-S", "defend.text.beta=0.7"], repo).stdout
        ran = set(re.findall(r"Running stage '([^']+)'", out))
        assert ran == ({f"defend_text@{k}" for k in ks} | {f"combine@{k}" for k in both_ks}
                       | {f"evaluate_text@{k}" for k in ks} | {f"evaluate_towers@both-{k}" for k in both_ks}
                       | {f"audit_text@{k}" for k in ks} | {f"audit_towers@both-{k}" for k in both_ks}
                       | {"report"})
    finally:
        run(["git", "checkout", "--", "."], repo)
        dvc(["checkout", "--force"], repo)
    assert stale_stages(repo) == set()


def roundtrip(repo, url: str, **options: str):
    dvc(["remote", "add", "-f", "-d", "shared", url], repo)
    for key, value in options.items():
        dvc(["remote", "modify", "shared", key, value], repo)
    dvc(["push"], repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data")
    assert stale_stages(repo)  # outputs are gone
    dvc(["pull"], repo)
    assert stale_stages(repo) == set()
    assert (repo / "data/base_model/model.safetensors").is_file()


def test_push_and_pull_through_a_local_remote(reproduced_repo, tmp_path):
    roundtrip(reproduced_repo, str(tmp_path / "remote"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server():
    pytest.importorskip("moto", reason="moto[server] is not installed")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.skip("the moto S3 server did not start within 30 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_push_and_pull_through_an_s3_server(reproduced_repo, s3_server, monkeypatch):
    import boto3

    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in creds.items():
        monkeypatch.setenv(k, v)
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket="cache")
    roundtrip(reproduced_repo, "s3://cache/dvc", endpointurl=s3_server)
