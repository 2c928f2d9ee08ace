//! Reading the seed files: the TOML entry arrays (`[[services]]`,
//! `[[partners]]`, …) and their keys, with errors that name the file, the
//! entry and the key, so a council editing its own copy finds the mistake.

use std::collections::BTreeSet;

use crate::error::CatalogueError;

pub(crate) fn parse_file(file: &str, text: &str) -> Result<toml::Table, CatalogueError> {
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .and_then(|span| text.get(..span.start))
            .map(|before| before.matches('\n').count() + 1);
        let at = line.map(|line| format!(" at line {line}")).unwrap_or_default();
        CatalogueError {
            file: file.to_owned(),
            entry: None,
            key: None,
            problem: format!("not valid toml{at}: {}", e.message().trim_end()),
        }
    })
}

pub(crate) fn entries<'t>(
    file: &str,
    table: &'t toml::Table,
    array: &str,
) -> Result<&'t Vec<toml::Value>, CatalogueError> {
    let whole_file = |key: Option<&str>, problem: String| CatalogueError {
        file: file.to_owned(),
        entry: None,
        key: key.map(str::to_owned),
        problem,
    };
    if let Some(unknown) = table.keys().find(|key| *key != array) {
        return Err(whole_file(
            Some(unknown),
            format!("unknown top-level key; expected only [[{array}]] entries"),
        ));
    }
    let list = table
        .get(array)
        .and_then(toml::Value::as_array)
        .ok_or_else(|| whole_file(Some(array), format!("missing: expected [[{array}]] entries")))?;
    if list.is_empty() {
        return Err(whole_file(
            Some(array),
            "at least one entry is required".to_owned(),
        ));
    }
    Ok(list)
}

/// One entry being read, to name it in errors.
pub(crate) struct EntryReader<'t> {
    file: &'static str,
    label: String,
    table: &'t toml::Table,
}

impl<'t> EntryReader<'t> {
    pub(crate) fn new(
        file: &'static str,
        array: &str,
        index: usize,
        value: &'t toml::Value,
        allowed_keys: &[&str],
    ) -> Result<Self, CatalogueError> {
        let mut label = format!("{array}[{index}]");
        let Some(table) = value.as_table() else {
            return Err(CatalogueError {
                file: file.to_owned(),
                entry: Some(label),
                key: None,
                problem: format!("must be a table ([[{array}]])"),
            });
        };
        // Name the entry by its id too when it has one, so the error can be
        // found by searching the file as well as by counting entries.
        if let Some(id) = table.get("id").and_then(toml::Value::as_str) {
            label = format!("{array}[{index}] (id \"{id}\")");
        }
        let reader = Self { file, label, table };
        if let Some(unknown) = table.keys().find(|key| !allowed_keys.contains(&key.as_str())) {
            return Err(reader.error(
                Some(unknown),
                format!("unknown key; expected {}", allowed_keys.join(", ")),
            ));
        }
        Ok(reader)
    }

    pub(crate) fn error(&self, key: Option<&str>, problem: String) -> CatalogueError {
        CatalogueError {
            file: self.file.to_owned(),
            entry: Some(self.label.clone()),
            key: key.map(str::to_owned),
            problem,
        }
    }

    /// An error about `key` of this entry.
    pub(crate) fn key_error(&self, key: &str, problem: String) -> CatalogueError {
        self.error(Some(key), problem)
    }

    pub(crate) fn value(&self, key: &str) -> Result<&'t toml::Value, CatalogueError> {
        self.table
            .get(key)
            .ok_or_else(|| self.error(Some(key), "missing".to_owned()))
    }

    pub(crate) fn optional_text(&self, key: &str) -> Result<Option<String>, CatalogueError> {
        let Some(value) = self.table.get(key) else {
            return Ok(None);
        };
        let text = value
            .as_str()
            .ok_or_else(|| self.key_error(key, "must be a string".to_owned()))?
            .trim();
        if text.is_empty() {
            return Err(self.key_error(key, "must not be empty".to_owned()));
        }
        Ok(Some(text.to_owned()))
    }

    pub(crate) fn text(&self, key: &str) -> Result<String, CatalogueError> {
        self.optional_text(key)?
            .ok_or_else(|| self.key_error(key, "missing".to_owned()))
    }

    /// A list of distinct non-empty strings; `allow_empty` for lists whose
    /// emptiness means something.
    pub(crate) fn text_list(&self, key: &str, allow_empty: bool) -> Result<Vec<String>, CatalogueError> {
        let list = self
            .value(key)?
            .as_array()
            .ok_or_else(|| self.key_error(key, "must be a list of strings".to_owned()))?;
        if list.is_empty() && !allow_empty {
            return Err(self.key_error(key, "must not be empty".to_owned()));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            let text = item
                .as_str()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .ok_or_else(|| self.key_error(key, format!("item {index} must be a non-empty string")))?;
            if !seen.insert(text) {
                return Err(self.key_error(key, format!("\"{text}\" is listed twice")));
            }
            out.push(text.to_owned());
        }
        Ok(out)
    }
}

pub(crate) fn check_unique<'a>(
    file: &str,
    array: &str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<(), CatalogueError> {
    let mut seen = std::collections::BTreeMap::new();
    for (index, id) in ids.enumerate() {
        if let Some(first) = seen.insert(id, index) {
            return Err(CatalogueError {
                file: file.to_owned(),
                entry: Some(format!("{array}[{index}] (id \"{id}\")")),
                key: Some("id".to_owned()),
                problem: format!("duplicate id, already used by {array}[{first}]"),
            });
        }
    }
    Ok(())
}
