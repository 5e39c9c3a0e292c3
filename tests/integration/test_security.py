"""TLS, mutual TLS and bearer tokens, with real clients."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import ssl
from pathlib import Path

import grpc
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tritonclient.utils import InferenceServerException

from tests.conftest import start_server
from tests.onnx_models import scale

pytestmark = pytest.mark.integration
TOKEN = "s3cret-token-for-tests"
BODY = orjson.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(subject: str, issuer_key, issuer_name, ca: bool, tmp: Path, stem: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name or _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    (tmp / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _issue("test CA", None, None, True, tmp, "ca")
    _issue("127.0.0.1", ca_key, ca_cert.subject, False, tmp, "server")
    _issue("client", ca_key, ca_cert.subject, False, tmp, "client")
    (tmp / "token").write_text(TOKEN + "\n")
    return tmp


@pytest.fixture(scope="module")
def secure_server(pki, tmp_path_factory):
    repo = tmp_path_factory.mktemp("secure")
    scale(repo, "scale", 1, 2.0)
    server = start_server(
        repo,
        "--tls-cert-file", str(pki / "server.pem"),
        "--tls-key-file", str(pki / "server.key"),
        "--tls-client-ca-file", str(pki / "ca.pem"),
        "--auth-token-file", str(pki / "token"),
    )  # fmt: skip
    yield server
    assert server.stop() == 0
    assert TOKEN not in "".join(server.output)  # never logged


def https(server, pki: Path, client_cert: bool, headers: dict[str, str]) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if client_cert:
        context.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    host, port = server.http.rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.request("POST", "/v2/models/scale/infer", BODY, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_https_with_client_certificate_and_token(secure_server, pki):
    status, body = https(secure_server, pki, True, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and orjson.loads(body)["outputs"][0]["data"] == [2, 4, 6, 8]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_https_without_the_right_token_is_401(secure_server, pki, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    status, body = https(secure_server, pki, True, headers)
    assert status == 401 and b"bearer token" in body


def test_https_without_client_certificate_is_refused(secure_server, pki):
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        https(secure_server, pki, False, {"Authorization": f"Bearer {TOKEN}"})


def test_plain_http_is_refused(secure_server):
    host, port = secure_server.http.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        connection.request("POST", "/v2/models/scale/infer", BODY)
        connection.getresponse().read()
    connection.close()


def grpc_client(server, pki: Path, client_cert: bool) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(
        server.grpc,
        ssl=True,
        root_certificates=str(pki / "ca.pem"),
        private_key=str(pki / "client.key") if client_cert else None,
        certificate_chain=str(pki / "client.pem") if client_cert else None,
    )


def scale_input():
    item = grpcclient.InferInput("x", [1, 4], "FP32")
    item.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    return [item]


def test_grpc_with_mtls_and_token(secure_server, pki):
    client = grpc_client(secure_server, pki, True)
    result = client.infer("scale", scale_input(), headers={"authorization": f"Bearer {TOKEN}"})
    assert result.as_numpy("y").tolist() == [[2.0] * 4]
    assert client.is_server_ready()  # health needs no token
    with pytest.raises(InferenceServerException) as error:
        client.infer("scale", scale_input(), headers={"authorization": "Bearer nope"})
    assert error.value.status() == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException) as error:
        client.infer("scale", scale_input())
    assert error.value.status() == "StatusCode.UNAUTHENTICATED"


def test_grpc_stream_needs_the_token(secure_server, pki):
    import queue

    answers: queue.Queue = queue.Queue()
    client = grpc_client(secure_server, pki, True)
    client.start_stream(lambda result, error: answers.put(error))
    try:
        client.async_stream_infer("scale", scale_input())
    except InferenceServerException:
        pass  # the server may have refused the stream already: the callback has the status
    error = answers.get(timeout=10)
    client.stop_stream()
    assert error is not None and "UNAUTHENTICATED" in str(error.status())


def test_grpc_without_client_certificate_fails(secure_server, pki):
    client = grpc_client(secure_server, pki, False)
    with pytest.raises(InferenceServerException):
        client.infer(
            "scale", scale_input(), headers={"authorization": f"Bearer {TOKEN}"}, client_timeout=10
        )


def test_grpc_plaintext_fails(secure_server):
    with grpc.insecure_channel(secure_server.grpc) as channel:
        with pytest.raises(grpc.RpcError) as error:
            channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=3)
    assert error.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
