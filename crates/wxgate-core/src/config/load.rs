//! Loading: the TOML file, then the `WXGATE__SECTION__KEY` environment overlay, then serde into
//! [`Settings`] and the validation of [`super::validate`]. Environment variables are applied to
//! the parsed TOML table before serde sees it, so a variable is checked exactly like the key it
//! replaces and an error names that key.

use std::path::Path;

use super::{invalid, ConfigError, Settings, Validated};

const ENV_PREFIX: &str = "WXGATE__";

impl Settings {
    /// Reads `path`, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Ok(Self::load_validated(path)?.0)
    }

    /// [`Settings::load`], keeping the accounts the validation built, so that a gateway started
    /// from them builds its accounts (rules, key rings, domain patterns) once.
    pub fn load_validated(path: &Path) -> Result<(Self, Validated), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml_and_env_validated(&text, std::env::vars())
    }

    /// Parses `text`, applies the `WXGATE__…` variables among `env`, validates.
    pub fn from_toml_and_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::from_toml_and_env_validated(text, env)?.0)
    }

    /// [`Settings::from_toml_and_env`], keeping the accounts and platforms the validation built.
    pub fn from_toml_and_env_validated(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Validated), ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        apply_env(&mut table, env)?;
        let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                invalid(
                    if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    e.into_inner().to_string(),
                )
            })?;
        let accounts = settings.validate()?;
        Ok((settings, accounts))
    }
}

/// Applies `WXGATE__SECTION__KEY=value` variables onto the parsed file. Account values are
/// addressed by name: `WXGATE__ACCOUNTS__MAIN__SECRET` sets `secret` of the account named
/// `main` (a `-` in a name is written `_`).
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let parts: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if parts.iter().any(String::is_empty) {
            return Err(invalid(name, "malformed variable name"));
        }
        let value = env_value(&value);
        if parts[0] == "accounts" || parts[0] == "components" {
            let list = parts[0].as_str();
            let shape = format!(
                "expected WXGATE__{}__<NAME>__<KEY>",
                list.to_ascii_uppercase()
            );
            let [_, account, key @ ..] = parts.as_slice() else {
                return Err(invalid(name, shape));
            };
            if key.is_empty() {
                return Err(invalid(name, shape));
            }
            let accounts = table
                .get_mut(list)
                .and_then(toml::Value::as_array_mut)
                .ok_or_else(|| invalid(&name, format!("no [[{list}]] in the config file")))?;
            let entry = accounts
                .iter_mut()
                .filter_map(toml::Value::as_table_mut)
                .find(|t| {
                    t.get("name")
                        .and_then(toml::Value::as_str)
                        .is_some_and(|n| n.replace('-', "_") == *account)
                })
                .ok_or_else(|| {
                    invalid(
                        &name,
                        format!("no entry of [[{list}]] is named {account:?} in the config file"),
                    )
                })?;
            set_path(entry, key, value);
        } else {
            set_path(table, &parts, value);
        }
    }
    Ok(())
}

/// Lists written `[a, b]` in a variable are parsed as TOML; everything else stays a string
/// (the typed fields accept strings where a number is expected).
fn env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        if let Ok(t) = toml::from_str::<toml::Table>(&format!("v = {trimmed}")) {
            if let Some(v) = t.get("v") {
                return v.clone();
            }
        }
    }
    if trimmed == "true" || trimmed == "false" {
        return toml::Value::Boolean(trimmed == "true");
    }
    toml::Value::String(raw.to_owned())
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let child = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !child.is_table() {
                *child = toml::Value::Table(toml::Table::new());
            }
            if let Some(t) = child.as_table_mut() {
                set_path(t, rest, value);
            }
        }
    }
}
