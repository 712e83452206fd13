//! A database that cannot be opened at start, explained once: what was tried (the
//! PostgreSQL host and port, never the password; or the SQLite file's path) and what to
//! do about it.
//!
//! A pool hides why it could not connect: it retries until its acquire timeout and then
//! says only "pool timed out". So before the PostgreSQL pool is built, one connection is
//! tried directly, bounded by the acquire timeout, and its failure is explained; a
//! refused connection fails at once. The explanation carries the driver's own words in
//! its message and has no source, so an error chain prints them once.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use brokkr_core::store::Error;
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::{self, ConnectOptions, Connection};
use sea_orm::{DbErr, RuntimeErr};

use crate::errors::db;

/// Why the database could not be opened, with what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConnectError(String);

/// Connects once to the PostgreSQL database `url` names, within `bound`, and explains a
/// failure: unreachable (`Unavailable`), or refused by the server (`Backend`).
pub(crate) async fn probe_postgres(url: &str, bound: Duration) -> Result<(), Error> {
    let options = PgConnectOptions::from_str(url).map_err(|err| {
        // The parser's message names the part at fault, never the URL itself.
        Error::Invalid(format!("database.url is not a valid PostgreSQL URL: {err}"))
    })?;
    let target = postgres_target(&options);
    match tokio::time::timeout(bound, options.connect()).await {
        Ok(Ok(connection)) => {
            // Closing politely is a courtesy; the pool opens its own connections.
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(postgres_refused(&target, &options, err)),
        Err(_) => Err(unavailable(format!(
            "cannot reach {target}: no answer within {} ms; is PostgreSQL running and \
             reachable from here? check database.url",
            bound.as_millis()
        ))),
    }
}

/// `PostgreSQL at host:port`, or at its Unix socket.
fn postgres_target(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(socket) => format!("PostgreSQL at socket {}", socket.display()),
        None => format!(
            "PostgreSQL at {}:{}",
            options.get_host(),
            options.get_port()
        ),
    }
}

fn postgres_refused(target: &str, options: &PgConnectOptions, err: sqlx::Error) -> Error {
    // createdb as the URL's user (it may own the new database); createuser as the
    // usual superuser, since the URL's role does not exist yet.
    let server = format!("-h {} -p {}", options.get_host(), options.get_port());
    match err {
        sqlx::Error::Database(err) => {
            let message = err.message();
            let hint = match err.code().as_deref() {
                // invalid_catalog_name
                Some("3D000") => format!(
                    "create it with `createdb {server} -U {} {}`, or fix database.url",
                    options.get_username(),
                    options.get_database().unwrap_or(options.get_username())
                ),
                // invalid_authorization_specification: no such role, or pg_hba refused
                Some("28000") if message.starts_with("role") => format!(
                    "create it with `createuser {server} -U postgres {}`, or fix database.url",
                    options.get_username()
                ),
                Some("28P01") => "check the user and password in database.url".to_owned(),
                _ => "check database.url and the server's pg_hba.conf".to_owned(),
            };
            backend(format!(
                "{target} refused the connection: {message}; {hint}"
            ))
        }
        sqlx::Error::Io(err) => unavailable(format!(
            "cannot reach {target}: {err}; is PostgreSQL running and reachable from here? \
             check database.url"
        )),
        sqlx::Error::Tls(err) => unavailable(format!(
            "TLS with {target} failed: {err}; check sslmode in database.url"
        )),
        err => backend(format!(
            "cannot connect to {target}: {err}; check database.url"
        )),
    }
}

/// Explains a SQLite database that would not open, naming its file; other errors keep
/// their usual mapping.
pub(crate) fn sqlite_open_failed(url: &str, err: DbErr) -> Error {
    let DbErr::Conn(RuntimeErr::SqlxError(ref driver)) = err else {
        return db(err);
    };
    let Ok(options) = SqliteConnectOptions::from_str(url) else {
        return db(err);
    };
    let detail = match driver.as_ref() {
        sqlx::Error::Database(driver) => driver.message().to_owned(),
        driver => driver.to_string(),
    };
    let file = absolute(options.get_filename());
    let hint = match file.parent() {
        Some(dir) if !dir.is_dir() => format!(
            "the directory {} does not exist: create it, or point database.url elsewhere",
            dir.display()
        ),
        _ if !file.exists() && !creates_file(url) => {
            "the file does not exist: add ?mode=rwc to database.url to create it".to_owned()
        }
        _ => "check that it is a SQLite database this user may read and write".to_owned(),
    };
    backend(format!(
        "cannot open the SQLite file {}: {detail}; {hint}",
        file.display()
    ))
}

/// Whether the URL asks SQLite to create a missing file (`mode=rwc`).
fn creates_file(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.eq_ignore_ascii_case("mode=rwc"))
    })
}

/// The path as the process sees it, so a relative `sqlite://x.db` names its directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn unavailable(message: String) -> Error {
    Error::Unavailable(Box::new(ConnectError(message)))
}

fn backend(message: String) -> Error {
    Error::Backend(Box::new(ConnectError(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_rwc_is_found_among_the_query_parameters() {
        assert!(creates_file("sqlite://x.db?mode=rwc"));
        assert!(creates_file("sqlite://x.db?cache=shared&mode=rwc"));
        assert!(!creates_file("sqlite://x.db"));
        assert!(!creates_file("sqlite://x.db?mode=rw"));
    }
}
