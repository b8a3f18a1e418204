"""shared/grpc's generated protobuf modules: equal to what protoc makes of the .proto files, and on the wire
what gRPC's health checking says."""

from __future__ import annotations

from pathlib import Path

from mtls_ref.shared.grpc import health_pb2, identity_pb2

from .support.protos import GRPC_DIR, generate, generated_names


def test_committed_modules_are_what_protoc_makes(tmp_path: Path) -> None:
    """Regenerating into a temporary folder gives the committed files byte for byte (run `make protos`)."""
    generate(tmp_path)
    for name in generated_names():
        assert (tmp_path / name).read_bytes() == (GRPC_DIR / name).read_bytes(), (
            f"shared/grpc/{name} differs from what protoc makes of the .proto files: run `make protos`"
        )


def test_serving_is_the_bytes_the_health_protocol_sends() -> None:
    """HealthCheckResponse{status: SERVING} encodes as 08 01: field 1, varint 1."""
    serving = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
    assert serving.SerializeToString() == b"\x08\x01"


def test_descriptors_are_registered_under_the_package_path() -> None:
    """protoc named the files by their import path, so another program's health.proto cannot collide."""
    assert health_pb2.DESCRIPTOR.name == "mtls_ref/shared/grpc/health.proto"
    assert identity_pb2.DESCRIPTOR.package == "mtls_ref.v1"
    assert [m.name for m in identity_pb2.DESCRIPTOR.services_by_name["Identity"].methods] == ["WhoAmI"]
