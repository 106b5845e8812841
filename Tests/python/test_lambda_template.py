"""The serverless stack (deploy/aws/medview-lambda.yaml) keeps its promises.

What it shares with the server stack — cfn-lint with no finding, encryption on every store of
data, no `*` action, the envelope key bound to the app's encryption context, the plan's three
alarms — is checked on both in Tests/python/test_cfn_templates.py. Here, what docs/DEPLOY-LAMBDA.md
says of this shape only: reserved concurrency on every function, timeouts against API Gateway's
limits, the function URL in RESPONSE_STREAM mode, the WebSocket routes, Management API rights on
this API's connections only, per-function least privilege, and the three alarms and the
dashboard's metrics the same as the server stack's, field for field.
"""

from __future__ import annotations

import json
import re

import cfn_template as cfn
from cfn_template import REPO, VPC_NETWORK_ACTIONS, Template, as_list, refers_to, sub_text

TEMPLATE = REPO / "deploy" / "aws" / "medview-lambda.yaml"
DEPLOY_DOC = REPO / "docs" / "DEPLOY-LAMBDA.md"
PACKAGE_SCRIPT = REPO / "scripts" / "package-lambda.sh"

T = Template(TEMPLATE)
ECS = Template(REPO / "deploy" / "aws" / "medview-ecs.yaml")

#: The functions that run the `bootstrap` zip, and the role each runs as.
BOOTSTRAP_FUNCTIONS = {"ConnectionFunction": "ConnectionRole", "MessageFunction": "MessageRole", "StreamFunction": "StreamRole"}


def function(name: str) -> dict:
    return T.props(name)


def parameter(name: str) -> dict:
    return T.data["Parameters"][name]


# ------------------------------------------------------------------------------------ shared promises


# ------------------------------------------------------------------------------------ functions


def test_every_function_has_reserved_concurrency():
    functions = T.resources_of("AWS::Lambda::Function")
    assert set(BOOTSTRAP_FUNCTIONS) <= set(functions)
    for name, f in functions.items():
        reserved = f["Properties"].get("ReservedConcurrentExecutions")
        assert reserved is not None, f"{name}: no reserved concurrency"
        if isinstance(reserved, dict):
            (param,) = reserved.values()
            assert set(reserved) == {"Ref"} and parameter(param)["MinValue"] >= 1, name
        else:
            assert reserved >= 1, name


