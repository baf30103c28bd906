//! The apps a host serves now, with those that run schedules indexed: the scheduler looks
//! for due runs four times a second, and that look should cost the scheduled apps, not
//! every app the host serves.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::shapes::WebApp;

/// An app being served: its current version's component.
#[derive(Clone)]
pub(super) struct LiveApp {
    pub(super) web: Arc<WebApp>,
    pub(super) version: u32,
}

impl LiveApp {
    /// Whether this version has a function that runs on a schedule.
    fn scheduled(&self) -> bool {
        self.web
            .manifest()
            .functions
            .iter()
            .any(|f| f.schedule.is_some())
    }
}

/// The live apps by id.
#[derive(Default)]
pub(super) struct LiveApps {
    apps: HashMap<String, LiveApp>,
    /// Ids of the apps whose version has a scheduled function.
    scheduled: BTreeSet<String>,
}

impl LiveApps {
    /// The app `app_id`, if it is served.
    pub(super) fn get(&self, app_id: &str) -> Option<&LiveApp> {
        self.apps.get(app_id)
    }

    /// Serves `live` as `app_id`, in place of any earlier version.
    pub(super) fn insert(&mut self, app_id: String, live: LiveApp) {
        if live.scheduled() {
            self.scheduled.insert(app_id.clone());
        } else {
            self.scheduled.remove(&app_id);
        }
        self.apps.insert(app_id, live);
    }

    /// Stops serving `app_id`; returns whether it was served.
    pub(super) fn remove(&mut self, app_id: &str) -> bool {
        self.scheduled.remove(app_id);
        self.apps.remove(app_id).is_some()
    }

    /// The ids of every live app.
    pub(super) fn ids(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// The live apps that have a scheduled function.
    pub(super) fn scheduled(&self) -> impl Iterator<Item = (&str, &LiveApp)> {
        self.scheduled
            .iter()
            .filter_map(|id| Some((id.as_str(), self.apps.get(id)?)))
    }
}
