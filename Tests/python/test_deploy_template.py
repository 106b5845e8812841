"""The CloudFormation template (deploy/aws/medview-ecs.yaml) keeps its promises.

cfn-lint passes with no error, warning or informational finding; then the template, parsed with
cfn-lint's own loader (which understands !Ref, !Sub, !GetAtt...), is held to what docs/DEPLOY.md,
docs/AVAILABILITY.md and docs/METRICS.md say about it: encryption on every store of data, the
alarm thresholds, least privilege (no `*` action, the one model, the encryption context the app's
KMS provider sends, the one database user), and timings that let a deploy drain without dropping
a stream, read against the binary's own defaults in Sources/.

What both stacks promise alike (cfn-lint, encryption, no `*` action, the envelope key, the alarms,
the dashboard) is checked on both in Tests/python/test_cfn_templates.py.
"""

from __future__ import annotations

import re

from cfn_template import (
    REPO,
    Template,
    as_list,
    assert_bound_to_the_apps_context,
    check_database_connect_statement,
    check_database_url,
    check_model_statement,
    contract_variables,
    refers_to,
    serve_environment_variables,
    sub_text,
    swift_source,
)

TEMPLATE = REPO / "deploy" / "aws" / "medview-ecs.yaml"
METRICS_DOC = REPO / "docs" / "METRICS.md"

T = Template(TEMPLATE)
RESOURCES: dict = T.resources
resources_of, props, mapping, resolve = T.resources_of, T.props, T.mapping, T.resolve


# ------------------------------------------------------------------------------------ encryption


# ------------------------------------------------------------------------------------ least privilege


def task_statements() -> dict[str, dict]:
    statements = {s["Sid"]: s for s in props("TaskPolicy")["PolicyDocument"]["Statement"]}
    roles = props("TaskPolicy")["Roles"]
    assert roles == [{"Ref": "TaskRole"}]
    assert "Policies" not in props("TaskRole"), "the task role's permissions are all in TaskPolicy"
    return statements


def test_the_task_role_may_do_three_things_only():
    statements = task_statements()
    actions = sorted(a for s in statements.values() for a in as_list(s["Action"]))
    assert actions == sorted(
        ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "rds-db:connect"]
    )


def test_bedrock_streaming_on_the_one_model_only():
    check_model_statement(task_statements()["StreamFromTheOneModel"])
    model_env = container_environment()["MEDVIEW_MODEL"]
    assert sub_text(model_env) == "bedrock:${BedrockModelId}", "the task streams from the model its role allows"


def test_envelope_key_use_is_bound_to_the_encryption_context_the_app_sends():
    statement = task_statements()["EnvelopeKeyWithTheAppsEncryptionContextOnly"]
    assert refers_to(statement["Resource"], "EnvelopeKey")
    assert_bound_to_the_apps_context(statement["Condition"], "TaskPolicy")


def test_database_connect_as_the_service_user_only():
    check_database_connect_statement(task_statements()["ConnectAsTheServiceUserOnly"])
    check_database_url(container_environment()["MEDVIEW_DATABASE_URL"])


def test_the_execution_role_pulls_one_repository_and_writes_one_log_group():
    (document,) = [d for w, d, _ in T.policy_documents() if w.startswith("ExecutionRole/")]
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert sub_text(by_sid["PullTheServiceImage"]["Resource"]).endswith(":repository/${EcrRepositoryName}")
    assert sub_text(by_sid["WriteTheServiceLogs"]["Resource"]) == "${LogGroup.Arn}:log-stream:*"


# ------------------------------------------------------------------------------------ the service


def container() -> dict:
    (definition,) = props("TaskDefinition")["ContainerDefinitions"]
    return definition


def container_environment() -> dict:
    return {e["Name"]: resolve(e["Value"]) for e in container()["Environment"]}


def test_the_task_passes_real_serve_settings_or_documented_contract_ones():
    contract = contract_variables(METRICS_DOC)
    known = serve_environment_variables()
    for name in container_environment():
        if name.startswith("MEDVIEW_"):
            assert name in known or name in contract, f"{name} is neither a serve option nor in docs/METRICS.md"


