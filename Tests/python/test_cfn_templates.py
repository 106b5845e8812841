"""What the two CloudFormation stacks promise alike, checked on both: the server stack
(deploy/aws/medview-ecs.yaml) and the serverless stack (deploy/aws/medview-lambda.yaml).

cfn-lint with no finding at all; encryption on every store of data; no `*` action and `*`
resources only where AWS needs them; the PHI envelope key usable only by the roles that handle
messages, with the app's encryption context; Aurora, Cognito and the database user alike; the
plan's three alarms on the metric names of docs/METRICS.md, all wired to the encrypted topic;
a dashboard that is JSON once substituted. Each stack's own promises are in
Tests/python/test_deploy_template.py and Tests/python/test_lambda_template.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest

from cfn_template import (
    REPO,
    VPC_NETWORK_ACTIONS,
    Template,
    as_list,
    assert_bound_to_the_apps_context,
    documented_cloudwatch_metrics,
    refers_to,
    sub_text,
)


@dataclass(frozen=True)
class Stack:
    template: Template
    #: Action sets that may have a `*` resource (no resource-level permission, no data).
    star_resource_actions: list
    #: The roles that may use the envelope (PHI) key.
    envelope_roles: set
    #: Alarms the stack has at least.
    alarms: int
    #: Dashboard widgets of this shape only.
    dashboard_titles: list


STACKS = {
    "ecs": lambda: Stack(
        Template(REPO / "deploy" / "aws" / "medview-ecs.yaml"),
        # ecr:GetAuthorizationToken has no resource.
        star_resource_actions=[{"ecr:GetAuthorizationToken"}],
        envelope_roles={"TaskRole"},
        alarms=5,
        dashboard_titles=["Tasks"],
    ),
    "lambda": lambda: Stack(
        Template(REPO / "deploy" / "aws" / "medview-lambda.yaml"),
        star_resource_actions=[VPC_NETWORK_ACTIONS],
        envelope_roles={"MessageRole", "StreamRole"},
        alarms=5,
        dashboard_titles=["Functions", "WebSocket API"],
    ),
}


@pytest.fixture(scope="module", params=sorted(STACKS))
def stack(request) -> Stack:
    return STACKS[request.param]()


#: Every resource type in the two templates, with what it stores. A new type makes the tests fail
#: until it is classified here (and, if it stores data, given an encryption check).
STORES = {
    "AWS::RDS::DBCluster": "conversations, messages, replay logs, wrapped data keys",
    "AWS::RDS::DBInstance": "Performance Insights data",
    "AWS::Logs::LogGroup": "service logs, API Gateway access and execution logs",
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
    # Code and configuration only: no setting holds a secret or PHI (the database signs in with IAM).
    "AWS::Lambda::Function", "AWS::Lambda::Url", "AWS::Lambda::Permission", "AWS::CloudFormation::CustomResource",
    # API Gateway keeps no message: frames pass through to the function, and data tracing is off.
    "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage", "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration", "AWS::ApiGateway::Account",
}


def test_cfn_lint_finds_nothing(stack: Stack):
    """No error, warning or informational finding."""
    t = stack.template
    exe = shutil.which("cfn-lint")
    command = [exe] if exe else [sys.executable, "-m", "cfnlint"]
    result = subprocess.run(
        [*command, "--include-checks", "I", "--", str(t.path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"cfn-lint {t.path.name}:\n{result.stdout}{result.stderr}"


def test_every_resource_type_is_classified(stack: Stack):
    t = stack.template
    unknown = {r["Type"] for r in t.resources.values()} - set(STORES) - NOT_STORES
    assert not unknown, f"classify these resource types in STORES or NOT_STORES (and check their encryption): {unknown}"


def test_every_kms_key_rotates_and_no_key_policy_grants_kms_star(stack: Stack):
    t = stack.template
    keys = t.resources_of("AWS::KMS::Key")
    assert len(keys) >= 3
    for name, key in keys.items():
        assert key["Properties"]["EnableKeyRotation"] is True, name
        assert key.get("DeletionPolicy") == "Retain" and key.get("UpdateReplacePolicy") == "Retain", name
        for statement in key["Properties"]["KeyPolicy"]["Statement"]:
            for action in as_list(statement["Action"]):
                assert action not in ("*", "kms:*"), f"{name}: {statement.get('Sid')} grants {action}"


def test_aurora_is_encrypted_with_a_customer_key_and_its_master_secret_too(stack: Stack):
    t = stack.template
    (name, cluster), = t.resources_of("AWS::RDS::DBCluster").items()
    p = cluster["Properties"]
    assert p["StorageEncrypted"] is True
    assert t.customer_key(p["KmsKeyId"]) == "DatabaseKey"
    assert p["ManageMasterUserPassword"] is True and "MasterUserPassword" not in p, "the master password lives in Secrets Manager only"
    assert t.customer_key(p["MasterUserSecret"]["KmsKeyId"]) == "DatabaseKey"
    assert cluster["DeletionPolicy"] == "Snapshot" and p["DeletionProtection"] is True
    assert p["BackupRetentionPeriod"] >= 7


def test_performance_insights_is_encrypted_with_the_database_key(stack: Stack):
    t = stack.template
    for name, instance in t.resources_of("AWS::RDS::DBInstance").items():
        p = instance["Properties"]
        assert p["PubliclyAccessible"] is False, name
        if p.get("EnablePerformanceInsights"):
            assert t.customer_key(p["PerformanceInsightsKMSKeyId"]) == "DatabaseKey", name


def test_logs_are_encrypted_and_kept_for_a_bounded_time(stack: Stack):
    t = stack.template
    groups = t.resources_of("AWS::Logs::LogGroup")
    assert groups
    for name, group in groups.items():
        assert t.customer_key(group["Properties"]["KmsKeyId"]) == "OperationsKey", name
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert group.get("DeletionPolicy") == "Retain", f"{name}: logs outlive the stack"
    assert max(t.data["Parameters"]["LogRetentionDays"]["AllowedValues"]) <= 3653


def test_the_alarm_topic_is_encrypted(stack: Stack):
    t = stack.template
    for name, topic in t.resources_of("AWS::SNS::Topic").items():
        assert t.customer_key(topic["Properties"]["KmsMasterKeyId"]), name


def test_the_database_speaks_tls_only_and_logs_no_statements(stack: Stack):
    t = stack.template
    parameters = t.props("DatabaseParameters")["Parameters"]
    assert str(parameters["rds.force_ssl"]) == "1"
    assert parameters["log_statement"] == "none"


def test_aurora_serverless_v2_with_iam_authentication(stack: Stack):
    t = stack.template
    cluster = t.props("DatabaseCluster")
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert "MinCapacity" in cluster["ServerlessV2ScalingConfiguration"]
    for instance in t.resources_of("AWS::RDS::DBInstance").values():
        assert instance["Properties"]["DBInstanceClass"] == "db.serverless"
    assert len(t.resources_of("AWS::RDS::DBInstance")) >= 2, "a writer and a failover reader"


def test_no_policy_allows_a_star_action(stack: Stack):
    t = stack.template
    for where, document, _ in t.policy_documents():
        for statement in document["Statement"]:
            assert "NotAction" not in statement and "NotResource" not in statement, where
            for action in as_list(statement["Action"]):
                assert action != "*" and not action.endswith(":*"), f"{where}: {action}"


def test_star_resources_only_where_aws_needs_them(stack: Stack):
    """A `*` resource only in key policies (where it means "this key") or on the stack's action sets
    (actions that have no resource-level permission and touch no data)."""
    t = stack.template
    for where, document, is_key_policy in t.policy_documents():
        for statement in document["Statement"]:
            if "*" in as_list(statement.get("Resource", [])):
                assert is_key_policy or set(as_list(statement["Action"])) in stack.star_resource_actions, where


def test_envelope_key_policy(stack: Stack):
    """Only the stack's roles that handle messages may use the PHI key, and only with the app's context."""
    t = stack.template
    crypto = {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo",
              "kms:GenerateDataKeyWithoutPlaintext", "kms:CreateGrant"}
    statements = t.props("EnvelopeKey")["KeyPolicy"]["Statement"]
    users = [s for s in statements if crypto & set(as_list(s["Action"]))]
    assert len(users) == 1
    principals = as_list(users[0]["Principal"]["AWS"])
    assert {r for r in t.resources_of("AWS::IAM::Role") if any(refers_to(p, r) for p in principals)} == stack.envelope_roles
    assert len(principals) == len(stack.envelope_roles)
    assert_bound_to_the_apps_context(users[0]["Condition"], "EnvelopeKey policy")
    for statement in statements:
        if statement is users[0]:
            continue
        for action in as_list(statement["Action"]):
            assert not action.startswith(("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt", "kms:GenerateDataKey")), \
                f"{statement['Sid']} lets administrators use the PHI key: {action}"


def test_cognito_public_client_with_code_flow_and_hosted_ui(stack: Stack):
    t = stack.template
    client = t.props("UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"]
    assert set(client["AllowedOAuthScopes"]) >= {"openid", "email"}
    assert [sub_text(u) for u in client["CallbackURLs"]] == ["https://${AppDomainName}/"]
    assert [sub_text(u) for u in client["LogoutURLs"]] == ["https://${AppDomainName}/"]
    assert refers_to(t.props("UserPoolDomain")["UserPoolId"], "UserPool")
    assert t.props("UserPool")["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True


def test_database_user_setup(stack: Stack):
    t = stack.template
    setup = t.props("DatabaseUserSetup")
    assert setup["User"] == {"Ref": "DatabaseUser"} and setup["Database"] == {"Ref": "DatabaseName"}
    code = t.props("DatabaseUserFunction")["Code"]["ZipFile"]
    assert "GRANT rds_iam TO {user}" in code and "OWNER TO {user}" in code
    assert t.props("DatabaseCluster")["EnableHttpEndpoint"] == {"Fn::If": ["DataApiOn", True, False]}


def test_the_alarms_wire_to_the_topic(stack: Stack):
    t = stack.template
    alarms = t.resources_of("AWS::CloudWatch::Alarm")
    assert len(alarms) >= stack.alarms
    for name, a in alarms.items():
        assert a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert a["Properties"]["OKActions"] == [{"Ref": "AlarmTopic"}], name


def test_streaming_latency_alarm_is_p95_above_two_seconds(stack: Stack):
    t = stack.template
    a = t.props("StreamingLatencyAlarm")
    assert a["MetricName"] == "TimeToFirstChunkMs" and a["ExtendedStatistic"] == "p95"
    assert a["Threshold"] == 2000 and a["ComparisonOperator"] == "GreaterThanThreshold"
    assert t.resolve(a["Namespace"]) == "MedView"
    assert a["Dimensions"] == [{"Name": "Service", "Value": {"Ref": "AWS::StackName"}}]


def test_connection_failure_alarm_is_failures_over_attempts_above_five_percent(stack: Stack):
    t = stack.template
    a = t.props("ConnectionFailureRateAlarm")
    metrics = {m["Id"]: m for m in a["Metrics"]}
    assert metrics["attempts"]["MetricStat"]["Metric"]["MetricName"] == "ConnectionAttempts"
    assert metrics["failures"]["MetricStat"]["Metric"]["MetricName"] == "ConnectionFailures"
    (returned,) = [m for m in a["Metrics"] if m["ReturnData"]]
    assert re.search(r"100 \* FILL\(failures, 0\) / attempts", returned["Expression"])
    assert a["Threshold"] == 5 and a["ComparisonOperator"] == "GreaterThanThreshold"


def test_bedrock_throttling_alarm(stack: Stack):
    t = stack.template
    a = t.props("BedrockThrottlingAlarm")
    assert a["MetricName"] == "ModelThrottles"
    assert {"Name": "Provider", "Value": "bedrock"} in a["Dimensions"]
    assert a["Threshold"] == 5 and a["ComparisonOperator"] == "GreaterThanThreshold"


def test_medview_metrics_are_in_the_contract(stack: Stack):
    t = stack.template
    used = t.medview_metrics_read()
    assert {"TimeToFirstChunkMs", "ConnectionAttempts", "ConnectionFailures", "ModelThrottles", "ConnectionsOpen",
            "ChunksDelivered", "StreamErrors"} <= used
    documented = documented_cloudwatch_metrics()
    assert used <= documented, f"not in docs/METRICS.md: {used - documented}"


def test_dashboard_body_is_json_once_substituted(stack: Stack):
    t = stack.template
    rendered = re.sub(r"\$\{[A-Za-z:.]+\}", "x", t.dashboard_body())
    dashboard = json.loads(rendered)
    titles = [w["properties"]["title"] for w in dashboard["widgets"]]
    for wanted in ["Open connections", "Time to first chunk", "Chunk delivery", "Connection failures", "Stream errors by code", "Alarms"]:
        assert any(title.startswith(wanted) for title in titles), wanted
    (alarm_widget,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(t.resources_of("AWS::CloudWatch::Alarm")), "every alarm on the dashboard"
    for wanted in stack.dashboard_titles:
        assert any(title.startswith(wanted) for title in titles), wanted
