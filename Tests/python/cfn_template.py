"""Reading the CloudFormation stacks (deploy/aws/medview-ecs.yaml, deploy/aws/medview-lambda.yaml)
for the tests: the template parsed as cfn-lint parses it, and the checks both stacks' tests use
(Tests/python/test_cfn_templates.py, test_deploy_template.py, test_lambda_template.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

cfnlint_decode = pytest.importorskip("cfnlint.decode")

REPO = Path(__file__).resolve().parents[2]
METRICS_DOC = REPO / "docs" / "METRICS.md"


#: EC2 network-interface actions every Lambda function in a VPC needs (what
#: AWSLambdaVPCAccessExecutionRole grants): no resource-level permission for Describe, no data.
VPC_NETWORK_ACTIONS = {
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
}


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


def check_model_statement(statement: dict):
    # Streamed answers, and the safety triage's unstreamed one-word reply.
    assert sorted(as_list(statement["Action"])) == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
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


