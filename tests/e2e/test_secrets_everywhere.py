"""Redaction fails closed from the model: known secrets are written through every kind of
sensitive member moto lets us reach (Cognito passwords and tokens, API Gateway keys, IAM
passwords and access keys, Secrets Manager, SSM SecureStrings, KMS plaintext, STS and
Cognito Identity credentials, RDS master passwords), and then searched for in every stored
record, every file of the data directory and every log line. Cognito's sign-in and STS's
web-identity federation are served unsigned, as AWS serves them."""

import base64
import json

import boto3
import botocore.config
import pytest
from botocore import UNSIGNED

from conftest import Cairn, stored_records

ACCOUNT = "123456789012"
CONFIG = f"""
account_id = "{ACCOUNT}"

[[roles]]
role_name = "e2e-secrets"
trust_policy = '''{{"Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:root"}},
  "Action": "sts:AssumeRole"}}]}}'''
"""

TEMPORARY_PASSWORD = "E2e-Temporary-Pass-1!"
FINAL_PASSWORD = "E2e-Final-Password-2!"
SIGN_UP_PASSWORD = "E2e-SignUp-Password-3!"
LOGIN_PASSWORD = "E2e-Login-Profile-4!"
SECRET_STRING = "e2e-secret-string-5a1c"
PARAMETER_VALUE = "e2e-secure-string-6b2d"
PLAINTEXT = b"e2e-plaintext-7c3e"
MASTER_PASSWORD = "E2eMasterPassword8d4f"


@pytest.fixture
def gateway(tmp_path, moto):
    config = tmp_path / "cairn.toml"
    config.write_text(CONFIG)
    server = Cairn(tmp_path / "data", extra_args=["--config", str(config), "--upstream", moto]).start()
    yield server
    server.stop()


def client(cairn, service, signed=True):
    key, secret = cairn.credentials()
    config = botocore.config.Config(retries={"max_attempts": 1},
                                    **({} if signed else {"signature_version": UNSIGNED}))
    return boto3.client(service, endpoint_url=cairn.endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret, config=config)


def fake_jwt(claims):
    encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
    return f"{encode({'alg': 'RS256', 'kid': 'e2e'})}.{encode(claims)}.c2lnbmF0dXJl"


def named(records, source, name):
    found = [r for r in records if r["eventSource"] == source and r["eventName"] == name]
    assert found, (source, name, sorted({r["eventName"] for r in records}))
    return found


