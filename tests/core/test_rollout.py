"""`spec.rollout`: validation with file:line:field, the step machine and the analysis verdict (pure logic)."""
from __future__ import annotations

import pytest

from shared.core import rollout as r
from shared.core.manifests import load_app_file

BASE = """\
apiVersion: driftless.io/v1alpha1
kind: App
metadata:
  name: web
spec:
  activeRevisionsMode: Multiple
  containers:
    - {name: web, image: nginx:1.27, cpu: 0.5, memory: 1Gi}
  ingress: {external: true, targetPort: 80}
  rollout:
"""
GOOD = BASE + """\
    strategy: Canary
    steps:
      - setWeight: 10
      - pause: {duration: 5m}
      - setWeight: 50
      - pause: {duration: 1h30m}
      - pause: {}
    analysis:
      interval: 1m
      failureLimit: 2
      metrics:
        - {name: error-rate, source: requests, maxPercent5xx: 1}
        - name: latency
          source: appInsights
          query: "requests | where cloud_RoleInstance startswith '{revision}' | summarize avg(duration)"
          maxValue: 800
          resource: /subscriptions/s1/resourceGroups/rg/providers/Microsoft.Insights/components/web-ai
"""


def load(text: str):
    apps, problems = load_app_file("apps/web.yaml", text.encode())
    return apps, [str(p) for p in problems]


def test_a_full_rollout_is_read():
    apps, problems = load(GOOD)
    assert problems == []
    rollout = apps[0].rollout
    assert rollout.strategy == "Canary"
    assert rollout.steps == (r.Step(weight=10), r.Step(pause=300.0), r.Step(weight=50), r.Step(pause=5400.0),
                             r.Step(manual=True))
    assert rollout.analysis.interval == 60 and rollout.analysis.failure_limit == 2
    assert rollout.analysis.metrics[0] == r.Metric("error-rate", "requests", max_percent_5xx=1.0)
    latency = rollout.analysis.metrics[1]
    assert latency.max_value == 800 and latency.resource.endswith("/components/web-ai")
    assert latency.query_for("web--g1") == "requests | where cloud_RoleInstance startswith 'web--g1' | summarize avg(duration)"
    assert r.Rollout.from_dict(rollout.to_dict()) == rollout


@pytest.mark.parametrize("body, expected", [
    ("    strategy: Linear\n    steps: [{setWeight: 10}]\n",
     "apps/web.yaml:11: spec.rollout.strategy: 'Linear' is not valid; allowed: Canary, BlueGreen"),
    ("    strategy: Canary\n    steps: []\n", "apps/web.yaml:12: spec.rollout.steps: needs at least one step"),
    ("    strategy: Canary\n    steps: [{setWeight: 120}]\n",
     "spec.rollout.steps[0].setWeight: must be a whole number from 0 to 100, got 120"),
    ("    strategy: Canary\n    steps: [{pause: {duration: 5 minutes}}]\n",
     "spec.rollout.steps[0].pause.duration: '5 minutes' is not a duration"),
    ("    strategy: Canary\n    steps: [{setWeight: 10, pause: {}}]\n",
     "spec.rollout.steps[0]: must be exactly one of setWeight"),
    ("    strategy: BlueGreen\n    steps: [{setWeight: 10}]\n",
     "spec.rollout.steps[0].setWeight: is for Canary"),
    ("    strategy: Canary\n    steps: [{setWeight: 10}]\n    analysis: {interval: 1s, metrics: "
     "[{name: e, source: requests, maxPercent5xx: 1}]}\n",
     "spec.rollout.analysis.interval: '1s' is not valid"),
    ("    strategy: Canary\n    steps: [{setWeight: 10}]\n    analysis: {metrics: [{name: e, source: requests}]}\n",
     "spec.rollout.analysis.metrics[0].maxPercent5xx: is required with source requests"),
    ("    strategy: Canary\n    steps: [{setWeight: 10}]\n    analysis: {metrics: [{name: e, source: logs}]}\n",
     "spec.rollout.analysis.metrics[0].source: 'logs' is not valid; allowed: requests, appInsights"),
    ("    strategy: Canary\n    steps: [{setWeight: 10}]\n    analysis: {metrics: [{name: l, source: appInsights}]}\n",
     "spec.rollout.analysis.metrics[0].query: is required with source appInsights"),
    ("    strategy: Canary\n    steps: [{setWeight: 10}]\n    analysis: {metrics: [{name: l, source: appInsights, "
     "query: q, maxValue: 1}]}\n",
     "spec.rollout.analysis.metrics[0].resource: is required with source appInsights"),
    ("    strategy: BlueGreen\n    steps: [{pause: {}}]\n    analysis: {metrics: [{name: e, source: requests, "
     "maxPercent5xx: 1}]}\n",
     "spec.rollout.analysis.metrics[0].source: requests judges the share of live traffic a canary serves"),
    ("    strategy: Canary\n    steps: [{setWeight: 10}]\n    speed: fast\n",
     "spec.rollout.speed: unknown field; allowed here: strategy, steps, analysis"),
])
def test_bad_rollouts_name_file_line_and_field(body, expected):
    apps, problems = load(BASE + body)
    assert apps == ()
    assert any(expected in p for p in problems), problems


