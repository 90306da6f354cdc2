//! `luodi`: the command-line front of the luodi engine.
//!
//! Flags and environment variables are read here and turned into the plain option structs of
//! the library crates; errors become one line on stderr and an exit code (2 for input a person
//! can fix, 1 for everything else; a closed pipe is not an error).

mod ask_cmd;
mod bench;
mod bench_clean;
mod bench_dedup;
mod bench_serve;
mod chat_cmd;
mod clean_cmd;
mod cli;
mod glossary_cmd;
mod models_cmd;
mod progress;
mod serve_cmd;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let serving = matches!(args.command, cli::Command::Serve(_));
    let filter = if args.verbose {
        "luodi=debug,luodi_server=debug,info"
    } else if serving {
        // the service logs each request (route, status, time, key id; never content)
        "luodi_server=info,warn"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LUODI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            let user = err
                .downcast_ref::<luodi_core::Error>()
                .is_some_and(luodi_core::Error::is_user_error);
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::from(if user { 2 } else { 1 })
        }
    }
}
