//! What every command may need: the output mode, the model catalogue, this host's key and a
//! connection to a device that proves it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use host::client::DeviceClient;
use host::models::{Catalogue, Provenance};
use host::out;
use protocol::{DeviceInfo, ResultRecord};

use crate::cli::{Cli, PortArgs};

/// The global options, resolved once.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// One JSON document on stdout instead of text.
    pub(crate) json: bool,
    /// What each model was trained on.
    pub(crate) models: Catalogue,
    /// This host's key file.
    key_path: PathBuf,
}

impl Ctx {
    pub(crate) fn new(cli: &Cli) -> Ctx {
        Ctx {
            json: cli.json,
            models: Catalogue::load(&cli.models),
            key_path: cli.host_key.clone().unwrap_or_else(default_host_key),
        }
    }

    /// What the model of `r` was trained on.
    pub(crate) fn model(&self, r: &ResultRecord) -> Provenance {
        self.models.provenance(&r.model_version)
    }

    /// This host's key; created (0600) when `create` and there is none.
    pub(crate) fn host_key(&self, create: bool) -> anyhow::Result<Option<ed25519_dalek::SigningKey>> {
        host_key(&self.key_path, create)
    }

    /// Opens the device's port, says hello and proves this host's key (when it has one).
    pub(crate) fn connect(&self, p: &PortArgs) -> anyhow::Result<(DeviceClient<link::Port>, DeviceInfo)> {
        let port = link::open(&p.port, p.baud)?;
        let mut client = DeviceClient::new(port);
        if let Some(key) = self.host_key(false)? {
            client = client.with_key(key);
        }
        let info = client.hello().with_context(|| format!("no MIMML device answered on {}", p.port))?;
        if !info.authorized {
            tracing::info!("this host is not paired with {}: only what the device is can be read", info.device_id);
        }
        Ok((client, info))
    }
}

/// Prints `value` as one JSON document.
pub(crate) fn print_json(value: &serde_json::Value) {
    out!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Where this host's key lives by default.
fn default_host_key() -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("mimml/host.key")
}

/// The key at `path`; created (0600) when `create` and there is none.
fn host_key(path: &Path, create: bool) -> anyhow::Result<Option<ed25519_dalek::SigningKey>> {
    if path.exists() {
        return Ok(Some(runtime::signing::read_secret(path)?));
    }
    if !create {
        return Ok(None);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = runtime::signing::generate()?;
    runtime::signing::write_key_pair(&key, path, &path.with_extension("pub"), "mimml host")?;
    eprintln!("created this host's key {}", path.display());
    Ok(Some(key))
}
