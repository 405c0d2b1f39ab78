use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use enlace::cli::{Cli, Command, StaffCommand};
use enlace::db::Db;
use enlace::startup::{Application, Options};

/// mimalloc instead of glibc's malloc: a newsletter send allocates and frees each message's
/// rendered parts and encoded bytes (tens of KB) on whichever worker thread runs it, which
/// mimalloc's per-thread free lists serve with less locking and less memory held.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Before any thread exists: copy enlace.toml keys into unset ENLACE_* variables.
    let config = std::env::var_os("ENLACE_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| "enlace.toml".into());
    enlace::config::load_config_file(&config)?;
    let cli = Cli::parse();
    enlace::telemetry::init(&cli.settings.log, &cli.settings.log_format);
    match cli.command.clone().unwrap_or(Command::Serve) {
        Command::Migrate => {
            cli.settings.validate()?;
            Db::connect(&cli.settings.database_url, 1)?.migrate()?;
            tracing::info!("migrations are up to date");
            Ok(())
        }
        Command::Healthcheck => healthcheck(&cli.settings.listen),
        Command::Backup { file } => {
            let database = enlace::backup::sqlite_path(&cli.settings.database_url)?;
            let sums = enlace::backup::backup(&database, &file)?;
            print!("{}", enlace::backup::describe(&sums));
            println!("backed up {} into {}", database.display(), file.display());
            Ok(())
        }
        Command::Restore { file, force } => {
            let database = enlace::backup::sqlite_path(&cli.settings.database_url)?;
            let sums = enlace::backup::restore(&file, &database, force)?;
            print!("{}", enlace::backup::describe(&sums));
            println!("restored {} from {}", database.display(), file.display());
            Ok(())
        }
        Command::Copy {
            to,
            batch_rows,
            stop_after_batches,
        } => copy(
            &cli.settings.database_url,
            &to,
            batch_rows,
            stop_after_batches,
        ),
        Command::Staff {
            action: StaffCommand::Create { email, role },
        } => {
            cli.settings.validate()?;
            create_staff(&cli.settings.database_url, &email, &role)
        }
        // Background work (the newsletter engine's SMTP sessions, the mail worker, the signup
        // writer) runs on a multi-threaded runtime, so it has every core and not only the thread
        // that runs the server; actix-web's HTTP workers keep their own threads.
        Command::Serve => actix_web::rt::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("building the tokio runtime")
        })
        .block_on(async move {
            let listen = cli.settings.listen.clone();
            let app =
                Application::build(cli.settings, Options::default()).context("starting Enlace")?;
            tracing::info!(listen, port = app.port(), "serving");
            app.run_until_stopped().await.context("serving HTTP")
        }),
    }
}

/// GET /readyz on the address Enlace listens on (loopback when it listens on every address).
fn healthcheck(listen: &str) -> anyhow::Result<()> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let target = match listen.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => {
            let loopback = match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            SocketAddr::new(loopback, addr.port()).to_string()
        }
        _ => listen.to_owned(),
    };
    let url = format!("http://{target}/readyz");
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()?
                .get(&url)
                .send()
                .await
                .map(|r| r.status())
        })
        .with_context(|| format!("asking {url}"))?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    println!("ready");
    Ok(())
}

/// `enlace copy`: the table of counts and checksums on standard output, progress on standard
/// error; a mismatch is a failure.
fn copy(
    database_url: &str,
    to: &str,
    batch_rows: usize,
    stop_after_batches: Option<u64>,
) -> anyhow::Result<()> {
    let options = enlace::copy::Options {
        batch_rows,
        stop_after_batches,
    };
    let report = enlace::copy::copy(database_url, to, &options, &mut |line| eprintln!("{line}"))?;
    print!("{}", report.describe());
    anyhow::ensure!(
        report.matches(),
        "PostgreSQL does not hold the same rows as SQLite in the tables marked MISMATCH; do not \
         switch to it"
    );
    println!(
        "every table copied and checked: ENLACE_DATABASE_URL may now name the PostgreSQL database"
    );
    Ok(())
}

fn create_staff(database_url: &str, email: &str, role: &str) -> anyhow::Result<()> {
    use enlace::auth::Role;
    use enlace::services::{
        self,
        staff::{CreateMemberError, Creator, NewStaffMember},
    };
    let email = enlace::domain::Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let role = Role::parse(role).context("--role must be admin, editor or viewer")?;
    let password = match std::env::var("ENLACE_STAFF_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let db = Db::connect(database_url, 1)?;
    db.migrate()?;
    let input = NewStaffMember {
        email: email.as_str().to_owned(),
        role: role.as_str().to_owned(),
        password,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let member = runtime
        .block_on(services::staff::create_member(
            &db,
            Creator::CommandLine,
            input,
        ))
        .map_err(|e| match e {
            CreateMemberError::Invalid(errors) => {
                let problems: Vec<String> = errors
                    .iter()
                    .flat_map(|(field, messages)| {
                        let field = if field == "password" {
                            "the password"
                        } else {
                            field
                        };
                        messages.iter().map(move |m| format!("{field} {m}"))
                    })
                    .collect();
                anyhow::anyhow!("{}", problems.join("; "))
            }
            other => anyhow::anyhow!("{other}"),
        })?;
    println!("{}", member.id);
    Ok(())
}
