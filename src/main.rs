use std::process::ExitCode;

use clap::Parser;
use switchboard::app::{Overrides, Server};
use switchboard::cli::{ApikeyCommand, Cli, Command, LogFormatArg};
use switchboard::config::{Config, LogFormat};
use switchboard::store::Store;

/// Exit status for configuration errors, distinct from runtime failures (1).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match &cli.command {
        Command::CheckConfig { file: Some(f) } => Some(f.clone()),
        _ => cli.config.clone(),
    };
    let mut config = match Config::load(file.as_deref()) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("switchboard: config error: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("switchboard: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::CheckConfig { .. } => {
            println!("configuration ok");
            Ok(())
        }
        Command::Serve { listen, data_dir, log_format } => {
            Overrides { listen, data_dir }.apply(&mut config);
            if let Some(f) = log_format {
                config.server.log_format = match f {
                    LogFormatArg::Human => LogFormat::Human,
                    LogFormatArg::Json => LogFormat::Json,
                };
            }
            runtime.block_on(serve(config))
        }
        Command::Apikey { command: ApikeyCommand::Create { tenant, label, data_dir } } => {
            Overrides { listen: None, data_dir }.apply(&mut config);
            runtime.block_on(create_key(config, tenant, label))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("switchboard: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    switchboard::telemetry::init_tracing(config.server.log_format, &config.server.log_filter);
    let server = Server::start(config).await?;
    let addr = server.local_addr;
    println!("switchboard listening on http://{addr}");
    if let Some(key) = &server.demo_key {
        println!("demo API key: {key}");
        println!("  softphone:      http://{addr}/#key={key}");
        match &server.demo_agent_key {
            // The demo agent signs in with their own key, which can do only what an agent does.
            Some(agent_key) => println!("  agent console:  http://{addr}/agent#key={agent_key}"),
            None => println!("  agent console:  http://{addr}/agent#key={key}&agent={}", switchboard::app::DEMO_AGENT),
        }
        println!("  supervisor:     http://{addr}/supervisor#key={key}");
    }
    tracing::info!(%addr, "listening");
    server.run(switchboard::shutdown::signal()).await?;
    Ok(())
}

async fn create_key(config: Config, tenant: String, label: Option<String>) -> anyhow::Result<()> {
    let store = Store::connect(&config.database, &config.server.data_dir).await?;
    let (tenant, created) = store.ensure_tenant(&tenant).await?;
    let (id, key) = store.create_api_key(&tenant.id, label.as_deref()).await?;
    if created {
        eprintln!("created tenant {} ({})", tenant.name, tenant.id);
    }
    eprintln!("key id {id}; the key is shown only now:");
    println!("{key}");
    store.close().await;
    Ok(())
}
