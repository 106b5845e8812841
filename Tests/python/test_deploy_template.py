"""The CloudFormation template (deploy/aws/medview-ecs.yaml) keeps its promises.

cfn-lint passes with no error, warning or informational finding; then the template, parsed with
cfn-lint's own loader (which understands !Ref, !Sub, !GetAtt...), is held to what docs/DEPLOY.md,
docs/AVAILABILITY.md and docs/METRICS.md say about it: encryption on every store of data, the
alarm thresholds, least privilege (no `*` action, the one model, the encryption context the app's
KMS provider sends, the one database user), and timings that let a deploy drain without dropping
a stream, read against the binary's own defaults in Sources/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

cfnlint_decode = pytest.importorskip("cfnlint.decode")

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "aws" / "medview-ecs.yaml"
METRICS_DOC = REPO / "docs" / "METRICS.md"


def load_template() -> dict:
    template, matches = cfnlint_decode.decode(str(TEMPLATE))
    assert not matches, f"the template does not parse: {matches}"
    return template


T = load_template()
RESOURCES: dict = T["Resources"]


def resources_of(kind: str) -> dict[str, dict]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


def props(name: str) -> dict:
    return RESOURCES[name].get("Properties", {})


def mapping(*path: str):
    value = T["Mappings"]
    for key in path:
        value = value[key]
    return value


def resolve(value):
    """Resolves Fn::FindInMap against the template's mappings; leaves other intrinsics as they are."""
    if isinstance(value, dict) and set(value) == {"Fn::FindInMap"}:
        return mapping(*value["Fn::FindInMap"])
    return value


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def refers_to(value, resource: str) -> bool:
    """Whether `value` is a Ref or GetAtt (or a Sub naming it) of `resource`."""
    if isinstance(value, dict):
        if value.get("Ref") == resource:
            return True
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return (att[0] if isinstance(att, list) else att.split(".")[0]) == resource
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            return bool(re.search(r"\$\{" + re.escape(resource) + r"(\.[A-Za-z.]+)?\}", text))
    return False


def customer_key(value) -> str:
    """The name of the template's KMS key `value` refers to; fails for anything else."""
    for name in resources_of("AWS::KMS::Key"):
        if refers_to(value, name):
            return name
    raise AssertionError(f"{value!r} is not one of this template's customer-managed KMS keys")


