use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use enlace::cli::{Cli, Command};
use enlace::db::Db;
use enlace::startup::{Application, Options};

fn main() -> anyhow::Result<()> {
    // Before any thread exists: copy enlace.toml keys into unset ENLACE_* variables.
    let config = std::env::var_os("ENLACE_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| "enlace.toml".into());
    enlace::config::load_config_file(&config)?;
    let cli = Cli::parse();
    enlace::telemetry::init(&cli.settings.log, &cli.settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            cli.settings.validate()?;
            Db::connect(&cli.settings.database_url, 1)?.migrate()?;
            tracing::info!("migrations are up to date");
            Ok(())
        }
        Command::Serve => actix_web::rt::System::new().block_on(async move {
            let listen = cli.settings.listen.clone();
            let app =
                Application::build(cli.settings, Options::default()).context("starting Enlace")?;
            tracing::info!(listen, port = app.port(), "serving");
            app.run_until_stopped().await.context("serving HTTP")
        }),
    }
}
