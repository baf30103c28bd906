//! Environment variables and secrets: what a call finds in its environment. A function
//! names secrets (`secrets = ["db"]`); each call gets their key/value pairs, read through
//! a [`SecretSource`] (the store, where they are sealed at rest), plus its identity
//! (`WASMHOST_CALL_ID`, `WASMHOST_ATTEMPT`, `WASMHOST_FUNCTION`). Nothing else of the
//! host's environment reaches a guest.

use std::collections::BTreeMap;

use wasmtime::component::Linker;

use super::{Capability, CapabilityViews, Declared, WasiSetup};
use crate::manifest::is_dns_label;

/// Where secrets' values come from.
pub trait SecretSource {
    /// The values of secret `name`; `None` when there is no such secret.
    fn secret(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, Box<dyn std::error::Error + Send + Sync>>;
}

/// Why a call's environment cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A secret the function names does not exist.
    #[error("secret {0:?} does not exist: create it with `wasmhost secret create {0} KEY=VALUE`")]
    MissingSecret(String),
    /// The secret could not be read.
    #[error("secret {name:?}: {source}")]
    Unreadable {
        /// The secret.
        name: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a function's secrets are refused at deploy.
#[derive(Debug, thiserror::Error)]
#[error("secret name {0:?} is not a name a secret can have (1-63 of a-z, 0-9 and '-')")]
pub struct SecretNameError(pub String);

/// Who a call is, as its environment tells it.
#[derive(Debug, Clone, Copy)]
pub struct CallIdentity<'a> {
    /// The call's id.
    pub call_id: &'a str,
    /// Its attempt, from 1.
    pub attempt: u32,
    /// The function's name.
    pub function: &'a str,
}

/// The environment capability.
pub struct Env;

impl Env {
    /// The variables of one call: the named secrets' pairs, then the call's identity
    /// (which a secret cannot override).
    pub fn prepare(
        secrets: &[String],
        source: &dyn SecretSource,
        identity: CallIdentity<'_>,
    ) -> Result<Vec<(String, String)>, EnvError> {
        let mut vars = Vec::new();
        for name in secrets {
            let values = source
                .secret(name)
                .map_err(|source| EnvError::Unreadable {
                    name: name.clone(),
                    source,
                })?
                .ok_or_else(|| EnvError::MissingSecret(name.clone()))?;
            vars.extend(values);
        }
        vars.push(("WASMHOST_CALL_ID".into(), identity.call_id.to_owned()));
        vars.push(("WASMHOST_ATTEMPT".into(), identity.attempt.to_string()));
        vars.push(("WASMHOST_FUNCTION".into(), identity.function.to_owned()));
        Ok(vars)
    }
}

impl Capability for Env {
    type Config = ();
    type ConfigError = SecretNameError;
    /// The call's variables ([`Env::prepare`]).
    type Grant<'a> = &'a [(String, String)];
    type Instance = ();

    /// `wasi:cli/environment` is linked with the rest of WASI.
    fn link<T: CapabilityViews>(_: &mut Linker<T>, _p3: bool) -> wasmtime::Result<()> {
        Ok(())
    }

    /// A secret the store could never hold would fail every call: refused at deploy.
    fn configure(declared: &Declared<'_>) -> Result<(), SecretNameError> {
        match declared.secrets.iter().find(|s| !is_dns_label(s)) {
            Some(bad) => Err(SecretNameError(bad.clone())),
            None => Ok(()),
        }
    }

    /// The variables, and nothing of the host's own environment.
    fn instance(vars: Self::Grant<'_>, wasi: &mut WasiSetup) -> std::io::Result<()> {
        if !vars.is_empty() {
            let vars = vars.to_vec();
            wasi.later(move |wasi| {
                wasi.envs(&vars);
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl SecretSource for Fixed {
        fn secret(
            &self,
            name: &str,
        ) -> Result<Option<BTreeMap<String, String>>, Box<dyn std::error::Error + Send + Sync>>
        {
            match name {
                "db" => Ok(Some(BTreeMap::from([("PASSWORD".into(), "pw".into())]))),
                "broken" => Err("sealed with another key".into()),
                _ => Ok(None),
            }
        }
    }

    fn identity() -> CallIdentity<'static> {
        CallIdentity {
            call_id: "fc-1",
            attempt: 2,
            function: "f",
        }
    }

    #[test]
    fn secrets_and_identity_make_the_environment() {
        let vars = Env::prepare(&["db".into()], &Fixed, identity()).unwrap();
        assert_eq!(vars[0], ("PASSWORD".into(), "pw".into()));
        assert!(vars.contains(&("WASMHOST_ATTEMPT".into(), "2".into())));
        assert_eq!(vars.last().unwrap().1, "f");
    }

    #[test]
    fn secret_names_are_checked_at_deploy() {
        let secrets = ["db".to_owned(), "Not_A_Name".to_owned()];
        let mut declared = Declared {
            what: "function",
            name: "f",
            secrets: &secrets[..1],
            volumes: &[],
            allowed_outbound_hosts: &[],
            gpu: None,
        };
        assert!(Env::configure(&declared).is_ok());
        declared.secrets = &secrets;
        let err = Env::configure(&declared).unwrap_err().to_string();
        assert!(err.contains("\"Not_A_Name\""), "{err}");
    }

    #[test]
    fn a_missing_or_unreadable_secret_is_a_clear_error() {
        let missing = Env::prepare(&["nope".into()], &Fixed, identity()).unwrap_err();
        assert!(missing.to_string().contains("wasmhost secret create nope"));
        let broken = Env::prepare(&["broken".into()], &Fixed, identity()).unwrap_err();
        assert!(broken.to_string().contains("another key"), "{broken}");
    }
}
