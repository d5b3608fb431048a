//! The `devstash` binary: runs wasm32-wasip1 programs under wasmtime and stores the results of
//! their marked calls in `./.devstash_cache/`.

use clap::Parser;
use devstash_runner::cli::{self, Cli, Command};
use devstash_runner::{exit, inspect, manage, run, tape};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let result = match &cli.command {
        Command::Run(args) => run::run(&cli.global, args),
        Command::Record(args) => tape::record(&cli.global, args),
        Command::Replay(args) => tape::replay(&cli.global, args),
        Command::List(args) => manage::list(&cli.global, args),
        Command::Clear(args) => manage::clear(&cli.global, args),
        Command::Inspect(args) => inspect::inspect(&cli.global, args),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::RUNNER_ERROR
        }
    };
    std::process::exit(code);
}

/// Logs go to stderr as `devstash: warning: …`; `DEVSTASH_LOG` (an `EnvFilter`) overrides the
/// level chosen with -v/-q.
fn init_logging(global: &cli::GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn,guest=info",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_env("DEVSTASH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .event_format(LogFormat)
        .init();
}

/// `devstash: warning: message`, or `guest: message` for the guest's own log lines.
struct LogFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LogFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let who = if meta.target() == "guest" {
            "guest"
        } else {
            "devstash"
        };
        let level = match *meta.level() {
            tracing::Level::ERROR => "error: ",
            tracing::Level::WARN => "warning: ",
            tracing::Level::INFO => "",
            tracing::Level::DEBUG => "debug: ",
            tracing::Level::TRACE => "trace: ",
        };
        write!(writer, "{who}: {level}")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
