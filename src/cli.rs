//! Command line: `serve`, `check-config`, `apikey create`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Real-time media server for telephony streams")]
pub struct Cli {
    /// Configuration file layered over the embedded default (only the keys you set).
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (overrides server.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (overrides server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Log format (overrides server.log_format).
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Validate the configuration (the embedded default, a --config file, the environment)
    /// and exit non-zero with the offending key if it is invalid.
    CheckConfig {
        /// A file to check; same as --config.
        file: Option<PathBuf>,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key for a tenant (created if missing) and print it once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Human,
    Json,
}
