//! The callable functions of every app by id and by name, kept from the same records and
//! at the same moments as the routes. A guest's `spawn` or `call` finds its function
//! here: before, each one read the store on the thread serving the guest's endpoint,
//! twice for a call by name, and in cluster mode each read was a round trip to
//! PostgreSQL that held every connection of that thread.

use std::collections::HashMap;

use crate::store::{FunctionKind, FunctionRecord};

/// A callable function's app and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    pub(super) app_id: String,
    pub(super) name: String,
}

/// The active callable functions (not web endpoints) of every app the store lists.
#[derive(Debug, Default)]
pub(super) struct Directory {
    by_id: HashMap<String, Listed>,
    /// Each app's functions: name → id.
    by_app: HashMap<String, HashMap<String, String>>,
}

impl Directory {
    /// The directory of `functions`, every app's records.
    pub(super) fn build<'a>(functions: impl IntoIterator<Item = &'a FunctionRecord>) -> Self {
        let mut directory = Self::default();
        for f in functions {
            directory.add(f);
        }
        directory
    }

    /// Lists `app_id`'s functions as `functions` (its records) say, in place of what was
    /// listed for it.
    pub(super) fn set_app<'a>(
        &mut self,
        app_id: &str,
        functions: impl IntoIterator<Item = &'a FunctionRecord>,
    ) {
        self.remove_app(app_id);
        for f in functions.into_iter().filter(|f| f.app_id == app_id) {
            self.add(f);
        }
    }

    /// Lists nothing of `app_id` any more.
    pub(super) fn remove_app(&mut self, app_id: &str) {
        for id in self
            .by_app
            .remove(app_id)
            .into_iter()
            .flat_map(|m| m.into_values())
        {
            self.by_id.remove(&id);
        }
    }

    /// The function with id `function_id`.
    pub(super) fn by_id(&self, function_id: &str) -> Option<&Listed> {
        self.by_id.get(function_id)
    }

    /// The id of `app_id`'s function `name`.
    pub(super) fn by_name(&self, app_id: &str, name: &str) -> Option<&str> {
        self.by_app.get(app_id)?.get(name).map(String::as_str)
    }

    fn add(&mut self, f: &FunctionRecord) {
        if !f.active || f.kind != FunctionKind::Function {
            return;
        }
        let listed = Listed {
            app_id: f.app_id.clone(),
            name: f.name.clone(),
        };
        self.by_id.insert(f.function_id.clone(), listed);
        self.by_app
            .entry(f.app_id.clone())
            .or_default()
            .insert(f.name.clone(), f.function_id.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(app: &str, name: &str, id: &str, kind: FunctionKind, active: bool) -> FunctionRecord {
        FunctionRecord {
            kind,
            function_id: id.into(),
            app_id: app.into(),
            name: name.into(),
            custom_label: None,
            active,
            created_at: String::new(),
        }
    }

    fn listed(app: &str, name: &str) -> Listed {
        Listed {
            app_id: app.into(),
            name: name.into(),
        }
    }

    #[test]
    fn lists_active_functions_only_and_follows_each_app() {
        let f = FunctionKind::Function;
        let a = [
            record("a", "square", "fu-1", f, true),
            record("a", "gone", "fu-2", f, false),
            record("a", "page", "fu-3", FunctionKind::Web, true),
        ];
        let b = [record("b", "square", "fu-4", f, true)];
        let mut d = Directory::build(a.iter().chain(&b));
        assert_eq!(d.by_id("fu-1"), Some(&listed("a", "square")));
        assert_eq!(d.by_id("fu-2"), None, "not in the current version");
        assert_eq!(d.by_id("fu-3"), None, "a web endpoint");
        assert_eq!(d.by_name("a", "square"), Some("fu-1"));
        assert_eq!(d.by_name("b", "square"), Some("fu-4"));
        assert_eq!(d.by_name("a", "page"), None);

        // A new version of `a` drops `square` and brings `cube`; `b` is untouched, and a
        // record of another app passed along is not taken as `a`'s.
        let a2 = [
            record("a", "square", "fu-1", f, false),
            record("a", "cube", "fu-5", f, true),
            record("c", "stray", "fu-6", f, true),
        ];
        d.set_app("a", &a2);
        assert_eq!(d.by_id("fu-1"), None);
        assert_eq!(d.by_name("a", "square"), None);
        assert_eq!(d.by_name("a", "cube"), Some("fu-5"));
        assert_eq!(d.by_id("fu-6"), None);
        assert_eq!(d.by_name("b", "square"), Some("fu-4"));

        d.remove_app("a");
        assert_eq!(d.by_id("fu-5"), None);
        assert_eq!(d.by_name("a", "cube"), None);
        assert_eq!(d.by_id("fu-4"), Some(&listed("b", "square")));
    }
}
