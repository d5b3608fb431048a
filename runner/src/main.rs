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
/// Some crates' logs are capped at `info` whatever the filter asks for, by a second filter no
/// directive can widen: the HTTP client's (at `debug` and `trace` they dump requests on the
/// wire, secret headers included) and the compiler's (hundreds of megabytes of register
/// allocation for one module, of use to nobody running a program).
fn init_logging(global: &GlobalArgs) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{Layer as _, filter};

    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn,guest=info",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let wanted =
        EnvFilter::try_from_env("DEVSTASH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let most = wanted.max_level_hint();
    const CAPPED: &[&str] = &[
        "ureq",
        "rustls",
        "cranelift",
        "regalloc2",
        "wasmtime",
        "wasmparser",
        "object",
    ];
    let capped = filter::filter_fn(|meta| {
        *meta.level() <= tracing::Level::INFO
            || !CAPPED.iter().any(|c| meta.target().starts_with(c))
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(LogFormat)
        .with_filter(wanted)
        .with_filter(capped);
    tracing_subscriber::registry().with(layer).init();
    // `init` lets every `log` record through to the filters above; the compiler logs millions
    // at `trace`, and sending each through them made compiling a large module ten times
    // slower. Records finer than the filter could show are dropped where they are made.
    use tracing_subscriber::filter::LevelFilter;
    log::set_max_level(match most {
        Some(LevelFilter::OFF) => log::LevelFilter::Off,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
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
