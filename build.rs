// Compiles the vendored OTLP protos, strand's own Zipkin v2 proto and
// Jaeger's sampling API without a system protoc: protox parses them into
// a descriptor set,
// tonic-prost-build generates messages and the gRPC clients/servers.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/opentelemetry/proto/collector/trace/v1/trace_service.proto",
        "proto/zipkin.proto",
        "proto/jaeger/api_v2/sampling.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