def sub_text(value) -> str:
    assert isinstance(value, dict) and "Fn::Sub" in value, f"expected !Sub, got {value!r}"
    sub = value["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


def swift_source(relative: str) -> str:
    return (REPO / relative).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ cfn-lint


def test_cfn_lint_finds_nothing_not_even_informational():
    exe = shutil.which("cfn-lint")
    command = [exe] if exe else [sys.executable, "-m", "cfnlint"]
    result = subprocess.run(
        [*command, "--include-checks", "I", "--", str(TEMPLATE)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"cfn-lint:\n{result.stdout}{result.stderr}"


# ------------------------------------------------------------------------------------ encryption

#: Every resource type in the template, with what it stores. A new type makes this test fail until
#: it is classified here (and, if it stores data, given an encryption check below).
STORES = {
    "AWS::RDS::DBCluster": "conversations, messages, replay logs, wrapped data keys",
    "AWS::RDS::DBInstance": "Performance Insights data",
    "AWS::Logs::LogGroup": "service logs",
    "AWS::SNS::Topic": "alarm messages in flight",
}
NOT_STORES = {
    "AWS::KMS::Key", "AWS::KMS::Alias", "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupEgress",
    "AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::ListenerRule",
    "AWS::Route53::RecordSet", "AWS::RDS::DBSubnetGroup", "AWS::RDS::DBClusterParameterGroup",
    "AWS::Cognito::UserPool", "AWS::Cognito::UserPoolClient", "AWS::Cognito::UserPoolDomain",
    "AWS::ECS::Cluster", "AWS::ECS::TaskDefinition", "AWS::ECS::Service", "AWS::IAM::Role", "AWS::IAM::Policy",
    "AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard",
    "AWS::Lambda::Function", "AWS::CloudFormation::CustomResource",
}


def test_every_resource_type_is_classified_as_a_store_or_not():
    unknown = {r["Type"] for r in RESOURCES.values()} - set(STORES) - NOT_STORES
    assert not unknown, f"classify these resource types in STORES or NOT_STORES (and check their encryption): {unknown}"


def test_every_kms_key_rotates_and_no_key_policy_grants_kms_star():
    keys = resources_of("AWS::KMS::Key")
    assert len(keys) >= 3
    for name, key in keys.items():
        assert key["Properties"]["EnableKeyRotation"] is True, name
        assert key.get("DeletionPolicy") == "Retain" and key.get("UpdateReplacePolicy") == "Retain", name
        for statement in key["Properties"]["KeyPolicy"]["Statement"]:
            for action in as_list(statement["Action"]):
                assert action not in ("*", "kms:*"), f"{name}: {statement.get('Sid')} grants {action}"


def test_aurora_is_encrypted_with_a_customer_key_and_its_master_secret_too():
    (name, cluster), = resources_of("AWS::RDS::DBCluster").items()
    p = cluster["Properties"]
    assert p["StorageEncrypted"] is True
    assert customer_key(p["KmsKeyId"]) == "DatabaseKey"
    assert p["ManageMasterUserPassword"] is True and "MasterUserPassword" not in p, "the master password lives in Secrets Manager only"
    assert customer_key(p["MasterUserSecret"]["KmsKeyId"]) == "DatabaseKey"
    assert cluster["DeletionPolicy"] == "Snapshot" and p["DeletionProtection"] is True
    assert p["BackupRetentionPeriod"] >= 7


def test_performance_insights_is_encrypted_with_the_database_key():
    for name, instance in resources_of("AWS::RDS::DBInstance").items():
        p = instance["Properties"]
        assert p["PubliclyAccessible"] is False, name
        if p.get("EnablePerformanceInsights"):
            assert customer_key(p["PerformanceInsightsKMSKeyId"]) == "DatabaseKey", name


def test_logs_are_encrypted_and_kept_for_a_bounded_time():
    for name, group in resources_of("AWS::Logs::LogGroup").items():
        assert customer_key(group["Properties"]["KmsKeyId"]), name
        assert "RetentionInDays" in group["Properties"], name


def test_the_alarm_topic_is_encrypted():
    for name, topic in resources_of("AWS::SNS::Topic").items():
        assert customer_key(topic["Properties"]["KmsMasterKeyId"]), name


def test_the_database_speaks_tls_only_and_logs_no_statements():
    parameters = props("DatabaseParameters")["Parameters"]
    assert str(parameters["rds.force_ssl"]) == "1"
    assert parameters["log_statement"] == "none"


# ------------------------------------------------------------------------------------ least privilege


def policy_documents():
    """(where, document, is_key_policy) for every policy document in the template."""
    for name, r in RESOURCES.items():
        p = r.get("Properties", {})
        if r["Type"] == "AWS::IAM::Role":
            for inline in p.get("Policies", []):
                yield f"{name}/{inline['PolicyName']}", inline["PolicyDocument"], False
            assert "ManagedPolicyArns" not in p, f"{name}: managed policies hide their actions from this test"
        elif r["Type"] == "AWS::IAM::Policy":
            yield name, p["PolicyDocument"], False
        elif r["Type"] == "AWS::KMS::Key":
            yield name, p["KeyPolicy"], True
        elif r["Type"] == "AWS::SNS::TopicPolicy":
            yield name, p["PolicyDocument"], False


def test_no_policy_allows_a_star_action():
    for where, document, _ in policy_documents():
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow" or "NotAction" not in statement
            assert "NotAction" not in statement and "NotResource" not in statement, where
            for action in as_list(statement["Action"]):
                assert action != "*" and not action.endswith(":*"), f"{where}: {action}"


def test_star_resources_only_where_aws_needs_them():
    for where, document, is_key_policy in policy_documents():
        for statement in document["Statement"]:
            if "*" in as_list(statement.get("Resource", [])):
                # In a key policy "*" means "this key"; ecr:GetAuthorizationToken has no resource.
                assert is_key_policy or as_list(statement["Action"]) == ["ecr:GetAuthorizationToken"], where


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
        ["bedrock:InvokeModelWithResponseStream", "kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "rds-db:connect"]
    )


def test_bedrock_streaming_on_the_one_model_only():
    statement = task_statements()["StreamFromTheOneModel"]
    assert statement["Action"] == "bedrock:InvokeModelWithResponseStream"
    assert sub_text(statement["Resource"]) == "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/${BedrockModelId}"
    model_env = container_environment()["MEDVIEW_MODEL"]
    assert sub_text(model_env) == "bedrock:${BedrockModelId}", "the task streams from the model its role allows"


def app_encryption_context_keys() -> set[str]:
    source = swift_source("Sources/MedViewStore/Encryption/KMSKeyProvider.swift")
    body = re.search(r"func encryptionContext\(.*?\{(.*?)\n    \}", source, re.S).group(1)
    keys = set(re.findall(r'"(medview:[a-z-]+)"', body))
    assert len(keys) == 3, keys
    return keys


def assert_bound_to_the_apps_context(condition: dict, where: str):
    keys = app_encryption_context_keys()
    assert set(condition["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"]) == keys, where
    required = {k.removeprefix("kms:EncryptionContext:") for k, v in condition["Null"].items() if v == "false"}
    assert required == keys, f"{where}: every context key must be present, not only allowed"


def test_envelope_key_use_is_bound_to_the_encryption_context_the_app_sends():
    statement = task_statements()["EnvelopeKeyWithTheAppsEncryptionContextOnly"]
    assert refers_to(statement["Resource"], "EnvelopeKey")
    assert_bound_to_the_apps_context(statement["Condition"], "TaskPolicy")
    # The key policy says the same, and gives no one else the key's cryptographic operations.
    crypto = {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo",
              "kms:GenerateDataKeyWithoutPlaintext", "kms:CreateGrant"}
    users = [s for s in props("EnvelopeKey")["KeyPolicy"]["Statement"] if crypto & set(as_list(s["Action"]))]
    assert len(users) == 1 and refers_to(users[0]["Principal"]["AWS"], "TaskRole")
    assert_bound_to_the_apps_context(users[0]["Condition"], "EnvelopeKey policy")
    for statement in props("EnvelopeKey")["KeyPolicy"]["Statement"]:
        if statement is users[0]:
            continue
        for action in as_list(statement["Action"]):
            assert not action.startswith(("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt", "kms:GenerateDataKey")), \
                f"{statement['Sid']} lets administrators use the PHI key: {action}"


def test_database_connect_as_the_service_user_only():
    statement = task_statements()["ConnectAsTheServiceUserOnly"]
    assert statement["Action"] == "rds-db:connect"
    assert sub_text(statement["Resource"]) == (
        "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${DatabaseCluster.DBClusterResourceId}/${DatabaseUser}"
    )
    url = sub_text(container_environment()["MEDVIEW_DATABASE_URL"])
    assert url.startswith("postgres://${DatabaseUser}@"), "the URL signs in as the user the role may connect as"


def test_the_execution_role_pulls_one_repository_and_writes_one_log_group():
    (document,) = [d for w, d, _ in policy_documents() if w.startswith("ExecutionRole/")]
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert sub_text(by_sid["PullTheServiceImage"]["Resource"]).endswith(":repository/${EcrRepositoryName}")
    assert sub_text(by_sid["WriteTheServiceLogs"]["Resource"]) == "${LogGroup.Arn}:log-stream:*"


# ------------------------------------------------------------------------------------ the service


def container() -> dict:
    (definition,) = props("TaskDefinition")["ContainerDefinitions"]
    return definition


def container_environment() -> dict:
    return {e["Name"]: resolve(e["Value"]) for e in container()["Environment"]}


def serve_environment_variables() -> set[str]:
    """Every MEDVIEW_* variable `medview serve` reads (its options' help names them)."""
    names = set()
    for path in ["Sources/medview/MedView.swift", "Sources/medview/MigrateCommand.swift"]:
        names |= set(re.findall(r"\[env: (MEDVIEW_[A-Z_]+)", swift_source(path)))
    assert "MEDVIEW_DATABASE_URL" in names and "MEDVIEW_KMS_KEY_ID" in names
    return names


def test_the_task_passes_real_serve_settings_or_documented_contract_ones():
    contract = set(re.findall(r"`(MEDVIEW_[A-Z_]+)`", METRICS_DOC.read_text(encoding="utf-8")))
    known = serve_environment_variables()
    for name in container_environment():
        if name.startswith("MEDVIEW_"):
            assert name in known or name in contract, f"{name} is neither a serve option nor in docs/METRICS.md"


def test_production_settings():
    env = container_environment()
    assert env["MEDVIEW_ENV"] == "production"
    assert env["MEDVIEW_HOST"] == "0.0.0.0" and env["MEDVIEW_PORT"] == "8080"
    assert env["MEDVIEW_DATABASE_IAM_AUTH"] == "true"
    url = sub_text(env["MEDVIEW_DATABASE_URL"])
    assert "sslmode=verify-full" in url
    image_bundle = re.search(r"^IMAGE_RDS_CA=(\S+)$", (REPO / "scripts" / "build-image-rootfs.sh").read_text(), re.M).group(1)
    assert f"sslrootcert={image_bundle}" in url, "the database CA bundle is where the image puts it"
    assert "password" not in url.lower() and ":${" not in url.split("@")[0], "no password in the URL"
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
    assert T["Parameters"]["DesiredCount"]["MinValue"] >= 2
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
    setup = props("DatabaseUserSetup")
    assert setup["User"] == {"Ref": "DatabaseUser"} and setup["Database"] == {"Ref": "DatabaseName"}
    assert "DatabaseUserSetup" in RESOURCES["Service"]["DependsOn"]
    code = props("DatabaseUserFunction")["Code"]["ZipFile"]
    assert "GRANT rds_iam TO {user}" in code and "OWNER TO {user}" in code
    assert props("DatabaseCluster")["EnableHttpEndpoint"] == {"Fn::If": ["DataApiOn", True, False]}


def test_aurora_serverless_v2_with_iam_authentication():
    cluster = props("DatabaseCluster")
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert "MinCapacity" in cluster["ServerlessV2ScalingConfiguration"]
    for instance in resources_of("AWS::RDS::DBInstance").values():
        assert instance["Properties"]["DBInstanceClass"] == "db.serverless"


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


def test_cognito_public_client_with_code_flow_and_hosted_ui():
    client = props("UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"]
    assert set(client["AllowedOAuthScopes"]) >= {"openid", "email"}
    assert [sub_text(u) for u in client["CallbackURLs"]] == ["https://${AppDomainName}/"]
    assert [sub_text(u) for u in client["LogoutURLs"]] == ["https://${AppDomainName}/"]
    assert refers_to(props("UserPoolDomain")["UserPoolId"], "UserPool")
    assert props("UserPool")["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True


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


def documented_cloudwatch_metrics() -> set[str]:
    text = METRICS_DOC.read_text(encoding="utf-8")
    section = text.split("## The measurements", 1)[1].split("## The alarms", 1)[0]
    return set(re.findall(r"`([A-Z][A-Za-z]+)`", section))


def test_the_alarms_wire_to_the_topic():
    alarms = resources_of("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 4
    for name, a in alarms.items():
        assert a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert a["Properties"]["OKActions"] == [{"Ref": "AlarmTopic"}], name


def test_streaming_latency_alarm_is_p95_above_two_seconds():
    a = alarm("StreamingLatencyAlarm")
    assert a["MetricName"] == "TimeToFirstChunkMs" and a["ExtendedStatistic"] == "p95"
    assert a["Threshold"] == 2000 and a["ComparisonOperator"] == "GreaterThanThreshold"
    assert resolve(a["Namespace"]) == "MedView"


def test_connection_failure_alarm_is_failures_over_attempts_above_five_percent():
    a = alarm("ConnectionFailureRateAlarm")
    metrics = {m["Id"]: m for m in a["Metrics"]}
    assert metrics["attempts"]["MetricStat"]["Metric"]["MetricName"] == "ConnectionAttempts"
    assert metrics["failures"]["MetricStat"]["Metric"]["MetricName"] == "ConnectionFailures"
    (returned,) = [m for m in a["Metrics"] if m["ReturnData"]]
    assert re.search(r"100 \* FILL\(failures, 0\) / attempts", returned["Expression"])
    assert a["Threshold"] == 5 and a["ComparisonOperator"] == "GreaterThanThreshold"


def test_bedrock_throttling_alarm():
    a = alarm("BedrockThrottlingAlarm")
    assert a["MetricName"] == "ModelThrottles"
    assert {"Name": "Provider", "Value": "bedrock"} in a["Dimensions"]
    assert a["Threshold"] == 5 and a["ComparisonOperator"] == "GreaterThanThreshold"


def test_task_health_alarms():
    unhealthy = alarm("UnhealthyTasksAlarm")
    assert unhealthy["MetricName"] == "UnHealthyHostCount" and unhealthy["Threshold"] == 0
    low = alarm("HealthyTasksLowAlarm")
    assert low["MetricName"] == "HealthyHostCount" and low["ComparisonOperator"] == "LessThanThreshold"
    assert low["Threshold"] == 2 and low["TreatMissingData"] == "breaching"


def test_every_medview_metric_the_alarms_and_dashboard_read_is_in_the_contract():
    documented = documented_cloudwatch_metrics()
    used = set()
    for a in resources_of("AWS::CloudWatch::Alarm").values():
        p = a["Properties"]
        if resolve(p.get("Namespace")) == "MedView":
            used.add(p["MetricName"])
        for m in p.get("Metrics", []):
            if "MetricStat" in m and resolve(m["MetricStat"]["Metric"]["Namespace"]) == "MedView":
                used.add(m["MetricStat"]["Metric"]["MetricName"])
    body = props("Dashboard")["DashboardBody"]["Fn::Sub"][0]
    used |= set(re.findall(r'\["\$\{Namespace\}", "([A-Za-z]+)"', body))
    used |= set(re.findall(r'MetricName=\\"([A-Za-z]+)\\"', body))
    assert {"TimeToFirstChunkMs", "ConnectionAttempts", "ConnectionFailures", "ModelThrottles", "ConnectionsOpen",
            "ChunksDelivered", "StreamErrors"} <= used
    assert used <= documented, f"not in docs/METRICS.md: {used - documented}"


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


def test_dashboard_body_is_json_once_substituted():
    import json

    body = props("Dashboard")["DashboardBody"]["Fn::Sub"][0]
    rendered = re.sub(r"\$\{[A-Za-z:.]+\}", "x", body)
    dashboard = json.loads(rendered)
    titles = [w["properties"]["title"] for w in dashboard["widgets"]]
    for wanted in ["Open connections", "Time to first chunk", "Chunk delivery", "Connection failures", "Stream errors by code", "Alarms"]:
        assert any(t.startswith(wanted) for t in titles), wanted