def test_every_kind_of_secret_stays_out_of_records_files_and_logs(gateway):
    secrets = [TEMPORARY_PASSWORD, FINAL_PASSWORD, SIGN_UP_PASSWORD, LOGIN_PASSWORD, SECRET_STRING,
               PARAMETER_VALUE, PLAINTEXT.decode(), MASTER_PASSWORD]

    # Cognito user pools: a temporary password, a sign-in and its tokens, a challenge answered,
    # a sign-up; InitiateAuth, RespondToAuthChallenge and SignUp unsigned, as AWS serves them.
    idp = client(gateway, "cognito-idp")
    anonymous_idp = client(gateway, "cognito-idp", signed=False)
    pool = idp.create_user_pool(PoolName="e2e-pool")["UserPool"]["Id"]
    app = idp.create_user_pool_client(UserPoolId=pool, ClientName="e2e-app",
                                      ExplicitAuthFlows=["USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"])
    client_id = app["UserPoolClient"]["ClientId"]
    idp.admin_create_user(UserPoolId=pool, Username="alice", TemporaryPassword=TEMPORARY_PASSWORD)
    challenge = anonymous_idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                                            AuthParameters={"USERNAME": "alice", "PASSWORD": TEMPORARY_PASSWORD})
    assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    secrets.append(challenge["Session"])
    answered = anonymous_idp.respond_to_auth_challenge(
        ClientId=client_id, ChallengeName="NEW_PASSWORD_REQUIRED", Session=challenge["Session"],
        ChallengeResponses={"USERNAME": "alice", "NEW_PASSWORD": FINAL_PASSWORD})
    tokens = answered["AuthenticationResult"]
    signed_in = idp.admin_initiate_auth(UserPoolId=pool, ClientId=client_id, AuthFlow="ADMIN_NO_SRP_AUTH",
                                        AuthParameters={"USERNAME": "alice", "PASSWORD": FINAL_PASSWORD})
    for result in (tokens, signed_in["AuthenticationResult"]):
        secrets += [result["AccessToken"], result["IdToken"]] + ([result["RefreshToken"]] if "RefreshToken" in result else [])
    anonymous_idp.sign_up(ClientId=client_id, Username="bob", Password=SIGN_UP_PASSWORD)

    # Cognito identity pools: an identity and its credentials, unsigned.
    identity = client(gateway, "cognito-identity")
    identity_pool = identity.create_identity_pool(IdentityPoolName="e2e_identities",
                                                  AllowUnauthenticatedIdentities=True)["IdentityPoolId"]
    anonymous_identity = client(gateway, "cognito-identity", signed=False)
    identity_id = anonymous_identity.get_id(IdentityPoolId=identity_pool)["IdentityId"]
    credentials = anonymous_identity.get_credentials_for_identity(IdentityId=identity_id)["Credentials"]
    secrets += [credentials["SecretKey"], credentials["SessionToken"]]

    # STS: Cairn's own AssumeRole, and web-identity federation forwarded unsigned.
    sts = client(gateway, "sts")
    assumed = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/e2e-secrets", RoleSessionName="e2e")["Credentials"]
    secrets += [assumed["SecretAccessKey"], assumed["SessionToken"]]
    token = fake_jwt({"iss": "https://accounts.google.com", "aud": "e2e-audience", "sub": "e2e-subject"})
    federated = client(gateway, "sts", signed=False).assume_role_with_web_identity(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/federated", RoleSessionName="e2e-web", WebIdentityToken=token)
    secrets += [federated["Credentials"]["SecretAccessKey"], federated["Credentials"]["SessionToken"], token]

    # API Gateway's key values, IAM's passwords and access keys, RDS master passwords.
    api_key = client(gateway, "apigateway").create_api_key(name="e2e-key", enabled=True)
    secrets.append(api_key["value"])
    iam = client(gateway, "iam")
    iam.create_user(UserName="e2e-login")
    iam.create_login_profile(UserName="e2e-login", Password=LOGIN_PASSWORD)
    secrets.append(iam.create_access_key(UserName="e2e-login")["AccessKey"]["SecretAccessKey"])
    client(gateway, "rds").create_db_instance(
        DBInstanceIdentifier="e2e-db", DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="e2eadmin", MasterUserPassword=MASTER_PASSWORD, AllocatedStorage=20)

    # Secrets Manager, SSM SecureStrings, KMS plaintext.
    sm = client(gateway, "secretsmanager")
    sm.create_secret(Name="e2e-everywhere", SecretString=SECRET_STRING)
    assert sm.get_secret_value(SecretId="e2e-everywhere")["SecretString"] == SECRET_STRING
    ssm = client(gateway, "ssm")
    ssm.put_parameter(Name="/e2e/everywhere", Value=PARAMETER_VALUE, Type="SecureString")
    assert ssm.get_parameter(Name="/e2e/everywhere", WithDecryption=True)["Parameter"]["Value"] == PARAMETER_VALUE
    kms = client(gateway, "kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == PLAINTEXT

    records = stored_records(gateway.data_dir)
    # The calls were recorded, unsigned ones with the caller AWS records.
    start = named(records, "cognito-idp.amazonaws.com", "InitiateAuth")[0]
    assert start["userIdentity"] == {"type": "Unknown", "principalId": "Anonymous"}
    assert start["requestParameters"]["authParameters"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert start["recipientAccountId"] == ACCOUNT
    created = named(records, "cognito-idp.amazonaws.com", "AdminCreateUser")[0]
    assert created["requestParameters"]["temporaryPassword"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    admin_auth = named(records, "cognito-idp.amazonaws.com", "AdminInitiateAuth")[0]
    assert admin_auth["responseElements"]["authenticationResult"]["accessToken"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    named(records, "cognito-idp.amazonaws.com", "RespondToAuthChallenge")
    named(records, "cognito-idp.amazonaws.com", "SignUp")
    named(records, "cognito-identity.amazonaws.com", "GetId")
    named(records, "cognito-identity.amazonaws.com", "GetCredentialsForIdentity")
    web = named(records, "sts.amazonaws.com", "AssumeRoleWithWebIdentity")[0]
    assert web["userIdentity"] == {"type": "WebIdentityUser", "principalId": "accounts.google.com:e2e-audience:e2e-subject",
                                   "userName": "e2e-subject", "identityProvider": "accounts.google.com"}
    assert named(records, "apigateway.amazonaws.com", "CreateApiKey")[0]["responseElements"]["value"] == \
        "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert named(records, "rds.amazonaws.com", "CreateDBInstance")[0]["requestParameters"]["masterUserPassword"] == \
        "HIDDEN_DUE_TO_SECURITY_REASONS"

    # ...and no secret is anywhere: not in a record, a file of the data directory, or the log.
    text = json.dumps(records)
    gateway.stop()
    files = [path.read_bytes() for path in gateway.data_dir.rglob("*") if path.is_file()]
    log = (gateway.data_dir.parent / "data-server.log").read_bytes()
    for secret in secrets:
        assert secret not in text, secret
        assert all(secret.encode() not in content for content in files), secret
        assert secret.encode() not in log, secret