def test_a_rollout_needs_multiple_mode_and_ingress_and_owns_traffic():
    text = GOOD.replace("  activeRevisionsMode: Multiple\n", "")
    apps, problems = load(text)
    assert apps == () and any("spec.rollout: needs activeRevisionsMode: Multiple" in p for p in problems)
    apps, problems = load(GOOD.replace("  ingress: {external: true, targetPort: 80}\n", ""))
    assert apps == () and any("spec.rollout: needs ingress enabled" in p for p in problems)
    traffic = GOOD.replace("targetPort: 80}", "targetPort: 80, traffic: [{latestRevision: true, weight: 100}]}")
    apps, problems = load(traffic)
    assert apps == () and any("spec.ingress.traffic: is owned by spec.rollout" in p for p in problems)


def test_durations():
    # Argo Rollouts' own getting-started example pauses with `duration: 10` (whole seconds)
    assert [r.parse_duration(t) for t in ("30s", "5m", "1h", "1h30m", "", "5", "m", 5, 10, -1, True, 1.5, "5x")] == \
        [30, 300, 3600, 5400, None, 5, None, 5, 10, None, None, None, None]
    assert r.shown_duration(5400) == "1h30m"


def state(rollout: r.Rollout, now: float = 1000.0) -> r.State:
    return r.start(app="web", target="prod", revision="b" * 40, rollout=rollout, stable="web--old",
                   canary="web--gbbb", resource_group="rg", subscription="s", app_id="/x", location="westeurope",
                   now=now)


CANARY = r.Rollout("Canary", (r.Step(weight=10), r.Step(pause=300), r.Step(weight=50), r.Step(weight=80),
                              r.Step(pause=60)))


def test_walk_sets_weights_waits_pauses_and_promotes_by_the_clock():
    first = r.walk(state(CANARY), 1000)
    assert (first.weight, r.wake(first), first.step, first.due) == (10, 1300, 1, 1300)
    early = r.walk(first, 1299)
    assert (early.weight, early.phase, r.wake(early)) == (10, r.PROGRESSING, 1300)  # unchanged: nothing to write
    later = r.walk(early, 1300)
    assert (later.weight, later.step, r.wake(later)) == (80, 4, 1360)               # 50 then 80: one weight, the last
    assert later.weights() == {"web--old": 20, "web--gbbb": 80}
    done = r.walk(later, 1360)
    assert done.phase == r.PROMOTED and r.wake(done) is None
    assert r.traffic(done) == [{"revisionName": "web--gbbb", "weight": 100}]


def test_a_manual_pause_waits_for_promote():
    rollout = r.Rollout("Canary", (r.Step(weight=20), r.Step(manual=True), r.Step(weight=60)))
    paused = r.walk(state(rollout), 1000)
    assert paused.phase == r.PAUSED and r.wake(paused) is None and paused.weight == 20
    later = r.walk(paused, 99999)                                                  # time alone does not move it
    assert (later.phase, later.step, later.weight) == (r.PAUSED, paused.step, 20)
    resumed = r.walk(r.promote(paused, 1100), 1100)
    assert resumed.phase == r.PROMOTED and resumed.weight == 100


def test_blue_green_keeps_the_preview_at_zero_until_promoted():
    blue = state(r.Rollout("BlueGreen", (r.Step(manual=True),)))
    assert r.traffic(blue) == [{"revisionName": "web--old", "weight": 100},
                               {"revisionName": "web--gbbb", "weight": 0, "label": "preview"}]