def test_production_settings():
    env = container_environment()
    assert env["MEDVIEW_ENV"] == "production"
    assert env["MEDVIEW_HOST"] == "0.0.0.0" and env["MEDVIEW_PORT"] == "8080"
    assert env["MEDVIEW_DATABASE_IAM_AUTH"] == "true"
    url = check_database_url(env["MEDVIEW_DATABASE_URL"])
    image_bundle = re.search(r"^IMAGE_RDS_CA=(\S+)$", (REPO / "scripts" / "build-image-rootfs.sh").read_text(), re.M).group(1)
    assert f"sslrootcert={image_bundle}" in url, "the database CA bundle is where the image puts it"
    assert env["MEDVIEW_KEY_PROVIDER"] == "kms" and refers_to(env["MEDVIEW_KMS_KEY_ID"], "EnvelopeKey")
    assert sub_text(env["MEDVIEW_COGNITO_ISSUER"]) == "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"
    assert refers_to(env["MEDVIEW_COGNITO_CLIENT_ID"], "UserPoolClient")
    assert sub_text(env["MEDVIEW_COGNITO_DOMAIN"]).startswith("https://${UserPoolDomain}.auth.")
    assert sub_text(env["MEDVIEW_COGNITO_REDIRECT_URI"]) == "https://${AppDomainName}/"
    assert env["MEDVIEW_LOG_FORMAT"] == "json"


def test_the_container_runs_as_the_images_non_root_user_on_a_read_only_root():
    c = container()
    assert c["User"] == "10001:10001"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    assert c["ReadonlyRootFilesystem"] is True
    mounted = {m["ContainerPath"] for m in c["MountPoints"]}
    assert mounted == {"/var/lib/medview", "/tmp"}
    assert container_environment()["MEDVIEW_DATA_DIR"] == "/var/lib/medview"
    assert c["PortMappings"][0]["ContainerPort"] == 8080 == props("TargetGroup")["Port"]


