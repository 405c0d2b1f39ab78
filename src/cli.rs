//! The command line: `enlace [serve|migrate|healthcheck|backup|restore|copy|staff]`, with every setting also
//! taken from the environment.

use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "enlace",
    version,
    about = "Self-hosted supporter contacts and mailing lists, in English and Spanish.",
    long_about = "Self-hosted supporter contacts and mailing lists, in English and Spanish.\n\n\
        Every setting below is read from its ENLACE_* environment variable; an optional \
        enlace.toml in the working folder (or the file named by ENLACE_CONFIG) may set the same \
        keys in lower case without the prefix, e.g. `listen = \"0.0.0.0:8080\"`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the HTTP API and the background workers (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Ask the Enlace serving on ENLACE_LISTEN whether it is ready (`/readyz`); exits non-zero
    /// when it is not. For container health checks, where no HTTP client is installed.
    Healthcheck,
    /// Copy the SQLite database into FILE, consistently, while Enlace may be serving and
    /// sending; prints each table's rows and checksum.
    Backup {
        /// The new file (never overwritten).
        file: std::path::PathBuf,
    },
    /// Put a backup made by `enlace backup` in place of the SQLite database. Enlace must be
    /// stopped; an existing database is replaced only with --force.
    Restore {
        file: std::path::PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Copy the list from the SQLite database into an empty PostgreSQL database.
    ///
    /// Copies every table of the SQLite database ENLACE_DATABASE_URL names, row for row, then
    /// prints each table's rows in both databases, a checksum, and OK or MISMATCH. Stop Enlace
    /// first: what changes after the copy begins is not copied. Interrupted, it goes on where it
    /// stopped when run again.
    Copy {
        /// The PostgreSQL database to fill, e.g. postgres://enlace@db.example.org/enlace; it
        /// must hold no list. A password is better kept in PGPASSWORD or ~/.pgpass than here.
        #[arg(long)]
        to: String,
        /// Rows per batch (one PostgreSQL transaction each).
        #[arg(long, hide = true, default_value_t = crate::copy::DEFAULT_BATCH_ROWS)]
        batch_rows: usize,
        /// Stop after this many batches, as an interruption would (for tests).
        #[arg(long, hide = true)]
        stop_after_batches: Option<u64>,
    },
    /// Manage staff accounts.
    Staff {
        #[command(subcommand)]
        action: StaffCommand,
    },
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum StaffCommand {
    /// Create a staff account. The password comes from ENLACE_STAFF_PASSWORD or, when that is
    /// unset, from the first line of standard input.
    Create {
        #[arg(long)]
        email: String,
        /// admin, editor or viewer.
        #[arg(long)]
        role: String,
    },
}
