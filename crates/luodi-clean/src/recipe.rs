//! Recipes: TOML files with an ordered list of `[[step]]` tables, each naming a step and
//! setting its parameters. Errors name the recipe file, the line, the step and the parameter.
//!
//! ```toml
//! name = "kb-ingest"
//! [[step]]
//! name = "quality"
//! min_chars = 20
//! ```

use std::path::Path;

use crate::steps::{self, Ctx};
use crate::{CleanError, Result, Step};

/// The recipes that ship with luodi (`--recipe NAME`).
pub const BUILTIN: &[(&str, &str)] = &[
    ("kb-ingest", include_str!("../recipes/kb-ingest.toml")),
    ("pretrain-zh", include_str!("../recipes/pretrain-zh.toml")),
    ("sft-prep", include_str!("../recipes/sft-prep.toml")),
];

/// A recipe's text and where it came from (before its steps are built).
#[derive(Debug, Clone)]
pub struct RecipeSource {
    /// The file, or `builtin:NAME`.
    pub origin: String,
    pub text: String,
}

impl RecipeSource {
    /// A recipe file, or the name of a recipe that ships with luodi.
    pub fn load(spec: &str) -> Result<RecipeSource> {
        let p = Path::new(spec);
        if p.is_file() {
            let text = std::fs::read_to_string(p).map_err(|e| CleanError::io(p, e))?;
            return Ok(RecipeSource {
                origin: spec.to_owned(),
                text,
            });
        }
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
            return Ok(RecipeSource {
                origin: format!("builtin:{name}"),
                text: (*text).to_owned(),
            });
        }
        let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        Err(CleanError::Recipe(format!(
            "recipe {spec:?}: no such file, nor a recipe that ships with luodi ({})",
            names.join(", ")
        )))
    }

    /// A digest of the text: a run resumes only with the recipe it started with.
    pub fn digest(&self) -> String {
        blake3::hash(self.text.as_bytes()).to_hex()[..16].to_owned()
    }
}

/// A built recipe.
pub struct Recipe {
    pub name: String,
    pub steps: Vec<Step>,
}

impl std::fmt::Debug for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.steps.iter().map(Step::name).collect();
        f.debug_struct("Recipe")
            .field("name", &self.name)
            .field("steps", &names)
            .finish()
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Byte offsets of the `[[step]]` headers, in order.
fn step_headers(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with("[[step]]") || t.starts_with("[[ step ]]") {
            out.push(pos);
        }
        pos += line.len();
    }
    out
}

/// The line where `key` is set inside the section starting at `from` (before `to`).
fn key_line(text: &str, from: usize, to: usize, key: &str) -> Option<usize> {
    let section = &text[from..to.min(text.len())];
    let mut pos = from;
    for line in section.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(line_of(text, pos));
            }
        }
        pos += line.len();
    }
    None
}

