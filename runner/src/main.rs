//! The `devstash` binary: runs wasm32-wasip1 programs under wasmtime and stores the results of
//! their marked calls in `./.devstash_cache/`.

use devstash_runner::cli::Cli;
use devstash_runner::flags::GlobalArgs;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse_or_exit();
    init_logging(&cli.global);
    std::process::exit(cli.dispatch());
}

/// Logs go to stderr as `devstash: warning: …`; `DEVSTASH_LOG` (an `EnvFilter`) overrides the
/// level chosen with -v/-q.
///
/// Some crates' logs are capped at `info` whatever the filter asks for: the HTTP client's (at
/// `debug` and `trace` they dump requests on the wire, secret headers included) and the
/// compiler's (hundreds of megabytes of register allocation for one module, of use to nobody
/// running a program).
fn init_logging(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn,guest=info",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let mut filter =
        EnvFilter::try_from_env("DEVSTASH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    for quiet in [
        "ureq=info",
        "ureq_proto=info",
        "rustls=info",
        "cranelift=info",
        "regalloc2=info",
        "wasmtime=info",
        "wasmparser=info",
        "object=info",
    ] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
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