def test_analysis_verdicts_and_rollback_after_the_failure_limit():
    rollout = r.Rollout("Canary", (r.Step(weight=10), r.Step(pause=600)),
                        r.Analysis(60, 1, (r.Metric("errors", "requests", max_percent_5xx=1),)))
    now = 1000.0
    current = r.walk(state(rollout, now), now)
    assert r.wake(current) == 1060                                                  # the analysis comes first
    good = r.judge_metric(rollout.analysis.metrics[0], requests=200, errors_5xx=1)
    assert good["verdict"] == r.PASS and good["value"] == 0.5
    bad = r.judge_metric(rollout.analysis.metrics[0], requests=200, errors_5xx=30)
    assert bad["verdict"] == r.FAIL and bad["value"] == 15.0
    current, said = r.record_analysis(current, [bad], 1060)
    assert said == "continue" and current.failures == 1 and current.next_analysis == 1120
    current, said = r.record_analysis(current, [bad], 1120)
    assert said.startswith("rollback: analysis failed 2 time(s)") and "15.0%" in said
    assert r.judge_metric(rollout.analysis.metrics[0], requests=0, errors_5xx=0)["verdict"] == r.INCONCLUSIVE
    latency = r.Metric("latency", "appInsights", query="q", max_value=800)
    assert r.judge_metric(latency)["verdict"] == r.INCONCLUSIVE                    # not read: never a pass
    paused, said = r.record_analysis(r.walk(state(rollout), 1000), [r.judge_metric(latency)], 1060)
    assert said.startswith("pause: analysis inconclusive")
    paused.phase = r.PAUSED
    resumed = r.promote(paused, 1070)                   # not at a manual pause: the timed pause it was in goes on
    assert (resumed.phase, resumed.step, resumed.due) == (r.PROGRESSING, paused.step, paused.due)


def test_canary_health_from_the_revision_resource():
    assert r.judge_health({"properties": {"provisioningState": "Provisioned", "healthState": "Healthy",
                                          "runningState": "Running", "replicas": 1}})[0] == r.PASS
    assert r.judge_health({"properties": {"provisioningState": "Failed", "provisioningError": "bad image"}})[0] \
        == r.FAIL
    # an idle revision with minReplicas 0 scales to zero: not a failure; with minReplicas > 0 it is
    assert r.judge_health({"properties": {"provisioningState": "Provisioned", "replicas": 0}})[0] == r.PASS
    assert r.judge_health({"properties": {"provisioningState": "Provisioned", "replicas": 0,
                                          "template": {"scale": {"minReplicas": 2}}}})[0] == r.FAIL
    assert r.judge_health(None)[0] == r.FAIL


def test_state_and_jobs_round_trip():
    current = r.walk(state(CANARY), 1000)
    assert r.State.from_json(current.to_json()) == current
    job = r.job_for(current)
    assert r.parse_job(job.to_json()).tick == current.tick
    for bad in (b"nope", b'{"v": 2}', b'{"v": 1, "target": "t", "app": "a", "revision": "r", "tick": "1", "id": "x"}'):
        with pytest.raises(ValueError):
            r.parse_job(bad)


def test_request_metrics_are_judged_only_over_minutes_after_the_canary_got_traffic():
    rollout = r.Rollout("Canary", (r.Step(pause=60), r.Step(weight=10), r.Step(pause=3600)),
                        r.Analysis(60, 0, (r.Metric("e", "requests", max_percent_5xx=1),)))
    start = 1_800_000_000.0                                  # a whole minute
    walked = r.walk(state(rollout, start), start)      # the first pause: no traffic yet
    assert walked.exposed_at == 0 and r.metrics_window(walked, start + 60, 0) is None
    walked = r.walk(walked, start + 60)                # the pause is over: 10%
    assert walked.exposed_at == start + 60
    assert r.metrics_window(walked, start + 90, 0) is None   # the last whole minute began before the 10%
    assert r.metrics_window(walked, start + 120, 0) == (start + 60, start + 120)
    # with Monitor's ingestion delay the window ends that long ago: judged 3 minutes later, over the same minute
    assert r.metrics_window(walked, start + 120, 180) is None
    assert r.metrics_window(walked, start + 300, 180) == (start + 60, start + 120)
    assert r.verdict([{"verdict": r.PASS}, {"verdict": r.NOT_YET}]) == r.PASS
