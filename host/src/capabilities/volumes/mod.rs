//! Volumes: named directories of the data directory (`volumes/<name>`) mounted into a
//! function's sandbox as preopened directories; cap-std confines the guest to them.
//! Checked at deploy ([`Volumes::check`]: DNS-safe names, absolute mount paths, one
//! volume per path), resolved per call ([`Volumes::prepare`]) and preopened per instance
//! ([`Capability::instance`]).

use std::path::{Path, PathBuf};

use wasmtime::component::Linker;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::{Capability, CapabilityViews, Declared, WasiSetup};
use crate::manifest::is_dns_label;

/// A host directory mounted into the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it (e.g. `/data`).
    pub guest: String,
}

/// Why a function's volumes cannot be mounted.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A mount names a volume badly or mounts it at a relative path.
    #[error("volume mount {volume:?} at {path:?} needs a DNS-safe name and an absolute path")]
    Invalid {
        /// The volume.
        volume: String,
        /// Where it was to be mounted.
        path: String,
    },
    /// Two volumes are mounted at one path.
    #[error("two volumes are mounted at {0:?}")]
    SamePath(String),
    /// The volume's directory could not be made or opened.
    #[error("volume {volume}: {source}")]
    Io {
        /// The volume.
        volume: String,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// The volumes capability: where volumes live on the host.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

impl Volumes {
    /// Volumes under `dir` (the data directory's `volumes/`).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Checks a function's `(volume, path)` mounts at deploy.
    pub fn check<'a>(
        mounts: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), VolumeError> {
        let mut paths = Vec::new();
        for (volume, path) in mounts {
            if !is_dns_label(volume) || !path.starts_with('/') {
                return Err(VolumeError::Invalid {
                    volume: volume.to_owned(),
                    path: path.to_owned(),
                });
            }
            if paths.contains(&path) {
                return Err(VolumeError::SamePath(path.to_owned()));
            }
            paths.push(path);
        }
        Ok(())
    }

    /// The host directories of a call's mounts, made if missing.
    pub fn prepare<'a>(
        &self,
        mounts: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Vec<Mount>, VolumeError> {
        mounts
            .into_iter()
            .map(|(volume, path)| {
                let host = self.dir.join(volume);
                std::fs::create_dir_all(&host).map_err(|source| VolumeError::Io {
                    volume: volume.to_owned(),
                    source,
                })?;
                Ok(Mount {
                    host,
                    guest: path.to_owned(),
                })
            })
            .collect()
    }

    /// Where the volumes live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Capability for Volumes {
    type Config = ();
    type ConfigError = VolumeError;
    /// The call's mounts, resolved on the host ([`Volumes::prepare`]).
    type Grant<'a> = &'a [Mount];
    type Instance = ();

    /// `wasi:filesystem` is linked with the rest of WASI.
    fn link<T: CapabilityViews>(_: &mut Linker<T>, _p3: bool) -> wasmtime::Result<()> {
        Ok(())
    }

    fn configure(declared: &Declared<'_>) -> Result<(), VolumeError> {
        Self::check(
            declared
                .volumes
                .iter()
                .map(|v| (v.volume.as_str(), v.path.as_str())),
        )
    }

    /// The directories are opened now: a missing one fails the instantiation.
    fn instance(mounts: &[Mount], wasi: &mut WasiSetup) -> std::io::Result<()> {
        if mounts.is_empty() {
            return Ok(());
        }
        wasi.now(|wasi| preopen(wasi, mounts))
    }
}

/// Preopens `mounts` read-write; they are the only directories the guest sees.
fn preopen(builder: &mut WasiCtxBuilder, mounts: &[Mount]) -> std::io::Result<()> {
    for mount in mounts {
        builder
            .preopened_dir(&mount.host, &mount.guest, FsPerms::ReadWrite)
            .map_err(|e| {
                std::io::Error::other(format!("cannot mount {}: {e}", mount.host.display()))
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_checked_at_deploy() {
        assert!(Volumes::check([("notes", "/data"), ("cache", "/cache")]).is_ok());
        let bad = Volumes::check([("Notes", "/data")]).unwrap_err();
        assert!(bad.to_string().contains("DNS-safe"), "{bad}");
        assert!(Volumes::check([("notes", "data")]).is_err());
        let twice = Volumes::check([("a", "/d"), ("b", "/d")]).unwrap_err();
        assert!(matches!(twice, VolumeError::SamePath(_)));
        let mounts = [crate::manifest::VolumeMount {
            volume: "notes".into(),
            path: "relative".into(),
        }];
        let declared = Declared {
            what: "function",
            name: "f",
            secrets: &[],
            volumes: &mounts,
            allowed_outbound_hosts: &[],
            gpu: None,
        };
        assert!(matches!(
            Volumes::configure(&declared),
            Err(VolumeError::Invalid { .. })
        ));
    }

    #[test]
    fn a_call_gets_its_directories_and_sees_only_them() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(dir.path().join("volumes"));
        let mounts = volumes.prepare([("notes", "/data")]).unwrap();
        assert_eq!(mounts[0].host, dir.path().join("volumes/notes"));
        assert!(mounts[0].host.is_dir());
        let mut setup = crate::capabilities::WasiSetup::default();
        Volumes::instance(&mounts, &mut setup).unwrap();
        assert!(setup.started(), "mounts are opened with the instance");
        let missing = [Mount {
            host: dir.path().join("absent"),
            guest: "/x".into(),
        }];
        let err = preopen(&mut wasmtime_wasi::WasiCtx::builder(), &missing).unwrap_err();
        assert!(err.to_string().contains("cannot mount"), "{err}");
    }
}
