//! Signing keys, this host's key, and signing and checking model bundles.

use std::path::Path;

use anyhow::Context;
use host::{out, out_raw};

use crate::context::Ctx;

/// `mimml keys generate`: a clinic's signing key pair.
pub(crate) fn generate(out: &Path, name: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let key = runtime::signing::generate()?;
    let (secret, public) = (out.join(format!("{name}.key")), out.join(format!("{name}.pub")));
    runtime::signing::write_key_pair(&key, &secret, &public, name)?;
    out!("secret key  {} (mode 0600: keep it off devices and out of version control)", secret.display());
    out!("public key  {} (key id {})", public.display(), runtime::signing::key_id(&key.verifying_key()));
    Ok(())
}

/// `mimml keys host`: this host's public key line (created when there is none).
pub(crate) fn host(ctx: &Ctx) -> anyhow::Result<()> {
    let key = ctx.host_key(true)?.context("no host key")?;
    out_raw!("{}", runtime::signing::public_line(&key.verifying_key(), "mimml host"));
    Ok(())
}

/// `mimml bundle sign`.
pub(crate) fn sign(key: &Path, version: Option<u64>, bundle: &Path) -> anyhow::Result<()> {
    let key = runtime::signing::read_secret(key)?;
    let m = runtime::bundle::sign_bundle(bundle, &key, version)?;
    out!(
        "signed {} version {} with key {} ({})",
        m.model_version,
        m.version,
        m.key_id.unwrap_or_default(),
        bundle.display()
    );
    Ok(())
}

/// `mimml bundle verify`: signature, hashes, schema and self-test, as a device checks them.
pub(crate) fn verify(trusted_keys: &Path, bundle: &Path) -> anyhow::Result<()> {
    let trusted = runtime::signing::TrustedKeys::read(trusted_keys)?;
    let m = runtime::bundle::verify_bundle_signature(bundle, &trusted)?;
    let b = runtime::bundle::Bundle::open(bundle)?;
    out!(
        "{}: signed by key {}, version {}, {} files match their hashes, feature schema {} matches this build, \
         self-test passed",
        b.manifest.model_version,
        m.key_id.unwrap_or_default(),
        m.version,
        m.files.len(),
        m.feature_schema
    );
    Ok(())
}