def test_two_or_more_tasks_across_zones_with_autoscaling_and_rollback():
    assert T.data["Parameters"]["DesiredCount"]["MinValue"] >= 2
    service = props("Service")
    assert service["DesiredCount"] == {"Ref": "DesiredCount"}
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"] == {"Ref": "PrivateSubnetIds"}
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert service["AvailabilityZoneRebalancing"] == "ENABLED"
    deploy = service["DeploymentConfiguration"]
    assert deploy["MinimumHealthyPercent"] >= 100, "a deploy never runs below the desired count"
    assert deploy["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert deploy["Alarms"]["Rollback"] is True
    target = props("ScalableTarget")
    assert target["MinCapacity"] == {"Ref": "DesiredCount"} and target["MaxCapacity"] == {"Ref": "MaxCount"}
    assert len(resources_of("AWS::ApplicationAutoScaling::ScalingPolicy")) >= 1
    assert len(resources_of("AWS::RDS::DBInstance")) >= 2, "a writer and a failover reader"


def test_the_service_starts_only_once_its_database_user_exists():
    assert "DatabaseUserSetup" in RESOURCES["Service"]["DependsOn"]


def test_load_balancer_tls_health_check_and_hidden_metrics():
    https = props("HttpsListener")
    assert https["Protocol"] == "HTTPS" and https["Port"] == 443
    assert https["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    http = props("HttpListener")
    assert [a["Type"] for a in http["DefaultActions"]] == ["redirect"], "plain HTTP only redirects"
    group = props("TargetGroup")
    assert group["HealthCheckPath"] == "/readyz"
    assert group["Matcher"] == {"HttpCode": "200"}
    rule = props("HideMetricsRule")
    assert "/metrics" in rule["Conditions"][0]["PathPatternConfig"]["Values"]
    assert rule["Actions"][0]["Type"] == "fixed-response"


# ------------------------------------------------------------------------------------ draining


def app_default_seconds(pattern: str, path: str) -> int:
    match = re.search(pattern, swift_source(path))
    assert match, f"{pattern} not found in {path}: the binary's default moved; update the Timing mapping"
    return int(match.group(1))


def target_group_attribute(key: str):
    (value,) = [resolve(a["Value"]) for a in props("TargetGroup")["TargetGroupAttributes"] if a["Key"] == key]
    return int(value)


def load_balancer_attribute(key: str):
    (value,) = [resolve(a["Value"]) for a in props("LoadBalancer")["LoadBalancerAttributes"] if a["Key"] == key]
    return int(value)


def test_timing_mapping_matches_the_binary():
    grace = app_default_seconds(r"shutdownGracePeriod: Duration = \.seconds\((\d+)\)", "Sources/MedViewServer/ServerConfiguration.swift")
    keepalive = app_default_seconds(r'"MEDVIEW_KEEPALIVE_SECONDS", (\d+)\)', "Sources/MedViewServer/ServerConfiguration+Resolve.swift")
    http_idle = app_default_seconds(r'"MEDVIEW_HTTP_IDLE_TIMEOUT_SECONDS", (\d+)\)', "Sources/MedViewServer/ServerConfiguration+Resolve.swift")
    assert mapping("Timing", "App", "ShutdownGraceSeconds") == grace
    assert mapping("Timing", "App", "KeepAliveSeconds") == keepalive == int(container_environment()["MEDVIEW_KEEPALIVE_SECONDS"])
    assert mapping("Timing", "App", "HttpIdleTimeoutSeconds") == http_idle == int(container_environment()["MEDVIEW_HTTP_IDLE_TIMEOUT_SECONDS"])


def test_deregistration_delay_covers_the_drain_so_a_deploy_drops_no_stream():
    grace = mapping("Timing", "App", "ShutdownGraceSeconds")
    delay = target_group_attribute("deregistration_delay.timeout_seconds")
    stop = int(resolve(container()["StopTimeout"]))
    # Draining first: an answer running when the task leaves the target group gets the app's whole
    # grace period (and a margin) before the balancer closes its connection and ECS sends SIGTERM.
    assert delay >= grace + 5, f"deregistration delay {delay}s < grace {grace}s + 5s"
    # Not so long that every deploy waits minutes for idle WebSockets to be cut (the default is 300 s).
    assert delay <= 2 * grace + 30
    # After SIGTERM the app drains (up to the grace period) and closes the store before SIGKILL.
    assert grace + 10 <= stop <= 120, f"stopTimeout {stop}s (Fargate allows at most 120 s)"


def test_idle_timeouts_keep_quiet_streams_open_and_let_the_balancer_close_first():
    idle = load_balancer_attribute("idle_timeout.timeout_seconds")
    keepalive = mapping("Timing", "App", "KeepAliveSeconds")
    http_idle = mapping("Timing", "App", "HttpIdleTimeoutSeconds")
    assert idle >= 2 * keepalive, "a WebSocket or SSE stream with nothing to say is kept alive by pings"
    assert idle < http_idle, "the balancer closes its idle pooled connections before the server does"


def test_health_check_takes_a_failing_task_out_within_half_a_minute():
    group = props("TargetGroup")
    assert group["HealthCheckIntervalSeconds"] * group["UnhealthyThresholdCount"] <= 30
    assert group["HealthCheckTimeoutSeconds"] > 5, "/readyz may take up to 5 s (its SELECT 1 timeout)"


# ------------------------------------------------------------------------------------ alarms


def alarm(name: str) -> dict:
    return props(name)


def test_task_health_alarms():
    unhealthy = alarm("UnhealthyTasksAlarm")
    assert unhealthy["MetricName"] == "UnHealthyHostCount" and unhealthy["Threshold"] == 0
    low = alarm("HealthyTasksLowAlarm")
    assert low["MetricName"] == "HealthyHostCount" and low["ComparisonOperator"] == "LessThanThreshold"
    assert low["Threshold"] == 2 and low["TreatMissingData"] == "breaching"


def test_prometheus_rules_read_only_documented_metrics():
    text = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\b(medview_[a-z_]+?)(?:_bucket|_count|_sum)?\b[{\[]", text))
    documented = set(re.findall(r"`(medview_[a-z_]+)`", METRICS_DOC.read_text(encoding="utf-8")))
    assert used and used <= documented, f"not in docs/METRICS.md: {used - documented}"


def test_availability_doc_states_the_templates_timings():
    text = (REPO / "docs" / "AVAILABILITY.md").read_text(encoding="utf-8")
    grace = mapping("Timing", "App", "ShutdownGraceSeconds")
    delay = target_group_attribute("deregistration_delay.timeout_seconds")
    stop = int(resolve(container()["StopTimeout"]))
    idle = load_balancer_attribute("idle_timeout.timeout_seconds")
    assert f"deregistration delay {delay} s, app grace {grace} s, stop timeout {stop} s" in text
    assert f"idle timeout {idle} s" in text
