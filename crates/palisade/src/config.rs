//! Configuration: defaults, then `palisade.toml`, then `PALISADE_*`
//! environment variables, then command-line flags, each overriding the last.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use palisade_store::DatabaseUrl;
use serde::{Deserialize, Serialize};

/// The file read when `--config` is not given (only if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "palisade.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Listen address (`PALISADE_BIND`).
    pub bind: SocketAddr,
    /// Where the SQLite file lives (`PALISADE_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…` (`PALISADE_DATABASE_URL`); the SQLite
    /// file `palisade.db` in the data dir when unset.
    pub database_url: Option<String>,
    /// Comma-separated phrases that clear the injection detector when they
    /// make up more than 80 % of a message (`PALISADE_INJECTION_ALLOWLIST`).
    pub injection_allowlist: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            injection_allowlist: String::new(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Config {
    /// Reads every layer. An explicitly named config file must exist; the
    /// default one is optional.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file(DEFAULT_CONFIG_FILE)),
        }
        figment
            .merge(Env::prefixed("PALISADE_").only(&[
                "bind",
                "data_dir",
                "database_url",
                "injection_allowlist",
            ]))
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("invalid configuration")
    }

    /// What the input guards are built from.
    pub fn guard(&self) -> palisade_guard::GuardConfig {
        palisade_guard::GuardConfig {
            allowlist: palisade_guard::GuardConfig::parse_allowlist(&self.injection_allowlist),
            ..palisade_guard::GuardConfig::default()
        }
    }

    /// The database to use, creating the data dir for the default SQLite file.
    pub fn database_url(&self) -> Result<DatabaseUrl> {
        if let Some(url) = &self.database_url {
            return Ok(DatabaseUrl::new(url.clone()));
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data dir {}", self.data_dir.display()))?;
        Ok(DatabaseUrl::new(format!(
            "sqlite://{}",
            self.data_dir.join("palisade.db").display()
        )))
    }
}

#[cfg(test)]
// `figment::Jail` closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "palisade.toml",
                "bind = \"0.0.0.0:9000\"\ndata_dir = \"/from/toml\"\ndatabase_url = \"sqlite://toml.db\"",
            )?;
            jail.set_env("PALISADE_DATA_DIR", "/from/env");
            jail.set_env("PALISADE_DATABASE_URL", "postgres://u:p@h/db");
            let overrides = Overrides {
                database_url: Some("sqlite://flag.db".into()),
                ..Overrides::default()
            };
            let config = Config::load(None, &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.bind, SocketAddr::from(([0, 0, 0, 0], 9000)));
            assert_eq!(config.data_dir, PathBuf::from("/from/env"));
            assert_eq!(config.database_url.as_deref(), Some("sqlite://flag.db"));
            Ok(())
        });
    }

    #[test]
    fn defaults_without_file() {
        figment::Jail::expect_with(|_| {
            let config = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
            assert_eq!(
                config.database_url().map_err(|e| e.to_string())?.expose(),
                "sqlite://./data/palisade.db"
            );
            Ok(())
        });
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Config::load(
            Some(Path::new("/nonexistent/palisade.toml")),
            &Overrides::default(),
        );
        assert!(err.is_err());
    }
}
