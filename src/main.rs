//! The `strand` binary: `serve`, `export`, `loadgen`, `auth`.

use clap::{Parser, Subcommand};

use strand::serve::ServeArgs;

// Ingest allocates and frees many small strings per span; glibc malloc took
// about a quarter of the CPU of the ingest and writer roles under load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "strand",
    version,
    about = "Distributed-tracing backend: OTLP in, Jaeger/Tempo APIs and a web UI out"
)]
struct Cli {
    /// Log line format: text, or one JSON object per line (with trace_id
    /// and span_id inside a self-trace span).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "STRAND_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: strand::selftrace::logs::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run strand (embedded by default: hot store on local disk, no Kafka,
    /// no Elasticsearch). Every config key is listed at the end of --help.
    Serve(Box<ServeArgs>),
    /// Export stored spans for offline analysis.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Generate OTLP load against a running strand and report capacity.
    Loadgen(Box<strand::loadgen::LoadgenArgs>),
    /// Ingest API keys: make one, or hash one (docs/SECURITY.md).
    #[command(subcommand)]
    Auth(strand::security::keys::AuthCommand),
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Write matching spans as zstd-compressed Parquet files.
    Parquet(Box<strand::export::ExportArgs>),
}

fn main() {
    let cli = Cli::parse();
    strand::selftrace::logs::init(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => strand::serve::serve(*args),
        Command::Export(ExportCommand::Parquet(args)) => strand::serve::export_parquet(*args),
        Command::Loadgen(args) => strand::serve::loadgen(*args),
        Command::Auth(cmd) => strand::security::keys::run(&cmd),
    };
    if let Err(e) = result {
        eprintln!("strand: {e}");
        std::process::exit(1);
    }
}
