//! `wasmhost new <template> <dir>`: a new app that builds and serves as it is, in Rust
//! (typed endpoint, ASGI, WSGI, functions, class, GPU) or Python (typed endpoint, Flask,
//! Starlette, functions). The templates are compiled into the binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// One template: its name, what it makes, and the files it writes.
struct Template {
    name: &'static str,
    about: &'static str,
    language: Language,
    /// The main source file's text.
    source: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Language {
    Rust,
    Python,
}

const CARGO_TOML: &str = include_str!("../../templates/rust/Cargo.toml");
const GITIGNORE: &str = include_str!("../../templates/rust/gitignore");

const TEMPLATES: &[Template] = &[
    Template {
        name: "endpoint",
        about: "Rust: a typed web endpoint (query/JSON in, JSON out, /docs)",
        language: Language::Rust,
        source: include_str!("../../templates/rust/endpoint.rs"),
    },
    Template {
        name: "asgi",
        about: "Rust: an ASGI-style app (routes, middleware, server-sent events)",
        language: Language::Rust,
        source: include_str!("../../templates/rust/asgi.rs"),
    },
    Template {
        name: "wsgi",
        about: "Rust: a WSGI-style app (Flask-like routes)",
        language: Language::Rust,
        source: include_str!("../../templates/rust/wsgi.rs"),
    },
    Template {
        name: "function",
        about: "Rust: callable functions with retries and a timeout",
        language: Language::Rust,
        source: include_str!("../../templates/rust/function.rs"),
    },
    Template {
        name: "class",
        about: "Rust: a class whose state lives in a warm instance",
        language: Language::Rust,
        source: include_str!("../../templates/rust/class.rs"),
    },
    Template {
        name: "gpu",
        about: "Rust: a GPU endpoint (a WGSL compute shader)",
        language: Language::Rust,
        source: include_str!("../../templates/rust/gpu.rs"),
    },
    Template {
        name: "python-endpoint",
        about: "Python: typed web endpoints (Modal's fastapi_endpoint)",
        language: Language::Python,
        source: include_str!("../../templates/python/endpoint.py"),
    },
    Template {
        name: "flask",
        about: "Python: an unmodified Flask app (wsgi_app)",
        language: Language::Python,
        source: include_str!("../../templates/python/flask.py"),
    },
    Template {
        name: "starlette",
        about: "Python: an unmodified Starlette app (asgi_app)",
        language: Language::Python,
        source: include_str!("../../templates/python/starlette.py"),
    },
    Template {
        name: "python-function",
        about: "Python: callable functions with retries and a timeout",
        language: Language::Python,
        source: include_str!("../../templates/python/function.py"),
    },
];

/// Arguments of `wasmhost new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The template (`wasmhost new --list` shows them).
    #[arg(required_unless_present = "list")]
    template: Option<String>,
    /// The directory to create; its name becomes the app's name.
    #[arg(required_unless_present = "list")]
    dir: Option<PathBuf>,
    /// List the templates.
    #[arg(long)]
    list: bool,
}

pub(super) fn new(args: NewArgs) -> anyhow::Result<()> {
    let (Some(template), Some(dir)) = (args.template, args.dir) else {
        for t in TEMPLATES {
            println!("{:<16} {}", t.name, t.about);
        }
        return Ok(());
    };
    let Some(template) = TEMPLATES.iter().find(|t| t.name == template) else {
        let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        bail!(
            "no template named {template:?}; choose one of: {}",
            names.join(", ")
        );
    };
    let name = app_name(&dir)?;
    if dir.exists() && dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{} exists and is not empty: choose a new directory",
            dir.display()
        );
    }
    let files = match template.language {
        Language::Rust => {
            let sdk = super::build::rust_sdk()
                .context("cannot write the guest SDK to the tools directory")?;
            let sdk = sdk.to_string_lossy().replace('\\', "/");
            vec![
                ("Cargo.toml", cargo_toml(template, &name, &sdk)),
                ("Cargo.lock", super::build::EXAMPLES_LOCK.to_owned()),
                (".gitignore", GITIGNORE.to_owned()),
                ("src/lib.rs", render(template.source, &name, &sdk)),
            ]
        }
        Language::Python => vec![("app.py", render(template.source, &name, ""))],
    };
    for (path, text) in &files {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    }
    let target = match template.language {
        Language::Rust => dir.display().to_string(),
        Language::Python => dir.join("app.py").display().to_string(),
    };
    eprintln!("created {} ({}) in {}", name, template.about, dir.display());
    eprintln!("next: wasmhost run {target}");
    Ok(())
}

/// The app's name from the directory's: lowercase, `-` for anything not a DNS letter.
fn app_name(dir: &Path) -> anyhow::Result<String> {
    let base = dir
        .file_name()
        .with_context(|| format!("{} has no name to give the app", dir.display()))?
        .to_string_lossy()
        .to_ascii_lowercase();
    let name: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!(
            "{:?} does not make an app name: start the directory's name with a letter",
            base
        );
    }
    Ok(name
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned())
}

/// The crate's manifest. Only the app and class templates keep the SDK's `apps` feature:
/// without it the component exports typed endpoints and functions only, and its
/// instances start faster.
fn cargo_toml(template: &Template, name: &str, sdk: &str) -> String {
    let (options, note) = match template.name {
        "asgi" | "wsgi" | "class" => ("", ""),
        _ => (
            ", default-features = false",
            "\n# `#[wasmhost::asgi_app]`, `wsgi_app` and `cls` need its `apps` feature: \
             `features = [\"apps\"]`.",
        ),
    };
    render(CARGO_TOML, name, sdk)
        .replace("{{sdk_options}}", options)
        .replace("{{sdk_note}}", note)
}

fn render(text: &str, name: &str, sdk: &str) -> String {
    text.replace("{{name}}", name).replace("{{sdk}}", sdk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_come_from_the_directory() {
        assert_eq!(app_name(Path::new("/tmp/My_App")).unwrap(), "my-app");
        assert_eq!(app_name(Path::new("hello")).unwrap(), "hello");
        assert!(app_name(Path::new("/tmp/42")).is_err());
        assert!(app_name(Path::new("/")).is_err());
    }

    #[test]
    fn every_template_names_its_app() {
        for t in TEMPLATES {
            let text = render(t.source, "demo", "/sdk");
            assert!(!text.contains("{{"), "{}", t.name);
        }
        for t in TEMPLATES.iter().filter(|t| t.language == Language::Rust) {
            let text = cargo_toml(t, "demo", "/sdk");
            assert!(!text.contains("{{"), "{}", t.name);
            let cargo: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(cargo["package"]["name"].as_str(), Some("demo"));
            let sdk = &cargo["dependencies"]["wasmhost"];
            assert_eq!(sdk["path"].as_str(), Some("/sdk"));
            // The app and class templates need the SDK's `apps` feature (a default one).
            let apps = ["asgi", "wsgi", "class"].contains(&t.name);
            assert_eq!(sdk.get("default-features").is_none(), apps, "{}", t.name);
        }
    }
}
