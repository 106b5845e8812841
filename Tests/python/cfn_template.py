"""What the two CloudFormation stacks (deploy/aws/medview-ecs.yaml, deploy/aws/medview-lambda.yaml)
promise alike, checked once: cfn-lint with no finding at all, encryption on every store of data,
no `*` action, envelope-key use bound to the app's encryption context, the plan's three alarms on
the metric names of docs/METRICS.md, and a dashboard that is JSON once substituted.

Used by Tests/python/test_deploy_template.py and Tests/python/test_lambda_template.py; each adds
what only its shape promises.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

cfnlint_decode = pytest.importorskip("cfnlint.decode")

REPO = Path(__file__).resolve().parents[2]
METRICS_DOC = REPO / "docs" / "METRICS.md"


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
            return bool(re.search(r"\$\{" + re.escape(resource) + r"(\.[A-Za-z.]+)?\}", sub_text(value)))
    return False


def sub_text(value) -> str:
    assert isinstance(value, dict) and "Fn::Sub" in value, f"expected !Sub, got {value!r}"
    sub = value["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


def swift_source(relative: str) -> str:
    return (REPO / relative).read_text(encoding="utf-8")


class Template:
    """A template parsed with cfn-lint's own loader (which understands !Ref, !Sub, !GetAtt...)."""

    def __init__(self, path: Path):
        self.path = path
        data, matches = cfnlint_decode.decode(str(path))
        assert not matches, f"{path.name} does not parse: {matches}"
        self.data: dict = data
        self.resources: dict = data["Resources"]

    def resources_of(self, kind: str) -> dict[str, dict]:
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}

    def props(self, name: str) -> dict:
        return self.resources[name].get("Properties", {})

    def mapping(self, *path: str):
        value = self.data["Mappings"]
        for key in path:
            value = value[key]
        return value

    def resolve(self, value):
        """Resolves Fn::FindInMap against the template's mappings; leaves other intrinsics as they are."""
        if isinstance(value, dict) and set(value) == {"Fn::FindInMap"}:
            return self.mapping(*value["Fn::FindInMap"])
        return value

    def customer_key(self, value) -> str:
        """The name of the template's KMS key `value` refers to; fails for anything else."""
        for name in self.resources_of("AWS::KMS::Key"):
            if refers_to(value, name):
                return name
        raise AssertionError(f"{value!r} is not one of this template's customer-managed KMS keys")

    def policy_documents(self):
        """(where, document, is_key_policy) for every policy document in the template."""
        for name, r in self.resources.items():
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

    def dashboard_body(self) -> str:
        return self.props("Dashboard")["DashboardBody"]["Fn::Sub"][0]

    def medview_metrics_read(self) -> set[str]:
        """Every metric of the MedView namespace that the alarms and the dashboard read."""
        used = set()
        for a in self.resources_of("AWS::CloudWatch::Alarm").values():
            p = a["Properties"]
            if self.resolve(p.get("Namespace")) == "MedView":
                used.add(p["MetricName"])
            for m in p.get("Metrics", []):
                if "MetricStat" in m and self.resolve(m["MetricStat"]["Metric"]["Namespace"]) == "MedView":
                    used.add(m["MetricStat"]["Metric"]["MetricName"])
        body = self.dashboard_body()
        used |= set(re.findall(r'\["\$\{Namespace\}", "([A-Za-z]+)"', body))
        used |= set(re.findall(r'MetricName=\\"([A-Za-z]+)\\"', body))
        return used


# ------------------------------------------------------------------------------------ cfn-lint