def test_the_bootstrap_functions_run_the_packaged_zip_on_provided_al2023():
    for name in BOOTSTRAP_FUNCTIONS:
        p = function(name)
        assert p["Runtime"] == "provided.al2023", name
        assert p["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}, name
        assert p["Architectures"] == [{"Ref": "Architecture"}], name
    assert set(parameter("Architecture")["AllowedValues"]) == {"x86_64", "arm64"}
    assert parameter("CodeKey")["AllowedPattern"].endswith("\\.zip$")


def test_each_function_logs_to_its_own_encrypted_group_as_written():
    groups = set()
    for name in [*BOOTSTRAP_FUNCTIONS, "DatabaseUserFunction"]:
        config = function(name)["LoggingConfig"]
        (group,) = [g for g in T.resources_of("AWS::Logs::LogGroup") if refers_to(config["LogGroup"], g)]
        groups.add(group)
        if name in BOOTSTRAP_FUNCTIONS:
            # EMF records must reach CloudWatch as the lines the app wrote.
            assert config["LogFormat"] == "Text", name
    assert len(groups) == 4, "one group per function"


def test_functions_reach_aurora_from_the_private_subnets_and_nothing_reaches_them():
    for name in BOOTSTRAP_FUNCTIONS:
        vpc = function(name)["VpcConfig"]
        assert vpc["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
        assert vpc["SecurityGroupIds"] == [{"Ref": "FunctionSecurityGroup"}]
    assert "SecurityGroupIngress" not in T.props("FunctionSecurityGroup")
    (ingress,) = T.props("DatabaseSecurityGroup")["SecurityGroupIngress"]
    assert ingress["SourceSecurityGroupId"] == {"Ref": "FunctionSecurityGroup"} and ingress["FromPort"] == 5432


def test_timeouts_fit_api_gateway_and_the_longest_answer():
    integration_ms = T.mapping("Settings", "WebSocket", "IntegrationTimeoutMs")
    assert integration_ms == 29000, "API Gateway's WebSocket integration timeout is at most 29 s"
    for name, integration in T.resources_of("AWS::ApiGatewayV2::Integration").items():
        assert T.resolve(integration["Properties"]["TimeoutInMillis"]) == integration_ms, name
    # $connect: nothing the function does may outlast API Gateway's wait, after which it refuses the connection.
    assert T.resolve(function("ConnectionFunction")["Timeout"]) * 1000 <= integration_ms
    # The answer is produced inside the invocation that started it: up to Lambda's 15 minutes.
    for name in ["MessageFunction", "StreamFunction"]:
        assert function(name)["Timeout"] == {"Ref": "MessageTimeoutSeconds"}, name
    timeout = parameter("MessageTimeoutSeconds")
    assert timeout["Default"] == timeout["MaxValue"] == 900
    # An answer of the longest allowed length (1,024 tokens) plus the model's own timeout fits.
    assert timeout["MinValue"] >= 120


def test_the_functions_get_production_settings():
    for name in BOOTSTRAP_FUNCTIONS:
        env = function(name)["Environment"]["Variables"]
        assert env == function("MessageFunction")["Environment"]["Variables"], "one configuration, one binary"
    env = function("MessageFunction")["Environment"]["Variables"]
    assert env["MEDVIEW_ENV"] == "production"
    assert sub_text(env["MEDVIEW_MODEL"]) == "bedrock:${BedrockModelId}"
    assert env["MEDVIEW_DATABASE_IAM_AUTH"] == "true"
    assert env["MEDVIEW_KEY_PROVIDER"] == "kms" and refers_to(env["MEDVIEW_KMS_KEY_ID"], "EnvelopeKey")
    assert sub_text(env["MEDVIEW_COGNITO_ISSUER"]) == "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"
    assert refers_to(env["MEDVIEW_COGNITO_CLIENT_ID"], "UserPoolClient")
    assert sub_text(env["MEDVIEW_ALLOWED_ORIGINS"]) == "https://${AppDomainName}"
    assert env["MEDVIEW_LOG_FORMAT"] == "json"
    assert T.resolve(env["MEDVIEW_METRICS_NAMESPACE"]) == "MedView" and env["MEDVIEW_METRICS_SERVICE"] == {"Ref": "AWS::StackName"}
    assert T.resolve(env["MEDVIEW_DATA_DIR"]).startswith("/tmp/"), "Lambda's only writable path"
    assert not [k for k in env if k.startswith(("AWS_", "LAMBDA_", "_"))], "Lambda reserves these names"


def test_the_database_url_names_the_ca_bundle_the_zip_carries():
    env = function("MessageFunction")["Environment"]["Variables"]
    url = cfn.check_database_url({"Fn::Sub": env["MEDVIEW_DATABASE_URL"]["Fn::Sub"][0]})
    bundle = T.mapping("Settings", "Functions", "RdsCaBundle")
    assert "sslrootcert=${Bundle}" in url and env["MEDVIEW_DATABASE_URL"]["Fn::Sub"][1]["Bundle"] == {
        "Fn::FindInMap": ["Settings", "Functions", "RdsCaBundle"]
    }
    in_zip = re.search(r"^ZIP_RDS_CA=(\S+)$", PACKAGE_SCRIPT.read_text(encoding="utf-8"), re.M).group(1)
    assert bundle == f"/var/task/{in_zip}", "Lambda unpacks the zip at /var/task"


def test_the_functions_pass_real_settings_or_documented_contract_ones():
    known = cfn.serve_environment_variables()
    contract = cfn.contract_variables(REPO / "docs" / "METRICS.md", DEPLOY_DOC)
    for name in function("MessageFunction")["Environment"]["Variables"]:
        assert name in known or name in contract, f"{name} is neither a serve option nor in docs/METRICS.md or docs/DEPLOY-LAMBDA.md"


# ------------------------------------------------------------------------------------ least privilege


def role_statements(role: str) -> list[dict]:
    """Every statement of every policy that applies to `role`."""
    statements = []
    for name, policy in T.resources_of("AWS::IAM::Policy").items():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    assert "Policies" not in T.props(role) and "ManagedPolicyArns" not in T.props(role), role
    return statements


def role_actions(role: str) -> set[str]:
    return {a for s in role_statements(role) for a in as_list(s["Action"])}


def test_each_function_may_do_its_job_only():
    base = {"logs:CreateLogStream", "logs:PutLogEvents", "rds-db:connect"} | VPC_NETWORK_ACTIONS
    answer = {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"}
    assert role_actions("ConnectionRole") == base, "$connect/$disconnect touch no model, no PHI key, no connection"
    assert role_actions("StreamRole") == base | answer
    assert role_actions("MessageRole") == base | answer | {"execute-api:ManageConnections"}


def test_bedrock_on_the_one_model_and_the_database_as_the_service_user():
    for role in ["MessageRole", "StreamRole"]:
        by_sid = {s["Sid"]: s for s in role_statements(role)}
        cfn.check_model_statement(by_sid["StreamFromTheOneModel"])
        cfn.check_database_connect_statement(by_sid["ConnectAsTheServiceUserOnly"])


def test_envelope_key_use_is_bound_to_the_encryption_context_the_app_sends():
    for role in ["MessageRole", "StreamRole"]:
        (statement,) = [s for s in role_statements(role) if s["Action"] == ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"]]
        assert refers_to(statement["Resource"], "EnvelopeKey")
        cfn.assert_bound_to_the_apps_context(statement["Condition"], role)


def test_manage_connections_on_this_apis_stage_only():
    found = []
    for where, document, _ in T.policy_documents():
        for statement in document["Statement"]:
            if any(a.startswith("execute-api:") for a in as_list(statement["Action"])):
                found.append(where)
                assert as_list(statement["Action"]) == ["execute-api:ManageConnections"], where
                arns = sorted(sub_text(r) for r in as_list(statement["Resource"]))
                prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${WebSocketStage}"
                assert arns == [f"{prefix}/DELETE/@connections/*", f"{prefix}/POST/@connections/*"], where
    assert found == ["PostToConnectionsPolicy"]
    assert T.props("PostToConnectionsPolicy")["Roles"] == [{"Ref": "MessageRole"}]


def test_api_gateway_invokes_each_function_for_its_own_routes_only():
    expected = {"$connect": "ConnectionFunction", "$disconnect": "ConnectionFunction", "$default": "MessageFunction"}
    seen = {}
    for name, permission in T.resources_of("AWS::Lambda::Permission").items():
        p = permission["Properties"]
        if p["Principal"] != "apigateway.amazonaws.com":
            continue
        arn = sub_text(p["SourceArn"])
        route = re.fullmatch(r"arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:\$\{WebSocketApi\}/\$\{WebSocketStage\}/(\$[a-z]+)", arn)
        assert route, f"{name}: {arn}"
        assert p["Action"] == "lambda:InvokeFunction" and p["SourceAccount"] == {"Ref": "AWS::AccountId"}
        seen[route.group(1)] = p["FunctionName"]["Ref"]
    assert seen == expected


# ------------------------------------------------------------------------------------ the WebSocket API


def test_websocket_api_routes_and_integrations():
    api = T.props("WebSocketApi")
    assert api["ProtocolType"] == "WEBSOCKET" and api["RouteSelectionExpression"] == "$request.body.type"
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in T.resources_of("AWS::ApiGatewayV2::Route").values()}
    assert set(routes) == {"$connect", "$disconnect", "$default"}
    targets = {}
    for key, route in routes.items():
        assert route["ApiId"] == {"Ref": "WebSocketApi"}
        (integration,) = re.findall(r"^integrations/\$\{(\w+)\}$", sub_text(route["Target"]))
        uri = sub_text(T.props(integration)["IntegrationUri"])
        (target,) = re.findall(r"/functions/\$\{(\w+)\.Arn\}/invocations$", uri)
        assert T.props(integration)["IntegrationType"] == "AWS_PROXY"
        targets[key] = target
    assert targets == {"$connect": "ConnectionFunction", "$disconnect": "ConnectionFunction", "$default": "MessageFunction"}
    # No authorizer: the $connect function checks the Cognito token (docs/DEPLOY-LAMBDA.md, "Decisions").
    assert not T.resources_of("AWS::ApiGatewayV2::Authorizer")
    assert routes["$connect"]["AuthorizationType"] == "NONE"
    assert "Cognito token" in DEPLOY_DOC.read_text(encoding="utf-8")


def test_the_stage_throttles_logs_without_bodies_or_addresses():
    stage = T.props("WebSocketStage")
    settings = stage["DefaultRouteSettings"]
    assert settings["DataTraceEnabled"] is False, "data tracing would log message bodies (PHI)"
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["ThrottlingRateLimit"] == {"Ref": "WebSocketRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "WebSocketBurstLimit"}
    assert refers_to(stage["AccessLogSettings"]["DestinationArn"], "WebSocketAccessLogGroup")
    fields = json.loads(stage["AccessLogSettings"]["Format"])
    values = " ".join(fields.values())
    assert "sourceIp" not in values and "body" not in values.lower() and "identity" not in values
    assert {"$context.connectionId", "$context.routeKey", "$context.status"} <= set(fields.values())
    # The execution log goes to a group this stack encrypts, named as API Gateway names it.
    name = T.props("WebSocketExecutionLogGroup")["LogGroupName"]["Fn::Sub"]
    assert name[0] == "API-Gateway-Execution-Logs_${WebSocketApi}/${Stage}"
    assert name[1]["Stage"] == stage["StageName"]


# ------------------------------------------------------------------------------------ SSE fallback


def test_function_url_streams_the_sse_fallback():
    (name, url), = T.resources_of("AWS::Lambda::Url").items()
    p = url["Properties"]
    assert p["InvokeMode"] == "RESPONSE_STREAM"
    assert refers_to(p["TargetFunctionArn"], "StreamFunction")
    assert p["AuthType"] == "NONE", "browsers hold a Cognito token, not AWS credentials (docs/DEPLOY-LAMBDA.md)"
    assert [sub_text(o) for o in p["Cors"]["AllowOrigins"]] == ["https://${AppDomainName}"]
    assert "last-event-id" in p["Cors"]["AllowHeaders"] and "authorization" in p["Cors"]["AllowHeaders"]


def test_only_the_function_url_is_public():
    public = {}
    for name, permission in T.resources_of("AWS::Lambda::Permission").items():
        p = permission["Properties"]
        if p["Principal"] == "*":
            assert p["FunctionName"] == {"Ref": "StreamFunction"}, name
            public[p["Action"]] = p
    assert set(public) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert public["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    assert public["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True, "public through the URL only, not by Invoke"


# ------------------------------------------------------------------------------------ alarms and dashboard


def test_the_plans_three_alarms_as_the_server_stack():
    for name in ["StreamingLatencyAlarm", "ConnectionFailureRateAlarm", "BedrockThrottlingAlarm"]:
        ours = json.dumps(T.props(name), sort_keys=True).replace("Settings", "MAP")
        theirs = json.dumps(ECS.props(name), sort_keys=True).replace("Timing", "MAP")
        assert ours == theirs, f"{name} differs from the server stack's: the dashboards would not mean the same"


def alarm_function_metrics(name: str, metric: str) -> set[str]:
    a = T.props(name)
    functions = set()
    for m in a["Metrics"]:
        if "MetricStat" in m:
            stat = m["MetricStat"]["Metric"]
            assert stat["Namespace"] == "AWS/Lambda" and stat["MetricName"] == metric and m["MetricStat"]["Stat"] == "Sum"
            (dimension,) = stat["Dimensions"]
            functions.add(dimension["Value"]["Ref"])
    (returned,) = [m for m in a["Metrics"] if m["ReturnData"]]
    assert set(re.findall(r"FILL\((\w+), 0\)", returned["Expression"])) == {m["Id"] for m in a["Metrics"] if "MetricStat" in m}
    return functions


def test_function_errors_and_throttles_alarms_cover_every_bootstrap_function():
    assert alarm_function_metrics("FunctionErrorsAlarm", "Errors") == set(BOOTSTRAP_FUNCTIONS)
    assert T.props("FunctionErrorsAlarm")["Threshold"] == 5
    assert alarm_function_metrics("FunctionThrottlesAlarm", "Throttles") == set(BOOTSTRAP_FUNCTIONS)
    throttles = T.props("FunctionThrottlesAlarm")
    assert throttles["Threshold"] == 0 and throttles["ComparisonOperator"] == "GreaterThanThreshold", "any refused request"


def test_the_dashboard_reads_the_server_stacks_metrics():
    assert T.medview_metrics_read() == ECS.medview_metrics_read(), "the same MedView panels mean the same in both shapes"


def test_deploy_doc_states_the_templates_numbers():
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    for name in ["ConnectionConcurrency", "MessageConcurrency", "StreamConcurrency"]:
        assert f"`{name}` (default {parameter(name)['Default']})" in text, name
    assert f"{T.resolve(function('ConnectionFunction')['Timeout'])} s" in text
    assert f"{parameter('MessageTimeoutSeconds')['Default']} s" in text