impl Recipe {
    /// Parses and builds every step (`state`: the folder of the duplicate stores).
    pub fn build(src: &RecipeSource, state: &Path) -> Result<Recipe> {
        let err = |line: Option<usize>, msg: String| {
            CleanError::Recipe(match line {
                Some(l) => format!("recipe {} line {l}: {msg}", src.origin),
                None => format!("recipe {}: {msg}", src.origin),
            })
        };
        let table: toml::Table = toml::from_str(&src.text).map_err(|e| {
            let line = e.span().map(|s| line_of(&src.text, s.start));
            err(line, e.message().to_owned())
        })?;
        for k in table.keys() {
            if !matches!(k.as_str(), "name" | "description" | "step") {
                return Err(err(
                    key_line(&src.text, 0, src.text.len(), k),
                    format!(
                        "unknown key {k:?} (a recipe has name, description and [[step]] tables)"
                    ),
                ));
            }
        }
        let name = match table.get("name") {
            None => src.origin.clone(),
            Some(toml::Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(err(
                    key_line(&src.text, 0, src.text.len(), "name"),
                    "name: give a string".into(),
                ))
            }
        };
        let list = match table.get("step") {
            Some(toml::Value::Array(a)) if !a.is_empty() => a,
            _ => {
                return Err(err(
                    None,
                    "no steps: add [[step]] tables with a name each".into(),
                ))
            }
        };
        let headers = step_headers(&src.text);
        let mut steps = Vec::new();
        for (i, v) in list.iter().enumerate() {
            let from = headers.get(i).copied().unwrap_or(0);
            let to = headers.get(i + 1).copied().unwrap_or(src.text.len());
            let header_line = headers.get(i).map(|o| line_of(&src.text, *o));
            let toml::Value::Table(t) = v else {
                return Err(err(header_line, format!("step {}: not a table", i + 1)));
            };
            let mut params = t.clone();
            let step_name = match params.remove("name") {
                Some(toml::Value::String(s)) => s,
                Some(_) => {
                    return Err(err(
                        key_line(&src.text, from, to, "name").or(header_line),
                        format!("step {}: name: give a string", i + 1),
                    ))
                }
                None => {
                    return Err(err(
                        header_line,
                        format!("step {}: no name (see `luodi clean --list-steps`)", i + 1),
                    ))
                }
            };
            let label = format!("step {} ({step_name})", i + 1);
            let ctx = Ctx {
                label: label.clone(),
                state,
            };
            let step = steps::build(&step_name, &params, &ctx).map_err(|msg| {
                // the parameter the message names, if any, gives the line
                let line = params
                    .keys()
                    .filter(|k| {
                        msg.contains(&format!("`{k}`"))
                            || msg.starts_with(&format!("{k}:"))
                            || msg.contains(&format!("field `{k}`"))
                    })
                    .find_map(|k| key_line(&src.text, from, to, k))
                    .or_else(|| {
                        // serde names an unknown field in backquotes
                        msg.split('`')
                            .nth(1)
                            .and_then(|k| key_line(&src.text, from, to, k))
                    })
                    .or_else(|| key_line(&src.text, from, to, "name"))
                    .or(header_line);
                err(line, format!("{label}: {msg}"))
            })?;
            steps.push(step);
        }
        Ok(Recipe { name, steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> std::result::Result<Recipe, String> {
        let dir = tempfile::tempdir().unwrap();
        Recipe::build(
            &RecipeSource {
                origin: "r.toml".into(),
                text: text.into(),
            },
            dir.path(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn builtin_recipes_build() {
        let dir = tempfile::tempdir().unwrap();
        for (name, _) in BUILTIN {
            let r = Recipe::build(&RecipeSource::load(name).unwrap(), dir.path()).unwrap();
            assert!(!r.steps.is_empty(), "{name}");
        }
    }

    #[test]
    fn errors_name_the_line_the_step_and_the_parameter() {
        let e = build("name = \"x\"\n[[step]]\nname = \"normalize\"\n\n[[step]]\nname = \"quality\"\nmin_chars = \"many\"\n").unwrap_err();
        assert!(
            e.contains("r.toml line 7")
                && e.contains("step 2 (quality)")
                && e.contains("min_chars"),
            "{e}"
        );
        let e = build("[[step]]\nname = \"dedupe\"\n").unwrap_err();
        assert!(
            e.contains("line 2")
                && e.contains("unknown step \"dedupe\"")
                && e.contains("near_dedup"),
            "{e}"
        );
        let e = build("[[step]]\nname = \"quality\"\nmin_chars = 5\nmax_char = 10\n").unwrap_err();
        assert!(e.contains("line 4") && e.contains("max_char"), "{e}");
        let e = build("[[step]]\nname = \"near_dedup\"\nthreshold = 1.5\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("threshold"), "{e}");
        let e = build("[[step]\nname = 1").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = build("name = \"x\"\n").unwrap_err();
        assert!(e.contains("no steps"), "{e}");
    }
}