def check_cfn_lint_finds_nothing(t: Template):
    """No error, warning or informational finding."""
    exe = shutil.which("cfn-lint")
    command = [exe] if exe else [sys.executable, "-m", "cfnlint"]
    result = subprocess.run(
        [*command, "--include-checks", "I", "--", str(t.path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"cfn-lint {t.path.name}:\n{result.stdout}{result.stderr}"


# ------------------------------------------------------------------------------------ encryption

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


def check_every_resource_type_is_classified(t: Template):
    unknown = {r["Type"] for r in t.resources.values()} - set(STORES) - NOT_STORES
    assert not unknown, f"classify these resource types in STORES or NOT_STORES (and check their encryption): {unknown}"


def check_every_kms_key_rotates_and_no_key_policy_grants_kms_star(t: Template):
    keys = t.resources_of("AWS::KMS::Key")
    assert len(keys) >= 3
    for name, key in keys.items():
        assert key["Properties"]["EnableKeyRotation"] is True, name
        assert key.get("DeletionPolicy") == "Retain" and key.get("UpdateReplacePolicy") == "Retain", name
        for statement in key["Properties"]["KeyPolicy"]["Statement"]:
            for action in as_list(statement["Action"]):
                assert action not in ("*", "kms:*"), f"{name}: {statement.get('Sid')} grants {action}"


def check_aurora_is_encrypted_with_a_customer_key_and_its_master_secret_too(t: Template):
    (name, cluster), = t.resources_of("AWS::RDS::DBCluster").items()
    p = cluster["Properties"]
    assert p["StorageEncrypted"] is True
    assert t.customer_key(p["KmsKeyId"]) == "DatabaseKey"
    assert p["ManageMasterUserPassword"] is True and "MasterUserPassword" not in p, "the master password lives in Secrets Manager only"
    assert t.customer_key(p["MasterUserSecret"]["KmsKeyId"]) == "DatabaseKey"
    assert cluster["DeletionPolicy"] == "Snapshot" and p["DeletionProtection"] is True
    assert p["BackupRetentionPeriod"] >= 7


def check_performance_insights_is_encrypted_with_the_database_key(t: Template):
    for name, instance in t.resources_of("AWS::RDS::DBInstance").items():
        p = instance["Properties"]
        assert p["PubliclyAccessible"] is False, name
        if p.get("EnablePerformanceInsights"):
            assert t.customer_key(p["PerformanceInsightsKMSKeyId"]) == "DatabaseKey", name


def check_logs_are_encrypted_and_kept_for_a_bounded_time(t: Template):
    groups = t.resources_of("AWS::Logs::LogGroup")
    assert groups
    for name, group in groups.items():
        assert t.customer_key(group["Properties"]["KmsKeyId"]) == "OperationsKey", name
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert group.get("DeletionPolicy") == "Retain", f"{name}: logs outlive the stack"
    assert max(t.data["Parameters"]["LogRetentionDays"]["AllowedValues"]) <= 3653


def check_the_alarm_topic_is_encrypted(t: Template):
    for name, topic in t.resources_of("AWS::SNS::Topic").items():
        assert t.customer_key(topic["Properties"]["KmsMasterKeyId"]), name


def check_the_database_speaks_tls_only_and_logs_no_statements(t: Template):
    parameters = t.props("DatabaseParameters")["Parameters"]
    assert str(parameters["rds.force_ssl"]) == "1"
    assert parameters["log_statement"] == "none"


def check_aurora_serverless_v2_with_iam_authentication(t: Template):
    cluster = t.props("DatabaseCluster")
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert "MinCapacity" in cluster["ServerlessV2ScalingConfiguration"]
    for instance in t.resources_of("AWS::RDS::DBInstance").values():
        assert instance["Properties"]["DBInstanceClass"] == "db.serverless"
    assert len(t.resources_of("AWS::RDS::DBInstance")) >= 2, "a writer and a failover reader"


# ------------------------------------------------------------------------------------ least privilege


def check_no_policy_allows_a_star_action(t: Template):
    for where, document, _ in t.policy_documents():
        for statement in document["Statement"]:
            assert "NotAction" not in statement and "NotResource" not in statement, where
            for action in as_list(statement["Action"]):
                assert action != "*" and not action.endswith(":*"), f"{where}: {action}"


def check_star_resources_only_where_aws_needs_them(t: Template, allowed: list[set[str]]):
    """A `*` resource only in key policies (where it means "this key") or on the action sets given
    (actions that have no resource-level permission and touch no data)."""
    for where, document, is_key_policy in t.policy_documents():
        for statement in document["Statement"]:
            if "*" in as_list(statement.get("Resource", [])):
                assert is_key_policy or set(as_list(statement["Action"])) in allowed, where


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


def check_envelope_key_policy(t: Template, roles: set[str]):
    """Only `roles` may use the PHI key's cryptographic operations, and only with the app's context."""
    crypto = {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo",
              "kms:GenerateDataKeyWithoutPlaintext", "kms:CreateGrant"}
    statements = t.props("EnvelopeKey")["KeyPolicy"]["Statement"]
    users = [s for s in statements if crypto & set(as_list(s["Action"]))]
    assert len(users) == 1
    principals = as_list(users[0]["Principal"]["AWS"])
    assert {r for r in t.resources_of("AWS::IAM::Role") if any(refers_to(p, r) for p in principals)} == roles
    assert len(principals) == len(roles)
    assert_bound_to_the_apps_context(users[0]["Condition"], "EnvelopeKey policy")
    for statement in statements:
        if statement is users[0]:
            continue
        for action in as_list(statement["Action"]):
            assert not action.startswith(("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt", "kms:GenerateDataKey")), \
                f"{statement['Sid']} lets administrators use the PHI key: {action}"


def check_model_statement(statement: dict):
    assert statement["Action"] == "bedrock:InvokeModelWithResponseStream"
    assert sub_text(statement["Resource"]) == "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/${BedrockModelId}"


def check_database_connect_statement(statement: dict):
    assert statement["Action"] == "rds-db:connect"
    assert sub_text(statement["Resource"]) == (
        "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${DatabaseCluster.DBClusterResourceId}/${DatabaseUser}"
    )


def check_database_url(url_value):
    """The service signs in as the user its role may connect as, over verified TLS, with no password."""
    url = sub_text(url_value)
    assert url.startswith("postgres://${DatabaseUser}@"), "the URL signs in as the user the role may connect as"
    assert "sslmode=verify-full" in url
    assert "password" not in url.lower() and ":${" not in url.split("@")[0], "no password in the URL"
    return url


def check_cognito_public_client_with_code_flow_and_hosted_ui(t: Template):
    client = t.props("UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"]
    assert set(client["AllowedOAuthScopes"]) >= {"openid", "email"}
    assert [sub_text(u) for u in client["CallbackURLs"]] == ["https://${AppDomainName}/"]
    assert [sub_text(u) for u in client["LogoutURLs"]] == ["https://${AppDomainName}/"]
    assert refers_to(t.props("UserPoolDomain")["UserPoolId"], "UserPool")
    assert t.props("UserPool")["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True


def check_database_user_setup(t: Template):
    setup = t.props("DatabaseUserSetup")
    assert setup["User"] == {"Ref": "DatabaseUser"} and setup["Database"] == {"Ref": "DatabaseName"}
    code = t.props("DatabaseUserFunction")["Code"]["ZipFile"]
    assert "GRANT rds_iam TO {user}" in code and "OWNER TO {user}" in code
    assert t.props("DatabaseCluster")["EnableHttpEndpoint"] == {"Fn::If": ["DataApiOn", True, False]}


def serve_environment_variables() -> set[str]:
    """Every MEDVIEW_* variable `medview serve` reads (its options' help names them)."""
    names = set()
    for path in ["Sources/medview/MedView.swift", "Sources/medview/MigrateCommand.swift"]:
        names |= set(re.findall(r"\[env: (MEDVIEW_[A-Z_]+)", swift_source(path)))
    assert "MEDVIEW_DATABASE_URL" in names and "MEDVIEW_KMS_KEY_ID" in names
    return names


def contract_variables(*docs: Path) -> set[str]:
    names = set()
    for doc in docs:
        names |= set(re.findall(r"`(MEDVIEW_[A-Z_]+)`", doc.read_text(encoding="utf-8")))
    return names


# ------------------------------------------------------------------------------------ alarms


def documented_cloudwatch_metrics() -> set[str]:
    text = METRICS_DOC.read_text(encoding="utf-8")
    section = text.split("## The measurements", 1)[1].split("## The alarms", 1)[0]
    return set(re.findall(r"`([A-Z][A-Za-z]+)`", section))


def check_the_alarms_wire_to_the_topic(t: Template, at_least: int):
    alarms = t.resources_of("AWS::CloudWatch::Alarm")
    assert len(alarms) >= at_least
    for name, a in alarms.items():
        assert a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert a["Properties"]["OKActions"] == [{"Ref": "AlarmTopic"}], name


def check_streaming_latency_alarm_is_p95_above_two_seconds(t: Template):
    a = t.props("StreamingLatencyAlarm")
    assert a["MetricName"] == "TimeToFirstChunkMs" and a["ExtendedStatistic"] == "p95"
    assert a["Threshold"] == 2000 and a["ComparisonOperator"] == "GreaterThanThreshold"
    assert t.resolve(a["Namespace"]) == "MedView"
    assert a["Dimensions"] == [{"Name": "Service", "Value": {"Ref": "AWS::StackName"}}]


def check_connection_failure_alarm_is_failures_over_attempts_above_five_percent(t: Template):
    a = t.props("ConnectionFailureRateAlarm")
    metrics = {m["Id"]: m for m in a["Metrics"]}
    assert metrics["attempts"]["MetricStat"]["Metric"]["MetricName"] == "ConnectionAttempts"
    assert metrics["failures"]["MetricStat"]["Metric"]["MetricName"] == "ConnectionFailures"
    (returned,) = [m for m in a["Metrics"] if m["ReturnData"]]
    assert re.search(r"100 \* FILL\(failures, 0\) / attempts", returned["Expression"])
    assert a["Threshold"] == 5 and a["ComparisonOperator"] == "GreaterThanThreshold"


def check_bedrock_throttling_alarm(t: Template):
    a = t.props("BedrockThrottlingAlarm")
    assert a["MetricName"] == "ModelThrottles"
    assert {"Name": "Provider", "Value": "bedrock"} in a["Dimensions"]
    assert a["Threshold"] == 5 and a["ComparisonOperator"] == "GreaterThanThreshold"


def check_medview_metrics_are_in_the_contract(t: Template):
    used = t.medview_metrics_read()
    assert {"TimeToFirstChunkMs", "ConnectionAttempts", "ConnectionFailures", "ModelThrottles", "ConnectionsOpen",
            "ChunksDelivered", "StreamErrors"} <= used
    documented = documented_cloudwatch_metrics()
    assert used <= documented, f"not in docs/METRICS.md: {used - documented}"


def check_dashboard_body_is_json_once_substituted(t: Template) -> list[str]:
    rendered = re.sub(r"\$\{[A-Za-z:.]+\}", "x", t.dashboard_body())
    dashboard = json.loads(rendered)
    titles = [w["properties"]["title"] for w in dashboard["widgets"]]
    for wanted in ["Open connections", "Time to first chunk", "Chunk delivery", "Connection failures", "Stream errors by code", "Alarms"]:
        assert any(title.startswith(wanted) for title in titles), wanted
    (alarm_widget,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(t.resources_of("AWS::CloudWatch::Alarm")), "every alarm on the dashboard"
    return titles
