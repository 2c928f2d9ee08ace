//! `switchboard`: parses flags and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use switchboard::{
    bench,
    cli::{Cli, Command},
    commands, submit,
};

// Services allocate and free many small buffers per request (protobuf, JSON,
// HTTP/2 frames); mimalloc does that with less contention than the system
// allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Up => commands::up(&cli.global).await,
        Command::Serve { service } => commands::serve(&cli.global, service).await,
        Command::Migrate => commands::migrate(&cli.global).await,
        Command::Submit(args) => submit::run(*args).await,
        Command::Bench(args) => bench::run(&cli.global, args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchboard: {error:#}");
            ExitCode::FAILURE
        }
    }
}
