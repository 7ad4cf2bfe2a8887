//! Compiles the gRPC protos in `proto/` with protox, a protobuf compiler written in Rust, so building
//! oxserve needs no system `protoc`; tonic-prost-build then writes the Rust messages, servers and
//! clients into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "grpc_service.proto",
        "model_config.proto",
        "torchserve_inference.proto",
        "torchserve_management.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    let files = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        // Clients are generated without tonic's transport so the library does not pull it in; tests
        // and users hand them any channel.
        .build_transport(false)
        // Tensor bytes and prediction inputs are sliced out of the received buffer, not copied.
        .bytes(".")
        // TorchServe's `input` map keeps a stable order, so "the first part" means the same each time.
        .btree_map(".")
        .compile_fds(files)?;
    Ok(())
}
