// Compiles the vendored OTLP protos and strand's own Zipkin v2 proto without
// a system protoc: protox parses them into a descriptor set,
// tonic-prost-build generates messages and the TraceService client/server.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/opentelemetry/proto/collector/trace/v1/trace_service.proto",
        "proto/zipkin.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
