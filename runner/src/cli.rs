//! The command line: the parser, the commands, and what each one runs. The flags of every
//! command are in [`crate::flags`]; nothing below this module knows of it.

use clap::{Parser, Subcommand};

use crate::flags::{
    ClearArgs, GlobalArgs, InspectArgs, ListArgs, RecordArgs, RemoteCmdArgs, ReplayArgs, RunArgs,
};
use crate::{exit, inspect, manage, output, run, tape};

/// Record/replay runner for WebAssembly programs: marked calls are computed once and stored.
#[derive(Debug, Parser)]
#[command(name = "devstash", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a wasm32-wasip1 module; marked calls are answered from the cache or computed and stored.
    Run(RunArgs),
    /// Run a module and record everything it takes from outside to a tape.
    Record(RecordArgs),
    /// Play a run back from its tape, offline and sealed.
    Replay(ReplayArgs),
    /// List cache entries.
    List(ListArgs),
    /// Remove cache entries.
    Clear(ClearArgs),
    /// Show an entry, a module's marked sites, or a tape.
    Inspect(InspectArgs),
    /// Set up and check a team cache (a remote shared by several machines).
    Remote(RemoteCmdArgs),
}

impl Cli {
    /// Parses the command line. Help and version requests print and exit with 0; a mistake
    /// prints clap's message and exits with [`exit::RUNNER_ERROR`], like every other failure of
    /// devstash itself, so that no exit code of devstash's own is mistaken for the guest's.
    pub fn parse_or_exit() -> Cli {
        match Cli::try_parse() {
            Ok(cli) => cli,
            Err(e) if !e.use_stderr() => {
                // --help and --version.
                let _ = e.print();
                std::process::exit(0);
            }
            Err(e) => {
                // One line, as every other error of devstash's: clap's message (which names the
                // flag and says what is wrong), without its usage block and hints.
                let text = e.render().to_string();
                let message: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                    .filter(|l| !l.is_empty())
                    .collect();
                output::say(&format!("{} (see `devstash --help`)", message.join(" ")));
                std::process::exit(exit::RUNNER_ERROR);
            }
        }
    }

    /// Runs the command; returns the process exit code.
    pub fn dispatch(&self) -> i32 {
        let g = &self.global;
        let result = match &self.command {
            Command::Run(args) => run::run(g, args),
            Command::Record(args) => tape::record(g, args),
            Command::Replay(args) => tape::replay(g, args),
            Command::List(args) => manage::list(g, args),
            Command::Clear(args) => manage::clear(g, args),
            Command::Inspect(args) => inspect::inspect(g, args),
            Command::Remote(args) => manage::remote(g, args),
        };
        match result {
            Ok(code) => code,
            // A reader that closed our standard output (`devstash list | head -1`) has all it
            // wanted: end quietly, as other command-line tools do.
            Err(e) if output::is_closed(&e) => 0,
            Err(e) => {
                output::say(&format!("error: {e:#}"));
                exit::RUNNER_ERROR
            }
        }
    }
}
