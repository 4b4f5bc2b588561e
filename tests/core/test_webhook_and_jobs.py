"""Pure pieces of the event pipeline: webhook signatures, push filtering, job messages."""
from __future__ import annotations

import json

import pytest

from shared.core.jobs import BadJob, new_job, parse_job
from shared.core.manifests import Target
from shared.core.webhook import ignore_reason, parse_push, sign, signature_ok, touched

SUB = "11111111-2222-3333-4444-555555555555"


def target(name: str, path: str) -> Target:
    return Target(name=name, path=path, subscription_id=SUB, resource_group="rg", environment="env")


def test_signature_is_checked_over_the_raw_body():
    body = b'{"zen": "Keep it logically awesome."}'
    assert signature_ok("s3cret", body, sign("s3cret", body))
    assert not signature_ok("s3cret", body + b" ", sign("s3cret", body))
    assert not signature_ok("other", body, sign("s3cret", body))
    assert not signature_ok("s3cret", body, None)
    assert not signature_ok("s3cret", body, "sha1=" + sign("s3cret", body)[7:])


def test_push_touches_only_targets_whose_path_changed():
    targets = [target("web", "envs/web"), target("api", "envs/api"), target("root", "apps")]
    push = parse_push({"ref": "refs/heads/main", "after": "abc", "commits": [
        {"added": ["envs/web/a.yaml"], "modified": [], "removed": []},
        {"added": [], "modified": ["README.md", "envs/webber/x.yaml"], "removed": ["apps/old.yaml"]}]})
    assert [t.name for t in touched(push, targets, targets_path="targets")] == ["web", "root"]
    none = parse_push({"ref": "refs/heads/main", "commits": [{"modified": ["docs/x.md"]}]})
    assert touched(none, targets, targets_path="targets") == []
    retarget = parse_push({"ref": "refs/heads/main", "commits": [{"modified": ["targets/prod.yaml"]}]})
    assert len(touched(retarget, targets, targets_path="targets")) == 3


def test_missing_or_possibly_truncated_commit_lists_touch_every_target():
    targets = [target("web", "envs/web"), target("api", "envs/api")]
    assert len(touched(parse_push({"ref": "refs/heads/main"}), targets, targets_path="targets")) == 2
    twenty = [{"modified": ["docs/x.md"]}] * 20
    assert len(touched(parse_push({"ref": "refs/heads/main", "commits": twenty}), targets, targets_path="t")) == 2


@pytest.mark.parametrize("payload, reason", [
    ({"ref": "refs/heads/main", "deleted": True}, "was deleted"),
    ({"ref": "refs/tags/v1"}, "tag push"),
    ({"ref": "refs/heads/feature"}, "not refs/heads/main"),
    ({"ref": "refs/heads/main", "repository": {"full_name": "evil/fork"}}, "another repository"),
])
def test_pushes_that_are_not_ours_are_ignored_with_a_reason(payload, reason):
    assert reason in ignore_reason(parse_push(payload), branch="main", repo_url="https://github.com/contoso/gitops.git")


def test_push_to_our_repository_and_branch_is_accepted():
    push = parse_push({"ref": "refs/heads/main", "repository": {"full_name": "Contoso/GitOps",
                                                               "clone_url": "https://github.com/Contoso/GitOps.git"}})
    assert ignore_reason(push, branch="main", repo_url="https://github.com/contoso/gitops.git") is None


def test_job_messages_round_trip_and_bad_ones_say_why():
    job = new_job("prod", "push", revision="abc", delivery="d-1")
    assert parse_job(job.to_json().encode()) == job
    for body, why in [(b"not json", "not JSON"), (b"[]", "JSON object"),
                      (json.dumps({"v": 2}).encode(), "schema version"),
                      (json.dumps({**json.loads(job.to_json()), "extra": 1}).encode(), "unknown field"),
                      (json.dumps({**json.loads(job.to_json()), "reason": "cron"}).encode(), "reason"),
                      (json.dumps({**json.loads(job.to_json()), "requested_at": "yesterday"}).encode(), "ISO 8601")]:
        with pytest.raises(BadJob, match=why):
            parse_job(body)


def test_repository_match_includes_host_and_port_for_self_hosted_servers():
    push = parse_push({"ref": "refs/heads/main", "repository": {"clone_url": "http://git.local:8080/team/ops.git"}})
    assert ignore_reason(push, branch="main", repo_url="http://git.local:8080/team/ops.git") is None
    assert "another repository" in ignore_reason(push, branch="main", repo_url="http://git.local:9090/team/ops.git")
