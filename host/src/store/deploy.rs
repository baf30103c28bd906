//! What a deploy writes, worked out the same way for both backends from what they hold:
//! a new version, function ids kept across versions (those the new version lacks go
//! inactive and give up their labels and domains), labels and domains to reserve.

use super::{
    AppRecord, AppState, DeployRequest, Deployed, FunctionKind, FunctionRecord, StoreError,
    VersionRecord,
};
use super::{new_id, now};

/// A label or domain the deploy reserves for a function.
pub(super) struct Reservation {
    /// A custom domain (else a `workspace/label`).
    pub(super) domain: bool,
    /// The label's or domain's key.
    pub(super) key: String,
    /// The function it routes to.
    pub(super) function_id: String,
    /// How an error names it.
    pub(super) what: String,
}

/// The records a deploy writes.
pub(super) struct Plan {
    /// The app with its new version.
    pub(super) app: AppRecord,
    /// The new version.
    pub(super) version: VersionRecord,
    /// The functions of the new version (ids kept from earlier versions).
    pub(super) active: Vec<FunctionRecord>,
    /// Functions of earlier versions the new one lacks, now inactive.
    pub(super) gone: Vec<FunctionRecord>,
    /// Labels and domains to hold for the active functions.
    pub(super) reservations: Vec<Reservation>,
}

fn wanted_state(req: &DeployRequest<'_>) -> AppState {
    state_for(req.ephemeral)
}

fn state_for(ephemeral: bool) -> AppState {
    if ephemeral {
        AppState::Ephemeral
    } else {
        AppState::Deployed
    }
}

/// A new app, with no version yet.
pub(super) fn new_app(
    workspace: &str,
    environment: &str,
    name: &str,
    ephemeral: bool,
) -> AppRecord {
    let now = now();
    AppRecord {
        app_id: new_id("ap"),
        name: name.to_owned(),
        workspace: workspace.to_owned(),
        environment: environment.to_owned(),
        state: state_for(ephemeral),
        version: 0,
        created_at: now.clone(),
        updated_at: now,
    }
}

/// The error of creating an app whose name is taken.
pub(super) fn name_taken(workspace: &str, environment: &str, name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "an app named {name:?} already exists in {workspace}/{environment}"
    ))
}

/// Whether the deploy changes nothing: the same component in the same state.
pub(super) fn unchanged(app: &AppRecord, current: &VersionRecord, req: &DeployRequest<'_>) -> bool {
    app.state == wanted_state(req) && app.version > 0 && current.digest == req.digest
}

/// The answer to a deploy that [`unchanged`] found to change nothing: `app` as it is, its
/// `current` version and its active functions among `previous`.
pub(super) fn as_before(
    app: &AppRecord,
    current: VersionRecord,
    previous: Vec<FunctionRecord>,
) -> Deployed {
    Deployed {
        app: app.clone(),
        version: current,
        changed: false,
        functions: previous.into_iter().filter(|f| f.active).collect(),
    }
}

/// Plans a deploy onto `existing` (the app of that name, if any), whose functions so far
/// are `previous`.
pub(super) fn plan(
    req: &DeployRequest<'_>,
    existing: Option<AppRecord>,
    previous: Vec<FunctionRecord>,
) -> Plan {
    let now = now();
    let mut app = existing
        .unwrap_or_else(|| new_app(req.workspace, req.environment, req.name, req.ephemeral));
    app.version += 1;
    app.state = wanted_state(req);
    app.updated_at = now.clone();
    let version = VersionRecord {
        version: app.version,
        digest: req.digest.to_owned(),
        manifest: req.manifest.clone(),
        created_at: now.clone(),
        deployed_by: req.deployed_by.clone(),
        rollback_of: req.rollback_of,
    };
    let names = req
        .manifest
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), FunctionKind::Web))
        .chain(
            req.manifest
                .functions
                .iter()
                .map(|f| (f.name.as_str(), FunctionKind::Function)),
        );
    let mut active = Vec::new();
    for (name, kind) in names {
        let mut record = previous
            .iter()
            .find(|f| f.name == name)
            .cloned()
            .unwrap_or_else(|| FunctionRecord {
                kind,
                function_id: new_id("fu"),
                app_id: app.app_id.clone(),
                name: name.to_owned(),
                custom_label: None,
                active: true,
                created_at: now.clone(),
            });
        record.active = true;
        record.kind = kind;
        active.push(record);
    }
    let gone = previous
        .into_iter()
        .filter(|p| !active.iter().any(|a| a.function_id == p.function_id))
        .map(|mut f| {
            f.active = false;
            f
        })
        .collect();
    let mut reservations = Vec::new();
    for (spec, record) in req.manifest.endpoints.iter().zip(&active) {
        for label in spec.label.iter().chain(record.custom_label.iter()) {
            reservations.push(Reservation {
                domain: false,
                key: format!("{}/{label}", req.workspace),
                function_id: record.function_id.clone(),
                what: format!("the label {label:?}"),
            });
        }
        for domain in &spec.custom_domains {
            let domain = domain.to_ascii_lowercase();
            reservations.push(Reservation {
                domain: true,
                what: format!("the domain {domain:?}"),
                key: domain,
                function_id: record.function_id.clone(),
            });
        }
    }
    Plan {
        app,
        version,
        active,
        gone,
        reservations,
    }
}
