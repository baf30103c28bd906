//! Path patterns such as `/items/{item_id}` and the method/path table shared by the
//! ASGI-like and WSGI-like app APIs.

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A compiled path pattern: literal segments and `{name}` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses a pattern such as `/items/{item_id}`.
    pub fn parse(pattern: &str) -> Self {
        let segments = split(pattern)
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        Self { segments }
    }

    /// The parameters of `path` if it matches.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts: Vec<&str> = split(path).collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), part.to_owned())),
            }
        }
        Some(params)
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// What a lookup found.
pub enum Found<'a, H> {
    /// A route: its handler and path parameters.
    Route(&'a H, Vec<(String, String)>),
    /// The path exists with other methods (405); they are listed.
    WrongMethod(Vec<String>),
    /// Nothing matches (404).
    Nothing,
}

/// Routes by method and path pattern, first match wins.
pub struct Router<H> {
    routes: Vec<(String, Pattern, H)>,
}

impl<H> Default for Router<H> {
    fn default() -> Self {
        Self { routes: Vec::new() }
    }
}

impl<H> Router<H> {
    /// Adds a route; `method` is upper-cased, `*` matches any method.
    pub fn add(&mut self, method: &str, pattern: &str, handler: H) {
        self.routes.push((
            method.to_ascii_uppercase(),
            Pattern::parse(pattern),
            handler,
        ));
    }

    /// Finds the route for `method` and `path`; `HEAD` falls back to `GET`.
    pub fn find(&self, method: &str, path: &str) -> Found<'_, H> {
        let mut allowed = Vec::new();
        for want in [method, if method == "HEAD" { "GET" } else { method }] {
            for (m, pattern, handler) in &self.routes {
                if let Some(params) = pattern.matches(path) {
                    if m == want || m == "*" {
                        return Found::Route(handler, params);
                    }
                    if !allowed.contains(m) {
                        allowed.push(m.clone());
                    }
                }
            }
        }
        if allowed.is_empty() {
            Found::Nothing
        } else {
            Found::WrongMethod(allowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_literals_and_params() {
        let p = Pattern::parse("/items/{item_id}");
        assert_eq!(
            p.matches("/items/42"),
            Some(vec![("item_id".into(), "42".into())])
        );
        assert_eq!(p.matches("/items"), None);
        assert_eq!(p.matches("/other/42"), None);
        assert_eq!(Pattern::parse("/").matches("/"), Some(vec![]));
    }

    #[test]
    fn router_reports_wrong_methods() {
        let mut r = Router::default();
        r.add("GET", "/items/{id}", 1);
        r.add("POST", "/items", 2);
        assert!(matches!(r.find("GET", "/items/1"), Found::Route(1, _)));
        assert!(matches!(r.find("HEAD", "/items/1"), Found::Route(1, _)));
        assert!(matches!(r.find("GET", "/items"), Found::WrongMethod(m) if m == ["POST"]));
        assert!(matches!(r.find("GET", "/nope"), Found::Nothing));
    }
}
